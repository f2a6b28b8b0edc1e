"""Issue 27: every point rests on what the judge observes, with nothing kept from one exercise, or one
worker, to the next.

Dishonest submissions, written as a student would write them, graded through the real Gradescope flow
(one bundle, run_autograder, a few at a time). Each scores no more than its honest base:
- state: a submission that leaves answers in its folder, its home, /tmp, /var/tmp, /dev/shm and
  /run/lock while one exercise is graded, and answers another (and the hidden checks) only when it finds
  them, scores what the stubs score (§4: each exercise a fresh process, each worker a fresh folder and
  private temporary folders, all removed when it ends);
- oracle: a submission that derives predict_x0 from the grader's q_sample (its inverse), and that, while
  diffusion_loss is graded, queries the grader's q_sample, p_mean, predict_x0 and ddim_timesteps, keeps
  the answers (in memory and in files) and replays them for q_sample's hidden checks and ddim_timesteps,
  scores what the stubs score (§3: a stand-in answers only while an exercise whose reference calls it is
  graded, and its answers die with that exercise's process);
- in place: a q_sample that halves its input x0 after computing the right answer, and switches off the
  worker's in-place check (host._check_unchanged, host.same, torch.equal), scores no more than the same
  q_sample that leaves the check alone (§5: the judge compares the inputs' memory, shared with it, with
  its own copies).
Each attack is real: graded in-process (`pytest exercises/`, where nothing of this is enforced) the same
files score more than their honest base.

The bundle runs need root and setpriv (Gradescope's container, CI), like tests/test_attacks.py.
"""

import os
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import pytest

from mini_diffusion._course import gradescope_bundle, release, sandbox, student_release
from mini_diffusion._base.catalog import EXERCISE_MODULES

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grader_harness import (by_exercise, finish_grader, package_copy, run_bundles, solution_source,  # noqa: E402
                            start_grader, unzip_bundle)

CAPS = sandbox.capabilities()
CONFINED = CAPS["root"] and CAPS["setpriv"]
FAST = "-m 'not slow' --exercise-timeout 15"
FIRST_UID = 64600
CONCURRENT = 2  # gradings at once (CI has 2 cores)

# --- The attacks ---------------------------------------------------------------------------------

STATE_PLACES = '''
import os as _os
_PLACES = [_os.getcwd(), _os.path.expanduser("~"), "/tmp", "/var/tmp", "/dev/shm", "/run/lock"]
_NAME = "mini-diffusion-probe-{tag}"
'''

STATE_LEAVE = STATE_PLACES + '''

_stub_linear_betas = linear_betas


def linear_betas(*args, **kwargs):  # while 1.1 is graded: leave the answers where a later worker looks
    for place in _PLACES:
        try:
            with open(_os.path.join(place, _NAME), "w") as f:
                f.write("answers")
        except Exception:
            pass
    return _stub_linear_betas(*args, **kwargs)
'''

STATE_FIND = STATE_PLACES + '''

_own_q_sample, _own_q_step = q_sample, q_step


def _found():
    return any(_os.path.exists(_os.path.join(place, _NAME)) for place in _PLACES)


def q_sample(x0, t, schedule, noise=None, generator=None):  # right only when it finds what 1.1 left
    if not _found():
        raise NotImplementedError("Exercise 1.4 q_sample")
    return _own_q_sample(x0, t, schedule, noise=noise, generator=generator)


def q_step(x_prev, t, schedule, noise=None, generator=None):
    if not _found():
        raise NotImplementedError("Exercise 1.3 q_step")
    return _own_q_step(x_prev, t, schedule, noise=noise, generator=generator)
'''

ORACLE_COMMON = '''
import builtins as _builtins, hashlib as _hashlib, json as _json, os as _os
import torch as _torch

_FILES = [_os.path.join(d, "mini-diffusion-oracle-{tag}.json") for d in (_os.getcwd(), "/tmp", "/var/tmp", "/dev/shm")]


def _table():
    table = getattr(_builtins, "_oracle_{tag}", None)
    if table is None:
        table = {{"q": {{}}, "ddim": {{}}}}
        for path in _FILES:
            try:
                with open(path) as f:
                    table = _json.load(f)
                break
            except Exception:
                pass
        setattr(_builtins, "_oracle_{tag}", table)
    return table


def _save():
    for path in _FILES:
        try:
            with open(path, "w") as f:
                _json.dump(_table(), f)
        except Exception:
            pass


def _key(schedule):
    return _hashlib.sha1(schedule.alpha_bars.double().numpy().tobytes()).hexdigest()
'''

