"""The grader's machinery: load your modules safely, call your functions, explain what is wrong.

Every check ends in one of two ways: it returns, or it raises `Feedback`, whose message is
the one paragraph you see (exercises/conftest.py turns it into the test's report). Your code
is only ever imported and called here; it gets fresh copies of every input, and the grader
compares what it handed over with its own copies afterwards.
"""

import importlib
import json
import math
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file

import _spec
from _models import ToyDenoiser, ToyNetwork

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


# --- Loading and calling your code (mini_diffusion/_course/host.py) ------------------------
#
# Locally (`pytest exercises/`, `md.check`) your modules are imported in this process by a
# host.Host. In the Gradescope bundle the driver passes --worker-tree: then this process (the
# judge) never imports them; a worker.RemoteHost runs them in a locked-down worker process
# (sandbox.py) and only data crosses between the two.

_HOST = {"host": None, "remote": None}  # the host in use; remote: (tree, scratch) when isolated


def use_worker(tree, scratch) -> None:
    """Grade in isolation: every call goes to a worker serving the learner files of `tree`."""
    stop_worker()
    _HOST["remote"], _HOST["host"] = (Path(tree), Path(scratch)), None


def isolated() -> bool:
    return _HOST["remote"] is not None


def begin_exercise(exercise_id: str) -> None:
    """The next checks are exercise_id's (isolated mode): in a session of their own in the worker, where only
    the stand-ins that exercise's reference calls answer."""
    running = _HOST["host"]
    if running is not None and hasattr(running, "begin"):
        running.begin(exercise_id)
    elif _HOST["remote"] is not None:
        host().begin(exercise_id)


def reference_calls(stand_ins: dict) -> tuple[dict, dict]:
    """(uses, names) read from the reference solutions' source (solutions/<module>.py, else the package's
    file): uses maps each exercise function to the stand-ins ("module.function") it calls, directly or
    through helpers of its own module; names maps it to its parameters' names."""
    import ast

    from mini_diffusion._course import catalog, seam

    offered = {f"{m}.{f}" for m, functions in stand_ins.items() for f in functions}
    uses, names = {}, {}
    for module in catalog.EXERCISE_MODULES:
        path = seam.solutions_dir() / f"{module}.py"
        if not path.is_file():
            path = seam.PACKAGE_DIR / f"{module}.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported, bodies = {}, {}
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                source = node.module or ""
                source = source.removeprefix("mini_diffusion.") if node.level == 0 else source
                for alias in node.names:
                    if f"{source}.{alias.name}" in offered:
                        imported[alias.asname or alias.name] = f"{source}.{alias.name}"
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                bodies[node.name] = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                names[node.name] = [a.arg for a in node.args.posonlyargs + node.args.args]
        for exercise in (e for e in catalog.EXERCISES if e.module == module):
            seen, todo = set(), [exercise.function]
            while todo:
                name = todo.pop()
                if name in seen:
                    continue
                seen.add(name)
                todo += [n for n in bodies.get(name, ()) if n in bodies]
            uses[exercise.function] = sorted({imported[n] for f in seen for n in bodies.get(f, ()) if n in imported})
    return uses, names


def host():
    if _HOST["host"] is None:
        from _models import ModelMisuse

        if _HOST["remote"] is not None:
            from mini_diffusion._course import sandbox, worker

            tree, scratch = _HOST["remote"]
            uses, names = reference_calls(_spec.stand_ins())
            _HOST["host"] = worker.RemoteHost(lambda: sandbox.start(tree, scratch), _spec.stand_ins(),
                                              misuse=(ModelMisuse,), timeout=CALL_SECONDS, stand_in_uses=uses,
                                              argument_names=names)
        else:
            from mini_diffusion._course.host import Host

            _HOST["host"] = Host(stand_ins=_spec.stand_ins(), misuse=(ModelMisuse,))
    return _HOST["host"]


def grader_failure() -> str | None:
    """Why the worker could not be started or reached (isolated mode; sandbox.CannotRun): the grader's
    failure, for which no check may be scored or blamed on the submission. None while all is well."""
    running = _HOST["host"]
    failure = getattr(running, "failure", None)
    return None if failure is None else str(failure)


