"""Issue 26: the grader never blames a student for its own failure, never calls their code "not
yours", and grades on inputs no student has seen.

Through the real Gradescope flow (the bundle unpacked, run_autograder), a few gradings at a time:
- the correct submission from a private (0700) folder that holds the bundle, the submission and the
  Python environment that runs them gets full marks;
- MINI_DIFFUSION_SOLUTIONS=1 in the shell changes neither the score nor the labels, and nothing says "lent";
- a submission that answers only the shipped cases of exercises/expected/ (a student's table) scores 0
  through the bundle, though the same files score locally, where those cases are graded;
- a sandbox that cannot start (setpriv broken, a limit refused) gives "the autograder could not run", a
  non-zero exit, and no per-exercise zeros.
And without a grading: the handshake that tells the two kinds of failure apart, the view of an
interpreter the worker cannot read (hard links where there are no namespaces), and that every
case-based check of every spec draws some of its inputs from the grading seed.

The bundle tests need root and setpriv (Gradescope's container, CI), like tests/test_attacks.py.
"""

import ast
import base64
import json
import os
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import zlib
from pathlib import Path

import pytest
from safetensors.torch import load_file

from mini_diffusion._course import gradescope_bundle, release, sandbox, student_release
from mini_diffusion._base.catalog import EXERCISE_MODULES, EXERCISES

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grader_harness import by_exercise, package_copy, run_bundles, run_grader, solution_source, unzip_bundle  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CAPS = sandbox.capabilities()
CONFINED = CAPS["root"] and CAPS["setpriv"]
needs_root = pytest.mark.skipif(not CONFINED, reason="the worker's confinement needs root and setpriv (Gradescope, CI)")
FAST = "-m 'not slow' --exercise-timeout 15"
FIRST_UID = 64500
CONCURRENT = 2  # gradings at once (CI has 2 cores)
LENT_WORDS = ("lent", "not your code", "reference solution")


# --- A student's table of the shipped cases -------------------------------------------------

TABLE_CODE = '''
import base64 as _b64, json as _json, zlib as _zlib
import torch as _torch

_TABLE = _json.loads(_zlib.decompress(_b64.b64decode(_BLOB)))  # this file's functions -> shipped cases


def _tensor(spec):
    return _torch.tensor(spec["v"], dtype=getattr(_torch, spec["d"])).reshape(spec["s"])


def _same(given, want):
    kind = want.get("k") if isinstance(want, dict) else None
    if kind == "model":
        return callable(given)
    if kind == "tensor":
        w = _tensor(want)
        return isinstance(given, _torch.Tensor) and given.shape == w.shape and given.dtype == w.dtype and bool(
            _torch.equal(given.nan_to_num(7.0), w.nan_to_num(7.0)))
    if kind == "schedule":
        return hasattr(given, "alpha_bars") and _same(given.alpha_bars, want["alpha_bars"])
    if kind == "generator":
        return isinstance(given, _torch.Generator) and bool(
            _torch.equal(given.get_state(), _torch.Generator().manual_seed(want["seed"]).get_state()))
    if kind == "shape":
        return tuple(given) == tuple(want["shape"]) if isinstance(given, (tuple, list, _torch.Size)) else False
    return type(given) is type(want) and given == want


def _answer(function, args, kwargs):
    """The shipped answer when every input is a shipped case's; otherwise nothing to say."""
    for case in _TABLE.get(function, []):
        if len(args) == len(case["args"]) and set(kwargs) == set(case["kwargs"]) and all(
                _same(a, w) for a, w in zip(args, case["args"])) and all(
                _same(kwargs[k], w) for k, w in case["kwargs"].items()):
            out = case["out"]
            if case["output"] == "pair":
                return _tensor(out[0]), _tensor(out[1])
            if case["output"] == "states":
                return list(_tensor(out).unbind(0))
            return _tensor(out)
    raise NotImplementedError(f"{function}: not in my table")
'''


