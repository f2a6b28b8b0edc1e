"""The forward process (exercises 1.3 q_step and 1.4 q_sample): exact values and statistics."""

import math

import numpy as np
import pytest
import torch

from solutions import forward

pytestmark = pytest.mark.usefixtures("one_thread")


def reference_q_step(x_prev, ts, betas, noise):
    """x_t = √(1-β_t) x_{t-1} + √β_t ε, one sample at a time in float64."""
    x_prev, noise = x_prev.double().cpu().numpy(), noise.double().cpu().numpy()
    return np.stack([math.sqrt(1 - betas[t]) * x_prev[i] + math.sqrt(betas[t]) * noise[i] for i, t in enumerate(ts)])


def reference_q_sample(x0, ts, alpha_bars, noise):
    """x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε, one sample at a time in float64."""
    x0, noise = x0.double().cpu().numpy(), noise.double().cpu().numpy()
    return np.stack(
        [math.sqrt(alpha_bars[t]) * x0[i] + math.sqrt(1 - alpha_bars[t]) * noise[i] for i, t in enumerate(ts)]
    )


def test_q_step_is_one_noising_step(linear, make_x, make_t, schedule_values, assert_matches, layout, dtype, t_case):
    x_prev, noise = make_x(layout, dtype, seed=1), make_x(layout, dtype, seed=2)
    t, ts = make_t(t_case, linear.T)
    betas, _, _ = schedule_values(linear, dtype)
    expected = reference_q_step(x_prev, ts, betas, noise)
    assert_matches(forward.q_step(x_prev, t, linear, noise), expected, dtype, "q_step")


def test_q_sample_is_the_closed_form_jump(
    linear, make_x, make_t, schedule_values, assert_matches, layout, dtype, t_case
):
    x0, noise = make_x(layout, dtype, seed=1), make_x(layout, dtype, seed=2)
    t, ts = make_t(t_case, linear.T)
    _, _, alpha_bars = schedule_values(linear, dtype)
    expected = reference_q_sample(x0, ts, alpha_bars, noise)
    assert_matches(forward.q_sample(x0, t, linear, noise), expected, dtype, "q_sample")


def test_q_step_and_q_sample_agree_at_t_1_and_for_T_1(linear, single_step, make_x):
    x, noise = make_x(seed=1), make_x(seed=2)
    for schedule in (linear, single_step):
        torch.testing.assert_close(
            forward.q_step(x, 1, schedule, noise),
            forward.q_sample(x, 1, schedule, noise),
            msg="one step from x_0 and the jump to t = 1 are the same thing (ᾱ_1 = α_1)",
        )
    expected = reference_q_sample(x, [1] * len(x), single_step.alpha_bars.tolist(), noise)
    torch.testing.assert_close(forward.q_sample(x, 1, single_step, noise), torch.from_numpy(expected))


@pytest.mark.parametrize("function", ["q_step", "q_sample"])
def test_an_int_t_means_that_t_for_every_sample(linear, make_x, function):
    x, noise = make_x(seed=1), make_x(seed=2)
    f = getattr(forward, function)
    torch.testing.assert_close(
        f(x, 300, linear, noise), f(x, torch.full((len(x),), 300), linear, noise), rtol=0, atol=0
    )


@pytest.mark.parametrize("schedule_on", ["cpu", "x's device"])
@pytest.mark.parametrize("function", ["q_step", "q_sample"])
def test_forward_functions_keep_device_and_dtype(linear, make_x, device, dtype, function, schedule_on):
    x, noise = make_x(dtype=dtype, device=device, seed=1), make_x(dtype=dtype, device=device, seed=2)
    t = torch.tensor([1, 10, 100, 500, 999, 1000], device=device)
    schedule = linear if schedule_on == "cpu" else linear.to(device)
    out = getattr(forward, function)(x, t, schedule, noise)
    assert (out.device, out.dtype) == (x.device, x.dtype), f"{function} must return x's device and dtype"
    on_cpu = getattr(forward, function)(x.cpu(), t.cpu(), linear, noise.cpu())
    torch.testing.assert_close(out.cpu(), on_cpu, msg=f"{function} gives other values on {device}")