def worker_note() -> str:
    """One line on the worker (isolated mode), for the judge's log: its Python, torch, and how it got them."""
    first = getattr(_HOST["host"], "first", None)
    if not first:
        return ""
    return (f"worker: Python {first.get('python')}, torch {first.get('torch')}, uid {first.get('uid')}; "
            f"{first.get('view') or 'the judge’s own Python'}")


def stop_worker() -> None:
    """End the worker (isolated mode): the next call starts a fresh one."""
    running = _HOST["host"]
    if running is not None and hasattr(running, "stop"):
        running.stop()


CALL_SECONDS = 120.0  # the longest one call may take in the worker (the checks' own limits are shorter)


def call(function: str, *args, **kwargs):
    """Your `function(*args, **kwargs)`; any exception becomes Feedback, and inputs must come back
    unchanged (the host keeps its own copies of every tensor and schedule it passes)."""
    package()
    from mini_diffusion._course.host import Outcome

    try:
        return host().call(function, args, kwargs)
    except Outcome as outcome:
        raise Feedback(outcome.message, status=outcome.status) from None


# --- Expected values (exercises/expected/, made by tools/build.py) -----------------------


_FRESH: dict = {}  # the cases drawn at grading time (use_fresh_cases), when they replace the shipped ones


def use_fresh_cases(seed: int) -> None:
    """Grade with cases drawn afresh from `seed`, their expected outputs computed now by the reference
    solutions (the Gradescope judge: no value a submission could have seen in advance is graded)."""
    mk = _spec.make(seed)
    messages = _spec.mistakes()
    used = sorted({key for ex in mk.exercises.values() for case in ex["cases"].values() for key in case["mistakes"]})
    table = {"mistakes": {key: messages[key] for key in used}, "exercises": mk.exercises, "seed": seed}
    _FRESH.update(table=json.loads(json.dumps(table)), tensors=dict(mk.tensors))


def cases_table() -> dict:
    return _FRESH["table"] if _FRESH else _shipped_table()


def _tensors() -> dict:
    return _FRESH["tensors"] if _FRESH else _shipped_tensors()


@lru_cache(maxsize=1)
def _shipped_table() -> dict:
    return json.loads(CASES_FILE.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _shipped_tensors() -> dict:
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
        from _flow_models import VELOCITY_MODELS  # notebook 09's velocity models (t in [0, 1], no T)

        if spec["model"] in VELOCITY_MODELS:
            return VELOCITY_MODELS[spec["model"]]()
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


def _position(case, index: tuple) -> str:
    """Where an element sits: its row (a sample, a state, element i) and, inside a row, its index."""
    states = case.get("rows") is None and case.get("output") == "states"
    where = f"state {index[0]} of the trajectory" if states else _row_name(case, index[0])
    return where + (f", position {list(index[1:])}" if len(index) > 1 else "")


def _differences(value, want, bad) -> str:
    """How far apart the two are: the largest absolute difference and how many elements are off."""
    both = torch.isfinite(value) & torch.isfinite(want)
    gap = (value.double() - want.double()).abs()[both]
    largest = f"the largest absolute difference is {float(gap.max()):.3g}; " if gap.numel() else ""
    off, total = int(bad.sum()), bad.numel()
    return f" Over the whole result, {largest}{off} of {total} element{'s' if total != 1 else ''} {'is' if off == 1 else 'are'} off."


def _values_message(what, value, want, bad, case) -> str:
    flat_bad = bad.reshape(bad.shape[0], -1).any(dim=1) if bad.dim() > 0 else bad.reshape(1)
    if value.dim() == 0:
        text = f"Expected {what} = {_fmt(want)}, got {_fmt(value)}."
    else:
        index = tuple(int(i) for i in bad.nonzero()[0])  # the first element that differs, in row-major order
        text = (f"The first element that differs is at {_position(case, index)}: expected {_fmt(float(want[index]))}, "
                f"got {_fmt(float(value[index]))}.") + _differences(value, want, bad)
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