def _table_spec(spec, tensors, output=False):
    """A shipped argument or output as the table's JSON (tensors as values, the rest by kind)."""
    def tensor(key):
        t = tensors[key]
        return {"k": "tensor", "v": t.flatten().tolist(), "d": str(t.dtype).split(".")[1], "s": list(t.shape)}

    if output:  # a shipped output: a tensor's key, or the keys of a pair
        return [tensor(key) for key in spec] if isinstance(spec, list) else tensor(spec)
    if isinstance(spec, list):
        return [_table_spec(s, tensors) for s in spec]
    if not isinstance(spec, dict):
        return spec
    if "tensor" in spec:
        return tensor(spec["tensor"])
    if "schedule" in spec:
        return {"k": "schedule", "alpha_bars": tensor(f"schedule/{spec['schedule']}/alpha_bars")}
    if "model" in spec:
        return {"k": "model"}
    if "generator" in spec:
        return {"k": "generator", "seed": spec["generator"]}
    if "shape" in spec:
        return {"k": "shape", "shape": spec["shape"]}
    raise ValueError(f"a case argument the table does not know: {spec}")


def table_submission(stubs: dict) -> dict:
    """Every exercise file as its stub plus functions that answer from the shipped cases (exercises/expected/,
    which students have) and raise NotImplementedError for any other input: what a dishonest student writes."""
    table = json.loads((ROOT / "exercises" / "expected" / "cases.json").read_text(encoding="utf-8"))
    tensors = load_file(str(ROOT / "exercises" / "expected" / "expected.safetensors"))
    files = {}
    for module in EXERCISE_MODULES:
        cases = {}
        for exercise in (e for e in EXERCISES if e.module == module):
            entry = table["exercises"].get(exercise.id)
            for case in (entry or {}).get("cases", {}).values():
                cases.setdefault(exercise.function, []).append({
                    "args": [_table_spec(a, tensors) for a in case["args"]],
                    "kwargs": {k: _table_spec(v, tensors) for k, v in case["kwargs"].items()},
                    "output": case["output"], "out": _table_spec(case["expected"], tensors, output=True)})
        blob = base64.b64encode(zlib.compress(json.dumps(cases).encode(), 9)).decode()
        functions = "".join(f"\n\ndef {name}(*args, **kwargs):\n    return _answer({name!r}, args, kwargs)\n"
                            for name in cases)
        files[module] = f"{stubs[module]}\n_BLOB = {blob!r}\n{TABLE_CODE}{functions}"
        assert len(files[module].encode()) < release.MAX_FILE_BYTES, f"{module}: the table is too large to submit"
    return files


# --- Gradings through the bundle -------------------------------------------------------------

FAKE_TOOLS = {  # a sandbox made unable to start: each fake stands first on PATH
    "broken_setpriv": ("setpriv", "echo 'setpriv: setresuid failed: Operation not permitted' >&2; exit 1"),
    "refused_limit": ("prlimit", "echo 'prlimit: failed to set the NPROC resource limit: Operation not permitted' >&2; "
                                 "exit 1"),
}


def _private_python(folder: Path) -> Path:
    """folder/venv/bin/python: the Python running these tests, reached through a folder only root may enter
    (a symbolic link to its environment: what the worker's user meets with an instructor's venv at home)."""
    prefix = Path(sys.prefix)
    (folder / "venv").symlink_to(prefix, target_is_directory=True)
    python = folder / "venv" / "bin" / Path(sys.executable).name
    assert python.exists(), f"no {python}"
    return python



