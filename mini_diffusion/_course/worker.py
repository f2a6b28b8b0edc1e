"""The process that runs learner code apart from the grader, in two modes.

`check` mode, for `md.check` (below): a warm worker that forks a fresh child per check.
`serve` mode, for grading that a submission must not be able to forge (the Gradescope bundle):
the learner's functions behind a wire (`serve_learner`, `RemoteHost`), see the end of this file.

A warm worker for `md.check`: the grader's own checks, apart from the notebook, in a fraction of a second.

Starting a Python and importing torch and pytest costs about 2 s, far more than a check itself.
So the first `md.check` starts this worker once per kernel: a Python that imports torch, pytest
and the grader's modules, then waits. For every check it forks a fresh child that runs exactly
`pytest exercises/ --exercise ID --grade-report FILE` (the very same checks as `pytest
exercises/`), so each check imports the learner's files afresh, as saved, and a check that hangs
or crashes takes down only that child: the worker kills it at the deadline and goes on. The
worker itself never imports a learner file.

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
import threading
import time
from pathlib import Path

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


# --- serve mode: the learner's code behind a wire ------------------------------------------
#
# The judge (the grader's pytest process) never imports learner code. It starts this worker as an
# unprivileged user (sandbox.py) and sends calls as data (wire.py). The worker imports the
# learner's files with mini_diffusion._course.host and answers each call with a result or an
# outcome message. A model passed in a call is a handle: every evaluation calls back to the judge,
# which runs the model, records what it was asked, and can differentiate through it: the worker
# returns, with a scalar result, its gradient with respect to every model output, and the judge
# rebuilds a loss with the same value and the same gradient for its own parameters.


class RemoteFailure(Exception):
    """An exception the judge raised while answering a callback (a model misused, say)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class _Connection:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    def send(self, message: dict, value=None) -> None:
        from mini_diffusion._course import wire

        tensors = {}
        if value is not None or "value" in message:
            message = {**message, "value": wire.encode(value, tensors)}
        self.writer.write(wire.pack(message, tensors))
        self.writer.flush()

    def receive(self):
        from mini_diffusion._course import wire

        return wire.unpack(self.reader)


READY_OP = "ready"  # the worker's first frame: it started, and imported torch and the package
STARTUP_SECONDS = 90.0  # how long a worker may take to say it is ready (torch's import on a loaded machine)


def serve_learner(reader, writer, control_reader=None, control_writer=None) -> None:
    """Answer calls from the judge until it closes the connection (runs inside the worker).

    The handshake comes first: once torch and the ready package are imported, and before any learner
    file is, the worker sends {"op": "ready"} and silences its stderr (which the judge reads only for a
    worker that never got that far). A worker that fails before it is ready is the grader's failure
    (it could not run: a Python it cannot read, a tool or a limit refused); after it, what happens is
    the learner code's doing.

    With a control channel (the bundle's worker) this process never runs learner code: for each session
    the judge opens (one per exercise graded) it forks a child that imports the learner's files and
    answers the calls, and when the session ends it kills that child and everything it started, and
    removes what they wrote (`_end_session`). So nothing a learner function saw, the grader's stand-ins'
    answers included, reaches the next exercise.
    """
    import torch

    from mini_diffusion._course import catalog

    connection = _Connection(reader, writer)
    torch.set_num_threads(1)
    early = [m for m in catalog.EXERCISE_MODULES if f"mini_diffusion.{m}" in sys.modules]
    if early:  # a bug of the package: learner code must never run before the handshake
        sys.stderr.write(f"learner modules were imported before the handshake: {early}\n")
        sys.exit(3)
    connection.send({"op": READY_OP, "pid": os.getpid(), "uid": os.getuid() if hasattr(os, "getuid") else None,
                     "python": sys.version.split()[0], "torch": torch.__version__, "sessions": control_reader is not None,
                     "package": str(Path(catalog.__file__).resolve().parent.parent)})
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # from now on anything on stderr is the learner's: nobody reads it
    os.close(devnull)
    if control_reader is None:
        _serve_calls(connection)
    else:
        _serve_sessions(connection, reader, _Connection(control_reader, control_writer))


