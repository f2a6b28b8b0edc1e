"""Notebook 02, the reverse process: exercises 2.1-2.3 (reverse.py)."""

import pytest

from _grading import grade_cases

exercise = pytest.mark.exercise


@exercise("2.1", points=1)
def test_predict_x0_inverts_q_sample():
    """x̂_0 = (x_t - √(1-ᾱ_t) ε) / √ᾱ_t: mixed t, images in float32, T = 1"""
    grade_cases("2.1", "mixed_t", "images_float32", "single")


@exercise("2.2", points=1)
def test_q_posterior_mean():
    """the posterior mean √ᾱ_{t-1} β_t/(1-ᾱ_t) x_0 + √α_t (1-ᾱ_{t-1})/(1-ᾱ_t) x_t: mixed t, images, T = 1"""
    grade_cases("2.2", "mixed_t", "images_float32", "single", part=0)


@exercise("2.2", points=1)
def test_q_posterior_variance_is_beta_tilde():
    """the posterior variance β̃_t = (1-ᾱ_{t-1})/(1-ᾱ_t) β_t (0 at t = 1), in a shape that broadcasts against x"""
    grade_cases("2.2", "mixed_t", "images_float32", "single", part=1)


@exercise("2.3", points=1)
def test_p_mean_at_mixed_t():
    """μ_θ = (x_t - β_t/√(1-ᾱ_t) ε_θ) / √α_t for a batch of mixed t (1, 2, …, T)"""
    grade_cases("2.3", "mixed_t")


@exercise("2.3", points=1)
def test_p_mean_keeps_shape_and_dtype():
    """μ_θ for images in float32 (result stays float32) and with T = 1"""
    grade_cases("2.3", "images_float32", "single")
