"""What the hidden checks share: compare a result with the grader's own answer, explain a difference.

The hidden checks compute their answers here, with the grader's formulas (the specs' STAND_INS), instead of
shipping them in expected/: the student release leaves this whole folder out, answers included.
"""

from _grading import Feedback, compare_output


def expect(function: str, got, want, label: str, t_values=None, tol: float = 1e-6) -> None:
    """Feedback unless `got` matches `want` (shape, dtype, device, values), in the grader's words."""
    case = {"output": "tensor", "what": "the result", "tol": tol, "dtype_from": "x",
            "rows": {"kind": "t", "values": list(t_values)} if t_values is not None else None}
    try:
        compare_output(got, want, case)
    except Feedback as failure:
        if failure.status == "wrong values":
            text = f"{function} gives wrong values for {label}. {failure.message}{getattr(failure, 'hint', '')}"
        else:
            text = f"{function}, called with {label}: {failure.message}"
        raise Feedback(text) from None