def _serve_calls(connection) -> None:
    """The learner's side: answer calls until the connection closes."""
    import torch

    from mini_diffusion._course import host as host_module
    from mini_diffusion._course import wire

    host = None
    while True:
        try:
            message, tensors = connection.receive()
        except wire.WireError:
            return
        if message.get("op") != "call":
            connection.send({"op": "error", "message": "the worker expected a call"})
            continue
        if host is None or message.get("stand_ins") != host.requested:
            host = host_module.Host(misuse=(RemoteFailure,))
            host.requested = message.get("stand_ins") or {}
            host.stand_ins = {m: {f: _remote_function(connection, f"{m}.{f}") for f in names}
                              for m, names in host.requested.items()}
        outputs = []  # (model id, output leaf) of every model evaluation in this call

        def model(key):
            return _RemoteModel(connection, key, outputs)

        try:
            tensors.update(_shared_inputs(message.get("shared")))
            args = wire.decode(message["args"], tensors, model)
            kwargs = wire.decode(message["kwargs"], tensors, model)
            with torch.enable_grad():
                result = host.call(message["function"], tuple(args), kwargs)
            grads = _output_gradients(result, outputs)
            connection.send({"op": "result", "grads": grads is not None}, {"result": _detached(result),
                                                                         "grads": grads})
        except host_module.Outcome as outcome:
            connection.send({"op": "outcome", "message": outcome.message, "status": outcome.status})
        except TypeError as err:  # a result that cannot travel
            connection.send({"op": "outcome", "status": "failed",
                             "message": f"{message['function']} returned something the grader cannot read ({err})."})


def _shared_inputs(shared) -> dict:
    """The call's input tensors, as views of the file the judge wrote them to (mapped shared): whatever
    the learner's function writes into them lands in that file, where the judge compares them with its
    own copies after the call."""
    if not shared:
        return {}
    import torch

    size = os.path.getsize(shared["path"])
    if size == 0:
        return {}
    memory = torch.from_file(shared["path"], shared=True, size=size, dtype=torch.uint8)
    found = {}
    for key, (dtype, shape, offset, nbytes) in shared["tensors"].items():
        found[key] = memory[offset:offset + nbytes].view(getattr(torch, dtype)).reshape(shape)
    return found


SESSION_END_SECONDS = 20.0  # how long the judge waits for a session's end (its processes killed, files removed)


