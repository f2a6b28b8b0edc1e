"""The grader's machinery: load your modules safely, call your functions, explain what is wrong.

Every check ends in one of two ways: it returns, or it raises `Feedback`, whose message is
the one paragraph you see (exercises/conftest.py turns it into the test's report). Your code
is only ever imported and called here; it gets fresh copies of every input, and the grader
compares what it handed over with its own copies afterwards.
"""

import importlib
import importlib.util
import inspect
import json
import math
import sys
import traceback
import types
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file

import _spec
from _models import ModelMisuse, ToyDenoiser, ToyNetwork

HERE = Path(__file__).resolve().parent
EXPECTED_DIR = HERE / "expected"
CASES_FILE = EXPECTED_DIR / "cases.json"
TENSORS_FILE = EXPECTED_DIR / "expected.safetensors"
PACKAGE = "mini_diffusion"
MAX_MESSAGE = 1500


class Feedback(Exception):
    """A failed check, with the message for the learner. status: a word or two for the table."""

    def __init__(self, message: str, status: str = "failed"):
        super().__init__(message)
        self.message = message
        self.status = status


def cap(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 20].rstrip() + " … (cut short)"


# --- The exercise table -------------------------------------------------------------------


def package():
    """`import mini_diffusion` (the ready part only: exercise modules load lazily)."""
    try:
        return importlib.import_module(PACKAGE)
    except Exception as err:  # noqa: BLE001 - anything here means nothing can be graded
        raise Feedback(f"`import mini_diffusion` fails, so nothing can be graded: {type(err).__name__}: {err}",
                       status="does not import") from None


# --- Loading your modules -----------------------------------------------------------------

_loaded: dict = {}  # module name -> your module, or the Feedback saying why it does not import


def learner_module(name: str):
    """Your mini_diffusion/<name>.py, imported with the grader's stand-ins for the formulas it
    borrows from your other modules (each spec's STAND_INS, found by _spec.stand_ins()). Raises Feedback if it does not import.

    With MINI_DIFFUSION_SOLUTIONS naming this module, the solution in use is returned instead.
    """
    md = package()
    if name in md.solutions_in_use():
        return sys.modules[f"{PACKAGE}.{name}"]
    if name not in _loaded:
        _loaded[name] = _import_with_stand_ins(name, Path(md.__file__).resolve().parent / f"{name}.py")
    if isinstance(_loaded[name], Feedback):
        raise _loaded[name]
    return _loaded[name]


def _stand_in(name: str):
    """A module offering the grader's versions of some functions of `name`; anything else is
    looked up in your own module (so other imports still work)."""
    module = types.ModuleType(f"{PACKAGE}.{name}")
    module.__dict__.update(_spec.stand_ins().get(name, {}))

    def __getattr__(attr):
        if attr.startswith("__"):  # the import system asks for __path__ and the like: not a function
            raise AttributeError(attr)
        return getattr(learner_module(name), attr)

    module.__getattr__ = __getattr__
    return module


