"""How close are generated samples to the data? Distances, and the same distances as a ratio
to their floor.

A distance between two finite samples is never 0, even when both come from the data: the
draws differ. That value, the *floor*, depends on the number of points, so a raw number is
hard to read. Each metric here is therefore also offered as a ratio to its floor at the same
sample size: about 1 means "as close as another draw of real data", 2 means twice as far.

- 2-D points: `energy_distance` and `sliced_wasserstein`; `energy_ratio`,
  `sliced_wasserstein_ratio` and `moons_energy_ratio` divide by the floor, the expected
  distance between two independent real draws of the same size (`energy_floor`,
  `sliced_wasserstein_floor`).
- Digits: `digit_features` (a small classifier shipped in weights/), `frechet_distance`
  and `digits_fd_ratio`.
"""

import json
import numbers
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from . import data
from .reference import sha256_of

WEIGHTS_DIR = Path(__file__).parent / "weights"
DIGIT_CLASSIFIER = WEIGHTS_DIR / "digit_classifier.safetensors"


def _as_points(x, name: str) -> torch.Tensor:
    """x as a float64 CPU tensor [n, d]; trailing dimensions (images) are flattened."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    if x.dim() < 2 or x.shape[0] < 1:
        raise ValueError(f"{name} must hold points as rows, shape [n, d] (or [n, ...]); got shape {tuple(x.shape)}")
    return x.detach().to("cpu", torch.float64).reshape(x.shape[0], -1)


def _check_same_width(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have points of the same dimension; got {x.shape[1]} and {y.shape[1]}")


# --- Energy distance ---------------------------------------------------------------------


def _mean_distance(a: torch.Tensor, b: torch.Tensor, chunk_size: int) -> float:
    """Mean of |a_i - b_j| over all pairs, a block of rows at a time (memory: chunk x len(b))."""
    # The direct difference is exact and fast in a few dimensions; wide data (images) go
    # faster through the matrix-product form, which float64 keeps accurate.
    mode = "donot_use_mm_for_euclid_dist" if a.shape[1] <= 16 else "use_mm_for_euclid_dist"
    total = sum(torch.cdist(a[i : i + chunk_size], b, compute_mode=mode).sum().item() for i in range(0, len(a), chunk_size))
    return total / (len(a) * len(b))


def energy_distance(x, y, chunk_size: int = 1024) -> float:
    """Energy distance 2 E|X-Y| - E|X-X'| - E|Y-Y'| between two point clouds [n, d], [m, d].

    The V-statistic: every mean runs over all pairs, the zero diagonals included, so the
    value is >= 0 and 0 only for identical clouds. Computed in float64, `chunk_size` rows at
    a time, so 4000 x 4000 points need a few tens of MB. (scipy.stats.energy_distance, for
    1-D data, returns the square root of this.)
    """
    x, y = _as_points(x, "x"), _as_points(y, "y")
    _check_same_width(x, y)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer; got {chunk_size!r}")
    return 2 * _mean_distance(x, y, chunk_size) - _mean_distance(x, x, chunk_size) - _mean_distance(y, y, chunk_size)


# --- Sliced Wasserstein ------------------------------------------------------------------


def _wasserstein2_squared_1d(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Squared 2-Wasserstein distance between 1-D samples, one per column: [n, P], [m, P] -> [P].

    W2^2 is the integral over levels q in (0, 1) of (F_u^-1(q) - F_v^-1(q))^2. Both empirical
    quantile functions are steps, constant between the levels i/n and j/m, so the integral is
    an exact finite sum over the merged levels (and sizes n and m need not be equal).
    """
    n, m = len(u), len(v)
    levels = torch.cat([torch.arange(1, n + 1, dtype=torch.float64) / n, torch.arange(1, m + 1, dtype=torch.float64) / m])
    levels = torch.unique(levels)  # sorted; i/n == j/m exactly when equal, as division rounds correctly
    widths = torch.diff(levels, prepend=levels.new_zeros(1))
    middles = levels - widths / 2
    u_quantiles = u.sort(dim=0).values[(middles * n).long().clamp(max=n - 1)]
    v_quantiles = v.sort(dim=0).values[(middles * m).long().clamp(max=m - 1)]
    return (widths[:, None] * (u_quantiles - v_quantiles) ** 2).sum(dim=0)


