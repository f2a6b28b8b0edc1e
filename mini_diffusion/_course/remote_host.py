"""The judge's side of the bundle's worker: `RemoteHost` calls learner functions in it and answers its callbacks.

exercises/_grading.py grades through a RemoteHost in the Gradescope bundle: each call goes to the
worker (serve_worker.py, started by sandbox.py) as data, and the worker's callbacks (a model's
evaluation, its vector-Jacobian product, a stand-in of the grader's) are answered here, where the
models live. The judge checks the call's inputs for changes in place itself (shared_inputs.py).
"""

import signal
import subprocess
import threading
import time

from mini_diffusion._course.channel import READY_OP, CallTimeout, Connection, DeadlineReader, SessionEnded
from mini_diffusion._course.shared_inputs import SharedInputs

STARTUP_SECONDS = 90.0  # how long a worker may take to say it is ready (torch's import on a loaded machine)
SESSION_END_SECONDS = 20.0  # how long the judge waits for a session's end (its processes killed, files removed)


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
            self.connection = Connection(DeadlineReader(reader), writer)
            self.ready = self._handshake()
            control = getattr(self.process, "control", None)
            if control and self.ready.get("sessions"):
                self.control = Connection(DeadlineReader(control[0]), control[1])
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
        shared = SharedInputs.make(message, tensors, getattr(self.process, "run_folder", None))
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
        from mini_diffusion._base import catalog

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
