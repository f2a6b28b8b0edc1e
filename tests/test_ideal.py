"""The ideal denoiser, and DDPM / DDIM driven by it landing on the data points."""

import math

import numpy as np
import pytest
import torch

from mini_diffusion.toolkit.ideal import IdealDenoiser
from solutions import ddim, sampling

pytestmark = pytest.mark.usefixtures("one_thread")

POINTS = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.0], [0.0, -2.0], [1.5, 1.5]], dtype=torch.float64)
SMALLEST_GAP = min(float((POINTS[i] - POINTS[j]).norm()) for i in range(5) for j in range(i))  # ≈ 1.58


def reference_ideal_eps(x_t, t, points, alpha_bars):
    """ε* = (x_t - √ᾱ_t Σ_i w_i x^(i)) / √(1-ᾱ_t), w ∝ exp(-‖x_t - √ᾱ_t x^(i)‖² / (2(1-ᾱ_t))), in numpy."""
    x = x_t.double().cpu().flatten(1).numpy()
    data = points.double().cpu().flatten(1).numpy()
    out = []
    for row, step in zip(x, t):
        a = alpha_bars[step]
        log_w = np.array([-np.sum((row - math.sqrt(a) * d) ** 2) / (2 * (1 - a)) for d in data])
        w = np.exp(log_w - log_w.max())
        x0_mean = (w[:, None] * data).sum(0) / w.sum()
        out.append((row - math.sqrt(a) * x0_mean) / math.sqrt(1 - a))
    return torch.from_numpy(np.stack(out)).reshape(x_t.shape)


@pytest.mark.parametrize("shape", [(2,), (1, 2, 3)], ids=["points", "images"])
def test_ideal_denoiser_is_the_posterior_weighted_noise(linear, shape):
    generator = torch.Generator().manual_seed(0)
    points = torch.randn(7, *shape, generator=generator, dtype=torch.float64)
    x_t = torch.randn(6, *shape, generator=generator, dtype=torch.float64)
    t = torch.tensor([1, 2, 50, 500, 999, 1000])
    got = IdealDenoiser(points, linear)(x_t, t)
    torch.testing.assert_close(
        got,
        reference_ideal_eps(x_t, t.tolist(), points, linear.alpha_bars.tolist()),
        rtol=1e-8,
        atol=1e-8,
        msg="ε* differs from the closed form",
    )


def test_ideal_denoiser_predicts_the_true_noise_for_a_single_point(linear):
    point = torch.tensor([[0.3, -0.7]], dtype=torch.float64)
    eps = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([1, 10, 100, 500, 900, 1000])
    alpha_bar = linear.alpha_bars[t].reshape(-1, 1)
    x_t = alpha_bar.sqrt() * point + (1 - alpha_bar).sqrt() * eps
    torch.testing.assert_close(
        IdealDenoiser(point, linear)(x_t, t),
        eps,
        rtol=1e-9,
        atol=1e-9,
        msg="with one data point, x_0 is known and ε* must be the noise itself",
    )


def test_ideal_denoiser_keeps_device_and_dtype(linear, device, dtype):
    x_t = torch.randn(4, 2, device=device, dtype=dtype)
    eps = IdealDenoiser(POINTS.to(device), linear)(x_t, torch.tensor([1, 2, 500, 1000], device=device))
    assert (eps.device, eps.dtype) == (x_t.device, x_t.dtype)


def assert_on_the_points(samples, what, margin=0.02, allowed_off=0):
    """Every sample (all but `allowed_off` of them) within `margin` of a data point, and every
    point reached by its share of the samples."""
    distances = torch.cdist(samples.double(), POINTS)
    nearest_distance, nearest = distances.min(1)
    off = int((nearest_distance > margin).sum())
    assert off <= allowed_off, (
        f"{what}: {off} of {len(samples)} samples ended farther than {margin} from all data points (at worst "
        f"{float(nearest_distance.max()):.3g}; points are {SMALLEST_GAP:.2f} apart): the sampler misses the data"
    )
    counts = torch.bincount(nearest, minlength=len(POINTS))
    n = len(samples)
    # each point has probability 1/5: 4 standard deviations either side
    low, high = n / 5 - 4 * math.sqrt(n * 0.16), n / 5 + 4 * math.sqrt(n * 0.16)
    assert bool(
        ((counts > low) & (counts < high)).all()
    ), f"{what}: samples per data point {counts.tolist()} are far from uniform (expected {n // 5} each)"


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_ddpm_with_the_ideal_denoiser_lands_on_the_data_points(linear, variance):
    model = IdealDenoiser(POINTS, linear)
    samples = sampling.ddpm_sample(
        model, (200, 2), linear, generator=torch.Generator().manual_seed(0), variance=variance
    )
    assert_on_the_points(samples, f"DDPM, 1000 steps, variance {variance!r}")


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_20_steps_with_the_ideal_denoiser_lands_on_the_data_points(cosine, eta):
    model = IdealDenoiser(POINTS, cosine)
    samples = ddim.ddim_sample(
        model, (500, 2), cosine, num_steps=20, eta=eta, generator=torch.Generator().manual_seed(0)
    )
    assert_on_the_points(samples, f"DDIM, 20 steps, eta {eta}, cosine schedule")


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_on_the_linear_schedule_lands_on_the_data_points(linear, eta):
    """With the linear schedule the last of 20 DDIM steps jumps from ᾱ_50 ≈ 0.97 straight to clean
    data, and the rare trajectory still riding the ridge between two points at t = 50 ends on
    their weighted mean (about 1 % of samples, measured on 1000 samples and three seeds).
    With 50 steps every sample lands."""
    model = IdealDenoiser(POINTS, linear)
    samples = ddim.ddim_sample(
        model, (500, 2), linear, num_steps=20, eta=eta, generator=torch.Generator().manual_seed(0)
    )
    assert_on_the_points(samples, f"DDIM, 20 steps, eta {eta}, linear schedule", allowed_off=15)
    samples = ddim.ddim_sample(
        model, (500, 2), linear, num_steps=50, eta=eta, generator=torch.Generator().manual_seed(0)
    )
    assert_on_the_points(samples, f"DDIM, 50 steps, eta {eta}, linear schedule")
