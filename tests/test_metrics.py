"""mini_diffusion.toolkit.metrics: distances checked against independent computations, floors, and
ratios that rank known-bad samples in the right order."""

import json
import shutil

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from scipy.spatial.distance import cdist

from mini_diffusion.toolkit import data, metrics


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def energy_distance_by_hand(x: np.ndarray, y: np.ndarray) -> float:
    return 2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean()


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_energy_distance_matches_pairwise_distances_computed_by_scipy(dim):
    rng = np.random.default_rng(dim)
    x, y = rng.normal(size=(300, dim)), rng.normal(0.3, 1.2, size=(170, dim))
    expected = energy_distance_by_hand(x, y)
    assert metrics.energy_distance(x, y) == pytest.approx(expected, rel=1e-10), "the V-statistic formula is off"
    assert metrics.energy_distance(torch.tensor(x), torch.tensor(y), chunk_size=7) == pytest.approx(
        expected, rel=1e-10
    ), "processing the rows in chunks must not change the value"


def test_energy_distance_in_one_dimension_is_the_square_of_scipys():
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=400), rng.exponential(size=250)
    ours = metrics.energy_distance(u[:, None], v[:, None])
    assert ours == pytest.approx(scipy.stats.energy_distance(u, v) ** 2, rel=1e-9), (
        "scipy returns sqrt(2E|X-Y| - E|X-X'| - E|Y-Y'|) for 1-D data; ours is the value under the root"
    )


def test_energy_distance_is_zero_for_identical_clouds_and_positive_otherwise():
    x = data.two_moons(4000, seed=0)
    assert metrics.energy_distance(x, x) == pytest.approx(0.0, abs=1e-12)
    assert metrics.energy_distance(x, x + 0.01) > 0, "the V-statistic energy distance is positive for different clouds"


def test_energy_distance_rejects_points_of_different_dimensions():
    with pytest.raises(ValueError, match="same dimension"):
        metrics.energy_distance(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"\[n, d\]"):
        metrics.energy_distance(torch.zeros(5), torch.zeros(5))


def wasserstein2_1d_by_repetition(u: np.ndarray, v: np.ndarray) -> float:
    """Repeat each sample so both have lcm(n, m) points: then sorted pairs are optimal."""
    size = np.lcm(len(u), len(v))
    u, v = np.sort(np.repeat(u, size // len(u))), np.sort(np.repeat(v, size // len(v)))
    return float(np.sqrt(np.mean((u - v) ** 2)))


@pytest.mark.parametrize("sizes", [(60, 60), (40, 25)])
def test_sliced_wasserstein_in_one_dimension_is_the_exact_wasserstein_2(sizes):
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=sizes[0]), rng.gamma(2.0, size=sizes[1])
    expected = wasserstein2_1d_by_repetition(u, v)
    got = metrics.sliced_wasserstein(u[:, None], v[:, None], n_projections=4)
    assert got == pytest.approx(expected, rel=1e-10), "in 1-D every projection is +-1, so SW must equal W2 exactly"


def test_sliced_wasserstein_of_a_shift_is_its_length_over_sqrt_of_the_dimension():
    x = data.two_moons(500, seed=0)
    shift = torch.tensor([0.6, -0.8])  # length 1; E[(shift . w)^2] = 1/2 for random unit w in 2-D
    got = metrics.sliced_wasserstein(x, x + shift, n_projections=1024)
    assert got == pytest.approx(np.sqrt(0.5), rel=0.05), "shifting a cloud by c gives SW = |c| / sqrt(d)"


def test_energy_floor_is_the_mean_energy_distance_between_independent_real_draws():
    n = 300
    values = [metrics.energy_distance(data.two_moons(n, seed=50 + 2 * i), data.two_moons(n, seed=51 + 2 * i)) for i in range(40)]
    # One value varies by about +-50 %, so the mean of 40 is within about +-8 %: allow 25 %.
    assert np.mean(values) == pytest.approx(metrics.energy_floor(data.two_moons, n), rel=0.25), (
        "energy_floor(n) = 2 E|X-X'| / n should be the expected distance between two n-point draws"
    )
    assert metrics.energy_floor(data.two_moons, 2 * n) == pytest.approx(metrics.energy_floor(data.two_moons, n) / 2)


def test_moons_energy_ratio_ranks_real_blurred_shrunk_and_gaussian_samples():
    n, g = 4000, torch.Generator().manual_seed(0)
    real = data.two_moons(n, seed=100)
    reference = data.two_moons(200_000, seed=999).double()
    gaussian = reference.mean(dim=0) + torch.randn(n, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(torch.cov(reference.T)).T
    ratios = {
        "real": metrics.moons_energy_ratio(real),
        "blurred": metrics.moons_energy_ratio(real + 0.2 * torch.randn(real.shape, generator=g)),
        "shrunk": metrics.moons_energy_ratio(0.9 * real),
        "gaussian": metrics.moons_energy_ratio(gaussian),
    }
    # Measured over 12 seeds: real 0.25-2.4, blurred = real + 0.8-1.3, shrunk 10-14, gaussian 25-30.
    assert ratios["real"] < 3, f"real data should score about 1 (at most ~2.5): {ratios}"
    assert ratios["blurred"] > ratios["real"] + 0.5, f"blurring (std 0.2) should add about 1 to the ratio: {ratios}"
    assert ratios["shrunk"] > 2.5 * ratios["blurred"], f"shrinking by 10 % should score about 11: {ratios}"
    assert ratios["gaussian"] > 1.5 * ratios["shrunk"], f"a Gaussian fit should score about 27: {ratios}"


def test_sliced_wasserstein_ratio_is_near_one_for_real_data_and_large_for_a_shrunk_copy():
    real = data.two_moons(1000, seed=7)
    real_ratio, shrunk_ratio = metrics.sliced_wasserstein_ratio(real), metrics.sliced_wasserstein_ratio(0.9 * real)
    # Measured over 8 seeds at n = 1000: real 0.47-0.99, shrunk / real 1.6-3.2.
    assert 0.3 < real_ratio < 2, f"real data should score about 1, got {real_ratio:.2f}"
    assert shrunk_ratio > 1.3 * real_ratio, f"shrinking by 10 % should show: {shrunk_ratio:.2f} vs real {real_ratio:.2f}"


def test_moons_energy_ratio_wants_two_dimensional_points():
    with pytest.raises(ValueError, match=r"\[n, 2\]"):
        metrics.moons_energy_ratio(torch.zeros(100, 3))


# --- Frechet distance and the digit classifier -------------------------------------------


def frechet_distance_with_scipy(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b, cov_a, cov_b = a.mean(0), b.mean(0), np.cov(a.T), np.cov(b.T)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(scipy.linalg.sqrtm(cov_a @ cov_b).real))


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(0.5, 1.0, size=(150, 6)) @ rng.normal(size=(6, 6))
    assert metrics.frechet_distance(a, b) == pytest.approx(frechet_distance_with_scipy(a, b), rel=1e-8)


def test_frechet_distance_of_a_shifted_copy_is_the_squared_shift():
    a = np.random.default_rng(1).normal(size=(100, 8))
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8), "a set is at distance 0 from itself"
    assert metrics.frechet_distance(a, a + 0.5) == pytest.approx(8 * 0.25, rel=1e-8), "only the means differ: |shift|^2"


def test_frechet_distance_stays_finite_with_singular_covariances():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(10, 64)), rng.normal(size=(12, 64))  # fewer points than dimensions
    value = metrics.frechet_distance(a, b)
    assert np.isfinite(value) and value > 0, f"rank-deficient covariances must still give a finite distance, got {value}"