def _serve_sessions(connection, reader, control) -> None:
    """The worker's parent, which never runs learner code: a child per session (see serve_learner)."""
    from mini_diffusion._course import wire

    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(number, signal.SIG_IGN)  # as the namespace's first process, only its handlers count
    _dumpable(False)  # no process of its user may read or trace its memory (/proc/<pid>/mem, ptrace)
    own_user = os.environ.get("MINI_DIFFUSION_WORKER_OWN_USER") == "1"
    private = [p for p in os.environ.get("MINI_DIFFUSION_PRIVATE_DIRS", "").split(":") if p]
    folder = os.getcwd()
    control_fd = control.reader.fileno()
    while True:
        try:
            message, _ = control.receive()
        except wire.WireError:
            _end_session(None, own_user, folder, private, reader)
            return
        if message.get("op") != "session":
            continue
        pid = os.fork()
        if pid == 0:  # the session's process: the learner's code runs here only
            try:
                os.close(control_fd)
                os.close(control.writer.fileno())
                for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
                    signal.signal(number, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                _dumpable(True)
                _serve_calls(connection)
            finally:
                os._exit(0)
        why = _wait_session(pid, control)
        code = _end_session(pid, own_user, folder, private, reader)
        try:
            control.send({"op": "ended", "code": code, "why": why})
        except (OSError, ValueError):
            return
        if why == "closed":
            return


def _wait_session(pid: int, control) -> str:
    """Wait until the session's process ends ("exited") or the judge ends the session ("end", "closed")."""
    from mini_diffusion._course import wire

    control_fd = control.reader.fileno()
    try:
        process_fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        process_fd = None
    try:
        while True:
            watched = [control_fd] + ([process_fd] if process_fd is not None else [])
            ready, _, _ = select.select(watched, [], [], None if process_fd is not None else 0.05)
            if control_fd in ready:
                try:
                    message, _ = control.receive()
                except (wire.WireError, OSError, ValueError):
                    return "closed"  # the judge has gone
                if message.get("op") == "end":
                    return "end"
                continue
            if process_fd is not None and process_fd in ready:
                return "exited"
            if process_fd is None and os.waitpid(pid, os.WNOHANG) != (0, 0):
                return "exited"
    finally:
        if process_fd is not None:
            os.close(process_fd)


def _end_session(pid, own_user: bool, folder: str, private: list, reader) -> int | None:
    """Kill the session's process and (under a user of its own) every other process of that user, reap them,
    remove what they wrote (this folder's contents; their files in the shared temporary folders; their IPC
    objects), and drop whatever the judge sent that nobody read. Returns the process's exit status."""
    code = None
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for _ in range(50):
        if own_user:
            try:
                os.kill(-1, signal.SIGKILL)  # every process of this user but this one (in its namespace)
            except ProcessLookupError:
                pass
        try:
            while True:
                done, status = os.waitpid(-1, os.WNOHANG)
                if done == 0:
                    break
                if done == pid:
                    code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            break
        time.sleep(0.01)
    from mini_diffusion._course import sandbox

    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            import shutil

            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass
    if own_user:
        sandbox.clean_private(os.getuid(), private)
    fd = reader.fileno()
    blocking = os.get_blocking(fd)
    os.set_blocking(fd, False)
    try:
        while os.read(fd, 1 << 16):
            pass
    except (BlockingIOError, OSError):
        pass
    finally:
        os.set_blocking(fd, blocking)
    return code


def _dumpable(value: bool) -> None:
    """prctl(PR_SET_DUMPABLE): off, no other process of the same user may trace this one or read its
    memory or descriptors through /proc."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 1 if value else 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _detached(value):
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, (list, tuple)):
        return type(value)(_detached(v) for v in value)
    return value


def _output_gradients(result, outputs):
    """For a scalar result that depends on model outputs: d result / d output, one per evaluation."""
    import torch

    if not (isinstance(result, torch.Tensor) and result.requires_grad and result.numel() == 1 and outputs):
        return None
    leaves = [leaf for _, leaf in outputs]
    grads = torch.autograd.grad(result, leaves, allow_unused=True)
    return [torch.zeros_like(leaf) if g is None else g for leaf, g in zip(leaves, grads)]


def _ask(connection, message: dict, value):
    connection.send(message, value)
    reply, tensors = connection.receive()
    from mini_diffusion._course import wire

    if reply.get("op") == "raise":
        raise RemoteFailure(reply.get("kind", "Exception"), reply.get("message", ""))
    return wire.decode(reply.get("value"), tensors)


class _RemoteModel:
    """A model of the judge's, seen from the worker: each evaluation is a callback."""

    def __init__(self, connection, key, outputs):
        import torch

        self.connection, self.key, self.outputs = connection, key, outputs
        self.device = torch.device("cpu")

    def __call__(self, *args):
        import torch

        # inputs the learner's code differentiates through (classifier guidance: d log p / d x_t)
        wanted = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.requires_grad
                  and a.is_floating_point()] if torch.is_grad_enabled() else []
        message = {"op": "model", "model": self.key, **({"grad_inputs": wanted} if wanted else {})}
        out = _ask(self.connection, message, list(args))
        if isinstance(out, torch.Tensor) and out.is_floating_point():
            out = out.detach().requires_grad_(True)  # a leaf: the judge holds the graph behind it
            self.outputs.append((self.key, out))
            if wanted:
                out = _RemoteInputGradient.apply(self.connection, len(self.outputs) - 1, wanted, out,
                                                 *(args[i] for i in wanted))
        return out

    forward = __call__

    def parameters(self):  # no parameters here: they live with the judge
        return iter(())

    def eval(self):
        return self

    def train(self, mode=True):
        return self


