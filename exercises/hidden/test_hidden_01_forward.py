"""Hidden checks for notebook 01 (shown to students after the due date): q_sample's edge cases."""

import pytest
import torch

from _grading import call, schedule
from _hidden import expect
from _spec import check_generator, stand_in


def grader_q_sample(*args, **kwargs):
    """The grader's own q_sample (STAND_INS of exercises/test_01_forward.py)."""
    return stand_in("q_sample")(*args, **kwargs)


exercise = pytest.mark.exercise


@exercise("1.4", points=1)
def test_q_sample_on_a_cosine_schedule_at_t_T_and_with_an_int_t():
    """cosine schedule, data [B, 3, 2] in float64: t = 1 and t = T in one batch, and one Python int t for all"""
    s = schedule("cosine1000")
    gen = check_generator("hidden/1.4/cosine", 14)
    x0 = torch.randn(4, 3, 2, generator=gen, dtype=torch.float64)
    noise = torch.randn(4, 3, 2, generator=gen, dtype=torch.float64)

    t = torch.tensor([1, 1000, 500, 1000])
    got = call("q_sample", x0.clone(), t.clone(), s, noise=noise.clone())
    expect("q_sample", got, grader_q_sample(x0, t, s, noise=noise),
           "a cosine schedule, x0 [4, 3, 2] in float64, t = [1, 1000, 500, 1000], noise given", t.tolist())

    got = call("q_sample", x0.clone(), 1000, s, noise=noise.clone())
    expect("q_sample", got, grader_q_sample(x0, 1000, s, noise=noise),
           "t = 1000 as a Python int for the whole batch (a cosine schedule, x0 [4, 3, 2], noise given)", [1000] * 4)