@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Each grading of the module, CONCURRENT at a time: name -> {"report", "output", "returncode"}."""
    if not CONFINED:
        pytest.skip("the worker's confinement needs root and setpriv (Gradescope, CI)")
    private = Path(tempfile.mkdtemp(prefix="mini-diffusion-private-"))  # 0700, like a home folder
    os.chmod(private, 0o700)
    gradescope_bundle.make_gradescope_bundle(private / "autograder.zip")
    source = private / "source"
    unzip_bundle(private / "autograder.zip", source)
    stubs = student_release.stub_sources()
    correct = {m: solution_source(m) for m in EXERCISE_MODULES}
    table = table_submission(stubs)
    python = _private_python(private)
    runs = {
        "private": (correct, {}), "switch_correct": (correct, {"MINI_DIFFUSION_SOLUTIONS": "1"}),
        "switch_stubs": (stubs, {"MINI_DIFFUSION_SOLUTIONS": "1"}), "table": (table, {}),
        **{name: (correct, {}) for name in FAKE_TOOLS},
    }
    prepared = []
    for number, (name, (files, extra)) in enumerate(runs.items()):
        root = private / name
        for module, text in files.items():
            (root / "submission" / "mini_diffusion").mkdir(parents=True, exist_ok=True)
            (root / "submission" / "mini_diffusion" / f"{module}.py").write_text(text, encoding="utf-8")
        (root / "source").symlink_to(source, target_is_directory=True)
        env = {k: v for k, v in os.environ.items() if k not in ("MINI_DIFFUSION_SOLUTIONS", "PYTHONPATH")}
        env.update(AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=str(python), AUTOGRADER_PYTEST_ARGS=FAST,
                   AUTOGRADER_WORKER_UID=str(FIRST_UID + number), **extra)
        if name in FAKE_TOOLS:
            tool, script = FAKE_TOOLS[name]
            fake = root / "fake-tools"
            fake.mkdir()
            (fake / tool).write_text(f"#!/bin/sh\n{script}\n")
            (fake / tool).chmod(0o755)
            env["PATH"] = f"{fake}:{env.get('PATH', '/usr/bin:/bin')}"
        prepared.append({"name": name, "root": root, "env": env})
    done = run_bundles(prepared, source, CONCURRENT)
    yield done
    for number in range(len(runs)):
        sandbox.kill_user(FIRST_UID + number)
    subprocess.run(["rm", "-rf", str(private)], check=False)


def _failed(report) -> list[str]:
    return [f"{t['name']}: {t['output']}" for t in report["tests"] if t["status"] != "passed"]


@needs_root
def test_a_correct_submission_gets_full_marks_from_a_private_folder_with_its_python(graded):
    """The bundle, the submission and the venv that runs them in a 0700 folder: the worker's user cannot
    read any of it, and still the solutions get full marks (the worker gets a view of the Python)."""
    run = graded["private"]
    report = run["report"]
    assert report is not None, run["output"][-3000:]
    assert not release.not_graded(report), report["output"]
    assert report["extra_data"].get("isolated"), "not graded in the worker"
    assert not _failed(report), "\n".join(_failed(report)) + run["output"][-2000:]
    assert report["score"] == report["max_score"] > 0
    assert run["returncode"] == 0, f"run_autograder exited {run['returncode']} for a graded submission"
    assert "worker: Python" in run["output"], "the judge's log should say which Python the worker got"


@needs_root
def test_the_solutions_switch_in_the_shell_changes_neither_the_score_nor_the_labels(graded):
    plain, switched = graded["private"]["report"], graded["switch_correct"]["report"]
    assert {t["name"]: (t["score"], t["status"]) for t in switched["tests"]} == {
        t["name"]: (t["score"], t["status"]) for t in plain["tests"]}, switched["output"]
    assert switched["score"] == plain["score"] == plain["max_score"]
    stubs = graded["switch_stubs"]["report"]
    assert stubs["score"] == 0 and stubs["tests"], stubs["output"]
    assert all("not implemented yet" in t["output"].lower() for t in stubs["tests"]), stubs["output"]


@needs_root
@pytest.mark.parametrize("name", ["private", "switch_correct", "switch_stubs"])
def test_nothing_through_the_bundle_says_lent_or_not_your_code(graded, name):
    report = graded[name]["report"]
    texts = [report["output"], *(t["output"] for t in report["tests"])]
    said = [text for text in texts if any(word in text.lower() for word in LENT_WORDS)]
    assert not said, f"{name}: {said[:3]}"
    assert report["extra_data"].get("solutions_in_use") == [], report["extra_data"]


@needs_root
def test_answers_from_the_shipped_table_score_nothing_through_the_bundle(graded):
    report = graded["table"]["report"]
    assert report is not None and not release.not_graded(report), graded["table"]["output"][-3000:]
    table = by_exercise(report)
    assert set(table) == {e.id for e in EXERCISES}, f"exercises missing from the grade: {set(table) ^ {e.id for e in EXERCISES}}"
    scored = {ex: row["score"] for ex, row in table.items() if row["score"] > 0}
    assert not scored, f"answers from the shipped table scored through the bundle: {scored}"


def test_the_table_is_a_real_attack_it_scores_where_the_shipped_cases_are_graded(tmp_path):
    """Graded locally (pytest exercises/ grades the shipped cases, for feedback) the same files score: so
    the bundle's 0 comes from its fresh inputs, not from a table that never matched."""
    package_copy(tmp_path, table_submission(student_release.stub_sources()))
    result = run_grader(tmp_path, "-m", "not slow", "--exercise", "1,5,6,7")
    table = by_exercise(result)
    for exercise in ("1.1", "5.1", "5.2", "5.3", "6.1", "7.4"):  # all of their checks are case-based
        assert table[exercise]["score"] == table[exercise]["max_score"] > 0, (exercise, table[exercise])