def _import_with_stand_ins(name: str, path: Path):
    md = package()
    full_name = f"{PACKAGE}.{name}"
    if not path.is_file():
        return Feedback(f"mini_diffusion/{name}.py is missing: put your exercise file back (see notebooks/).",
                        status="does not import")
    others = [m for m in importlib.import_module(f"{PACKAGE}._course.catalog").EXERCISE_MODULES if m != name]
    saved_modules = {m: sys.modules.get(f"{PACKAGE}.{m}") for m in others}
    saved_attributes = {m: md.__dict__.get(m) for m in others}
    spec = importlib.util.spec_from_file_location(full_name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        for m in others:
            sys.modules[f"{PACKAGE}.{m}"] = _stand_in(m)
            md.__dict__.pop(m, None)
        sys.modules[full_name] = module
        spec.loader.exec_module(module)
    except Feedback as err:  # a module it imports from does not import either
        sys.modules.pop(full_name, None)
        return Feedback(f"mini_diffusion/{name}.py does not import because it imports from another file that "
                        f"does not: {err.message}", status="does not import")
    except BaseException as err:  # noqa: BLE001 - a timeout during the import lands here too
        sys.modules.pop(full_name, None)
        if not isinstance(err, Exception):
            _loaded[name] = Feedback(f"mini_diffusion/{name}.py did not finish importing in time: does it run "
                                     "a long loop at the top level of the file?", status="does not import")
            raise
        return Feedback(_import_failure(name, path, err), status="does not import")
    finally:
        for m in others:
            if saved_modules[m] is None:
                sys.modules.pop(f"{PACKAGE}.{m}", None)
            else:
                sys.modules[f"{PACKAGE}.{m}"] = saved_modules[m]
            if saved_attributes[m] is not None:
                md.__dict__[m] = saved_attributes[m]
            else:
                md.__dict__.pop(m, None)
    return module


def _import_failure(name: str, path: Path, err: BaseException) -> str:
    where = f"mini_diffusion/{name}.py does not import, so its exercises cannot be graded"
    if isinstance(err, SyntaxError):
        file = Path(err.filename).name if err.filename else f"{name}.py"
        text = f": `{err.text.strip()}`" if err.text else ""
        detail = f"{type(err).__name__} in {file} at line {err.lineno} ({err.msg}){text}"
    else:
        frame = _frame_in(err, {path.resolve()})
        at = f" at line {frame.lineno}: `{frame.line}`" if frame else ""
        detail = f"{type(err).__name__}{at}: {err}"
    return f"{where}: {detail}. Run `import mini_diffusion.{name}` in a notebook cell to see the whole error."


def _frame_in(err: BaseException, files):
    """The deepest traceback frame of err that lies in one of `files`, or None."""
    found = None
    for frame in traceback.extract_tb(err.__traceback__):
        try:
            if Path(frame.filename).resolve() in files:
                found = frame
        except (OSError, ValueError):
            continue
    return found


# --- Calling your functions ---------------------------------------------------------------

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


def _exercise_files():
    md = package()
    folder = Path(md.__file__).resolve().parent
    names = importlib.import_module(f"{PACKAGE}._course.catalog").EXERCISE_MODULES
    files = {(folder / f"{m}.py").resolve() for m in names}
    solutions = folder.parent / "solutions"
    files |= {(solutions / f"{m}.py").resolve() for m in names}
    return files


def describe_error(function: str, err: BaseException) -> str:
    """One paragraph for an exception your code raised: what, where, and a hint when it can tell."""
    frame = _frame_in(err, _exercise_files())
    where = f" at mini_diffusion/{Path(frame.filename).name}, line {frame.lineno}: `{frame.line}`" if frame else ""
    text = f"{function} raised {type(err).__name__}{where}: {str(err).rstrip('.')}."
    hints = [hint for pattern, hint in ERROR_HINTS if pattern in str(err)]
    return text + (f" {hints[0]}" if hints else "")


def not_implemented(function: str, err: NotImplementedError) -> Feedback:
    message = str(err)
    catalog = importlib.import_module(f"{PACKAGE}._course.catalog")
    own = catalog.by_function(function)
    if message.startswith("Exercise ") and not message.startswith(f"Exercise {own.id} "):
        other = message.split()[1]
        return Feedback(f"{function} needs exercise {other}, which is not implemented yet: {message}",
                        status="not implemented")
    return Feedback(f"Not implemented yet: {own.id} {function} ({own.title}). Write it in "
                    f"mini_diffusion/{own.module}.py; notebooks/{own.notebook}.ipynb explains it.",
                    status="not implemented")


def learner_function(function: str):
    ex = importlib.import_module(f"{PACKAGE}._course.catalog").by_function(function)
    module = learner_module(ex.module)
    fn = getattr(module, function, None)
    if not callable(fn):
        raise Feedback(f"mini_diffusion/{ex.module}.py has no function {function}: keep the name and signature "
                       "of the stub (the notebooks, the grader and your other code call it by that name).")
    return fn


def call(function: str, *args, **kwargs):
    """Your `function(*args, **kwargs)`; any exception becomes Feedback, and inputs must come back
    unchanged (the grader keeps its own copies of every tensor and schedule it passes)."""
    fn = learner_function(function)
    before = [_snapshot(value) for value in (*args, *kwargs.values())]
    try:
        result = fn(*args, **kwargs)
    except Feedback:
        raise
    except ModelMisuse as err:
        raise Feedback(f"{function}: {err}") from None
    except NotImplementedError as err:
        raise not_implemented(function, err) from None
    except Exception as err:  # noqa: BLE001 - your code may raise anything
        raise Feedback(describe_error(function, err), status="error") from None
    except SystemExit:
        raise Feedback(f"{function} called exit() (sys.exit): a function returns its result instead.",
                       status="error") from None
    for name, value, snapshot in zip(_argument_names(fn, args, kwargs), (*args, *kwargs.values()), before):
        _check_unchanged(function, name, value, snapshot)
    return result


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
        if not _same(value, snapshot):
            raise Feedback(f"{function} changed its input {name} in place (an operation such as x += …, x.mul_(…) "
                           "or x[...] = …): the caller's tensor must stay as it was. Compute a new tensor "
                           "instead (x = x + …).")
    elif isinstance(snapshot, dict):
        for key, array in snapshot.items():
            if not _same(getattr(value, key), array):
                raise Feedback(f"{function} changed schedule.{key} in place: the schedule is shared by every "
                               "call and must stay as it was. Compute new tensors instead of editing it.")


def _same(a, b) -> bool:
    return isinstance(a, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype and bool(
        torch.equal(a.detach().nan_to_num(12345.0), b.nan_to_num(12345.0)))


# --- Expected values (exercises/expected/, made by tools/build.py) -----------------------


@lru_cache(maxsize=1)
def cases_table() -> dict:
    return json.loads(CASES_FILE.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _tensors() -> dict:
    return load_file(str(TENSORS_FILE))


def shipped(key: str) -> torch.Tensor:
    """A fresh copy of a shipped tensor (the cached original is never handed out)."""
    return _tensors()[key].clone()


def schedule(name: str):
    """A fresh NoiseSchedule from the shipped arrays: it never runs your schedule code."""
    return decode({"schedule": name})


def decode(spec, tensors=None):
    """Turn a case's argument description (cases.json) into a fresh Python object.

    tensors: where tensor keys are looked up (default: the shipped file; the build's Maker passes its own).
    """
    if not isinstance(spec, dict):
        return spec
    if "tensor" in spec:
        return tensors[spec["tensor"]].clone() if tensors is not None else shipped(spec["tensor"])
    if "schedule" in spec:
        from mini_diffusion.toolkit.diffusion_process import NoiseSchedule

        key = f"schedule/{spec['schedule']}"
        return NoiseSchedule(*(decode({"tensor": f"{key}/{a}"}, tensors) for a in ("betas", "alpha_bars")))
    if "model" in spec:
        return {"toy": ToyDenoiser, "toy_network": ToyNetwork}[spec["model"]](spec["T"])
    if "generator" in spec:
        return torch.Generator().manual_seed(spec["generator"])
    if "shape" in spec:
        return tuple(spec["shape"])
    raise ValueError(f"cases.json: unknown argument kind {spec!r}")


def build_call(case: dict, tensors=None):
    """(args, kwargs) of a case, every object fresh."""
    return [decode(a, tensors) for a in case["args"]], {k: decode(v, tensors) for k, v in case["kwargs"].items()}


def grade_cases(exercise_id: str, *names: str, part: int | None = None) -> None:
    """Run the shipped cases of an exercise through your function; Feedback for a wrong one.

    A wrong case whose mistake the grader cannot name does not stop the run: a later case may
    recognise it, and its message is the one shown (otherwise the first wrong case's).
    part: compare only this element of a returned pair (0 = mean, 1 = variance of q_posterior).
    """
    table = cases_table()["exercises"][exercise_id]
    failures = []
    for name in names:
        case = table["cases"][name]
        args, kwargs = build_call(case)
        try:
            got = call(table["function"], *args, **kwargs)
            check_case(table["function"], case, got, part)
        except Feedback as failure:
            if failure.status != "failed" or getattr(failure, "mistake", None):
                raise
            failures.append(failure)
    if failures:
        raise failures[0]


def check_case(function: str, case: dict, got, part=None) -> None:
    expected = _outputs(case["expected"], case)
    try:
        compare_output(got, expected, case, part)
    except Feedback as failure:
        mistakes = {key: _outputs(value, case) for key, value in case["mistakes"].items()}
        found = next((key for key, output in mistakes.items() if _outputs_close(got, output, case, part)), None)
        # every input of a case is fixed (noise, x_T, a seeded generator): a result that changes
        # from one call to the next means some of them were ignored
        if found is None and failure.status == "wrong values":
            again_args, again_kwargs = build_call(case)
            again = call(function, *again_args, **again_kwargs)
            if not _outputs_close(got, again, case, part):
                raise Feedback(f"{function} gave two different results for the same inputs ({case['label']}): it "
                               "ignores the noise or x_T it was given, or draws random numbers without the "
                               "`generator` argument. With noise given nothing random may happen; otherwise draw "
                               "with `generator`.") from None
        if failure.status == "wrong values":
            text = f"{function} gives wrong values for {case['label']}. {failure.message}"
        else:
            text = f"{function}, called with {case['label']}: {failure.message}"
        if found is not None:
            text += f" Likely mistake: {cases_table()['mistakes'][found]}"
        else:
            text += getattr(failure, "hint", "")
        named = Feedback(text + _note(case))
        named.mistake = found
        raise named from None


def _note(case) -> str:
    return f" ({case['note']})" if case.get("note") else ""


def _outputs(spec, case):
    """A shipped output in the structure the function returns: tensor, pair, or list of states."""
    if isinstance(spec, list):
        return [shipped(key) for key in spec]
    if case["output"] == "states":
        return list(shipped(spec).unbind(0))
    return shipped(spec)


# --- Comparing outputs --------------------------------------------------------------------


def _as_tensor_output(got, case, part):
    """The part of `got` to compare, as the shipped structure: tensor, or stacked states."""
    kind = case["output"]
    if kind == "pair":
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise Feedback(f"should return two things, (mean, variance); it returned {_kind(got)}")
        value = got[part]
        if isinstance(value, (int, float)):
            value = torch.tensor(float(value), dtype=torch.float64)
        return value
    if kind == "states":
        if not isinstance(got, (list, tuple)):
            raise Feedback(f"with trajectory=True it should return a list of tensors [x_T, …, x_0]; it returned "
                           f"{_kind(got)}")
        expected_length = case["states"]
        if len(got) != expected_length:
            raise Feedback(f"with trajectory=True it should return {expected_length} tensors [x_T, …, x_0] "
                           f"(x_T first, then one per step); it returned {len(got)}"
                           + (": is x_T missing at the start?" if len(got) == expected_length - 1 else "."))
        if not all(isinstance(x, torch.Tensor) for x in got):
            raise Feedback("with trajectory=True every entry of the list must be a tensor")
        shapes = {tuple(x.shape) for x in got}
        if len(shapes) != 1:
            raise Feedback(f"the states in the trajectory have different shapes: {sorted(shapes)}")
        return torch.stack(list(got))
    return got


def _kind(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"{type(value).__name__} {value!r}"[:80]


def compare_output(got, expected, case, part=None) -> None:
    """Raise Feedback (status "wrong values" for a value mismatch) unless got matches expected."""
    value = _as_tensor_output(got, case, part)
    want = _as_tensor_output(expected, case, part)
    what = case.get("what", "the result")
    if case["output"] == "pair":
        what = ("the mean", "the variance")[part]
    if not isinstance(value, torch.Tensor):
        raise Feedback(f"should return a torch tensor ({what}); it returned {_kind(value)}")
    if case["output"] == "pair" and part == 1:
        value, want = _broadcast_variance(value, want, case["x_shape"])
    if value.shape != want.shape:
        raise Feedback(_shape_message(what, value, want, case))
    if value.dtype != want.dtype:
        raise Feedback(_dtype_message(what, value, want, case))
    if value.device.type != "cpu" and want.device.type == "cpu" and case.get("device") is None:
        raise Feedback(f"{what} is on {value.device}, but the inputs were on the CPU: keep x's device")
    value = value.detach().cpu()
    tol = case["tol"]
    bad = ~torch.isclose(value.double(), want.double(), rtol=tol, atol=tol * _scale(want), equal_nan=True)
    if not bool(bad.any()):
        return
    text, hint = _values_message(what, value, want, bad, case)
    failure = Feedback(text, status="wrong values")
    failure.hint = hint
    raise failure


def _broadcast_variance(value, want, x_shape):
    """The variance may have any shape that broadcasts against x: compare both at x's shape."""
    x_shape = torch.Size(x_shape)
    if _broadcast_shape(value.shape, x_shape) != x_shape:
        raise Feedback(f"the variance must broadcast against x of shape {tuple(x_shape)} (for example shape "
                       f"[B, 1, …, 1], or the shape of x); it has shape {tuple(value.shape)}")
    return value.expand(x_shape), want.expand(x_shape)


def _broadcast_shape(a, b):
    """The shape that a and b broadcast to, or None (torch.broadcast_shapes takes a second to load)."""
    a, b = (1,) * (len(b) - len(a)) + tuple(a), (1,) * (len(a) - len(b)) + tuple(b)
    if any(x != y and 1 not in (x, y) for x, y in zip(a, b)):
        return None
    return torch.Size(y if x == 1 else x for x, y in zip(a, b))


def _scale(t: torch.Tensor) -> float:
    finite = t[torch.isfinite(t)]
    return max(1.0, float(finite.abs().max())) if finite.numel() else 1.0


def _shape_message(what, value, want, case) -> str:
    text = f"{what} should have shape {tuple(want.shape)}; it has shape {tuple(value.shape)}."
    if value.dim() == want.dim() == 1 and value.shape[0] == want.shape[0] + 1:
        text += " One element too many."
    elif value.dim() == want.dim() == 1 and value.shape[0] == want.shape[0] - 1:
        text += " One element short."
    elif value.dim() > want.dim() or (value.dim() == want.dim() and value.numel() > want.numel()):
        text += (" A per-sample value of shape [B] broadcast against x [B, …] gives a shape like this: "
                 "reshape it to [B, 1, …, 1] first (extract does this).")
    if case.get("shape_note"):
        text += f" {case['shape_note']}"
    return text


def _dtype_message(what, value, want, case) -> str:
    if case.get("dtype_from") == "x":
        return (f"{what} has dtype {value.dtype}, but x was {want.dtype}: results keep the dtype of x. Cast "
                f"schedule values (stored in float64) with .to(x.dtype); the helper extract does this.")
    if case.get("dtype_from") == "float64":
        return f"{what} has dtype {value.dtype}; schedules are float64 (the products of many α's need the digits)."
    return f"{what} has dtype {value.dtype}; expected {want.dtype}."


def _fmt(x) -> str:
    if isinstance(x, torch.Tensor):
        values = x.flatten().tolist()
        shown = ", ".join(_fmt(v) for v in values[:4]) + (", …" if len(values) > 4 else "")
        return shown if x.dim() == 0 else f"[{shown}]"
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.6g}"
    return str(x)


def _row_name(case, i: int) -> str:
    rows = case.get("rows")
    if rows is None:
        return f"element {i}"
    if rows["kind"] == "t":
        return f"sample {i} (t = {rows['values'][i]})"
    if rows["kind"] == "index":  # a schedule-like array: index i is a timestep
        return f"{rows['symbol']}_{i + rows['offset']}"
    if rows["kind"] == "states":
        return f"state {i} of the trajectory"
    return f"{rows['kind']} {i}"


def _values_message(what, value, want, bad, case) -> str:
    flat_bad = bad.reshape(bad.shape[0], -1).any(dim=1) if bad.dim() > 0 else bad.reshape(1)
    first = int(flat_bad.nonzero()[0, 0])
    if value.dim() == 0:
        text = f"Expected {what} = {_fmt(want)}, got {_fmt(value)}."
    else:
        text = f"At {_row_name(case, first)}: expected {_fmt(want[first])}, got {_fmt(value[first])}."
    if bool((~torch.isfinite(value) & torch.isfinite(want)).any()):
        text = "It returned NaN or inf where the answer is finite. " + text
    elif value.dim() > 0 and case.get("rows") and case["rows"]["kind"] == "t":
        ts = case["rows"]["values"]
        wrong = sorted({ts[i] for i in range(len(ts)) if flat_bad[i]})
        right = sorted({ts[i] for i in range(len(ts)) if not flat_bad[i]} - set(wrong))
        if right:
            text += f" Wrong for t = {_list(wrong)}; right for t = {_list(right)}."
    elif value.dim() == 1 and 0 < int(flat_bad.sum()) < value.shape[0] and case.get("rows"):
        wrong = flat_bad.nonzero().flatten().tolist()
        if len(wrong) <= 3:
            text += f" Only {', '.join(_row_name(case, i) for i in wrong)} {'is' if len(wrong) == 1 else 'are'} wrong."
    if want.dtype == torch.float64 and bool(torch.isclose(value.double(), want, rtol=1e-4, atol=1e-7 * _scale(want)).all()):
        hint = (" The difference is at float32 rounding level: compute in float64 (the schedule arrays are "
                "float64; a float32 step in between loses digits).")
    else:
        hint = _pattern_hint(value.double(), want.double())
    return text, hint


def _list(values) -> str:
    return ", ".join(str(v) for v in values[:8]) + (", …" if len(values) > 8 else "")


def _pattern_hint(value, want) -> str:
    finite = torch.isfinite(value) & torch.isfinite(want) & (want.abs() > 1e-12)
    if not bool(finite.any()):
        return ""
    ratio = value[finite] / want[finite]
    if bool(torch.allclose(ratio, -torch.ones_like(ratio), rtol=1e-5)):
        return " Every value has the wrong sign."
    if bool(torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-5)):
        return f" Every value is off by the same factor, {float(ratio[0]):.6g}."
    return ""


def _outputs_close(a, b, case, part) -> bool:
    """Do two outputs agree to the case's tolerance? (False when either is malformed.)"""
    try:
        a, b = _as_tensor_output(a, case, part), _as_tensor_output(b, case, part)
        if case["output"] == "pair" and part == 1:
            a, b = torch.as_tensor(a), torch.as_tensor(b)
            a, b = _broadcast_variance(a, b, case["x_shape"])[0], _broadcast_variance(b, a, case["x_shape"])[0]
    except (Feedback, RuntimeError, TypeError):
        return False
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
        return False
    tol = case["tol"]
    a, b = a.detach().cpu().double(), b.detach().cpu().double()
    return bool(torch.isclose(a, b, rtol=tol, atol=tol * _scale(b), equal_nan=True).all())
