"""The grader's "wrong values" message says where a result differs, not just that it does.

A known wrong function (right everywhere but a few elements deep inside a row, where the first
values shown of that row agree) must get a message naming the first element that differs, the
expected and received values there, the largest absolute difference and how many elements are off.
"""

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "exercises"))
import _grading  # noqa: E402


def right(x):
    return 2.0 * x


def wrong_deep_inside(x):
    """right() except at two elements of state 3, neither among the first values of that state."""
    out = 2.0 * x
    out[3, 0, 2, 1] += 0.25
    out[3, 1, 3, 3] -= 0.5
    return out


def message(got, expected, **case):
    case = {"output": "tensor", "tol": 1e-6, "what": "the trajectory", "rows": None, **case}
    with pytest.raises(_grading.Feedback) as caught:
        _grading.compare_output(got, expected, case)
    assert caught.value.status == "wrong values"
    return str(caught.value)


def test_message_names_the_first_differing_element_and_how_far_off():
    x = torch.randn(5, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected, got = right(x), wrong_deep_inside(x)
    text = message(got, expected)
    first_expected, first_got = float(expected[3, 0, 2, 1]), float(got[3, 0, 2, 1])
    assert "is at element 3, position [0, 2, 1]:" in text, text
    assert f"expected {first_expected:.6g}, got {first_got:.6g}" in text, text
    assert "the largest absolute difference is 0.5;" in text, text
    assert f"2 of {x.numel()} elements are off" in text, text


def test_trajectory_rows_are_called_states():
    x = torch.randn(5, 2, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    text = message(list(wrong_deep_inside(x)), list(right(x)), output="states", states=5)
    assert "at state 3 of the trajectory, position [0, 2, 1]:" in text, text


def test_one_element_off_in_a_vector_and_per_t_rows():
    expected = torch.arange(1.0, 7.0, dtype=torch.float64)
    got = expected.clone()
    got[4] = 7.5
    text = message(got, expected, what="the result")
    assert "The first element that differs is at element 4: expected 5, got 7.5." in text, text
    assert "the largest absolute difference is 2.5; 1 of 6 elements is off" in text, text

    x = torch.ones(3, 2, dtype=torch.float64)
    got = x.clone()
    got[1, 1] = 1.125
    text = message(got, x, what="x_t", rows={"kind": "t", "values": [1, 500, 1000]})
    assert "at sample 1 (t = 500), position [1]:" in text, text
    assert "Wrong for t = 500; right for t = 1, 1000." in text, text


def test_nan_is_reported_and_left_out_of_the_largest_difference():
    expected = torch.zeros(4, 3, dtype=torch.float64)
    got = expected.clone()
    got[0, 2] = float("nan")
    got[2, 0] = 0.75
    text = message(got, expected)
    assert text.startswith("It returned NaN or inf where the answer is finite."), text
    assert "position [2]: expected 0, got nan" in text, text
    assert "the largest absolute difference is 0.75; 2 of 12 elements are off" in text, text