def _remote_input_gradient_class():
    import torch

    class RemoteInputGradient(torch.autograd.Function):
        """The judge's model output, made differentiable in the model's inputs: backward asks the judge
        for the vector-Jacobian product of evaluation `index` (it keeps that evaluation's graph)."""

        @staticmethod
        def forward(ctx, connection, index, positions, out, *inputs):
            ctx.connection, ctx.index, ctx.positions = connection, index, positions
            ctx.shapes = [(x.shape, x.dtype) for x in inputs]
            return out.clone()

        @staticmethod
        def backward(ctx, grad_output):
            grads = _ask(ctx.connection, {"op": "vjp", "index": ctx.index, "positions": ctx.positions},
                         grad_output.detach())
            grads = [g.to(dtype) if isinstance(g, torch.Tensor) and g.shape == shape else torch.zeros(shape, dtype=dtype)
                     for g, (shape, dtype) in zip(grads, ctx.shapes)]
            return (None, None, None, grad_output, *grads)

    return RemoteInputGradient


class _LazyFunction:
    def __init__(self, make):
        self.make, self.made = make, None

    def apply(self, *args):
        if self.made is None:
            self.made = self.make()
        return self.made.apply(*args)


_RemoteInputGradient = _LazyFunction(_remote_input_gradient_class)  # torch is imported only when used


def _remote_function(connection, name: str):
    def stand_in(*args, **kwargs):
        return _ask(connection, {"op": "stand_in", "name": name}, {"args": list(args), "kwargs": kwargs})

    stand_in.__name__ = name.rsplit(".", 1)[1]
    return stand_in


