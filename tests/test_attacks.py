"""Issue 13: a grade no submission can forge.

Dishonest submissions go through the real Gradescope flow (the bundle, unpacked as Gradescope
does, run_autograder with a short AUTOGRADER_TIMEOUT), all at once from one bundle build. Each is
the stubs (honest score 0) plus one attack in forward.py (losses.py for the stand-in theft); the
attacker knows every path of the bundle (they are baked into the attack's source). Each must:
score no more than its honest base, leave every file under source/ unchanged, leave results.json
unchanged 3 s after run_autograder returns, leave no process of the worker's user alive, leak no
line of a hidden check into visible output, send nothing to a loopback listener, and finish within
the timeout plus a margin.

The worker's confinement needs root and setpriv (Gradescope's container, CI): without them these
tests are skipped, with that reason.
"""

import hashlib
import json
import os
import shutil
import socket
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from mini_diffusion._course import gradescope_bundle, release, sandbox, student_release
from mini_diffusion._base.catalog import EXERCISE_MODULES

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grader_harness import run_bundles, unzip_bundle  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CAPS = sandbox.capabilities()
pytestmark = pytest.mark.skipif(not (CAPS["root"] and CAPS["setpriv"]),
                                reason="the worker's confinement needs root and setpriv (as on Gradescope and in CI)")

TIMEOUT = 90  # AUTOGRADER_TIMEOUT of every attack run (seconds): per-call deadlines end the hostile ones
# far sooner; the total must hold on a loaded 2-core machine (tests run in parallel), or the judge is
# stopped and the honest result is "the autograder could not run", not a grade
MARGIN = 35  # what a run may take beyond it (the bundle's own start, a loaded CI machine)
PYTEST_ARGS = "--exercise 1 --exercise-timeout 8"  # notebook 01, its hidden checks included
FIRST_UID = 64300
CONCURRENT = 3  # gradings at once (CI has 2 cores; most attacks are quick, a few run to the deadline)

PRELUDE = '''
import glob as _glob, json as _json, os as _os
_FAKE = _json.dumps({{"score": 40, "max_score": 40, "output": "forged", "tests": [
    {{"name": "forged", "score": 40, "max_score": 40, "status": "passed", "output": "forged"}}]}})
_TARGETS = [{results!r}, {source!r} + "/run_autograder"]


def _forge():
    for path in _TARGETS + _glob.glob("/tmp/mini-diffusion-judge-*/report.json"):
        try:
            with open(path, "w") as f:
                f.write(_FAKE)
        except Exception:
            pass
'''