@needs_root
@pytest.mark.parametrize("name", list(FAKE_TOOLS))
def test_a_sandbox_that_cannot_start_is_the_graders_failure_not_the_students(graded, name):
    run = graded[name]
    report = run["report"]
    assert report is not None, run["output"][-3000:]
    assert report["tests"] == [], f"{name}: per-check results were reported: {report['tests'][:2]}"
    assert report["score"] == 0
    text = report["output"]
    assert "the autograder could not run" in text.lower() and "the submission was not graded" in text, text
    tool = FAKE_TOOLS[name][0]
    assert tool in report["extra_data"]["grader_failure"], report["extra_data"]
    assert "Operation not permitted" in report["extra_data"]["grader_failure"], "the tool's own words, for the fix"
    assert run["returncode"] != 0, "run_autograder must exit non-zero when it could not grade"


# --- Without a grading -----------------------------------------------------------------------


class _Start:
    """A start function for RemoteHost: a process that prints `text` on stderr and exits, or sends `frame`."""

    def __init__(self, code: str):
        self.code = code

    def __call__(self):
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        log = tempfile.TemporaryFile()
        process = subprocess.Popen([sys.executable, "-c", self.code, str(from_w)], pass_fds=(from_w,), stdin=to_r,
                                   stdout=subprocess.DEVNULL, stderr=log)
        os.close(to_r)
        os.close(from_w)
        process.startup_log, process.caps = log, {}
        return process, os.fdopen(from_r, "rb"), os.fdopen(to_w, "wb")


def test_a_worker_that_ends_before_its_handshake_is_the_graders_failure():
    from mini_diffusion._course.remote_host import RemoteHost

    host = RemoteHost(_Start("import sys; sys.stderr.write('ModuleNotFoundError: No module named torch'); sys.exit(5)"),
                      {}, startup_timeout=20)
    with pytest.raises(sandbox.CannotRun) as caught:
        host.call("linear_betas", (10,), {})
    message = str(caught.value)
    assert "did not start" in message and "exit code 5" in message and "No module named torch" in message, message
    with pytest.raises(sandbox.CannotRun):  # and stays so: no second try per check
        host.call("linear_betas", (10,), {})


