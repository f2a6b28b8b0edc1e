"""The bundle's worker: it imports the learner's files and answers the judge's calls over a pipe.

The judge (the grader's pytest process) never imports learner code. It starts this worker as an
unprivileged user (sandbox.py; the command is `python -m mini_diffusion._course.worker serve FD...`,
worker.py) and sends calls as data (wire.py, over channel.py's connection). The worker imports the
learner's files with mini_diffusion._course.host and answers each call with a result or an
outcome message. A model passed in a call is a handle: every evaluation calls back to the judge,
which runs the model, records what it was asked, and can differentiate through it: the worker
returns, with a scalar result, its gradient with respect to every model output, and the judge
rebuilds a loss with the same value and the same gradient for its own parameters (remote_host.py).
"""

import os
import sys
from pathlib import Path

from mini_diffusion._course.channel import READY_OP, Connection
from mini_diffusion._course.shared_inputs import mapped
from mini_diffusion._course.worker_sessions import serve_sessions


class RemoteFailure(Exception):
    """An exception the judge raised while answering a callback (a model misused, say)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


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
    removes what they wrote (worker_sessions.py). So nothing a learner function saw, the grader's stand-ins'
    answers included, reaches the next exercise.
    """
    import torch

    from mini_diffusion._base import catalog

    connection = Connection(reader, writer)
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
        serve_sessions(connection, reader, Connection(control_reader, control_writer), _serve_calls)


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
            tensors.update(mapped(message.get("shared")))
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