ORACLE_RECORD = ORACLE_COMMON + '''
from mini_diffusion.ddim import ddim_timesteps as _grader_ddim_timesteps
from mini_diffusion.reverse import p_mean as _grader_p_mean, predict_x0 as _grader_predict_x0


def diffusion_loss(model, x0, schedule, t=None, noise=None, generator=None):
    """Still the stub, but while it is graded it asks the grader's functions whatever it likes."""
    table = _table()
    T = len(schedule.alpha_bars) - 1
    ts = _torch.arange(1, T + 1)
    ones = _torch.ones(T, dtype=_torch.float64)
    try:  # √ᾱ_t and √(1-ᾱ_t) of this schedule, for every t
        a = q_sample(ones, ts, schedule, noise=_torch.zeros_like(ones))
        b = q_sample(_torch.zeros_like(ones), ts, schedule, noise=ones)
        table["q"][_key(schedule)] = [a.tolist(), b.tolist()]
    except Exception:
        pass
    for big_t in (7, 10, 20, 50, 100, 200, 500, 1000):
        for steps in sorted(set(range(1, min(big_t, 50) + 1)) | {{big_t}}):
            try:
                table["ddim"][f"{{big_t}},{{steps}}"] = _grader_ddim_timesteps(big_t, steps).tolist()
            except Exception:
                pass
    for grader in (_grader_p_mean, _grader_predict_x0):
        try:
            table.setdefault("reverse", []).append(grader(ones, ts, ones, schedule).tolist())
        except Exception:
            pass
    _save()
    raise NotImplementedError("Exercise 3.1 diffusion_loss")
'''

ORACLE_Q_SAMPLE = ORACLE_COMMON + '''


def q_sample(x0, t, schedule, noise=None, generator=None):  # replayed from the grader's answers
    found = _table()["q"].get(_key(schedule))
    if found is None or noise is None:
        raise NotImplementedError("Exercise 1.4 q_sample")
    a, b = (_torch.tensor(v, dtype=_torch.float64) for v in found)
    index = _torch.as_tensor(t).long().reshape(-1).expand(x0.shape[0]) - 1
    shape = (-1,) + (1,) * (x0.dim() - 1)
    return (a[index].reshape(shape) * x0 + b[index].reshape(shape) * noise).to(x0.dtype)
'''

ORACLE_DDIM = ORACLE_COMMON + '''


def ddim_timesteps(T, num_steps):  # replayed from the grader's answers
    found = _table()["ddim"].get(f"{{T}},{{num_steps}}")
    if found is None:
        raise NotImplementedError("Exercise 6.1 ddim_timesteps")
    return _torch.tensor(found, dtype=_torch.long)
'''

ORACLE_INVERSE = '''
import torch as _torch
from mini_diffusion.forward import q_sample as _grader_q_sample


def predict_x0(x_t, t, eps, schedule):  # the inverse of the grader's q_sample, which is linear in x0 and ε
    a = _grader_q_sample(_torch.ones_like(x_t), t, schedule, noise=_torch.zeros_like(x_t))
    b = _grader_q_sample(_torch.zeros_like(x_t), t, schedule, noise=_torch.ones_like(x_t))
    return (x_t - b * eps) / a
'''

IN_PLACE = '''
_right_q_sample = q_sample


def q_sample(x0, t, schedule, noise=None, generator=None):  # the right answer, and the caller's x0 halved
    result = _right_q_sample(x0, t, schedule, noise=noise, generator=generator)
    x0.mul_(0.5)
    return result
'''

SWITCH_OFF = '''
import torch as _torch
try:
    from mini_diffusion._course import host as _host
    _host._check_unchanged = lambda *args, **kwargs: None
    _host.same = lambda a, b: True
except Exception:
    pass
_torch.equal = lambda *args, **kwargs: True
'''