def test_a_worker_that_says_something_else_first_is_the_graders_failure():
    from mini_diffusion._course import wire
    from mini_diffusion._course.remote_host import RemoteHost

    frame = wire.pack({"op": "result", "value": 1}, {})
    code = f"import os, sys, time; os.write(int(sys.argv[1]), {frame!r}); time.sleep(5)"
    host = RemoteHost(_Start(code), {}, startup_timeout=20)
    with pytest.raises(sandbox.CannotRun, match="instead of its handshake"):
        host.call("linear_betas", (10,), {})


def test_a_worker_that_never_gets_ready_is_stopped_at_its_start_up_deadline():
    from mini_diffusion._course.remote_host import RemoteHost

    host = RemoteHost(_Start("import time; time.sleep(60)"), {}, startup_timeout=1)
    started = time.monotonic()
    with pytest.raises(sandbox.CannotRun, match="not ready within 1 s"):
        host.call("linear_betas", (10,), {})
    assert time.monotonic() - started < 15


def test_without_setpriv_or_prlimit_root_does_not_run_a_submission():
    for missing in ("setpriv", "prlimit"):
        caps = {**CAPS, "root": True, missing: False}
        with pytest.raises(sandbox.CannotRun, match=missing):
            sandbox.require(caps)
        assert "cannot run" in sandbox.describe(caps)
    sandbox.require({**CAPS, "root": False, "setpriv": False, "prlimit": False})  # a learner's laptop: as today


@needs_root
def test_the_worker_reads_a_hard_linked_view_of_a_python_it_cannot_reach_without_namespaces():
    """Where unshare is refused, the view is made of hard links (copies where a link is impossible): the
    worker's user then runs that Python and imports torch from it. The originals stay as they were."""
    private = Path(tempfile.mkdtemp(prefix="mini-diffusion-private-"))
    try:
        os.chmod(private, 0o700)
        python = _private_python(private)
        where = private.parent / f"{private.name}-worker"  # beside it, where the worker's user may enter
        where.mkdir(mode=0o755)
        script = textwrap.dedent(f"""
            import json, sys
            sys.path.insert(0, {str(ROOT)!r})
            from mini_diffusion._course import sandbox
            caps = {{**sandbox.capabilities(), "namespaces": False}}
            made = sandbox.interpreter(sandbox.Path({str(where)!r}), caps)
            print(json.dumps(made, default=str))
        """)
        run = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        made = json.loads(run.stdout.splitlines()[-1])
        assert made["mounts"] == [] and "hard-linked" in made["note"], made["note"]
        command = [CAPS["tools"]["setpriv"], f"--reuid={sandbox.WORKER_UID}", f"--regid={sandbox.WORKER_GID}",
                   "--clear-groups", "--", made["executable"], "-s", "-c",
                   "import os, sys, torch; print(os.getuid(), sys.prefix)"]
        worker = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd="/",
                                env={"PATH": "/usr/bin:/bin", **made["env"]})
        assert worker.returncode == 0, worker.stderr[-2000:]
        uid, prefix = worker.stdout.split()
        assert int(uid) == sandbox.WORKER_UID and prefix.startswith(str(where)), worker.stdout
        assert stat.S_IMODE(private.stat().st_mode) == 0o700, "the private folder was opened up"
    finally:
        subprocess.run(["rm", "-rf", str(private), f"{private}-worker"], check=False)


# --- Every case-based check draws inputs from the grading seed --------------------------------