def sliced_wasserstein(x, y, n_projections: int = 256, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance: sqrt of the mean over random directions w of W2^2(x.w, y.w).

    The directions are uniform on the unit sphere, drawn from `seed`, so two calls with the
    same seed project on the same lines. Point clouds may have different sizes.
    """
    x, y = _as_points(x, "x"), _as_points(y, "y")
    _check_same_width(x, y)
    if isinstance(n_projections, bool) or not isinstance(n_projections, numbers.Integral) or n_projections < 1:
        raise ValueError(f"n_projections must be a positive integer; got {n_projections!r}")
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(x.shape[1], n_projections, generator=g, dtype=torch.float64)
    directions = directions / directions.norm(dim=0, keepdim=True)
    return _wasserstein2_squared_1d(x @ directions, y @ directions).mean().sqrt().item()


# --- Ratios to the floor for samplers of real data (2-D toys) ---------------------------


# Floors are drawn from seeds FLOOR_SEED, FLOOR_SEED + 1, ...; reference draws use small
# seeds (0 by default), so the two never share a draw.
FLOOR_SEED = 1_000_000


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2:
        raise ValueError(f"n (the number of points) must be an integer >= 2; got {n!r}")
    return int(n)


@lru_cache(maxsize=32)
def mean_interpoint_distance(sampler=data.two_moons, n: int = 4000, seed: int = FLOOR_SEED) -> float:
    """E|X - X'| for the distribution `sampler` draws from, estimated on two independent
    n-point draws (every cross pair counts: an unbiased estimate, here to about 0.2 %)."""
    first = _as_points(sampler(n, seed=seed), "first draw")
    second = _as_points(sampler(n, seed=seed + 1), "second draw")
    return _mean_distance(first, second, chunk_size=1024)


def energy_floor(sampler=data.two_moons, n: int = 4000) -> float:
    """The expected energy distance between two independent n-point draws of real data.

    For the V-statistic this is exactly 2 E|X-X'| / n: the cross term averages E|X-X'|, and
    each within-draw term averages (1 - 1/n) E|X-X'|, its n zero self-distances included.
    Computing it this way is exact up to one well-estimated constant, where an average of a
    few draw pairs would not be: one pair's value varies by about +-50 %.
    sampler(n, seed=...) draws real data (e.g. data.two_moons). Cached per sampler.
    """
    return 2 * mean_interpoint_distance(sampler) / _check_n(n)


@lru_cache(maxsize=128)
def sliced_wasserstein_floor(sampler=data.two_moons, n: int = 4000, pairs: int = 10) -> float:
    """The sliced Wasserstein distance between two independent n-point real draws, averaged
    over `pairs` pairs (it has no closed form; one pair's value varies by about +-25 %).
    Cached: a second call for the same n is free."""
    n = _check_n(n)
    if isinstance(pairs, bool) or not isinstance(pairs, numbers.Integral) or pairs < 1:
        raise ValueError(f"pairs must be a positive integer; got {pairs!r}")
    draws = [sampler(n, seed=FLOOR_SEED + 2 + i) for i in range(2 * pairs)]
    return sum(sliced_wasserstein(draws[2 * i], draws[2 * i + 1]) for i in range(pairs)) / pairs


def energy_ratio(samples, sampler=data.two_moons, seed: int = 0) -> float:
    """Energy distance from samples [n, d] to a fresh n-point real draw (sampler(n, seed=seed)),
    divided by energy_floor at n. About 1: as close as another draw of real data.

    Even for real data this ratio varies from draw to draw: 5 % to 95 % of real two-moons
    draws score 0.3 to 2.3, at n = 1000 as at 4000 (the spread of a degenerate V-statistic
    does not shrink with n). Judge a model on the mean over a few independent sample sets
    (five real sets average 0.8 to 1.3), or with a margin.
    """
    samples = _as_points(samples, "samples")
    n = _check_n(len(samples))
    return energy_distance(samples, sampler(n, seed=seed)) / energy_floor(sampler, n)


def sliced_wasserstein_ratio(samples, sampler=data.two_moons, seed: int = 0) -> float:
    """Sliced Wasserstein distance from samples [n, d] to a fresh n-point real draw,
    divided by sliced_wasserstein_floor at n."""
    samples = _as_points(samples, "samples")
    n = _check_n(len(samples))
    return sliced_wasserstein(samples, sampler(n, seed=seed)) / sliced_wasserstein_floor(sampler, n)


def moons_energy_ratio(samples, seed: int = 0) -> float:
    """energy_ratio against data.two_moons: the quality score of 2-D moons samples [n, 2]."""
    samples = _as_points(samples, "samples")
    if samples.shape[1] != 2:
        raise ValueError(f"moons samples must have shape [n, 2]; got {tuple(samples.shape)}")
    return energy_ratio(samples, data.two_moons, seed)


# --- Digits: classifier features and the Frechet distance --------------------------------


class DigitClassifier(nn.Module):
    """An MLP on the 64 pixels of an 8x8 digit in [-1, 1]: 64 -> hidden -> features -> 10.

    `features(images)` is the last hidden layer, the space where digits_fd_ratio compares
    sets of images (as FID does with an Inception network).
    """

    def __init__(self, hidden: int = 256, features: int = 64):
        super().__init__()
        self.config = {"hidden": hidden, "features": features}
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.SiLU(), nn.Linear(hidden, features), nn.SiLU())
        self.head = nn.Linear(features, 10)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images))


@lru_cache(maxsize=4)
def load_digit_classifier(weights=DIGIT_CLASSIFIER) -> DigitClassifier:
    """The shipped classifier, in eval mode on CPU, after checking its sha256 against the
    manifest (`<weights>.json` beside it). Built by tools/train_digit_classifier.py."""
    weights = Path(weights)
    manifest_path = weights.with_suffix(".json")
    for path in (weights, manifest_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; rebuild it with: python tools/train_digit_classifier.py")
    manifest = json.loads(manifest_path.read_text())
    found = sha256_of(weights)
    if found != manifest["sha256"]:
        raise RuntimeError(
            f"{weights} does not match its manifest {manifest_path.name}: sha256 {found[:16]}... but the manifest "
            f"records {manifest['sha256'][:16]}...; the file is damaged or was replaced. Restore it, or rebuild "
            f"both with: python tools/train_digit_classifier.py"
        )
    model = DigitClassifier(**manifest["config"])
    model.load_state_dict(load_file(weights))
    return model.eval()


def digit_features(images) -> torch.Tensor:
    """Classifier features of 8x8 digit images [N, 1, 8, 8] in [-1, 1]: float64 [N, 64]."""
    images = torch.as_tensor(images)
    if images.dim() != 4 or tuple(images.shape[1:]) != (1, 8, 8):
        raise ValueError(f"digit images must have shape [N, 1, 8, 8] (values in [-1, 1]); got {tuple(images.shape)}")
    with torch.no_grad():
        return load_digit_classifier().features(images.detach().to("cpu", torch.float32)).double()


def _sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix via its eigendecomposition.

    Rounding can leave tiny negative eigenvalues; they are 0 in exact arithmetic, so clamp.
    """
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(feats_a, feats_b) -> float:
    """Frechet distance between Gaussians fitted to two feature sets [n, d], [m, d]:

        |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))

    tr((S_a S_b)^(1/2)) is computed as tr((S_a^(1/2) S_b S_a^(1/2))^(1/2)): the same
    eigenvalues, but of a symmetric PSD matrix, so eigh gives them stably. Covariances use
    the n - 1 denominator. Float64.
    """
    a, b = _as_points(feats_a, "feats_a"), _as_points(feats_b, "feats_b")
    _check_same_width(a, b)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"each feature set needs at least 2 rows for a covariance; got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(dim=0), b.mean(dim=0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    root_a = _sqrtm_psd(cov_a)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    return ((mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross).item()


# The real digits are split once, at random with this seed, into a reference half (899
# images) and a held-out half (898). Samples are compared with the reference half; the floor
# is the held-out half compared with the reference half, both at the same size m.
DIGITS_SPLIT_SEED = 0


@lru_cache(maxsize=1)
def _digits_halves() -> tuple[torch.Tensor, torch.Tensor]:
    features = digit_features(data.digits())
    order = torch.randperm(len(features), generator=torch.Generator().manual_seed(DIGITS_SPLIT_SEED))
    half = (len(features) + 1) // 2
    return features[order[:half]], features[order[half:]]


@lru_cache(maxsize=64)
def digits_fd_floor(m: int) -> float:
    """Frechet distance from the first m held-out real digits to the reference half."""
    reference, held_out = _digits_halves()
    return frechet_distance(held_out[:m], reference)


def digits_fd_ratio(samples) -> float:
    """Frechet distance from samples [n, 1, 8, 8] to the real digits, over the floor.

    Both distances compare m = min(n, 898) images with the same reference half of the real
    digits (899 images): the samples' first m, and the first m of the other, held-out half.
    The Frechet distance grows as m shrinks (noisier covariances), so only equal m compare
    fairly; samples beyond 898 are not used. About 1: as close as unseen real digits.
    """
    features = digit_features(samples)
    m = min(len(features), len(_digits_halves()[1]))
    if m < 2:
        raise ValueError(f"digits_fd_ratio needs at least 2 samples; got {len(features)}")
    return frechet_distance(features[:m], _digits_halves()[0]) / digits_fd_floor(m)
