"""Data sets for the course: 2-D toy distributions, the 8x8 digits and (optionally) MNIST.

The 2-D toys are drawn here, from a seed, as i.i.d. samples of a known distribution, and
normalised with FIXED constants (the mean and standard deviation of the distribution, worked
out once), never with the statistics of the draw itself. So every draw lives in the same
coordinates, which is what a trained model and a metric comparing two draws need.

Every toy returns a float32 tensor of shape [n, 2]; `TOY_DATASETS` maps names to them.
"""

import gzip
import math
import numbers
import os
import struct
import urllib.request
from functools import lru_cache
from pathlib import Path

import torch

# Two moons, raw coordinates: the upper moon is (cos a, sin a) and the lower one
# (1 - cos a, 1/2 - sin a), a uniform on [0, pi], each point on either moon with probability
# 1/2, plus N(0, 0.1^2) noise. The exact moments for noise 0.1:
#   mean = (1/2, 1/4)
#   var_x = E[x^2] - 1/4 = 1 + 0.01 - 1/4 = 0.76                   -> std 0.872
#   var_y = (1/2 + 3/4 - 2/pi)/2 + 0.01 - 1/16 = 0.254            -> std 0.504
# Other noise levels keep these constants, so "more noise" looks blurrier in the same frame.
MOONS_MEAN = (0.5, 0.25)
MOONS_STD = (0.872, 0.504)

# Swiss roll, raw coordinates: theta (cos theta, sin theta) with theta uniform on
# [1.5 pi, 4.5 pi]. Moments measured once on 10^7 noiseless draws.
SWISS_ROLL_MEAN = (2.0, 0.21)
SWISS_ROLL_STD = (6.62, 6.95)

# Checkerboard on [-2, 2]^2: each coordinate is uniform on [-2, 2] (every column holds two
# filled squares), so the mean is 0 and the std is 4 / sqrt(12) = 1.155.
CHECKERBOARD_STD = 4 / math.sqrt(12)


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n (the number of points) must be a positive integer; got {n!r}")
    return int(n)


def _check_nonnegative(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0; got {value!r}")
    return float(value)


def _generator(seed) -> torch.Generator:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer; got {type(seed).__name__}")
    return torch.Generator().manual_seed(int(seed))


def _normalise(points: torch.Tensor, mean, std) -> torch.Tensor:
    return ((points - torch.tensor(mean, dtype=points.dtype)) / torch.tensor(std, dtype=points.dtype)).float()


def two_moons(n: int, seed: int = 0, noise: float = 0.1) -> torch.Tensor:
    """n i.i.d. points from two interleaving half circles, normalised: float32 [n, 2].

    Unlike sklearn's make_moons (points on a fixed grid of angles), every point picks a moon
    with probability 1/2 and an angle uniform on [0, pi], so two seeds give two independent
    samples of the same distribution. `noise` is the std of the Gaussian added in raw units.
    """
    n, noise = _check_n(n), _check_nonnegative("noise", noise)
    g = _generator(seed)
    upper = torch.rand(n, generator=g, dtype=torch.float64) < 0.5
    angle = math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    points = torch.stack([x, y], dim=1) + noise * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return _normalise(points, MOONS_MEAN, MOONS_STD)


def swiss_roll(n: int, seed: int = 0, noise: float = 0.5) -> torch.Tensor:
    """n points on a 2-D spiral, theta (cos theta, sin theta), normalised: float32 [n, 2].

    theta is uniform on [1.5 pi, 4.5 pi] (a turn and a half); `noise` is in raw units,
    where the roll is about 28 wide.
    """
    n, noise = _check_n(n), _check_nonnegative("noise", noise)
    g = _generator(seed)
    theta = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g, dtype=torch.float64))
    points = theta[:, None] * torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    points = points + noise * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return _normalise(points, SWISS_ROLL_MEAN, SWISS_ROLL_STD)


def gaussian_mixture(n: int, seed: int = 0, modes: int = 8, std: float = 0.1) -> torch.Tensor:
    """n points from `modes` equal Gaussians (std `std`) evenly spaced on a circle: [n, 2].

    The circle has radius sqrt(2), so for modes >= 3 each coordinate has mean 0 and variance
    1 + std^2: the data are normalised by construction.
    """
    n, std = _check_n(n), _check_nonnegative("std", std)
    if isinstance(modes, bool) or not isinstance(modes, numbers.Integral) or modes < 1:
        raise ValueError(f"modes must be a positive integer; got {modes!r}")
    g = _generator(seed)
    which = torch.randint(int(modes), (n,), generator=g)
    angle = 2 * math.pi * which.double() / modes
    centres = math.sqrt(2) * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return (centres + std * torch.randn(n, 2, generator=g, dtype=torch.float64)).float()


