"""Notebook 06, DDIM: exercises 6.1-6.3 (ddim.py)."""

import pytest

from _grading import grade_cases
from _quality import DDIM_LIMIT, check_moons_quality

exercise = pytest.mark.exercise


@exercise("6.1", points=1)
def test_ddim_timesteps_are_trailing_and_descending():
    """τ_i = round(T - i·T/num_steps): 1000, 950, …, 50 for 20 steps; int64, descending"""
    grade_cases("6.1", "T1000_n20", "T1000_n50", "T10_n3", "T1000_n1", "T7_n7", "T1000_n1000")


@exercise("6.2", points=1)
def test_ddim_step_with_eta_0_is_deterministic():
    """eta = 0: x_prev = √ᾱ_prev x̂_0 + √(1-ᾱ_prev) ε_θ for mixed (t, t_prev), t_prev = 0 included"""
    grade_cases("6.2", "eta0_mixed")


@exercise("6.2", points=1)
def test_ddim_step_with_eta_above_0_adds_sigma_noise():
    """eta = 1 and 0.5 with given noise: σ = eta·√((1-ᾱ_prev)/(1-ᾱ_t))·√(1-ᾱ_t/ᾱ_prev), direction √(1-ᾱ_prev-σ²)"""
    grade_cases("6.2", "eta1_mixed", "eta_half_mixed")


@exercise("6.2", points=1)
def test_ddim_step_keeps_shape_and_dtype():
    """images in float32 with int t and t_prev: the result stays float32 and image-shaped"""
    grade_cases("6.2", "images_float32")


@exercise("6.3", points=1)
def test_ddim_sample_follows_the_timesteps_down_to_0():
    """with a toy model and given x_T: 20 steps, 1 step, T steps, eta = 1 with a seeded generator, T = 1"""
    grade_cases("6.3", "steps20", "one_step", "all_steps", "eta1_seeded", "single")


@exercise("6.3", points=1, timeout=120)
@pytest.mark.slow
def test_ddim_sample_makes_good_moons():
    """DDIM (50 steps, 400 samples) with the reference moons model: energy distance within 3x its floor"""
    check_moons_quality("ddim_sample", DDIM_LIMIT, num_steps=50)
