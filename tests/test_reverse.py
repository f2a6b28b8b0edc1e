"""Undoing a step (exercises 2.1 predict_x0, 2.2 q_posterior, 2.3 p_mean) and how they fit together."""

import math

import numpy as np
import pytest
import torch

from solutions import forward, reverse

pytestmark = pytest.mark.usefixtures("one_thread")


def as_numpy(x):
    return x.detach().double().cpu().numpy()


def reference_predict_x0(x_t, ts, alpha_bars, eps):
    """x̂_0 = (x_t - √(1-ᾱ_t) ε) / √ᾱ_t per sample."""
    x_t, eps = as_numpy(x_t), as_numpy(eps)
    return np.stack(
        [(x_t[i] - math.sqrt(1 - alpha_bars[t]) * eps[i]) / math.sqrt(alpha_bars[t]) for i, t in enumerate(ts)]
    )


def reference_q_posterior(x0, x_t, ts, betas, alphas, alpha_bars):
    """mean = (√ᾱ_{t-1} β_t x_0 + √α_t (1-ᾱ_{t-1}) x_t) / (1-ᾱ_t), variance (1-ᾱ_{t-1}) β_t / (1-ᾱ_t)."""
    x0, x_t = as_numpy(x0), as_numpy(x_t)
    means, variances = [], []
    for i, t in enumerate(ts):
        a_bar, a_bar_prev = alpha_bars[t], alpha_bars[t - 1]
        means.append(
            (math.sqrt(a_bar_prev) * betas[t] * x0[i] + math.sqrt(alphas[t]) * (1 - a_bar_prev) * x_t[i]) / (1 - a_bar)
        )
        variances.append((1 - a_bar_prev) * betas[t] / (1 - a_bar))
    return np.stack(means), np.array(variances)


def product_of_gaussians(x0, x_t, t, schedule):
    """q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0), two Gaussians in x_{t-1}:

    N(√ᾱ_{t-1} x_0, 1-ᾱ_{t-1}) times N(x_t; √α_t x_{t-1}, β_t), so the precisions add,
    1/var = 1/(1-ᾱ_{t-1}) + α_t/β_t, and mean = var · (√ᾱ_{t-1} x_0/(1-ᾱ_{t-1}) + √α_t x_t/β_t).
    """
    beta, alpha, a_bar_prev = schedule.betas[t].item(), schedule.alphas[t].item(), schedule.alpha_bars[t - 1].item()
    variance = 1 / (1 / (1 - a_bar_prev) + alpha / beta)
    mean = variance * (math.sqrt(a_bar_prev) * x0 / (1 - a_bar_prev) + math.sqrt(alpha) * x_t / beta)
    return mean, variance


def reference_p_mean(x_t, ts, betas, alphas, alpha_bars, eps):
    """μ_θ = (x_t - β_t / √(1-ᾱ_t) ε) / √α_t per sample."""
    x_t, eps = as_numpy(x_t), as_numpy(eps)
    return np.stack(
        [(x_t[i] - betas[t] / math.sqrt(1 - alpha_bars[t]) * eps[i]) / math.sqrt(alphas[t]) for i, t in enumerate(ts)]
    )


def test_predict_x0_solves_q_sample_for_x0(
    linear, make_x, make_t, schedule_values, assert_matches, layout, dtype, t_case
):
    x_t, eps = make_x(layout, dtype, seed=1), make_x(layout, dtype, seed=2)
    t, ts = make_t(t_case, linear.T)
    _, _, alpha_bars = schedule_values(linear, dtype)
    expected = reference_predict_x0(x_t, ts, alpha_bars, eps)
    # at t = T the division by √ᾱ_T ≈ 0.006 magnifies x_t's own rounding: scale the tolerance by it
    scale = float((x_t.abs().max() + eps.abs().max()) / linear.alpha_bars[max(ts)].sqrt())
    assert_matches(reverse.predict_x0(x_t, t, eps, linear), expected, dtype, "predict_x0", scale=scale)


def test_q_posterior_mean_and_variance_follow_the_formula(
    linear, make_x, make_t, schedule_values, assert_matches, layout, dtype, t_case
):
    x0, x_t = make_x(layout, dtype, seed=1), make_x(layout, dtype, seed=2)
    t, ts = make_t(t_case, linear.T)
    mean, variance = reverse.q_posterior(x0, x_t, t, linear)
    expected_mean, expected_variance = reference_q_posterior(x0, x_t, ts, *schedule_values(linear, dtype))
    assert_matches(mean, expected_mean, dtype, "q_posterior's mean")
    assert variance.dtype == dtype, "q_posterior's variance should have x's dtype"
    variance = variance.expand(x0.shape)  # any shape that broadcasts against x
    assert_matches(
        variance,
        torch.from_numpy(expected_variance).reshape(-1, *[1] * (x0.dim() - 1)).expand(x0.shape),
        dtype,
        "q_posterior's variance",
        scale=float(linear.betas.max()),
    )


