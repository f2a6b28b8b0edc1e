"""Notebook 04, sampling: exercises 4.1 and 4.2 (sampling.py)."""

import pytest

from _grading import grade_cases
from _quality import DDPM_LIMIT, check_moons_quality

exercise = pytest.mark.exercise


@exercise("4.1", points=1)
def test_ddpm_step_with_variance_beta():
    """x_{t-1} = μ_θ + √β_t z for a batch of mixed t (no noise for the samples at t = 1), images in float32"""
    grade_cases("4.1", "beta_mixed_t", "images_float32")


@exercise("4.1", points=1)
def test_ddpm_step_with_variance_beta_tilde():
    """x_{t-1} = μ_θ + √β̃_t z for a batch of mixed t, and T = 1"""
    grade_cases("4.1", "beta_tilde_mixed_t", "single")


@exercise("4.1", points=1)
def test_ddpm_step_adds_no_noise_at_t_1():
    """at t = 1 the step returns the mean μ_θ, even when noise is given"""
    grade_cases("4.1", "t1")


@exercise("4.2", points=1)
def test_ddpm_sample_runs_t_from_T_down_to_1():
    """with a toy model and given x_T: t = T, …, 1 with variance 'beta' and 'beta_tilde', and T = 1"""
    grade_cases("4.2", "x_T_given", "beta_tilde", "single")


@exercise("4.2", points=1)
def test_ddpm_sample_draws_in_order_and_returns_the_trajectory():
    """no x_T: x_T then one z per step from the generator; trajectory=True gives [x_T, …, x_0]"""
    grade_cases("4.2", "seeded", "trajectory")


@exercise("4.2", points=1, timeout=120)
@pytest.mark.slow
def test_ddpm_sample_makes_good_moons():
    """DDPM (1000 steps, 400 samples) with the reference moons model: energy distance within 3x its floor"""
    check_moons_quality("ddpm_sample", DDPM_LIMIT)
