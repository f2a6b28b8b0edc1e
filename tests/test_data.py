"""mini_diffusion.toolkit.data: the toy distributions, the digits and the IDX (MNIST) reader."""

import gzip
import math
import struct
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from mini_diffusion.toolkit import data


def test_two_moons_is_float32_points_and_reproducible_from_its_seed():
    points = data.two_moons(500, seed=3)
    assert points.shape == (500, 2) and points.dtype == torch.float32, "two_moons must return float32 [n, 2]"
    assert torch.equal(points, data.two_moons(500, seed=3)), "the same seed must give the same points"
    assert not torch.equal(points, data.two_moons(500, seed=4)), "different seeds must give different draws"


def test_two_moons_without_noise_lies_exactly_on_the_two_half_circles():
    raw = data.two_moons(2000, seed=0, noise=0.0).double() * torch.tensor(data.MOONS_STD) + torch.tensor(data.MOONS_MEAN)
    on_upper = ((raw.norm(dim=1) - 1).abs() < 1e-5) & (raw[:, 1] >= -1e-5)
    on_lower = (((raw - torch.tensor([1.0, 0.5])).norm(dim=1) - 1).abs() < 1e-5) & (raw[:, 1] <= 0.5 + 1e-5)
    assert bool((on_upper | on_lower).all()), "every noiseless point must sit on the upper or the lower moon"
    share = on_upper.double().mean().item()
    assert 0.45 < share < 0.55, f"each moon should get about half the points, got {share:.3f} on the upper one"


def test_two_moons_angles_are_random_draws_not_a_grid():
    raw = data.two_moons(400, seed=1, noise=0.0).double() * torch.tensor(data.MOONS_STD) + torch.tensor(data.MOONS_MEAN)
    upper = raw[raw[:, 1] > 0.01]
    angles = torch.atan2(upper[:, 1], upper[:, 0]).sort().values
    gaps = angles.diff()
    assert gaps.std() > 0.5 * gaps.mean(), "angles on an even grid (like sklearn's make_moons) are not i.i.d. draws"


def test_two_moons_is_normalised_by_fixed_constants_not_by_each_draw():
    large = data.two_moons(200_000, seed=0).double()
    assert large.mean(dim=0).abs().max() < 0.01, f"the distribution should have mean ~0, got {large.mean(dim=0)}"
    assert (large.std(dim=0) - 1).abs().max() < 0.01, f"the distribution should have std ~1, got {large.std(dim=0)}"
    small = data.two_moons(20, seed=0).double()
    assert small.mean(dim=0).abs().max() > 1e-3, "a small draw must not be re-centred on its own mean"


@pytest.mark.parametrize("name", sorted(data.TOY_DATASETS))
def test_every_toy_dataset_is_seeded_float32_and_roughly_standardised(name):
    sampler = data.TOY_DATASETS[name]
    points = sampler(20_000, seed=0)
    assert points.shape == (20_000, 2) and points.dtype == torch.float32, f"{name} must return float32 [n, 2]"
    assert torch.equal(points[:5], sampler(20_000, seed=0)[:5]), f"{name} must be reproducible from its seed"
    assert points.double().mean(dim=0).abs().max() < 0.1, f"{name} should have mean ~0"
    std = points.double().std(dim=0)
    assert bool(((std > 0.8) & (std < 1.25)).all()), f"{name} should have std ~1 per coordinate, got {std}"


def test_checkerboard_points_fall_only_on_the_dark_squares():
    raw = data.checkerboard(5000, seed=2).double() * data.CHECKERBOARD_STD
    cell = torch.floor(raw + 2).long()
    assert bool(((cell >= 0) & (cell <= 3)).all()), "the board covers [-2, 2]^2 in raw units"
    assert bool(((cell[:, 0] + cell[:, 1]) % 2 == 0).all()), "a point landed on a light square"


def test_gaussian_mixture_has_the_requested_number_of_modes():
    angles = torch.atan2(*data.gaussian_mixture(4000, seed=0, modes=5, std=0.01).T.flip(0))
    modes = torch.round(angles / (2 * math.pi / 5)).remainder(5).unique()
    assert len(modes) == 5, f"expected points around 5 modes, found {len(modes)}"


@pytest.mark.parametrize("bad", [0, -3, 2.5, "10"])
def test_toy_datasets_reject_a_bad_number_of_points(bad):
    with pytest.raises(ValueError, match="positive integer"):
        data.two_moons(bad)