ATTACKS = {
    "atexit_report": '''
import atexit
atexit.register(_forge)
_forge()
''',
    "fake_report_then_exit": '''
def q_sample(x0, t, schedule, noise=None, generator=None):
    _forge()
    _os._exit(0)
''',
    "pytest_hook_through_gc": '''
import gc
for _o in gc.get_objects():
    try:
        if type(_o).__name__ in ("PytestPluginManager", "Config", "Session"):
            class _Cheat:
                def pytest_runtest_makereport(self, item, call):
                    call.excinfo = None
            (_o.pluginmanager if hasattr(_o, "pluginmanager") else _o).register(_Cheat())
    except Exception:
        pass
try:
    import _pytest.runner as _r
    _r.call_and_report = lambda item, when, log=True, **kw: None
except Exception:
    pass
''',
    "rewrite_source": '''
for _path in [{source!r} + "/run_autograder", {source!r} + "/course/exercises/conftest.py",
              {source!r} + "/course/mini_diffusion/toolkit/metrics.py",
              {source!r} + "/course/mini_diffusion/_course/release.py"] + _glob.glob(
        "/tmp/mini-diffusion-judge-*/course/exercises/_grading.py") + _glob.glob(
        "/tmp/mini-diffusion-*/tree/mini_diffusion/toolkit/*.py"):
    try:
        with open(_path, "a") as _f:
            _f.write("\\nraise SystemExit(0)\\n")
    except Exception:
        pass
''',
    "detached_rewriter": '''
import time as _time
if _os.fork() == 0:
    _os.setsid()
    if _os.fork() == 0:
        _end = _time.time() + 40
        while _time.time() < _end:
            _forge()
            _time.sleep(0.2)
    _os._exit(0)
''',
    "monkeypatch_comparisons": '''
import torch as _torch
_torch.allclose = lambda *a, **k: True
_torch.equal = lambda *a, **k: True
_torch.isclose = lambda a, b, *x, **k: _torch.ones_like(_torch.as_tensor(a), dtype=_torch.bool)


def q_sample(x0, t, schedule, noise=None, generator=None):
    return _torch.zeros_like(x0)


def q_step(x_prev, t, schedule, noise=None, generator=None):
    return _torch.zeros_like(x_prev)
''',
    "look_up_expected_values": '''
import torch as _torch


def _tables():
    from safetensors.torch import load_file
    for folder in [{source!r} + "/course/exercises/expected", {repo!r} + "/exercises/expected"]:
        try:
            yield _json.load(open(folder + "/cases.json")), load_file(folder + "/expected.safetensors")
        except Exception:
            pass


def q_sample(x0, t, schedule, noise=None, generator=None):
    for table, tensors in _tables():
        for case in table["exercises"]["1.4"]["cases"].values():
            key = case["args"][0].get("tensor") if isinstance(case["args"][0], dict) else None
            if key in tensors and tensors[key].shape == x0.shape and bool((tensors[key] == x0).all()):
                return tensors[case["expected"]].clone()
    return _torch.zeros_like(x0)
''',
    "steal_stand_ins": '''
try:
    from mini_diffusion.losses import CAPTURED as _grader_q_sample
except Exception:
    _grader_q_sample = None
import sys as _sys
for _folder in [{source!r} + "/course/exercises"] + _glob.glob("/tmp/mini-diffusion-judge-*/course/exercises"):
    try:
        _sys.path.insert(0, _folder)
        import test_01_forward as _spec
        _grader_q_sample = _spec.q_sample
    except Exception:
        pass


def q_sample(x0, t, schedule, noise=None, generator=None):
    return _grader_q_sample(x0, t, schedule, noise=noise, generator=generator)
''',
    "leak_hidden_checks": '''
def q_sample(x0, t, schedule, noise=None, generator=None):
    found = []
    for path in _glob.glob({source!r} + "/course/exercises/hidden/*.py") + _glob.glob(
            "/tmp/mini-diffusion-judge-*/course/exercises/hidden/*.py"):
        try:
            found.append(open(path).read())
        except Exception:
            pass
    try:
        with open("seen.txt", "a") as f:  # what a hidden check passes, for a later visible one
            f.write(repr(x0.tolist())[:2000] + "\\n")
    except Exception:
        pass
    try:
        found.append(open("seen.txt").read())
    except Exception:
        pass
    raise ValueError("\\n".join(found) or "nothing found")
''',
    "loopback_socket": '''
import socket as _socket


def _send():
    try:
        _socket.create_connection(("127.0.0.1", {port}), timeout=1).sendall(b"leaked")
    except Exception:
        pass


_send()


def q_sample(x0, t, schedule, noise=None, generator=None):
    _send()
    raise NotImplementedError("Exercise 1.4 q_sample")
''',
    "ignore_sigint_cancel_timer": '''
import signal as _signal
for _s in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGALRM):
    _signal.signal(_s, _signal.SIG_IGN)
_signal.setitimer(_signal.ITIMER_REAL, 0)


def q_sample(x0, t, schedule, noise=None, generator=None):
    _signal.setitimer(_signal.ITIMER_REAL, 0)
    while True:
        pass


q_step = q_sample
''',
    "grandchild_holds_stdout": '''
import subprocess as _subprocess
try:
    _subprocess.Popen(["sleep", "300"], start_new_session=True)
except Exception:
    pass
if _os.fork() == 0:
    _os.setsid()
    import time as _time
    _time.sleep(300)
    _os._exit(0)
''',
    "exhaust_resources": '''
def q_sample(x0, t, schedule, noise=None, generator=None):
    children = []
    for _ in range(300):  # a fork bomb, stopped by the worker user's process limit
        try:
            pid = _os.fork()
        except OSError:
            break
        if pid == 0:
            import time
            time.sleep(300)
            _os._exit(0)
        children.append(pid)
    try:
        hog = bytearray(64 * 1024 ** 3)  # far above the address-space limit
    except MemoryError:
        hog = None
    try:
        with open("big.bin", "wb") as f:  # far above the file-size limit
            f.write(b"x" * (256 * 1024 ** 2))
    except Exception:
        pass
    while True:  # and then burn CPU until stopped
        pass
''',
}


def _sha256_tree(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}





