"""Noise schedules (exercises 1.1, 1.2, 5.1-5.3) and NoiseSchedule, against plain-Python formulas."""

import math

import pytest
import torch

import mini_diffusion
from mini_diffusion.toolkit.diffusion_process import NoiseSchedule
from solutions import schedules


def python_linear_betas(T, start=1e-4, end=0.02):
    if T == 1:
        return [start]
    return [start + (end - start) * (t - 1) / (T - 1) for t in range(1, T + 1)]


def python_alpha_bars(betas):
    alpha_bars = [1.0]
    for beta in betas:
        alpha_bars.append(alpha_bars[-1] * (1.0 - beta))
    return alpha_bars


def python_cosine_alpha_bars(T, s=0.008):
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    return [value / f[0] for value in f]


def python_betas_from_alpha_bars(alpha_bars, max_beta=0.999):
    return [min(1 - alpha_bars[t] / alpha_bars[t - 1], max_beta) for t in range(1, len(alpha_bars))]


def as_float64(values):
    return torch.tensor(values, dtype=torch.float64)


@pytest.mark.parametrize("T, start, end", [(1000, 1e-4, 0.02), (2, 1e-4, 0.02), (1, 1e-4, 0.02), (10, 0.05, 0.5)])
def test_linear_betas_rise_in_equal_steps_from_start_to_end(T, start, end):
    betas = schedules.linear_betas(T, start, end)
    assert betas.dtype == torch.float64 and betas.shape == (T,), "β_1..β_T: float64, length T"
    torch.testing.assert_close(betas, as_float64(python_linear_betas(T, start, end)), rtol=1e-14, atol=1e-16)
    assert betas[0] == start, "β_1 must be beta_start exactly"


@pytest.mark.parametrize("betas", [[0.3], [0.5, 0.5], python_linear_betas(1000)], ids=["T=1", "T=2", "linear"])
def test_alpha_bars_are_the_cumulative_product_of_alphas_with_one_in_front(betas):
    alpha_bars = schedules.alpha_bars_from_betas(torch.tensor(betas, dtype=torch.float64))
    assert alpha_bars.dtype == torch.float64 and alpha_bars.shape == (len(betas) + 1,), "ᾱ_0..ᾱ_T: float64, T+1"
    assert alpha_bars[0] == 1.0, "ᾱ_0 = 1: index 0 is clean data"
    torch.testing.assert_close(alpha_bars, as_float64(python_alpha_bars(betas)), rtol=1e-12, atol=1e-300)


