"""md.check's warm worker: a Python that has imported torch and pytest and forks a fresh child per check.

The grader's own checks, apart from the notebook, in a fraction of a second. Starting a Python
and importing torch and pytest costs about 2 s, far more than a check itself.
So the first `md.check` starts this worker once per kernel: a Python that imports torch, pytest
and the grader's modules, then waits. For every check it forks a fresh child that runs exactly
`pytest exercises/ --exercise ID --grade-report FILE` (the very same checks as `pytest
exercises/`), so each check imports the learner's files afresh, as saved, and a check that hangs
or crashes takes down only that child: the worker kills it at the deadline and goes on. The
worker itself never imports a learner file.

It starts as `python -m mini_diffusion._course.worker EXERCISES_DIR` (worker.py, the command line
of both workers); `Worker` is the kernel's handle on it.

Protocol: one JSON object per line on stdin ({"args": [...], "env": {...}, "timeout": s}),
one per line on stdout ({"returncode": n, "output": "..."}). Where os.fork does not exist
(Windows), `check` runs a fresh Python per check instead.
"""

import json
import os
import select
import signal
import subprocess
import sys
import time

READY = "mini-diffusion worker ready"


def _warm_up(exercises_dir: str) -> None:
    """Import what every check needs, so that the forked children start with it."""
    import pytest  # noqa: F401
    import torch  # noqa: F401

    sys.path.insert(0, exercises_dir)
    for name in ("_grading", "pytest_timeout"):  # the grader's machinery (exercises/_grading.py), its timer
        try:
            __import__(name)
        except ImportError:
            pass


def _run_one(request: dict) -> dict:
    """Fork a child that runs pytest with request["args"]; wait for it, at most request["timeout"] s."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a fresh check in a warm interpreter
        os.close(read_end)
        code = 1
        try:
            os.setpgid(0, 0)  # its own process group, so that a stop takes whatever it started too
            os.environ.update(request.get("env", {}))
            os.dup2(write_end, 1)
            os.dup2(write_end, 2)
            import pytest

            code = pytest.main(request["args"])
        except BaseException as err:  # noqa: BLE001 - reported to the parent, never raised here
            os.write(write_end, f"\n{type(err).__name__}: {err}\n".encode())
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(int(code) if isinstance(code, int) else 1)
    os.close(write_end)
    output, deadline, timed_out = b"", time.monotonic() + float(request.get("timeout", 600)), False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([read_end], [], [], min(remaining, 1.0))
        if ready:
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            output = (output + chunk)[-200_000:]
    os.close(read_end)
    if timed_out:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return {"returncode": code, "timed_out": timed_out, "output": output.decode("utf-8", "replace")}


def serve(exercises_dir: str) -> None:
    _warm_up(exercises_dir)
    print(READY, flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = _run_one(json.loads(line))
        except Exception as err:  # noqa: BLE001 - a bad request must not end the worker
            reply = {"returncode": -1, "timed_out": False, "output": f"worker error: {type(err).__name__}: {err}"}
        print(json.dumps(reply), flush=True)


class Worker:
    """The parent's handle on one warm worker process (started on first use, restarted if it died)."""

    def __init__(self, exercises_dir, cwd, env):
        self.exercises_dir, self.cwd, self.env = str(exercises_dir), str(cwd), dict(env)
        self.process = None

    def _start(self, timeout: float = 120) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mini_diffusion._course.worker", self.exercises_dir], cwd=self.cwd, env=self.env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        line = self._read_line(timeout)
        if line is None or line.strip() != READY:
            self.close()
            raise RuntimeError("the check worker did not start; `pytest exercises/` runs the same checks")

    def _read_line(self, timeout: float):
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        return self.process.stdout.readline() if ready else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def run(self, args, env: dict, timeout: float) -> dict:
        if not self.alive():
            self._start()
        self.process.stdin.write(json.dumps({"args": list(args), "env": env, "timeout": timeout}) + "\n")
        self.process.stdin.flush()
        line = self._read_line(timeout + 30)
        if not line:  # the worker itself is stuck or gone: start afresh next time
            self.close()
            raise RuntimeError("the check worker stopped answering; it will be restarted on the next check")
        return json.loads(line)

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