class RemoteHost:
    """The judge's side: call learner functions in a worker process; serve its callbacks.

    start: a function returning (process, reader, writer) for a fresh worker (sandbox.py makes one).
    stand_ins: module -> {function -> callable}: the judge's versions the worker may call back.
    misuse: the exception types whose message goes back to the learner's code as a failure.
    """

    def __init__(self, start, stand_ins: dict, misuse=(), timeout: float = 120.0,
                 startup_timeout: float = STARTUP_SECONDS, stand_in_uses: dict | None = None,
                 argument_names: dict | None = None):
        self.start, self.stand_ins, self.misuse = start, stand_ins, tuple(misuse)
        self.timeout = timeout  # seconds one call may take, callbacks included
        self.startup_timeout = startup_timeout
        # function -> the stand-ins ("module.function") its reference calls: the only ones that answer while
        # it is graded (None: every stand-in but its own module's)
        self.stand_in_uses = stand_in_uses
        self.argument_names = argument_names or {}  # function -> its parameters' names, for the feedback
        self.exercise = None  # the exercise graded now (begin): a session of its own in the worker
        self.control = None  # the worker's control channel (its sessions), when it has one
        self.session_open = False
        self.process = self.connection = None
        self.failure = None  # the CannotRun that stopped this host: every later call gets it at once
        self.ready = None  # the worker's handshake
        self.first = None  # the first worker's handshake, and how its Python was provided

    def restart(self) -> None:
        """A fresh worker, ready: CannotRun (the grader's failure) when it cannot be started, or ends or
        stalls before its handshake. The check's own time limit does not run meanwhile (the start-up is the
        grader's time, not the learner code's)."""
        from mini_diffusion._course.sandbox import CannotRun

        if self.failure is not None:
            raise self.failure
        self.stop()
        paused = _pause_alarm()
        try:
            self.process, reader, writer = self.start()
            self.connection = _Connection(_DeadlineReader(reader), writer)
            self.ready = self._handshake()
            control = getattr(self.process, "control", None)
            if control and self.ready.get("sessions"):
                self.control = _Connection(_DeadlineReader(control[0]), control[1])
                self.connection.reader.watch = control[0].fileno()  # a session that ends mid-call
            if self.first is None:  # for the instructor's log: which Python the worker got, and how
                self.first = {**self.ready, "view": getattr(self.process, "python", {}).get("note", "")}
            log = getattr(self.process, "startup_log", None)
            if log is not None:
                log.close()  # what the worker writes from now on is the learner's: nobody reads it
        except CannotRun as err:
            self.stop()
            self.failure = err
            raise
        except Exception as err:  # noqa: BLE001 - preparing the worker failed: the grader's doing, never the learner's
            self.stop()
            self.failure = CannotRun(f"the worker could not be prepared ({type(err).__name__}: {err})",
                                     "see the autograder's output for the details")
            raise self.failure from err
        finally:
            _resume_alarm(paused)

    def _handshake(self) -> dict:
        from mini_diffusion._course import sandbox, wire
        from mini_diffusion._course.sandbox import CannotRun

        self.connection.reader.deadline = time.monotonic() + self.startup_timeout
        why = None
        try:
            message, _ = self.connection.receive()
            if message.get("op") == READY_OP:
                return message
            why = f"it sent {str(message.get('op'))[:40]!r} instead of its handshake"
        except CallTimeout:
            why = f"it was not ready within {self.startup_timeout:g} s"
        except (wire.WireError, OSError, ValueError) as err:
            why = f"it ended before it was ready ({type(err).__name__})"
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        code = self.process.poll()
        output = sandbox.startup_output(self.process)
        detail = f" (exit code {code})" if code is not None else ""
        raise CannotRun(f"the worker process that runs the submission did not start: {why}{detail}"
                        + (f"; it said: {' '.join(output.split())[-800:]}" if output else ""),
                        "see docs/instructors.md, 'What this relies on': the worker's user must be able to read "
                        "the autograder's Python, and setpriv, prlimit and unshare must work in the container")

    def begin(self, exercise_id) -> None:
        """The checks of exercise_id come next: they get a session of their own (a fresh process in the worker,
        with nothing left of an earlier exercise's), opened at their first call."""
        if exercise_id != self.exercise:
            self.end_session()
            self.exercise = exercise_id

    def end_session(self) -> None:
        """End the worker's session: its processes killed, what they wrote removed. A worker that does not
        confirm it within SESSION_END_SECONDS is stopped (the next call starts a fresh one)."""
        from mini_diffusion._course import wire

        if not self.session_open:
            return
        self.session_open = False
        try:
            self.control.send({"op": "end"})
            self._await_end()
        except (CallTimeout, SessionEnded, wire.WireError, OSError, ValueError):
            self.stop()

    def _await_end(self) -> dict:
        """The worker's "ended" for this session; then whatever its processes wrote to the data channel
        before they died is dropped."""
        self.control.reader.deadline = time.monotonic() + SESSION_END_SECONDS
        while True:
            message, _ = self.control.receive()
            if message.get("op") == "ended":
                break
        self.connection.reader.drain()
        return message

    def _open_session(self) -> None:
        if self.control is not None and not self.session_open:
            self.control.send({"op": "session"})
            self.session_open = True

    def stop(self) -> None:
        self.ready = None
        self.control, self.session_open = None, False
        if self.process is not None:
            from mini_diffusion._course import sandbox

            sandbox.end(self.process)
        if self.connection is not None:
            for stream in (self.connection.reader, self.connection.writer):
                try:
                    stream.close()
                except OSError:
                    pass
        self.process = self.connection = None

    def call(self, function: str, args: tuple, kwargs: dict):
        """The learner's function(*args, **kwargs), run in the worker. Returns the result (a loss that
        depends on a model's outputs comes back differentiable); raises host.Outcome otherwise."""
        from mini_diffusion._course import wire
        from mini_diffusion._course.host import Outcome

        if self.process is None or self.process.poll() is not None:
            self.restart()
        self._open_session()
        models, tensors = {}, {}
        message = {"op": "call", "function": function,
                   "args": wire.encode(list(args), tensors, models), "kwargs": wire.encode(kwargs, tensors, models),
                   "stand_ins": {m: sorted(fs) for m, fs in self.stand_ins.items()}}
        shared = _SharedInputs.make(message, tensors, getattr(self.process, "run_folder", None))
        if shared is not None:
            message["shared"] = shared.describe()
        outputs = []  # the judge's model outputs, in the order the worker asked for them
        inputs = []  # with each output: the inputs the worker differentiates through (position -> tensor)
        self.calling = function
        self.connection.reader.deadline = time.monotonic() + self.timeout
        try:
            self.connection.writer.write(wire.pack(message, tensors))
            self.connection.writer.flush()
            while True:
                reply, received = self.connection.receive()
                op = reply.get("op")
                if op == "model":
                    self._answer(lambda: self._run_model(models[reply["model"]], received, reply, outputs, inputs))
                elif op == "vjp":
                    self._answer(lambda: self._run_vjp(reply, received, outputs, inputs))
                elif op == "stand_in":
                    self._answer(lambda: self._run_stand_in(reply, received))
                elif op == "result":
                    value = wire.decode(reply["value"], received)
                    result, grads = value["result"], value["grads"]
                    if grads is not None:
                        result = _differentiable(result, outputs, grads)
                    if shared is not None:  # the judge's own look at the inputs it handed over
                        shared.check(function, self.argument_names.get(function) or ())
                    return result
                elif op == "outcome":
                    if shared is not None:
                        shared.check(function, self.argument_names.get(function) or ())
                    raise Outcome(str(reply.get("message", ""))[:4000], str(reply.get("status", "failed"))[:40])
                else:
                    raise Outcome("the worker running your code sent something the grader does not understand.",
                                  "error")
        except Outcome:  # the learner's code failed: the worker goes on
            raise
        except SessionEnded:  # the session's process died mid-call (it exited, or crashed): the worker goes on
            self.session_open = False
            try:
                ended = self._await_end()
            except (CallTimeout, SessionEnded, wire.WireError, OSError, ValueError):
                self.stop()
                ended = {}
            raise Outcome(f"{function}: the process running your code ended during the call (exit status "
                          f"{ended.get('code')}); did your code exit or crash?", "error") from None
        except CallTimeout:
            self.stop()
            raise Outcome(f"{function} did not return within {self.timeout:g} s and was stopped: an endless loop, "
                          "or many more steps than needed?", "timed out") from None
        except (wire.WireError, OSError, ValueError, KeyError) as err:
            self.stop()
            raise Outcome(f"{function}: the process running your code stopped or broke the connection "
                          f"({type(err).__name__}); did your code exit, crash or print to the grader's channel?",
                          "error") from None
        except BaseException:  # the check's own time limit (pytest-timeout), a KeyboardInterrupt, a bug here:
            self.stop()  # the worker may be mid-call, so it cannot be trusted to answer the next one
            raise
        finally:
            if shared is not None:
                shared.close()

    def _answer(self, compute) -> None:
        try:
            value = compute()
        except self.misuse as err:
            self.connection.send({"op": "raise", "kind": type(err).__name__, "message": str(err)})
            return
        except Exception as err:  # noqa: BLE001 - the judge's model may reject any odd input
            self.connection.send({"op": "raise", "kind": type(err).__name__, "message": str(err)})
            return
        self.connection.send({"op": "reply"}, value)

    @staticmethod
    def _run_model(model, received, reply, outputs, inputs):
        import torch

        from mini_diffusion._course import wire

        args = wire.decode(reply["value"], received)
        wanted = {}
        for i in reply.get("grad_inputs") or []:
            if isinstance(i, int) and 0 <= i < len(args) and isinstance(args[i], torch.Tensor) \
                    and args[i].is_floating_point():
                wanted[i] = args[i] = args[i].detach().requires_grad_(True)
        with torch.enable_grad():
            out = model(*args)
        if isinstance(out, torch.Tensor) and out.is_floating_point():
            outputs.append(out)
            inputs.append(wanted)
        return out.detach() if isinstance(out, torch.Tensor) else out

    @staticmethod
    def _run_vjp(reply, received, outputs, inputs):
        """d <out_index, grad_output> / d inputs at the positions asked: the backward pass through one
        of the judge's model evaluations, for learner code that differentiates in the model's input."""
        import torch

        from mini_diffusion._course import wire

        index, positions = reply.get("index"), reply.get("positions") or []
        grad_output = wire.decode(reply["value"], received)
        if not (isinstance(index, int) and 0 <= index < len(outputs)) or not isinstance(grad_output, torch.Tensor):
            raise ValueError("a gradient was asked of a model evaluation the grader does not know")
        out, wanted = outputs[index], inputs[index]
        tensors = [wanted.get(p) for p in positions]
        if any(x is None for x in tensors) or grad_output.shape != out.shape or not out.requires_grad:
            raise ValueError("a gradient was asked for inputs the model was not told to differentiate")
        grads = torch.autograd.grad(out, tensors, grad_output.to(out.dtype), retain_graph=True, allow_unused=True)
        return [torch.zeros_like(x) if g is None else g.detach() for x, g in zip(tensors, grads)]

    def _run_stand_in(self, reply, received):
        from mini_diffusion._course import wire

        module, _, name = reply["name"].partition(".")
        from mini_diffusion._course import catalog

        # a stand-in serves one module's imports from another: never the module being graded (its own
        # function would otherwise come back from the grader's formula)
        graded = catalog.by_function(self.calling)
        if graded.module == module:
            raise LookupError(f"{self.calling} reached the grader's own {name}, a stand-in that only your other "
                              f"modules' imports get: write the functions of {module}.py yourself")
        # and only for the exercise whose reference calls it, while that exercise is graded: the grader's
        # answers are never an oracle for another exercise (the session ends with it, and them)
        wanted = reply["name"]
        allowed = None if self.stand_in_uses is None else self.stand_in_uses.get(self.calling, ())
        if (allowed is not None and wanted not in allowed) or (self.exercise is not None and graded.id != self.exercise):
            users = sorted(f for f, names in (self.stand_in_uses or {}).items() if wanted in names)
            raise LookupError(f"{self.calling} called the grader's {wanted}, which stands in for your own only "
                              f"while an exercise that calls it is graded ({', '.join(users) or 'none'}): "
                              f"{graded.id} {self.calling} must compute its result itself")
        function = self.stand_ins[module][name]
        value = wire.decode(reply["value"], received)
        return function(*value["args"], **value["kwargs"])