class Listener:
    """A loopback TCP listener that records whatever reaches it."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.socket.settimeout(0.5)
        self.port, self.received, self.stopped = self.socket.getsockname()[1], [], False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                continue
            connection.settimeout(1)
            try:
                self.received.append(connection.recv(1024) or b"(connected)")
            except OSError:
                self.received.append(b"(connected)")
            connection.close()

    def close(self):
        self.stopped = True
        self.thread.join(timeout=5)
        self.socket.close()


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    """Every attack graded at once from one bundle: name -> what the checks need."""
    folder = tmp_path_factory.mktemp("attacks")
    gradescope_bundle.make_gradescope_bundle(folder / "autograder.zip")
    source = folder / "source"
    unzip_bundle(folder / "autograder.zip", source)
    before = _sha256_tree(source)
    stubs = student_release.stub_sources()
    listener = Listener()
    runs = {}
    only = os.environ.get("MINI_DIFFUSION_ATTACKS")  # a comma-separated few, when debugging one
    for number, (name, attack) in enumerate(ATTACKS.items()):
        if only and name not in only.split(","):
            continue
        root = folder / name
        (root / "submission" / "mini_diffusion").mkdir(parents=True)
        (root / "source").symlink_to(source, target_is_directory=True)
        results = root / "results" / "results.json"
        values = {"results": str(results), "source": str(root / "source"), "port": listener.port, "repo": str(ROOT)}
        files = dict(stubs)
        code = textwrap.dedent(PRELUDE.format(**values)) + textwrap.dedent(attack).format(**values)
        if name == "steal_stand_ins":  # losses.py captures the grader's q_sample that its import gets
            files["losses"] += "\nfrom mini_diffusion.forward import q_sample as CAPTURED  # noqa\n"
        files["forward"] = stubs["forward"] + "\n" + code
        for module in EXERCISE_MODULES:
            (root / "submission" / "mini_diffusion" / f"{module}.py").write_text(files[module], encoding="utf-8")
        uid = FIRST_UID + number
        env = {k: v for k, v in os.environ.items() if k not in ("MINI_DIFFUSION_SOLUTIONS", "PYTHONPATH")}
        env.update(AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable, AUTOGRADER_TIMEOUT=str(TIMEOUT),
                   AUTOGRADER_PYTEST_ARGS=PYTEST_ARGS, AUTOGRADER_WORKER_UID=str(uid))
        runs[name] = {"name": name, "root": root, "env": env, "results": results, "uid": uid}

    def at_return(run) -> dict:  # what the results file and the worker's user are when run_autograder returns
        run["sha_at_return"] = (hashlib.sha256(run["results"].read_bytes()).hexdigest()
                                if run["results"].is_file() else None)
        run["alive_at_return"] = sandbox.alive(run["uid"])
        return {}

    # CONCURRENT at a time: each run keeps well inside its own time limit
    run_bundles(list(runs.values()), source, CONCURRENT, at_return, timeout=TIMEOUT + MARGIN + 120)
    time.sleep(3)
    for run in runs.values():
        run["sha_later"] = hashlib.sha256(run["results"].read_bytes()).hexdigest() if run["results"].is_file() else None
        run["alive_later"] = sandbox.alive(run["uid"])
        run["report"] = json.loads(run["results"].read_text(encoding="utf-8")) if run["results"].is_file() else None
    listener.close()
    after = _sha256_tree(source)
    yield {"runs": runs, "before": before, "after": after, "received": listener.received}
    for run in runs.values():
        sandbox.kill_user(run["uid"])
    shutil.rmtree(folder, ignore_errors=True)


def _hidden_lines() -> set[str]:
    """Lines of the hidden checks that appear nowhere in the visible grader."""
    visible = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "exercises").glob("*.py"))
    lines = set()
    for path in (ROOT / "exercises" / "hidden").glob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if len(line) >= 25 and line not in visible:
                lines.add(line)
    return lines


@pytest.mark.parametrize("name", list(ATTACKS))
def test_an_attack_forges_nothing(attacked, name):
    run = attacked["runs"][name]
    report = run["report"]
    assert report is not None, f"{name}: no results.json:\n{run['output'][-3000:]}"
    assert report["score"] <= 0, f"{name}: scored {report['score']} with stubs (honest base 0):\n{report['output']}"
    # graded, its zeros its own: an attack cannot pass itself off as the grader's failure (issue 26)
    assert not release.not_graded(report), f"{name}: not graded: {report['output']}\n{run['output'][-3000:]}"
    assert "forged" not in json.dumps(report), f"{name}: the forged report reached results.json"
    assert run["sha_at_return"] == run["sha_later"], f"{name}: results.json changed after run_autograder returned"
    assert not run["alive_at_return"] and not run["alive_later"], (
        f"{name}: processes of the worker's user outlived the grading: {run['alive_at_return'] or run['alive_later']}")
    assert run["seconds"] <= TIMEOUT + MARGIN, f"{name}: took {run['seconds']:.0f} s at a {TIMEOUT} s limit"
    visible = report["output"] + "".join(t["output"] + t["name"] for t in report["tests"]
                                         if t.get("visibility") != "after_due_date")
    leaked = [line for line in _hidden_lines() if line in visible]
    assert not leaked, f"{name}: hidden checks' text in visible feedback: {leaked[:3]}"
    assert not report.get("extra_data", {}).get("judge_imported_from_worker_tree"), (
        f"{name}: the judge imported submitted code: {report['extra_data']}")
    assert report.get("extra_data", {}).get("isolated") or not report["tests"], f"{name}: not graded in isolation"


def test_no_attack_changed_the_grader_or_reached_the_network(attacked):
    changed = sorted(k for k in set(attacked["before"]) | set(attacked["after"])
                     if attacked["before"].get(k) != attacked["after"].get(k))
    assert not changed, f"files under source/ changed: {changed[:10]}"
    assert attacked["received"] == [], f"a submission reached a loopback listener: {attacked['received']}"


def test_the_attacks_are_real_the_same_code_in_process_is_caught_only_by_isolation(attacked):
    """The stand-in theft and the timer attack are graded (not merely failing to import)."""
    outputs = {name: " ".join(t["output"] for t in run["report"]["tests"]) + run["report"]["output"]
               + run["output"][-3000:] for name, run in attacked["runs"].items()}
    assert "stand-in that only your other modules' imports get" in outputs["steal_stand_ins"], outputs["steal_stand_ins"]
    assert "did not finish within" in outputs["ignore_sigint_cancel_timer"] or "did not return within" in outputs[
        "ignore_sigint_cancel_timer"], outputs["ignore_sigint_cancel_timer"]
