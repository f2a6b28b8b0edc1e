"""Notebook 07, fast samplers: exercises 7.1-7.3 (solvers.py).

Each sampler is graded three ways: exactly, step by step against a toy model; on the ideal
denoiser of four points, where the probability-flow ODE must end on a data point; and by the
quality of its moons samples with the reference model, at a small number of network evaluations.
"""

import pytest
import torch

from _grading import Feedback, call, grade_cases, schedule
from _quality import check_moons_quality

exercise = pytest.mark.exercise

# Moons energy ratio limits at 20 (Euler) and 19 / 10 (Heun / DPM-Solver++) network evaluations.
# The reference solutions score about 1 to 2 here; the limits leave room for the seed.
EULER_LIMIT = 4.0
HEUN_LIMIT = 3.0
DPM_LIMIT = 3.0

IDEAL_POINTS = torch.tensor([[-1.0, 0.5], [0.0, -1.0], [1.2, 1.0], [2.0, -0.3]])
IDEAL_DISTANCE = 1e-2


def check_lands_on_the_points(function: str, num_steps: int) -> None:
    """Your sampler driven by the ideal denoiser of IDEAL_POINTS: every sample must end on one of them."""
    from mini_diffusion.toolkit.ideal import IdealDenoiser

    linear = schedule("linear1000")
    x_T = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    samples = call(function, IdealDenoiser(IDEAL_POINTS, linear), (200, 2), linear, num_steps, x_T=x_T)
    if not isinstance(samples, torch.Tensor) or samples.shape != (200, 2):
        got = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise Feedback(f"{function} should return samples of shape (200, 2); it returned {got}")
    if not bool(torch.isfinite(samples).all()):
        raise Feedback(f"{function} with the ideal denoiser returned NaN or inf: a division by σ = 0 at the last step?")
    distance = torch.cdist(samples.detach().double().cpu(), IDEAL_POINTS.double()).min(dim=1).values.max().item()
    if distance > IDEAL_DISTANCE:
        raise Feedback(f"{function} driven by the ideal denoiser of four points ({num_steps} steps): the ODE's "
                       f"solutions end exactly on those points, but one of your samples is {distance:.3g} away from "
                       "the nearest. Check the last step (down to σ = 0) and the start x̃_T = x_T / √ᾱ_T.")


@exercise("7.1", points=1)
def test_euler_sample_follows_the_ode():
    """x̃_{i+1} = x̃_i + (σ_{i+1} - σ_i) d_i with a toy model: 10, 7, 2 and 1 steps, T = 10, a seeded x_T"""
    grade_cases("7.1", "steps10", "steps7", "two_steps", "one_step", "all_steps", "seeded_images")


@exercise("7.1", points=1)
def test_euler_sample_lands_on_the_data_with_the_ideal_denoiser():
    """with the ideal denoiser of four points (50 steps) every sample ends on one of them"""
    check_lands_on_the_points("euler_sample", 50)


@exercise("7.1", points=1, timeout=120)
@pytest.mark.slow
def test_euler_sample_makes_good_moons():
    """Euler (20 steps) with the reference moons model: samples close to real two moons"""
    check_moons_quality("euler_sample", EULER_LIMIT, num_steps=20)


@exercise("7.2", points=1)
def test_heun_sample_averages_two_slopes():
    """Heun with a toy model: 10, 7 and 2 steps, the last step plain Euler"""
    grade_cases("7.2", "steps10", "steps7", "two_steps", "one_step", "all_steps", "seeded_images")


@exercise("7.2", points=1)
def test_heun_sample_lands_on_the_data_with_the_ideal_denoiser():
    """with the ideal denoiser of four points (25 steps) every sample ends on one of them"""
    check_lands_on_the_points("heun_sample", 25)


@exercise("7.2", points=1, timeout=120)
@pytest.mark.slow
def test_heun_sample_makes_good_moons():
    """Heun (10 steps, 19 network evaluations) with the reference moons model: samples close to real two moons"""
    check_moons_quality("heun_sample", HEUN_LIMIT, num_steps=10)


@exercise("7.3", points=1)
def test_dpm_solver_sample_is_second_order_multistep():
    """DPM-Solver++(2M) with a toy model: first order on the first and last steps, 10, 7, 2 and 1 steps"""
    grade_cases("7.3", "steps10", "steps7", "two_steps", "one_step", "all_steps", "seeded_images")


@exercise("7.3", points=1)
def test_dpm_solver_sample_lands_on_the_data_with_the_ideal_denoiser():
    """with the ideal denoiser of four points (50 steps) every sample ends on one of them"""
    check_lands_on_the_points("dpm_solver_sample", 50)


@exercise("7.3", points=1, timeout=120)
@pytest.mark.slow
def test_dpm_solver_sample_makes_good_moons():
    """DPM-Solver++ (10 steps) with the reference moons model: samples close to real two moons"""
    check_moons_quality("dpm_solver_sample", DPM_LIMIT, num_steps=10)
