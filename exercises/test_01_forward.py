"""Notebook 01, the forward process: exercises 1.1-1.4 (schedules.py and forward.py)."""

import pytest
import torch

from _grading import Feedback, call, grade_cases, schedule

exercise = pytest.mark.exercise


@exercise("1.1", points=1)
def test_linear_betas_rise_evenly_from_beta_start_to_beta_end():
    """β_1..β_T evenly from beta_start to beta_end, float64, length T (also T = 1)"""
    grade_cases("1.1", "T1000", "T5", "T10", "T1")


@exercise("1.2", points=1)
def test_alpha_bars_are_the_cumulative_product_of_the_alphas():
    """ᾱ_0 = 1, ᾱ_t = α_1 ⋯ α_t, float64, length T + 1 (also T = 1)"""
    grade_cases("1.2", "two", "random5", "linear1000", "single")


@exercise("1.3", points=1)
def test_q_step_adds_one_step_of_noise():
    """x_t = √(1-β_t) x_{t-1} + √β_t ε for given ε: mixed t, images in float32, T = 1"""
    grade_cases("1.3", "mixed_t", "images_float32", "single")


@exercise("1.4", points=1)
def test_q_sample_jumps_to_step_t_in_closed_form():
    """x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε for given ε: mixed t (1, 2, …, T), images in float32, T = 1"""
    grade_cases("1.4", "mixed_t", "images_float32", "single")


@exercise("1.4", points=1)
def test_q_sample_draws_from_q_xt_given_x0_when_no_noise_is_given():
    """without noise: samples have mean √ᾱ_t x_0 and variance 1 - ᾱ_t, reproducible with a generator"""
    s = schedule("linear1000")
    n, t = 20_000, 300
    x0 = torch.tensor([[1.5, -2.0]], dtype=torch.float64).expand(n, 2).clone()
    x_t = call("q_sample", x0, t, s, generator=torch.Generator().manual_seed(0))
    again = call("q_sample", x0.clone(), t, s, generator=torch.Generator().manual_seed(0))
    if not isinstance(x_t, torch.Tensor) or x_t.shape != x0.shape:
        raise Feedback(f"q_sample without noise should return a tensor shaped like x0, {tuple(x0.shape)}; it returned "
                       f"{tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else type(x_t).__name__}")
    if not torch.equal(x_t, again):
        raise Feedback("q_sample without noise gave different results for two generators with the same seed: draw "
                       "the noise with the `generator` argument (noise_like(x0, noise, generator) does this).")
    alpha_bar = float(s.alpha_bars[t])
    mean, var = x_t.mean(0), x_t.var(0)
    want_mean, want_var = alpha_bar**0.5 * x0[0], 1 - alpha_bar
    # 20,000 draws: the sample mean is within 0.03·σ and the variance within 5 % with overwhelming probability
    if not torch.allclose(mean, want_mean, atol=0.03) or not torch.allclose(var, torch.full_like(var, want_var), rtol=0.05):
        raise Feedback(f"q_sample without noise at t = {t}: over {n} draws the mean is {mean.tolist()} and the variance "
                       f"{var.tolist()}; q(x_t | x_0) has mean √ᾱ_t x_0 = {want_mean.tolist()} and variance 1 - ᾱ_t = "
                       f"{want_var:.4f}. When noise is None, draw ε ~ N(0, I) (with `generator`).")
