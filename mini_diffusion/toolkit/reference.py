"""The shipped reference models: trained denoisers that everyone gets without a download.

    model, schedule, manifest = reference.load("moons")     # 2-D MLP on two moons
    model, schedule, manifest = reference.load("digits")    # small U-Net on 8x8 digits
    model, schedule, manifest = reference.load("digits_cond")          # model(x_t, t, y), y in 0..9 or 10 = no label
    model, schedule, manifest = reference.load("digits_classifier_t")  # logits = model(x_t, t), noise-aware

Each model is a safetensors file (weights plus its schedule's β and ᾱ arrays, so loading never
runs your exercise code) and a manifest.json (architecture, schedule, data, training run,
metrics and the sha256 of the weights file, checked on every load).
"""

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mini_diffusion.toolkit import latent_nets  # latent_nets.build: every network, velocity and latent ones too
from mini_diffusion.toolkit.diffusion_process import NoiseSchedule

MODELS_DIR = Path(__file__).resolve().parent / "reference_models"
NAMES = ("moons", "digits", "digits_cond", "digits_classifier_t", "moons_flow", "digits_flow",
         "shapes_autoencoder", "shapes_latent")
# What each model computes (all are rebuilt from the manifest's "model" config by nets.build):
#   moons, digits        eps_hat = model(x_t, t)
#   digits_cond          eps_hat = model(x_t, t, y), y int64 [B] in 0..9, or the null label 10 ("no label")
#   digits_classifier_t  logits [B, 10] = model(x_t, t), trained on x_t = q_sample(x0, t), t ~ U{1..T}
KINDS = {"moons": "denoiser", "digits": "denoiser", "digits_cond": "conditional denoiser",
         "digits_classifier_t": "noisy classifier", "moons_flow": "velocity", "digits_flow": "velocity",
         "shapes_autoencoder": "autoencoder", "shapes_latent": "latent text-conditional denoiser"}
#   moons_flow, digits_flow  v_hat = model(x_t, t), t float [B] in [0, 1] (linear path; schedule None)
#   shapes_autoencoder   (mean, log_variance) = model.encode(images), images = model.decode(z); schedule None
#   shapes_latent        eps_hat = model(z_t, t, tokens) on latents scaled by the manifest's latent_scale
SCHEDULE_KEYS = ("schedule.betas", "schedule.alpha_bars")


class ReferenceModelError(RuntimeError):
    """A reference model is missing, corrupt or altered."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def paths(name: str, models_dir: Path = MODELS_DIR) -> tuple[Path, Path]:
    if name not in NAMES:
        raise ValueError(f"unknown reference model {name!r}; the shipped models are: {', '.join(NAMES)}")
    return models_dir / f"{name}.safetensors", models_dir / f"{name}.json"


def read_manifest(name: str, models_dir: Path = MODELS_DIR) -> dict:
    _, manifest_path = paths(name, models_dir)
    if not manifest_path.is_file():
        raise ReferenceModelError(
            f"the manifest {manifest_path} is missing; reinstall mini_diffusion or retrain with "
            "`python tools/train_reference.py`"
        )
    try:
        return json.loads(manifest_path.read_text())
    except json.JSONDecodeError as err:
        raise ReferenceModelError(f"the manifest {manifest_path} is not valid JSON ({err})") from None


def load(name: str, device=None, models_dir: Path = MODELS_DIR):
    """(model, schedule, manifest) for a shipped model, in eval mode, on `device`.

    device: None picks CUDA, then Apple MPS, then the CPU. The weights file must match the
    sha256 in its manifest: a corrupt or altered file is refused with a clear message.
    """
    from mini_diffusion.toolkit.device import pick_device

    weights_path, _ = paths(name, models_dir)
    manifest = read_manifest(name, models_dir)
    if not weights_path.is_file():
        raise ReferenceModelError(f"the weights file {weights_path} is missing; reinstall mini_diffusion")
    actual = sha256_of(weights_path)
    if actual != manifest.get("sha256"):
        raise ReferenceModelError(
            f"{weights_path.name} does not match its manifest (sha256 {actual[:12]}… expected "
            f"{str(manifest.get('sha256'))[:12]}…): the file is corrupt or was changed. "
            "Restore it with `git checkout -- mini_diffusion/toolkit/reference_models/` or reinstall."
        )
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError) as err:
        raise ReferenceModelError(f"cannot read {weights_path}: {err}") from None
    schedule = (NoiseSchedule(tensors.pop(SCHEDULE_KEYS[0]), tensors.pop(SCHEDULE_KEYS[1]))
                if SCHEDULE_KEYS[0] in tensors else None)  # velocity models have none
    model = latent_nets.build(manifest["model"])  # every kind of nets, flow_nets and latent_nets
    model.load_state_dict(tensors)
    model.eval().requires_grad_(False)
    device = pick_device(device)
    return model.to(device), (schedule.to(device) if schedule is not None else None), manifest


def save(model, schedule, manifest: dict, name: str, models_dir: Path = MODELS_DIR) -> dict:
    """Write <name>.safetensors and <name>.json; returns the manifest with its sha256 filled in."""
    weights_path, manifest_path = paths(name, models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    # schedule.betas has β_0 = 0 in front; NoiseSchedule takes β_1..β_T
    if schedule is not None:  # velocity models (the linear path) have no schedule
        tensors[SCHEDULE_KEYS[0]] = schedule.betas[1:].detach().cpu().to(torch.float64).contiguous()
        tensors[SCHEDULE_KEYS[1]] = schedule.alpha_bars.detach().cpu().to(torch.float64).contiguous()
    save_file(tensors, str(weights_path))
    manifest = {**manifest, "name": name, "file": weights_path.name, "sha256": sha256_of(weights_path)}
    manifest["weights_bytes"] = weights_path.stat().st_size
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


class RespacedModel(torch.nn.Module):
    """model on a respaced schedule: step i of the short schedule is timestep τ_i of the original one."""

    def __init__(self, model, timesteps: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("timesteps", torch.cat([timesteps.new_zeros(1), timesteps]), persistent=False)

    def forward(self, x_t, t, *rest):
        from mini_diffusion.toolkit.common import as_t_tensor

        t = as_t_tensor(t, x_t.shape[0], device=x_t.device)
        return self.model(x_t, self.timesteps.to(t.device)[t], *rest)


def respaced(model, schedule, num_steps: int):
    """(model', schedule') that run a T-step model on num_steps evenly spaced timesteps τ_1 < … < τ_n = T.

    The short schedule keeps the model's ᾱ at those timesteps, β'_i = 1 - ᾱ_{τ_i} / ᾱ_{τ_{i-1}} (ᾱ_{τ_0} = 1),
    so DDPM on it (any sampler of t = n..1) takes n steps instead of T with the same network
    (Nichol & Dhariwal's respacing); model' translates each t' in 1..n back to τ_{t'}.
    Notebook 08 uses it to inpaint with DDPM in 100 steps instead of 1000.
    """
    T = schedule.T
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be an integer in 1..{T}; got {num_steps!r}")
    timesteps = torch.round(torch.arange(1, num_steps + 1, dtype=torch.float64) * T / num_steps).long()
    alpha_bars = schedule.alpha_bars.detach().cpu().to(torch.float64)[timesteps]
    previous = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars[:-1]])
    short = NoiseSchedule(1 - alpha_bars / previous, torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars]))
    device = schedule.alpha_bars.device
    return RespacedModel(model, timesteps.to(device)), short.to(device)