def test_alpha_bars_are_computed_in_float64_from_float32_betas():
    betas32 = torch.tensor(python_linear_betas(1000), dtype=torch.float32)
    alpha_bars = schedules.alpha_bars_from_betas(betas32)
    expected = as_float64(python_alpha_bars([float(b) for b in betas32]))
    assert alpha_bars.dtype == torch.float64, "ᾱ must be float64 even from float32 β"
    torch.testing.assert_close(alpha_bars, expected, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("T", [1, 4, 1000])
def test_cosine_alpha_bars_follow_f_of_t_over_f_of_0(T):
    alpha_bars = schedules.cosine_alpha_bars(T)
    assert alpha_bars.dtype == torch.float64 and alpha_bars.shape == (T + 1,)
    torch.testing.assert_close(alpha_bars, as_float64(python_cosine_alpha_bars(T)), rtol=1e-12, atol=1e-15)
    assert alpha_bars[0] == 1.0 and alpha_bars[-1] < 1e-6, "ᾱ_0 = 1 and ᾱ_T ≈ 0"


def test_cosine_alpha_bars_honour_the_offset_s():
    torch.testing.assert_close(
        schedules.cosine_alpha_bars(50, s=0.1), as_float64(python_cosine_alpha_bars(50, s=0.1)), rtol=1e-12, atol=1e-15
    )


def test_cosine_alpha_bars_docstring_value():
    assert round(float(schedules.cosine_alpha_bars(4)[2]), 4) == round(python_cosine_alpha_bars(4)[2], 4) == 0.4938


@pytest.mark.parametrize("max_beta", [0.999, 0.5])
def test_betas_from_alpha_bars_invert_the_product_and_are_capped(max_beta):
    alpha_bars = python_cosine_alpha_bars(1000)
    betas = schedules.betas_from_alpha_bars(as_float64(alpha_bars), max_beta=max_beta)
    assert betas.dtype == torch.float64 and betas.shape == (1000,), "β_1..β_T: float64, length T"
    torch.testing.assert_close(
        betas, as_float64(python_betas_from_alpha_bars(alpha_bars, max_beta)), rtol=1e-12, atol=1e-15
    )
    assert betas[-1] == max_beta, "ᾱ_T ≈ 0 would give β_T = 1: the cap must apply at t = T"


@pytest.mark.parametrize("betas", [[0.3], python_linear_betas(1000)], ids=["T=1", "linear"])
def test_betas_from_alpha_bars_round_trips_alpha_bars_from_betas(betas):
    betas = as_float64(betas)
    torch.testing.assert_close(schedules.betas_from_alpha_bars(schedules.alpha_bars_from_betas(betas)), betas)


def test_snr_is_alpha_bar_over_one_minus_alpha_bar():
    alpha_bars = python_alpha_bars(python_linear_betas(1000))
    snr = schedules.snr(as_float64(alpha_bars))
    assert snr.shape == (1001,) and snr[0] == math.inf, "SNR is infinite at t = 0 (no noise)"
    expected = as_float64([math.inf] + [a / (1 - a) for a in alpha_bars[1:]])
    torch.testing.assert_close(snr, expected, rtol=1e-12, atol=0)
    assert bool((snr[1:] < snr[:-1]).all()), "SNR must fall as t grows"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_snr_keeps_the_dtype_of_its_input(dtype):
    assert schedules.snr(torch.tensor([0.5, 0.2], dtype=dtype)).dtype == dtype


# --- NoiseSchedule -------------------------------------------------------------------------


@pytest.mark.parametrize("T", [1, 7, 1000])
def test_noise_schedule_arrays_have_length_T_plus_1_and_index_0_is_clean_data(make_schedule, T):
    betas = python_linear_betas(T)
    schedule = make_schedule(betas)
    assert schedule.T == T
    for name in ("betas", "alphas", "alpha_bars"):
        values = getattr(schedule, name)
        assert values.shape == (T + 1,) and values.dtype == torch.float64, f"{name}: float64, length T+1"
    assert (schedule.betas[0], schedule.alphas[0], schedule.alpha_bars[0]) == (
        0.0,
        1.0,
        1.0,
    ), "index 0 is clean data: β_0 = 0, α_0 = ᾱ_0 = 1"
    torch.testing.assert_close(schedule.betas[1:], as_float64(betas), rtol=0, atol=0)
    torch.testing.assert_close(schedule.alphas, 1 - schedule.betas, rtol=0, atol=0)
    torch.testing.assert_close(schedule.alpha_bars, as_float64(python_alpha_bars(betas)), rtol=1e-12, atol=0)


def test_noise_schedule_computes_alpha_bars_with_the_package_schedules_module(package_uses_solutions):
    betas = python_linear_betas(100)
    schedule = NoiseSchedule(betas)
    torch.testing.assert_close(schedule.alpha_bars, as_float64(python_alpha_bars(betas)), rtol=1e-12, atol=0)


def test_noise_schedule_to_cpu_keeps_every_value(linear):
    moved = linear.to("cpu")
    assert moved.T == linear.T and moved.device.type == "cpu"
    for name in ("betas", "alphas", "alpha_bars"):
        assert torch.equal(getattr(moved, name), getattr(linear, name)), f"{name} changed in .to('cpu')"
        assert getattr(moved, name).dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_noise_schedule_to_cuda_keeps_every_value_and_comes_back(linear):
    moved = linear.to("cuda")
    assert moved.device.type == "cuda" and moved.T == linear.T
    for name in ("betas", "alphas", "alpha_bars"):
        assert getattr(moved, name).dtype == torch.float64
        assert torch.equal(getattr(moved, name).cpu(), getattr(linear, name)), f"{name} changed in .to('cuda')"


def test_linear_schedule_is_the_ddpm_schedule(package_uses_solutions):
    schedule = mini_diffusion.linear_schedule(1000)
    expected = python_alpha_bars(python_linear_betas(1000))
    torch.testing.assert_close(schedule.alpha_bars, as_float64(expected), rtol=1e-12, atol=0)
    assert math.isclose(float(schedule.alpha_bars[500]), math.prod(1 - b for b in python_linear_betas(1000)[:500]))


def test_cosine_schedule_rebuilds_alpha_bars_from_the_capped_betas(package_uses_solutions):
    schedule = mini_diffusion.cosine_schedule(1000)
    betas = python_betas_from_alpha_bars(python_cosine_alpha_bars(1000))
    torch.testing.assert_close(schedule.betas[1:], as_float64(betas), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(schedule.alpha_bars, as_float64(python_alpha_bars(betas)), rtol=1e-10, atol=1e-15)
    assert schedule.alpha_bars[-1] > 0, "with β_T capped below 1, ᾱ_T stays (just) above 0"