class CallTimeout(Exception):
    """The worker did not answer before the call's deadline."""


class SessionEnded(Exception):
    """The worker's control channel spoke while the judge waited on a call: the session's process ended."""


class _SharedInputs:
    """The input tensors of one call, written by the judge to a file of its own that the worker maps
    shared (worker._shared_inputs): what the learner's function does to them in place lands in the file,
    and the judge compares the file with its own copies after the call (reading through its own
    descriptor, so a file replaced or cut short reads as changed). The comparison is the judge's: no code
    in the worker can switch it off."""

    ALIGN = 64

    def __init__(self, fd, path, layout, original, names):
        self.fd, self.path, self.layout, self.original, self.names = fd, path, layout, original, names

    @classmethod
    def make(cls, message, tensors, folder):
        if folder is None:
            return None
        names = {}  # tensor key -> (argument position or keyword, schedule field or None)
        for position, tree in enumerate(message["args"]):
            cls._keys(tree, position, None, names)
        for keyword, tree in message["kwargs"].get("$dict", {}).items():
            cls._keys(tree, keyword, None, names)
        if not names:
            return None
        layout, blob, offset = {}, bytearray(), 0
        original = {}
        for key in names:
            tensor = tensors.pop(key)
            data = tensor.numpy().tobytes() if tensor.numel() else b""
            offset = -(-len(blob) // cls.ALIGN) * cls.ALIGN
            blob.extend(b"\0" * (offset - len(blob)))
            blob.extend(data)
            layout[key] = (str(tensor.dtype).removeprefix("torch."), list(tensor.shape), offset, len(data))
            original[key] = data
        import tempfile

        fd, path = tempfile.mkstemp(prefix="inputs-", dir=folder)
        os.write(fd, bytes(blob))
        os.fchmod(fd, 0o666)
        return cls(fd, path, layout, original, names)

    @classmethod
    def _keys(cls, tree, where, field, names):
        if isinstance(tree, list):
            for item in tree:
                cls._keys(item, where, field, names)
        elif isinstance(tree, dict):
            if "$tensor" in tree:
                names[tree["$tensor"]] = (where, field)
            elif "$schedule" in tree:
                for name, item in zip(("betas", "alphas", "alpha_bars"), tree["$schedule"]):
                    cls._keys(item, where, name, names)
            elif "$tuple" in tree:
                cls._keys(tree["$tuple"], where, field, names)
            elif "$dict" in tree:
                for item in tree["$dict"].values():
                    cls._keys(item, where, field, names)

    def describe(self) -> dict:
        return {"path": self.path, "tensors": self.layout}

    def check(self, function: str, parameters) -> None:
        from mini_diffusion._course.host import Outcome

        for key, (dtype, shape, offset, nbytes) in self.layout.items():
            if os.pread(self.fd, nbytes, offset) == self.original[key]:
                continue
            where, field = self.names[key]
            if field is not None:
                raise Outcome(f"{function} changed schedule.{field} in place: the schedule is shared by every "
                              "call and must stay as it was. Compute new tensors instead of editing it.")
            name = where if isinstance(where, str) else (
                parameters[where] if where < len(parameters) else f"argument {where + 1}")
            raise Outcome(f"{function} changed its input `{name}` in place (an operation such as x += …, x.mul_(…) "
                          "or x[...] = …): the caller's tensor must stay as it was. Compute a new tensor "
                          "instead (x = x + …).")

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass
        try:
            os.unlink(self.path)
        except OSError:
            pass


def _pause_alarm():
    """Stop the check's own timer (pytest-timeout's signal method: ITIMER_REAL) while the grader starts a
    worker; returns what _resume_alarm needs to start it again where it was."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        return None
    remaining, interval = signal.getitimer(signal.ITIMER_REAL)
    if remaining <= 0:
        return None
    signal.setitimer(signal.ITIMER_REAL, 0)
    return remaining, interval


def _resume_alarm(paused) -> None:
    if paused is not None:
        signal.setitimer(signal.ITIMER_REAL, *paused)


class _DeadlineReader:
    """The judge's end of the pipe from the worker: every read waits at most until `deadline`."""

    def __init__(self, stream):
        self.stream, self.fd, self.deadline = stream, stream.fileno(), None
        self.watch = None  # the control channel: when it speaks first, the session has ended

    def read(self, n: int) -> bytes:
        if self.deadline is not None or self.watch is not None:
            remaining = None if self.deadline is None else self.deadline - time.monotonic()
            watched = [self.fd] + ([self.watch] if self.watch is not None else [])
            ready = (remaining is None or remaining > 0) and select.select(watched, [], [], remaining)[0]
            if not ready:
                raise CallTimeout()
            if self.fd not in ready:
                raise SessionEnded()
        return os.read(self.fd, min(n, 1 << 20))

    def drain(self) -> None:
        """Drop what is waiting to be read (the words of a session's processes, all dead by now)."""
        while select.select([self.fd], [], [], 0)[0]:
            if not os.read(self.fd, 1 << 16):
                break

    def close(self) -> None:
        self.stream.close()


def _differentiable(result, outputs, grads):
    """A tensor equal to result whose gradient, for the judge's parameters, is the learner's:
    d result / d θ = Σ_k (d result / d out_k) · (d out_k / d θ)."""
    if len(grads) != len(outputs):
        return result
    surrogate = result.detach().clone()
    for out, grad in zip(outputs, grads):
        if out.requires_grad and grad.shape == out.shape:
            surrogate = surrogate + (out * grad.to(out.dtype)).sum() - (out.detach() * grad.to(out.dtype)).sum()
    return surrogate


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        fds = [int(a) for a in sys.argv[2:6]]
        control = (os.fdopen(fds[2], "rb", buffering=0), os.fdopen(fds[3], "wb")) if len(fds) == 4 else (None, None)
        serve_learner(os.fdopen(fds[0], "rb"), os.fdopen(fds[1], "wb"), *control)
    else:
        serve(sys.argv[1])
