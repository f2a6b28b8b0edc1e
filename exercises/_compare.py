"""Comparing a function's output with the expected one, and the messages that say where they differ."""

import math

import torch

from _feedback import Feedback


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
