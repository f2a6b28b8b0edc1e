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


def serve_learner(reader, writer) -> None:
    """Answer calls from the judge until it closes the connection (runs inside the worker).

    The handshake comes first: once torch and the ready package are imported, and before any learner
    file is, the worker sends {"op": "ready"} and silences its stderr (which the judge reads only for a
    worker that never got that far). A worker that fails before it is ready is the grader's failure
    (it could not run: a Python it cannot read, a tool or a limit refused); after it, what happens is
    the learner code's doing.
    """
    import torch

    from mini_diffusion._course import catalog
    from mini_diffusion._course import host as host_module
    from mini_diffusion._course import wire

    connection = _Connection(reader, writer)
    torch.set_num_threads(1)
    early = [m for m in catalog.EXERCISE_MODULES if f"mini_diffusion.{m}" in sys.modules]
    if early:  # a bug of the package: learner code must never run before the handshake
        sys.stderr.write(f"learner modules were imported before the handshake: {early}\n")
        sys.exit(3)
    connection.send({"op": READY_OP, "pid": os.getpid(), "uid": os.getuid() if hasattr(os, "getuid") else None,
                     "python": sys.version.split()[0], "torch": torch.__version__,
                     "package": str(Path(catalog.__file__).resolve().parent.parent)})
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # from now on anything on stderr is the learner's: nobody reads it
    os.close(devnull)
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
                 startup_timeout: float = STARTUP_SECONDS):
        self.start, self.stand_ins, self.misuse = start, stand_ins, tuple(misuse)
        self.timeout = timeout  # seconds one call may take, callbacks included
        self.startup_timeout = startup_timeout
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

    def stop(self) -> None:
        self.ready = None
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
        models, tensors = {}, {}
        message = {"op": "call", "function": function,
                   "args": wire.encode(list(args), tensors, models), "kwargs": wire.encode(kwargs, tensors, models),
                   "stand_ins": {m: sorted(fs) for m, fs in self.stand_ins.items()}}
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
                    return result
                elif op == "outcome":
                    raise Outcome(str(reply.get("message", ""))[:4000], str(reply.get("status", "failed"))[:40])
                else:
                    raise Outcome("the worker running your code sent something the grader does not understand.",
                                  "error")
        except Outcome:  # the learner's code failed: the worker goes on
            raise
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
        if catalog.by_function(self.calling).module == module:
            raise LookupError(f"{self.calling} reached the grader's own {name}, a stand-in that only your other "
                              f"modules' imports get: write the functions of {module}.py yourself")
        function = self.stand_ins[module][name]
        value = wire.decode(reply["value"], received)
        return function(*value["args"], **value["kwargs"])


class CallTimeout(Exception):
    """The worker did not answer before the call's deadline."""


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

    def read(self, n: int) -> bytes:
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            ready = remaining > 0 and select.select([self.fd], [], [], remaining)[0]
            if not ready:
                raise CallTimeout()
        return os.read(self.fd, min(n, 1 << 20))

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
        serve_learner(os.fdopen(int(sys.argv[2]), "rb"), os.fdopen(int(sys.argv[3]), "wb"))
    else:
        serve(sys.argv[1])