def test_digits_are_sklearn_digits_scaled_to_minus_one_one():
    from sklearn.datasets import load_digits

    images, labels = data.digits(return_labels=True)
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.float32, "digits must be float32 [1797, 1, 8, 8]"
    assert labels.shape == (1797,) and labels.dtype == torch.int64, "labels must be int64 [1797]"
    assert images.min() == -1 and images.max() == 1, "pixels 0..16 must map onto [-1, 1]"
    expected = torch.as_tensor(load_digits().images / 8 - 1, dtype=torch.float32)
    assert torch.equal(images[:, 0], expected), "digits() must be pixel/8 - 1 of sklearn's load_digits"
    assert set(labels.tolist()) == set(range(10))
    assert torch.equal(data.digits(), images), "without return_labels, digits() returns just the images"


# --- IDX files -----------------------------------------------------------------------------


def write_idx(path, array: np.ndarray, magic: int, compress: bool):
    payload = struct.pack(f">i{array.ndim}i", magic, *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def write_split(folder, split, images, labels, compress):
    prefix = "train" if split == "train" else "t10k"
    suffix = ".gz" if compress else ""
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, data.IDX_IMAGES_MAGIC, compress)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, data.IDX_LABELS_MAGIC, compress)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_load_mnist_reads_back_the_idx_files_it_is_given(tmp_path, compress, split):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    write_split(tmp_path, split, images, labels, compress)

    got_images, got_labels = data.load_mnist(tmp_path, split=split)
    assert got_images.shape == (7, 1, 28, 28) and got_images.dtype == torch.float32
    assert got_labels.dtype == torch.int64 and got_labels.tolist() == labels.tolist()
    assert got_images[0, 0, 0, 0] == -1 and got_images[0, 0, 0, 1] == 1, "byte 0 must map to -1 and 255 to +1"
    expected = torch.as_tensor(images, dtype=torch.float32)[:, None] / 127.5 - 1
    assert torch.allclose(got_images, expected), "images must be the file's bytes mapped to [-1, 1]"


def test_load_mnist_rejects_a_file_with_the_wrong_magic_number(tmp_path):
    write_split(tmp_path, "train", np.zeros((2, 28, 28)), np.zeros(2), compress=False)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 28, 28)), data.IDX_LABELS_MAGIC, compress=False)
    with pytest.raises(ValueError, match="magic number 2049, expected 2051"):
        data.load_mnist(tmp_path)


def test_load_mnist_rejects_a_truncated_file(tmp_path):
    write_split(tmp_path, "train", np.zeros((3, 28, 28)), np.zeros(3), compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="corrupt"):
        data.load_mnist(tmp_path)


def test_load_mnist_rejects_a_damaged_gzip_file(tmp_path):
    write_split(tmp_path, "train", np.zeros((3, 28, 28)), np.zeros(3), compress=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:10])
    with pytest.raises(ValueError, match="gzip"):
        data.load_mnist(tmp_path)


def test_load_mnist_rejects_images_and_labels_of_different_counts(tmp_path):
    write_split(tmp_path, "train", np.zeros((3, 28, 28)), np.zeros(4), compress=False)
    with pytest.raises(ValueError, match="3 images but .* 4 labels"):
        data.load_mnist(tmp_path)


def forbid_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_load_mnist_names_the_missing_files_and_the_folder_without_downloading(tmp_path, monkeypatch):
    forbid_network(monkeypatch)
    with pytest.raises(FileNotFoundError) as error:
        data.load_mnist(tmp_path / "mnist", split="test")
    message = str(error.value)
    for expected in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", str((tmp_path / "mnist").resolve()), "download=True"):
        assert expected in message, f"the message should mention {expected!r}: {message}"


def test_load_mnist_turns_a_failed_download_into_file_not_found(tmp_path, monkeypatch):
    forbid_network(monkeypatch)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*failed"):
        data.load_mnist(tmp_path, kind="fashion", download=True)
    assert not list(tmp_path.iterdir()), "a failed download must leave no partial file behind"


def test_load_mnist_rejects_unknown_kind_and_split(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        data.load_mnist(tmp_path, kind="kmnist")
    with pytest.raises(ValueError, match="split"):
        data.load_mnist(tmp_path, split="validation")
