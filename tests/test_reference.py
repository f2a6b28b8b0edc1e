"""The shipped reference models load, are what their manifests say, and refuse tampering."""

import json
import shutil

import pytest
import torch

from mini_diffusion.toolkit import reference
from mini_diffusion.toolkit.diffusion_process import NoiseSchedule

MANIFEST_KEYS = ("model", "schedule", "data", "training", "torch_version", "commit", "metrics", "sha256")


def manifest_latent_shape():
    return tuple(reference.read_manifest("shapes_latent")["latent_shape"])


@pytest.mark.parametrize("name", reference.NAMES)
def test_reference_model_loads_with_its_schedule_and_manifest(name):
    model, schedule, manifest = reference.load(name, device="cpu")
    kind = reference.KINDS[name]
    if kind in ("velocity", "autoencoder"):
        assert schedule is None, f"a {kind} model has no noise schedule"
    else:
        assert isinstance(schedule, NoiseSchedule) and schedule.T == manifest["schedule"]["T"]
    assert not model.training, "a reference model is returned in eval mode"
    for key in MANIFEST_KEYS:
        assert key in manifest, f"the {name} manifest lacks {key!r}"
    assert manifest["training"]["device"]["device"], "the manifest must say where the model was trained"
    if kind == "autoencoder":  # 32x32 RGB images to latents [4, 8, 8] and back
        mean, log_variance = model.encode(torch.rand(3, 3, 32, 32) * 2 - 1)
        assert mean.shape == log_variance.shape == (3, *manifest_latent_shape())
        assert model.decode(mean).shape == (3, 3, 32, 32)
        return
    shape = (3, 2) if name.startswith("moons") else (3, *manifest_latent_shape()) if kind.startswith("latent") \
        else (3, 1, 8, 8)
    x = torch.randn(shape)
    t = torch.tensor([0.0, 0.5, 1.0]) if kind == "velocity" else torch.tensor([1, 500, 1000])
    if kind.startswith("latent"):
        from mini_diffusion.toolkit.tokens import NULL_PROMPT, encode

        assert manifest["latent_scale"] > 0 and manifest["autoencoder"]["sha256"] == \
            reference.read_manifest("shapes_autoencoder")["sha256"], "the latent model names the autoencoder it was trained on"
        out = model(x, t, encode(["a red circle", "a blue square and a green triangle", NULL_PROMPT]))
    elif kind == "conditional denoiser":
        out = model(x, t, torch.tensor([0, 9, 10]))  # two digits and the null label
    else:
        out = model(x, t)
    want = (3, 10) if kind == "noisy classifier" else x.shape
    assert out.shape == want and torch.isfinite(out).all()


def test_the_conditional_model_needs_its_label_and_the_others_refuse_one():
    cond, _, manifest = reference.load("digits_cond", device="cpu")
    assert manifest["model"]["num_classes"] == 10 and manifest["loss"]["p_uncond"] == 0.1
    x = torch.randn(2, 1, 8, 8)
    with pytest.raises(ValueError, match="conditional"):
        cond(x, 5)
    plain, _, _ = reference.load("digits", device="cpu")
    with pytest.raises(ValueError, match="unconditional"):
        plain(x, 5, torch.tensor([1, 2]))


def test_respaced_keeps_the_alpha_bars_at_its_timesteps():
    model, schedule, _ = reference.load("digits", device="cpu")
    short_model, short = reference.respaced(model, schedule, 100)
    assert short.T == 100
    assert torch.allclose(short.alpha_bars[1:], schedule.alpha_bars[10::10], rtol=1e-12)
    assert torch.allclose(short.alpha_bars[1:], torch.cumprod(1 - short.betas[1:], 0), rtol=1e-10)
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(short_model(x, torch.tensor([100, 1])), model(x, torch.tensor([1000, 10])))


def test_schedule_comes_from_the_file_not_from_the_exercise_code():
    # The stubs raise NotImplementedError; loading must not call them.
    _, schedule, _ = reference.load("moons", device="cpu")
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    assert torch.allclose(schedule.betas[1:], betas, atol=1e-12)
    assert torch.allclose(schedule.alpha_bars[1:], torch.cumprod(1 - betas, 0), rtol=1e-10)


def test_all_weights_together_stay_under_10_mb():
    total = sum(p.stat().st_size for p in reference.MODELS_DIR.glob("*.safetensors"))
    assert total < 10e6, f"reference weights take {total / 1e6:.1f} MB; the budget is 10 MB"


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="moons, digits"):
        reference.load("mnist")


@pytest.fixture
def copied_models(tmp_path):
    for path in reference.MODELS_DIR.iterdir():
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_an_altered_weights_file_fails_the_sha256_check(copied_models):
    path = copied_models / "moons.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(reference.ReferenceModelError, match="corrupt or was changed"):
        reference.load("moons", models_dir=copied_models)


def test_a_truncated_weights_file_fails_with_a_clear_message(copied_models):
    path = copied_models / "digits.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(reference.ReferenceModelError, match="sha256"):
        reference.load("digits", models_dir=copied_models)


def test_missing_files_say_how_to_get_them_back(copied_models):
    (copied_models / "moons.safetensors").unlink()
    with pytest.raises(reference.ReferenceModelError, match="missing"):
        reference.load("moons", models_dir=copied_models)
    (copied_models / "digits.json").write_text("{not json")
    with pytest.raises(reference.ReferenceModelError, match="not valid JSON"):
        reference.load("digits", models_dir=copied_models)


def test_save_then_load_round_trips_weights_and_schedule(tmp_path):
    model, schedule, manifest = reference.load("moons", device="cpu")
    reference.save(model, schedule, {k: manifest[k] for k in ("model", "schedule")}, "moons", models_dir=tmp_path)
    again, schedule2, manifest2 = reference.load("moons", device="cpu", models_dir=tmp_path)
    assert json.loads((tmp_path / "moons.json").read_text())["sha256"] == manifest2["sha256"]
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), f"weight {k} changed in a save/load round trip"
    assert torch.equal(schedule.alpha_bars, schedule2.alpha_bars)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_reference_model_runs_on_cuda():
    model, schedule, _ = reference.load("digits", device="cuda")
    x = torch.randn(4, 1, 8, 8, device="cuda")
    assert model(x, torch.full((4,), 10, device="cuda")).device.type == "cuda"
    assert schedule.alpha_bars.device.type == "cuda"
