"""The learner-code side of grading: import the learner's exercise files and call their functions.

This is the only place where the grader's machinery touches learner code. Locally (`pytest
exercises/`, `md.check`) the grader uses it in its own process; in the Gradescope bundle it runs
in the locked-down worker (`worker.py serve`), and the grader talks to it through `wire.py`.
Whatever the learner's code does, a call ends in a result or an `Outcome` that says, in one
paragraph, what went wrong: it never raises past `call`.

Stand-ins: while one module is graded, its imports from the learner's other exercise modules
get the grader's own versions of the functions the specs name (so one mistake costs points in
one place only); everything else is looked up in the learner's own module.
"""

import inspect
import traceback
import types
from pathlib import Path

import torch

from mini_diffusion._base import catalog
from mini_diffusion._course import seam

PACKAGE = "mini_diffusion"


class Outcome(Exception):
    """A call that did not return normally: the message for the learner and a word for the table."""

    def __init__(self, message: str, status: str = "failed"):
        super().__init__(message)
        self.message, self.status = message, status


class Host:
    """Loads learner modules (with stand-ins) and calls learner functions, checking their inputs."""

    def __init__(self, stand_ins: dict | None = None, misuse=()):
        self.stand_ins = stand_ins or {}  # module -> {function name -> the grader's version}
        self.misuse = tuple(misuse)  # exception types of the grader's models: their message is the feedback
        self._loaded: dict = {}

    # --- loading --------------------------------------------------------------------------

    def module(self, name: str):
        """mini_diffusion/<name>.py as the learner wrote it (or lent), imported with the stand-ins."""
        if name in seam.whole_modules():
            return seam.exercise_module(name)
        if name not in self._loaded:
            self._loaded[name] = self._import(name, seam.PACKAGE_DIR / f"{name}.py")
        if isinstance(self._loaded[name], Outcome):
            raise self._loaded[name]
        return self._loaded[name]

    def function(self, function: str):
        exercise = catalog.by_function(function)
        if seam.is_lent(exercise.id):
            return seam.solution(exercise.id)
        fn = getattr(self.module(exercise.module), function, None)
        if not callable(fn):
            raise Outcome(f"mini_diffusion/{exercise.module}.py has no function {function}: keep the name and "
                          "signature of the stub (the notebooks, the grader and your other code call it by that name).")
        return fn

    def _stand_in_module(self, name: str):
        module = types.ModuleType(f"{PACKAGE}.{name}")
        module.__dict__.update(self.stand_ins.get(name, {}))

        def __getattr__(attr):
            if attr.startswith("__"):  # the import system asks for __path__ and the like
                raise AttributeError(attr)
            return getattr(self.module(name), attr)

        module.__getattr__ = __getattr__
        return module

    def _import(self, name: str, path: Path):
        full_name = f"{PACKAGE}.{name}"
        if not path.is_file():
            return Outcome(f"mini_diffusion/{name}.py is missing: put your exercise file back (see notebooks/).",
                           status="does not import")
        others = [m for m in catalog.EXERCISE_MODULES if m != name]
        try:
            with seam.swapped({m: self._stand_in_module(m) for m in others}):
                module = seam.load_file(full_name, path)
        except Outcome as err:  # a module it imports from does not import either
            return Outcome(f"mini_diffusion/{name}.py does not import because it imports from another file that "
                           f"does not: {err.message}", status="does not import")
        except BaseException as err:  # noqa: BLE001 - a timeout during the import lands here too
            if not isinstance(err, Exception):
                self._loaded[name] = Outcome(f"mini_diffusion/{name}.py did not finish importing in time: does it "
                                             "run a long loop at the top level of the file?", status="does not import")
                raise
            return Outcome(import_failure(name, path, err), status="does not import")
        return module

    # --- calling --------------------------------------------------------------------------

    def call(self, function: str, args: tuple, kwargs: dict):
        """function(*args, **kwargs) of the learner. Returns the result; raises Outcome otherwise,
        also when an input came back changed (the host compares with its own copies)."""
        fn = self.function(function)
        before = [_snapshot(value) for value in (*args, *kwargs.values())]
        try:
            result = fn(*args, **kwargs)
        except Outcome:
            raise
        except self.misuse as err:
            raise Outcome(f"{function}: {err}") from None
        except NotImplementedError as err:
            raise not_implemented(function, err) from None
        except Exception as err:  # noqa: BLE001 - learner code may raise anything
            raise Outcome(describe_error(function, err), status="error") from None
        except SystemExit:
            raise Outcome(f"{function} called exit() (sys.exit): a function returns its result instead.",
                          status="error") from None
        for name, value, snapshot in zip(_argument_names(fn, args, kwargs), (*args, *kwargs.values()), before):
            _check_unchanged(function, name, value, snapshot)
        return result


# --- Messages -----------------------------------------------------------------------------