def checkerboard(n: int, seed: int = 0) -> torch.Tensor:
    """n points uniform on the dark squares of a 4x4 checkerboard, normalised: float32 [n, 2].

    The board covers [-2, 2]^2 in raw units; a square (i, j) is filled when i + j is even.
    """
    n = _check_n(n)
    g = _generator(seed)
    column = torch.randint(4, (n,), generator=g)
    # Half the rows have the parity that fills a square in this column: pick one of those two.
    row = 2 * torch.randint(2, (n,), generator=g) + column % 2
    corner = torch.stack([column, row], dim=1).double() - 2
    points = corner + torch.rand(n, 2, generator=g, dtype=torch.float64)
    return (points / CHECKERBOARD_STD).float()


TOY_DATASETS = {
    "two_moons": two_moons,
    "swiss_roll": swiss_roll,
    "gaussian_mixture": gaussian_mixture,
    "checkerboard": checkerboard,
}


@lru_cache(maxsize=1)
def _load_digits():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = torch.as_tensor(bunch.images, dtype=torch.float32)  # [1797, 8, 8], values 0..16
    return pixels / 8 - 1, torch.as_tensor(bunch.target, dtype=torch.int64)


def digits(return_labels: bool = False):
    """scikit-learn's bundled 8x8 handwritten digits (no download): float32 [1797, 1, 8, 8].

    Pixels 0..16 are mapped to [-1, 1] by pixel/8 - 1. With return_labels=True, returns
    (images, labels) with labels int64 [1797] in 0..9. Each call returns fresh tensors.
    """
    images, labels = _load_digits()
    images = images[:, None].clone()
    return (images, labels.clone()) if return_labels else images


# --- MNIST and Fashion-MNIST from IDX files --------------------------------------------

MNIST_URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}
IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension


def mnist_file_names(split: str = "train") -> tuple[str, str]:
    """The standard (images, labels) IDX file names for a split, without ".gz"."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    prefix = "train" if split == "train" else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _download(url: str, target: Path) -> None:
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as out:
            out.write(response.read())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _read_idx(path: Path, magic: int) -> torch.Tensor:
    """The uint8 array in an IDX file (raw or gzipped), after checking header and size."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as error:
        raise ValueError(f"{path} is not a readable gzip file ({error}); delete it and fetch it again") from None
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header or struct.unpack(">i", raw[:4])[0] != magic:
        found = struct.unpack(">i", raw[:4])[0] if len(raw) >= 4 else None
        raise ValueError(
            f"{path} is not an IDX file of the expected kind: magic number {found}, expected {magic} "
            f"(unsigned bytes, {ndim} dimension{'s' if ndim > 1 else ''}); the file is corrupt or mislabelled"
        )
    shape = struct.unpack(f">{ndim}i", raw[4:header])
    size = math.prod(shape)
    if len(raw) - header != size:
        raise ValueError(
            f"{path} is corrupt: its header promises shape {shape} ({size} bytes of data) "
            f"but the file holds {len(raw) - header}; delete it and fetch it again"
        )
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(shape)


def load_mnist(folder, kind: str = "mnist", split: str = "train", download: bool = False):
    """MNIST or Fashion-MNIST from the standard IDX files in `folder`.

    Looks for `train-images-idx3-ubyte` and `train-labels-idx1-ubyte` (split="train") or
    `t10k-...` (split="test"), raw or with ".gz". Returns (images float32 [N, 1, 28, 28] in
    [-1, 1], labels int64 [N]). Fetches the gzipped files only when download=True; otherwise
    (or when fetching fails, e.g. offline) raises FileNotFoundError naming the files to place.
    """
    if kind not in MNIST_URLS:
        raise ValueError(f"kind must be one of {sorted(MNIST_URLS)}; got {kind!r}")
    folder = Path(folder)
    names = mnist_file_names(split)
    paths = [_find(folder, name) for name in names]
    missing = [name for name, path in zip(names, paths) if path is None]
    if missing and download:
        folder.mkdir(parents=True, exist_ok=True)
        for name in missing:
            try:
                _download(MNIST_URLS[kind] + name + ".gz", folder / f"{name}.gz")
            except OSError as error:
                reason = f"downloading {name}.gz from {MNIST_URLS[kind]} failed ({error})"
                raise FileNotFoundError(_missing_message(folder, kind, missing, reason)) from None
        paths = [_find(folder, name) for name in names]
    elif missing:
        raise FileNotFoundError(_missing_message(folder, kind, missing, "download=False"))
    images = _read_idx(paths[0], IDX_IMAGES_MAGIC)
    labels = _read_idx(paths[1], IDX_LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{paths[0]} holds {images.shape[0]} images but {paths[1]} holds {labels.shape[0]} labels")
    return images[:, None].float() / 127.5 - 1, labels.long()


def _missing_message(folder: Path, kind: str, missing: list[str], reason: str) -> str:
    wanted = ", ".join(f"{name} (or {name}.gz)" for name in missing)
    return (
        f"{kind} files not found in {folder.resolve()} ({reason}). Put these files there: {wanted}; "
        f"they are available from {MNIST_URLS[kind]}, or call load_mnist(..., download=True) when online."
    )