@pytest.mark.parametrize("function", ["q_step", "q_sample"])
def test_forward_functions_leave_their_inputs_unchanged(linear, make_x, function):
    x, noise = make_x(seed=1), make_x(seed=2)
    x_copy, noise_copy = x.clone(), noise.clone()
    getattr(forward, function)(x, 500, linear, noise)
    assert torch.equal(x, x_copy) and torch.equal(noise, noise_copy), f"{function} must not modify x or noise in place"


@pytest.mark.parametrize("function", ["q_step", "q_sample"])
def test_without_noise_the_draw_is_the_generators_standard_normal(linear, make_x, function):
    x = make_x()
    f = getattr(forward, function)
    drawn = f(x, 700, linear, generator=torch.Generator().manual_seed(5))
    given = f(x, 700, linear, noise=torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=x.dtype))
    torch.testing.assert_close(
        drawn, given, rtol=0, atol=0, msg=f"{function} should draw ε ~ N(0, I) with the generator"
    )
    again = f(x, 700, linear, generator=torch.Generator().manual_seed(5))
    assert torch.equal(drawn, again), "the same seed must give the same x_t"


# --- statistics (fixed seeds; margins of 5 standard errors) -------------------------------


def assert_mean_and_variance(samples, mean, variance, what):
    """Per-coordinate sample mean and variance within 5 standard errors of the stated values."""
    n = samples.shape[0]
    mean_se = math.sqrt(variance / n)
    variance_se = variance * math.sqrt(2 / (n - 1))
    got_mean, got_variance = samples.mean(0), samples.var(0)
    assert bool(
        ((got_mean - mean).abs() < 5 * mean_se).all()
    ), f"{what}: sample mean {got_mean.tolist()} is not within 5 s.e. ({5 * mean_se:.3g}) of {mean.tolist()}"
    assert bool(
        ((got_variance - variance).abs() < 5 * variance_se).all()
    ), f"{what}: sample variance {got_variance.tolist()} is not within 5 s.e. ({5 * variance_se:.3g}) of {variance:.6g}"


X0 = torch.tensor([1.5, -2.0, 0.0], dtype=torch.float64)


@pytest.mark.parametrize("t", [1, 100, 500, 1000])
def test_q_sample_has_mean_sqrt_alpha_bar_x0_and_variance_one_minus_alpha_bar(linear, t):
    n = 100_000
    x_t = forward.q_sample(X0.expand(n, 3), t, linear, generator=torch.Generator().manual_seed(t))
    alpha_bar = float(linear.alpha_bars[t])
    assert_mean_and_variance(x_t, math.sqrt(alpha_bar) * X0, 1 - alpha_bar, f"q_sample at t = {t}")


def test_chaining_q_step_t_times_matches_q_sample_in_distribution(linear):
    n, checkpoints = 10_000, (1, 10, 100, 1000)
    generator = torch.Generator().manual_seed(0)
    x = X0.expand(n, 3)
    for t in range(1, linear.T + 1):
        x = forward.q_step(x, t, linear, generator=generator)
        if t in checkpoints:
            alpha_bar = float(linear.alpha_bars[t])
            assert_mean_and_variance(x, math.sqrt(alpha_bar) * X0, 1 - alpha_bar, f"{t} chained q_steps")
            jumped = forward.q_sample(X0.expand(n, 3), t, linear, generator=generator)
            # two samples of the same distribution: their means differ by at most 5 s.e. of a difference
            se = math.sqrt(2 * (1 - alpha_bar) / n)
            assert bool(
                ((x.mean(0) - jumped.mean(0)).abs() < 5 * se).all()
            ), f"after {t} steps, q_step chain and q_sample disagree in mean"
            ratio = x.var(0) / jumped.var(0)
            assert bool(
                ((ratio - 1).abs() < 5 * math.sqrt(4 / n)).all()
            ), f"after {t} steps, q_step chain and q_sample disagree in variance (ratio {ratio.tolist()})"