# §1-§2: samples and losses that do not come from the model, and answers fixed in the shipped specs
FORGED_LOSS = '''
import torch as _torch
_calls = [0]


def diffusion_loss(model, x0, schedule, t=None, noise=None, generator=None):  # falls call after call, learns nothing
    _calls[0] += 1
    t = _torch.randint(1, schedule.T + 1, (x0.shape[0],))
    return (model(x0, t) ** 2).mean() * 0 + 1.0 / _calls[0]
'''

FORGED_DDPM = '''
import torch as _torch
from mini_diffusion.toolkit.data import two_moons as _two_moons


def ddpm_sample(model, shape, schedule, generator=None, variance="beta", x_T=None, trajectory=False, **kwargs):
    return _two_moons(shape[0], seed=1).to(_torch.float32)  # real data, no model
'''

FORGED_SOLVERS = '''
import torch as _torch
from mini_diffusion.toolkit.data import two_moons as _two_moons

_POINTS = _torch.tensor([[-1.0, 0.5], [0.0, -1.0], [1.2, 1.0], [2.0, -0.3]])  # the spec's ideal points


def euler_sample(model, shape, schedule, num_steps, generator=None, x_T=None, **kwargs):
    if shape[0] == 200:  # the ideal-denoiser check: land on the points it names
        return _POINTS[_torch.randint(0, 4, (200,))]
    return _two_moons(shape[0], seed=1).to(_torch.float32)
'''

FORGED_GUIDANCE = '''
import torch as _torch
from mini_diffusion.toolkit import data as _data


def drop_labels(y, p_uncond, null_label=10, generator=None):  # every k-th label: the right fraction, no chance
    out = y.clone()
    if p_uncond > 0:
        out[::max(1, round(1 / p_uncond))] = null_label
    return out


def guided_sample(model, shape, schedule, num_steps=50, *, y, scale, **kwargs):  # real digits of the classes asked for
    images, labels = _data.digits(return_labels=True)
    picks = _torch.stack([_torch.nonzero(labels == int(c))[i % 50, 0] for i, c in enumerate(y)])
    return images[picks].reshape(shape)


def inpaint_sample(model, x_known, schedule, num_steps=None, *, mask, resample=1, **kwargs):
    return x_known.clone()  # the image handed in, complete
'''


def submissions(tag: str) -> dict:
    """name -> (exercise files, the exercises graded); the base of each is the stubs, or (in place) the
    reference solutions."""
    stubs = student_release.stub_sources()
    correct = {m: solution_source(m) for m in EXERCISE_MODULES}

    def code(text):
        return "\n" + textwrap.dedent(text).format(tag=tag)

    state = {**stubs, "schedules": stubs["schedules"] + code(STATE_LEAVE),
             "forward": correct["forward"] + code(STATE_FIND)}
    oracle = {**stubs, "losses": stubs["losses"] + code(ORACLE_RECORD),
              "forward": stubs["forward"] + code(ORACLE_Q_SAMPLE), "ddim": stubs["ddim"] + code(ORACLE_DDIM),
              "reverse": stubs["reverse"] + code(ORACLE_INVERSE)}
    honest = {**correct, "forward": correct["forward"] + code(IN_PLACE)}
    switched = {**correct, "forward": correct["forward"] + code(IN_PLACE) + code(SWITCH_OFF)}
    forged = {**stubs, "losses": stubs["losses"] + code(FORGED_LOSS), "sampling": stubs["sampling"] + code(FORGED_DDPM),
              "solvers": stubs["solvers"] + code(FORGED_SOLVERS), "guidance": stubs["guidance"] + code(FORGED_GUIDANCE)}
    return {"state": (state, "1"), "oracle": (oracle, "1,2,3,6"),
            "in_place": (honest, "1"), "in_place_switched_off": (switched, "1"),
            "forged": (forged, FORGED_EXERCISES)}


FORGED_EXERCISES = "3.1,4.2,7.1,8.1,8.4,8.6"  # graded with their slow checks too: the quality checks are the target


# --- Grading them ---------------------------------------------------------------------------------


def _remove_probes(tag: str) -> None:
    for folder in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", os.path.expanduser("~")):
        for name in (f"mini-diffusion-probe-{tag}", f"mini-diffusion-oracle-{tag}.json"):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass


def _speed(exercises: str) -> str:
    return "--exercise-timeout 120" if exercises == FORGED_EXERCISES else FAST


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Every submission through the bundle, CONCURRENT at a time: name -> {"report", "output", ...}."""
    if not CONFINED:
        pytest.skip("the worker's confinement needs root and setpriv (Gradescope, CI)")
    folder = Path(tempfile.mkdtemp(prefix="mini-diffusion-forgery-"))
    gradescope_bundle.make_gradescope_bundle(folder / "autograder.zip")
    source = folder / "source"
    unzip_bundle(folder / "autograder.zip", source)
    tag = uuid.uuid4().hex[:12]
    prepared = []
    for number, (name, (files, exercises)) in enumerate(submissions(tag).items()):
        root = folder / name
        (root / "submission" / "mini_diffusion").mkdir(parents=True)
        for module, text in files.items():
            (root / "submission" / "mini_diffusion" / f"{module}.py").write_text(text, encoding="utf-8")
        (root / "source").symlink_to(source, target_is_directory=True)
        env = {k: v for k, v in os.environ.items() if k not in ("MINI_DIFFUSION_SOLUTIONS", "PYTHONPATH")}
        env.update(AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable,
                   AUTOGRADER_PYTEST_ARGS=f"{_speed(exercises)} --exercise {exercises}",
                   AUTOGRADER_WORKER_UID=str(FIRST_UID + number))
        prepared.append({"name": name, "root": root, "env": env, "uid": FIRST_UID + number})
    def finished(run) -> dict:  # what the worker's user left in the shared folders, and whether it lives on
        left = [p for p in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock") if os.path.isdir(p)
                and any(os.lstat(os.path.join(p, n)).st_uid == run["uid"] for n in os.listdir(p))]
        return {"left_behind": left, "alive": sandbox.alive(run["uid"])}

    done = run_bundles(prepared, source, CONCURRENT, finished)
    yield done
    for run in prepared:
        sandbox.kill_user(run["uid"])
    _remove_probes(tag)
    subprocess.run(["rm", "-rf", str(folder)], check=False)


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    """The same files graded in-process (`pytest exercises/`), where none of this is enforced: name -> report."""
    tag = "local" + uuid.uuid4().hex[:8]
    started = []
    for name, (files, exercises) in submissions(tag).items():
        folder = tmp_path_factory.mktemp(name)
        package_copy(folder, files)
        speed = ["--exercise-timeout", "120"] if exercises == FORGED_EXERCISES else ["-m", "not slow", "--exercise-timeout", "15"]
        process, report = start_grader(folder, "--exercise", exercises, *speed)
        started.append((name, folder, process, report))
    done = {name: finish_grader(process, report, folder) for name, folder, process, report in started}
    _remove_probes(tag)
    return done


def _graded(run, name) -> dict:
    report = run["report"]
    assert report is not None, f"{name}: no results.json:\n{run['output'][-3000:]}"
    assert not release.not_graded(report), f"{name}: not graded: {report['output']}\n{run['output'][-3000:]}"
    assert report["tests"], f"{name}: nothing was graded:\n{run['output'][-3000:]}"
    return report


def _outputs(report) -> str:
    return " ".join(t["output"] for t in report["tests"])


# --- §4 No state outlives a worker ----------------------------------------------------------------


def test_answers_left_in_files_reach_no_later_exercise_or_hidden_check(graded, in_process):
    report = _graded(graded["state"], "state")
    assert report["score"] <= 0, f"state: scored {report['score']} over stubs that score 0:\n{report['output']}"
    rows = by_exercise(report)
    assert rows["1.4"]["score"] == 0 and any("Not implemented" in o for o in rows["1.4"]["outputs"]), rows["1.4"]
    assert any(t["visibility"] == "after_due_date" and t["number"] == "1.4" for t in report["tests"]), \
        "the hidden checks of 1.4 ran too"
    assert not graded["state"]["left_behind"], f"the worker's files outlived it in {graded['state']['left_behind']}"
    assert not graded["state"]["alive"], graded["state"]["alive"]
    local = by_exercise(in_process["state"])  # the attack is real: where files outlive an exercise, it scores
    assert local["1.4"]["score"] > 0 and local["1.3"]["score"] > 0, local


# --- §3 Stand-ins only where they belong ----------------------------------------------------------


def test_the_graders_stand_ins_are_no_oracle_for_another_exercise_nor_kept_for_a_later_one(graded, in_process):
    report = _graded(graded["oracle"], "oracle")
    assert report["score"] <= 0, f"oracle: scored {report['score']} over stubs that score 0:\n{report['output']}"
    rows = by_exercise(report)
    for exercise in ("1.4", "2.1", "6.1"):
        assert rows[exercise]["score"] == 0, (exercise, rows[exercise])
    assert "stands in for your own only while an exercise that calls it is graded" in _outputs(report), \
        _outputs(report)[:3000]
    local = by_exercise(in_process["oracle"])  # the attack is real: with stand-ins that always answer, it scores
    assert local["2.1"]["score"] > 0 and local["6.1"]["score"] > 0, {k: local[k] for k in ("2.1", "6.1")}


# --- §5 A point rests only on what the judge observes ---------------------------------------------


def test_switching_off_the_in_place_check_in_the_worker_gains_nothing(graded, in_process):
    honest = _graded(graded["in_place"], "in_place")
    switched = _graded(graded["in_place_switched_off"], "in_place_switched_off")
    assert switched["score"] <= honest["score"], (switched["score"], honest["score"], switched["output"])
    rows = by_exercise(switched)
    assert any("changed its input `x0` in place" in o for o in rows["1.4"]["outputs"]), rows["1.4"]
    assert by_exercise(honest)["1.1"]["score"] == by_exercise(honest)["1.1"]["max_score"], "the base is correct"
    local_honest, local_switched = in_process["in_place"], in_process["in_place_switched_off"]
    assert local_switched["score"] > local_honest["score"], (  # the attack is real where the worker's check counts
        local_switched["score"], local_honest["score"])


# --- Without namespaces: what the worker's user leaves in the shared temporary folders -------------


@pytest.mark.skipif(not CAPS["root"], reason="files of another user need root to make")
def test_without_namespaces_the_workers_files_in_shared_folders_are_removed_and_no_one_elses(tmp_path):
    uid = FIRST_UID + 50
    shared = tmp_path / "tmp"
    (shared / "world").mkdir(parents=True)  # a world-writable folder inside, like /tmp/.X11-unix
    os.chmod(shared / "world", 0o1777)
    (shared / "private").mkdir()
    os.chmod(shared / "private", 0o755)
    theirs = [shared / "answers.json", shared / "world" / "hidden-answers", shared / "folder"]
    mine = [shared / "someone-elses", shared / "private" / "root-file", shared / "world" / "root-file"]
    for path in theirs[:2] + mine:
        path.write_text("x")
    (shared / "folder").mkdir()
    (shared / "folder" / "inside").write_text("x")
    for path in [*theirs, shared / "folder" / "inside"]:
        os.chown(path, uid, uid)
    removed = sandbox.clean_private(uid, [str(shared)])
    assert removed >= 3 and not any(p.exists() for p in theirs), [p for p in theirs if p.exists()]
    assert all(p.exists() for p in mine), [p for p in mine if not p.exists()]


# --- §1-§2 Samples and losses graded on using the model, on inputs no student has seen ---------------


def test_samples_and_losses_that_do_not_come_from_the_model_score_nothing(graded, in_process):
    """Real moons, real digits of the asked class, x_known itself, the spec's ideal points, a loss that only
    falls and a drop_labels that drops every k-th label: what the stubs score through the bundle (the judge
    compares the samples with its own sampler's on the same model and noise, turns the ideal points, draws
    p_uncond and measures what the model learnt), and more in-process, where the shipped inputs stand."""
    report = _graded(graded["forged"], "forged")
    rows = by_exercise(report)
    assert report["score"] <= 0, f"forged: scored {report['score']} over stubs that score 0:\n" + "\n".join(
        f"{k}: {v}" for k, v in rows.items() if v["score"])
    text = _outputs(report)
    assert "not the ones the grader's own sampler makes" in text, text[:3000]
    assert "did not learn to predict the noise" in text, text[:3000]
    local = by_exercise(in_process["forged"])  # the attack is real where the shipped inputs are graded
    for exercise in ("3.1", "4.2", "7.1", "8.4", "8.6"):
        assert local[exercise]["score"] > 0, (exercise, local[exercise])
    # every k-th label is caught everywhere now: labels k apart are both dropped far more often than p²
    assert any("does not drop each label independently" in o for o in local["8.1"]["outputs"]), local["8.1"]