def _grade_cases_calls() -> list[tuple[str, str, tuple]]:
    """(spec file, exercise id, case names) of every grade_cases(...) call in the specs (exercises/test_*.py)."""
    calls = []
    for path in sorted((ROOT / "exercises").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "grade_cases":
                values = [a.value for a in node.args if isinstance(a, ast.Constant)]
                calls.append((path.name, values[0], tuple(values[1:])))
    return calls


FINGERPRINTS = r'''
import json, sys
sys.path.insert(0, "exercises")
import torch, _maker

def fingerprint(mk, spec):
    if isinstance(spec, dict) and "tensor" in spec:
        t = mk.tensors[spec["tensor"]]
        return [list(t.shape), str(t.dtype), t.double().flatten().tolist()]
    return spec

out = {}
for arg in sys.argv[1:]:
    mk = _maker.make(_maker.Maker.SHIPPED_SEED if arg == "shipped" else int(arg))
    out[arg] = {ex: {name: json.dumps([[fingerprint(mk, a) for a in case["args"]],
                                        {k: fingerprint(mk, v) for k, v in sorted(case["kwargs"].items())}])
                      for name, case in table["cases"].items()} for ex, table in mk.exercises.items()}
print(json.dumps(out))
'''


def test_every_case_based_check_has_inputs_drawn_from_the_grading_seed():
    """A check passes only when all its cases pass: one case whose inputs come from the grading seed (not the
    shipped ones, not the same for two seeds) is enough to make a table of the shipped cases worthless."""
    seeds = ("shipped", 11, 12)  # Maker.SHIPPED_SEED (exercises/expected/) and two gradings
    env = {**os.environ, "MINI_DIFFUSION_SOLUTIONS": "1"}
    run = subprocess.run([sys.executable, "-c", FINGERPRINTS, *map(str, seeds)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    made = json.loads(run.stdout.splitlines()[-1])
    shipped, first, second = (made[str(s)] for s in seeds)
    calls = _grade_cases_calls()
    assert len(calls) > 30, f"found only {len(calls)} grade_cases calls in the specs"
    fixed = []
    for spec, exercise, names in calls:
        fresh = [n for n in names if first[exercise][n] != shipped[exercise][n] and first[exercise][n] != second[exercise][n]]
        if not fresh:
            fixed.append(f"{spec}: grade_cases({exercise!r}, {', '.join(map(repr, names))})")
    assert not fixed, "checks whose every case has the same inputs in every grading (draw one with mk.randn, " \
                      "mk.integer, mk.uniform or mk.choice):\n" + "\n".join(fixed)


TOY_NUMBERS = r'''
import json, sys
sys.path.insert(0, "exercises")
import torch, _maker, _models, _flow_models

out = {}
for arg in sys.argv[1:]:
    _maker.make(_maker.Maker.SHIPPED_SEED if arg == "shipped" else int(arg))
    x, t = torch.linspace(-1, 1, 6, dtype=torch.float64).reshape(3, 2), torch.tensor([1, 500, 1000])
    y = torch.tensor([0, 3, 10])
    out[arg] = {"weights": [_models.toy_weights(), _flow_models.ToyVelocity().weights],
                "eps": _models.ToyDenoiser(1000)(x, t, y).flatten().tolist(),
                "v": _flow_models.ToyVelocity()(x, torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)).flatten().tolist()}
out["constants"] = [_models.SHIPPED_WEIGHTS, _flow_models.SHIPPED_WEIGHTS]
print(json.dumps(out))
'''


def test_the_toy_models_a_grading_hands_the_submission_have_numbers_drawn_from_its_seed():
    """A sampler graded on the shipped toy model could answer from a table of its outputs: under a grading
    seed the toy denoiser's and velocity's numbers are the grading's own (the shipped ones locally)."""
    seeds = ("shipped", 11, 12)
    env = {**os.environ, "MINI_DIFFUSION_SOLUTIONS": "1"}
    run = subprocess.run([sys.executable, "-c", TOY_NUMBERS, *map(str, seeds)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    made = json.loads(run.stdout.splitlines()[-1])
    shipped = made["shipped"]
    assert shipped["weights"] == made["constants"], "the shipped cases (exercises/expected/) use the shipped numbers"
    for key in ("weights", "eps", "v"):
        assert made["11"][key] != shipped[key] and made["12"][key] != shipped[key] and made["11"][key] != made["12"][key], key