def test_p_mean_removes_the_scaled_noise_and_rescales(
    linear, make_x, make_t, schedule_values, assert_matches, layout, dtype, t_case
):
    x_t, eps = make_x(layout, dtype, seed=1), make_x(layout, dtype, seed=2)
    t, ts = make_t(t_case, linear.T)
    expected = reference_p_mean(x_t, ts, *schedule_values(linear, dtype), eps)
    assert_matches(reverse.p_mean(x_t, t, eps, linear), expected, dtype, "p_mean")


def test_reverse_functions_work_for_T_1(single_step, make_x):
    x0, x_t, eps = make_x(seed=1), make_x(seed=2), make_x(seed=3)
    betas, alphas, alpha_bars = single_step.betas.tolist(), single_step.alphas.tolist(), single_step.alpha_bars.tolist()
    torch.testing.assert_close(
        reverse.predict_x0(x_t, 1, eps, single_step),
        torch.from_numpy(reference_predict_x0(x_t, [1] * 6, alpha_bars, eps)),
    )
    mean, variance = reverse.q_posterior(x0, x_t, 1, single_step)
    torch.testing.assert_close(mean, x0, msg="at t = 1 the posterior mean is x_0 itself")
    assert bool((variance == 0).all()), "at t = 1 the posterior variance is 0"
    torch.testing.assert_close(
        reverse.p_mean(x_t, 1, eps, single_step),
        torch.from_numpy(reference_p_mean(x_t, [1] * 6, betas, alphas, alpha_bars, eps)),
    )


@pytest.mark.parametrize("function", ["predict_x0", "q_posterior", "p_mean"])
def test_reverse_functions_keep_device_and_dtype(linear, make_x, device, dtype, function):
    a, b = make_x(dtype=dtype, device=device, seed=1), make_x(dtype=dtype, device=device, seed=2)
    t = torch.tensor([1, 10, 100, 500, 999, 1000], device=device)

    def call(a, b, t):
        if function == "q_posterior":
            return reverse.q_posterior(a, b, t, linear)
        return (getattr(reverse, function)(a, t, b, linear),)

    for got, on_cpu in zip(call(a, b, t), call(a.cpu(), b.cpu(), t.cpu())):
        assert (got.device, got.dtype) == (a.device, a.dtype), f"{function} must return x's device and dtype"
        torch.testing.assert_close(got.cpu(), on_cpu, msg=f"{function} gives other values on {device}")


def test_predict_x0_undoes_q_sample(linear, make_x, make_t, t_case):
    x0, eps = make_x(seed=1), make_x(seed=2)
    t, _ = make_t(t_case, linear.T)
    x_t = forward.q_sample(x0, t, linear, eps)
    torch.testing.assert_close(
        reverse.predict_x0(x_t, t, eps, linear),
        x0,
        rtol=1e-9,
        atol=1e-9,
        msg="with the true noise, predict_x0 must give back x_0",
    )


def test_posterior_variance_beta_tilde_is_at_most_beta(linear, cosine):
    for name, schedule in (("linear", linear), ("cosine", cosine)):
        x = torch.zeros(schedule.T, 1, dtype=torch.float64)
        t = torch.arange(1, schedule.T + 1)
        _, beta_tilde = reverse.q_posterior(x, x, t, schedule)
        beta_tilde = beta_tilde.reshape(-1)
        assert bool((beta_tilde <= schedule.betas[1:]).all()), f"{name}: β̃_t must never exceed β_t"
        assert bool((beta_tilde >= 0).all()) and beta_tilde[0] == 0, f"{name}: β̃_t >= 0 and β̃_1 = 0"


def test_q_posterior_is_the_product_of_the_two_gaussians(linear, cosine):
    x0, x_t = torch.tensor([[0.7, -1.3]], dtype=torch.float64), torch.tensor([[-0.4, 2.1]], dtype=torch.float64)
    for name, schedule in (("linear", linear), ("cosine", cosine)):
        for t in (2, 3, 10, 100, 500, 999, 1000):
            mean, variance = reverse.q_posterior(x0, x_t, t, schedule)
            expected_mean, expected_variance = product_of_gaussians(x0, x_t, t, schedule)
            torch.testing.assert_close(
                mean, expected_mean, rtol=1e-9, atol=1e-12, msg=f"{name}, t = {t}: posterior mean"
            )
            assert math.isclose(
                variance.item(), expected_variance, rel_tol=1e-9
            ), f"{name}, t = {t}: posterior variance"


def test_p_mean_is_the_posterior_mean_at_the_predicted_x0(linear, cosine):
    generator = torch.Generator().manual_seed(0)
    x_t, eps = (torch.randn(1000, 2, generator=generator, dtype=torch.float64) for _ in range(2))
    t = torch.arange(1, 1001)
    for name, schedule in (("linear", linear), ("cosine", cosine)):
        x0_hat = reverse.predict_x0(x_t, t, eps, schedule)
        posterior_mean, _ = reverse.q_posterior(x0_hat, x_t, t, schedule)
        torch.testing.assert_close(
            reverse.p_mean(x_t, t, eps, schedule),
            posterior_mean,
            rtol=1e-9,
            atol=1e-9,
            msg=f"{name}: μ_θ from ε must equal the mean of q(x_(t-1) | x_t, x̂_0) for every t",
        )