ERROR_HINTS = [
    ("must match the size of tensor", "A per-sample value of shape [B] does not broadcast against x of shape "
     "[B, ...]: reshape it to [B, 1, ..., 1] (the helper extract(values, t, x) does this)."),
    ("is outside 0..", "A timestep outside the schedule reached it: look for an off-by-one in t."),
    ("is outside 1..", "A timestep outside 1..T reached the schedule: look for an off-by-one in t "
     "(t counts from 1; torch.randint(low, high) never returns high)."),
    ("out of bounds for dimension 0", "An index past the end of a schedule array (length T + 1, indices 0..T): "
     "an off-by-one in t?"),
    ("t_prev must be smaller than t", "DDIM steps go from large t to small t: are your timesteps in the wrong "
     "order?"),
    ("same dtype", "float64 schedule values met float32 data: cast them with .to(x.dtype) (extract does this)."),
    ("expected scalar type", "float64 schedule values met float32 data: cast them with .to(x.dtype) "
     "(extract does this)."),
    ("same device", "Tensors on different devices: make new tensors on x's device (x.device)."),
]


def import_failure(name: str, path: Path, err: BaseException) -> str:
    where = f"mini_diffusion/{name}.py does not import, so its exercises cannot be graded"
    if isinstance(err, SyntaxError):
        file = Path(err.filename).name if err.filename else f"{name}.py"
        text = f": `{err.text.strip()}`" if err.text else ""
        detail = f"{type(err).__name__} in {file} at line {err.lineno} ({err.msg}){text}"
    else:
        frame = frame_in(err, {path.resolve()})
        at = f" at line {frame.lineno}: `{frame.line}`" if frame else ""
        detail = f"{type(err).__name__}{at}: {err}"
    return f"{where}: {detail}. Run `import mini_diffusion.{name}` in a notebook cell to see the whole error."


def frame_in(err: BaseException, files):
    """The deepest traceback frame of err that lies in one of `files`, or None."""
    found = None
    for frame in traceback.extract_tb(err.__traceback__):
        try:
            if Path(frame.filename).resolve() in files:
                found = frame
        except (OSError, ValueError):
            continue
    return found


def exercise_files() -> set:
    files = {(seam.PACKAGE_DIR / f"{m}.py").resolve() for m in catalog.EXERCISE_MODULES}
    return files | {(seam.solutions_dir() / f"{m}.py").resolve() for m in catalog.EXERCISE_MODULES}


def describe_error(function: str, err: BaseException) -> str:
    """One paragraph for an exception the learner's code raised: what, where, and a hint when it can tell."""
    frame = frame_in(err, exercise_files())
    where = f" at mini_diffusion/{Path(frame.filename).name}, line {frame.lineno}: `{frame.line}`" if frame else ""
    text = f"{function} raised {type(err).__name__}{where}: {str(err).rstrip('.')}."
    hints = [hint for pattern, hint in ERROR_HINTS if pattern in str(err)]
    return text + (f" {hints[0]}" if hints else "")


def not_implemented(function: str, err: NotImplementedError) -> Outcome:
    message = str(err)
    own = catalog.by_function(function)
    if message.startswith("Exercise ") and not message.startswith(f"Exercise {own.id} "):
        other = message.split()[1]
        return Outcome(f"{function} needs exercise {other}, which is not implemented yet: {message}",
                       status="not implemented")
    return Outcome(f"Not implemented yet: {own.id} {function} ({own.title}). Write it in "
                   f"mini_diffusion/{own.module}.py; notebooks/{own.notebook}.ipynb explains it.",
                   status="not implemented")


def _argument_names(fn, args, kwargs) -> list[str]:
    try:
        names = list(inspect.signature(fn).parameters)[: len(args)]
    except (TypeError, ValueError):
        names = []
    names += [f"argument {i + 1}" for i in range(len(names), len(args))]
    return [f"`{n}`" for n in names] + [f"`{k}`" for k in kwargs]


def _snapshot(value):
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if hasattr(value, "alpha_bars") and hasattr(value, "betas"):
        return {k: getattr(value, k).detach().clone() for k in ("betas", "alphas", "alpha_bars")}
    return None


def _check_unchanged(function, name, value, snapshot):
    if isinstance(snapshot, torch.Tensor):
        if not same(value, snapshot):
            raise Outcome(f"{function} changed its input {name} in place (an operation such as x += …, x.mul_(…) "
                          "or x[...] = …): the caller's tensor must stay as it was. Compute a new tensor "
                          "instead (x = x + …).")
    elif isinstance(snapshot, dict):
        for key, array in snapshot.items():
            if not same(getattr(value, key), array):
                raise Outcome(f"{function} changed schedule.{key} in place: the schedule is shared by every "
                              "call and must stay as it was. Compute new tensors instead of editing it.")


def same(a, b) -> bool:
    return isinstance(a, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype and bool(
        torch.equal(a.detach().nan_to_num(12345.0), b.nan_to_num(12345.0)))
