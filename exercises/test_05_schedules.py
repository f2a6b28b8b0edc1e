"""Notebook 05, noise schedules: exercises 5.1-5.3 (schedules.py)."""

import pytest

from _grading import grade_cases

exercise = pytest.mark.exercise


@exercise("5.1", points=1)
def test_cosine_alpha_bars_follow_the_squared_cosine():
    """ᾱ_t = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s) · π/2), t = 0..T (also T = 1 and another s)"""
    grade_cases("5.1", "T1000", "T4", "T10_s", "T1")


@exercise("5.2", points=1)
def test_betas_from_alpha_bars_undo_the_product_and_cap():
    """β_t = min(1 - ᾱ_t/ᾱ_{t-1}, max_beta), length T"""
    grade_cases("5.2", "small", "cosine1000", "cap")


@exercise("5.3", points=1)
def test_snr_is_signal_over_noise():
    """SNR = ᾱ/(1 - ᾱ), same shape and dtype as alpha_bars (infinite at t = 0)"""
    grade_cases("5.3", "linear1000", "float32")