def test_shipped_digit_classifier_is_accurate_and_its_manifest_is_complete():
    manifest = json.loads(metrics.DIGIT_CLASSIFIER.with_suffix(".json").read_text())
    for key in ("config", "held_out_accuracy", "seed", "sha256", "torch_version"):
        assert key in manifest, f"the manifest lacks {key!r}"
    assert manifest["held_out_accuracy"] > 0.95
    images, labels = data.digits(return_labels=True)
    with torch.no_grad():
        accuracy = (metrics.load_digit_classifier()(images).argmax(dim=1) == labels).double().mean().item()
    assert accuracy > 0.95, f"the shipped classifier should recognise the digits, got accuracy {accuracy:.3f}"


def test_loading_a_classifier_whose_sha256_differs_from_the_manifest_fails_clearly(tmp_path):
    weights = tmp_path / "digit_classifier.safetensors"
    shutil.copy(metrics.DIGIT_CLASSIFIER, weights)
    shutil.copy(metrics.DIGIT_CLASSIFIER.with_suffix(".json"), weights.with_suffix(".json"))
    assert isinstance(metrics.load_digit_classifier(weights), metrics.DigitClassifier), "an intact copy must load"
    damaged = bytearray(weights.read_bytes())
    damaged[-1] ^= 0xFF
    weights.write_bytes(bytes(damaged))
    metrics.load_digit_classifier.cache_clear()
    with pytest.raises(RuntimeError, match="sha256.*train_digit_classifier"):
        metrics.load_digit_classifier(weights)


def test_digit_features_are_float64_hidden_features_and_check_the_image_shape():
    features = metrics.digit_features(data.digits()[:10])
    assert features.shape == (10, 64) and features.dtype == torch.float64
    with pytest.raises(ValueError, match=r"\[N, 1, 8, 8\]"):
        metrics.digit_features(torch.zeros(10, 64))


def held_out_digits() -> torch.Tensor:
    """The half of the real digits that digits_fd_ratio does not compare against."""
    order = torch.randperm(1797, generator=torch.Generator().manual_seed(metrics.DIGITS_SPLIT_SEED))
    return data.digits()[order[899:]]


def test_digits_fd_ratio_is_one_for_unseen_real_digits_and_grows_with_damage():
    real = held_out_digits()
    g = torch.Generator().manual_seed(0)
    flat = data.digits().reshape(1797, 64).double()
    gaussian = flat.mean(0) + torch.randn(898, 64, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(
        torch.cov(flat.T) + 1e-6 * torch.eye(64)
    ).T
    ratios = {
        "real": metrics.digits_fd_ratio(real),
        "noise 0.5": metrics.digits_fd_ratio(real + 0.5 * torch.randn(real.shape, generator=g)),
        "gaussian": metrics.digits_fd_ratio(gaussian.float().reshape(-1, 1, 8, 8).clamp(-1, 1)),
    }
    # Measured: real 1 by construction (the floor is this half), noise 0.5: 2.8, Gaussian: 8.7.
    assert ratios["real"] == pytest.approx(1.0, rel=1e-6), f"the held-out half is the floor itself: {ratios}"
    assert ratios["noise 0.5"] > 2, f"noise of std 0.5 should about triple the distance: {ratios}"
    assert ratios["gaussian"] > 2 * ratios["noise 0.5"], f"a Gaussian fit should score about 8: {ratios}"


def test_digits_fd_ratio_compares_equal_sizes_below_the_held_out_half():
    subset = held_out_digits()[:300]
    assert metrics.digits_fd_ratio(subset) == pytest.approx(1.0, rel=1e-6), (
        "m samples are compared with a floor made of m held-out digits"
    )
