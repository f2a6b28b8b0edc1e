"""How the reference models are made: data, network, schedule and training settings.

`mini-diffusion train --data moons` and `python tools/train_reference.py` both start from
these recipes, so a retrained model is made the same way as the shipped one.

The two models of notebook 08 learn from labelled digits. The training loop draws batches of
one tensor, so their data is the images with the label as a second, constant channel
([N, 2, 8, 8]); their loss functions (`recipe_loss`) split a batch back into images and labels.
"""

import torch
import torch.nn.functional as F

from mini_diffusion._base import door
from mini_diffusion.toolkit import data, nets
from mini_diffusion.toolkit import flow_recipes  # notebook 09's velocity models
from mini_diffusion.toolkit import latent_recipes  # notebook 11's autoencoder and latent U-Net
from mini_diffusion.toolkit.diffusion_process import NoiseSchedule, linear_schedule

MOONS_TRAIN_SIZE = 50_000  # a fresh i.i.d. draw; the model never sees the evaluation draws


RECIPES = {
    "moons": {
        "data": {"name": "two_moons", "n": MOONS_TRAIN_SIZE, "seed": 12345, "noise": 0.1},
        "model": lambda: nets.MLPDenoiser(dim=2, hidden=128, depth=3),
        "schedule": {"kind": "linear", "T": 1000, "beta_start": 1e-4, "beta_end": 0.02},
        "train": {"steps": 10_000, "batch_size": 512, "lr": 2e-3, "warmup_steps": 300, "lr_decay": "cosine",
                  "ema_decay": 0.999, "seed": 0},
    },
    "digits": {
        "data": {"name": "digits", "source": "sklearn.datasets.load_digits (8x8, 1797 images), pixel/8 - 1"},
        "model": lambda: nets.UNet(in_channels=1, base_channels=24, channel_mults=(1, 2)),
        "schedule": {"kind": "linear", "T": 1000, "beta_start": 1e-4, "beta_end": 0.02},
        "train": {"steps": 10_000, "batch_size": 64, "lr": 2e-3, "warmup_steps": 300, "lr_decay": "cosine",
                  "ema_decay": 0.999, "seed": 0},
    },
    # Notebook 08: the digits U-Net with a label embedding, trained with exercise 8.2 (labels
    # dropped to the null label 10 with probability 0.1) for classifier-free guidance.
    "digits_cond": {
        "data": {"name": "digits_labelled", "source": "sklearn.datasets.load_digits (8x8, 1797 images), pixel/8 - 1, "
                 "with its labels 0..9", "null_label": 10},
        "model": lambda: nets.UNet(in_channels=1, base_channels=24, channel_mults=(1, 2), num_classes=10),
        "schedule": {"kind": "linear", "T": 1000, "beta_start": 1e-4, "beta_end": 0.02},
        "loss": {"name": "conditional_loss (exercise 8.2)", "p_uncond": 0.1, "null_label": 10},
        "train": {"steps": 7_000, "batch_size": 64, "lr": 2e-3, "warmup_steps": 300, "lr_decay": "cosine",
                  "ema_decay": 0.999, "seed": 0},
    },
    # Notebook 08: a noise-aware classifier for classifier guidance: cross-entropy on
    # x_t = q_sample(x0, t) with t ~ U{1..T}, on the same schedule as `digits`.
    "digits_classifier_t": {
        "data": {"name": "digits_labelled", "source": "sklearn.datasets.load_digits (8x8, 1797 images), pixel/8 - 1, "
                 "with its labels 0..9"},
        "model": lambda: nets.NoisyClassifier(in_channels=1, base_channels=32, num_classes=10, time_dim=64),
        "schedule": {"kind": "linear", "T": 1000, "beta_start": 1e-4, "beta_end": 0.02},
        "loss": {"name": "cross-entropy on q_sample(x0, t), t ~ U{1..T}"},
        "train": {"steps": 5_000, "batch_size": 128, "lr": 2e-3, "warmup_steps": 300, "lr_decay": "cosine",
                  "ema_decay": 0.999, "seed": 0},
    },
}


RECIPES.update(flow_recipes.RECIPES)  # moons_flow, digits_flow: trained with fm_loss (exercise 9.2)
RECIPES.update(latent_recipes.RECIPES)  # shapes_autoencoder, then shapes_latent on its latents


def labelled_digits() -> torch.Tensor:
    """The digits with their labels as a second channel: float [1797, 2, 8, 8], channel 1 constant = the label."""
    images, labels = data.digits(return_labels=True)
    return torch.cat([images, labels.to(images.dtype)[:, None, None, None].expand_as(images)], dim=1)


def split_labelled(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [B, 1, H, W], labels int64 [B]) from a batch of `labelled_digits`."""
    return batch[:, :1], batch[:, 1, 0, 0].round().long()


def conditional_loss_fn(model, batch, schedule, generator=None):
    """Exercise 8.2's conditional_loss (yours, or the reference when lent) on a labelled batch."""
    spec = RECIPES["digits_cond"]["loss"]
    x0, y = split_labelled(batch)
    return door.implementation("8.2")(model, x0, y, schedule, p_uncond=spec["p_uncond"], null_label=spec["null_label"],
                                      generator=generator)


def noisy_classifier_loss_fn(model, batch, schedule, generator=None):
    """Cross-entropy of classifier(x_t, t) against the labels, x_t = q_sample(x0, t), t ~ U{1..T}."""
    x0, y = split_labelled(batch)
    device = generator.device if generator is not None else x0.device
    t = torch.randint(1, schedule.T + 1, (x0.shape[0],), generator=generator, device=device).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=device, dtype=x0.dtype).to(x0.device)
    x_t = door.implementation("1.4")(x0, t, schedule, noise)
    return F.cross_entropy(model(x_t, t), y)


def recipe_loss(name: str):
    """The loss function train() should use for a recipe (None: your diffusion_loss, exercise 3.1)."""
    if name in flow_recipes.RECIPES:
        return flow_recipes.fm_loss_fn
    if name in latent_recipes.RECIPES:
        return latent_recipes.recipe_loss(name)
    return {"digits_cond": conditional_loss_fn, "digits_classifier_t": noisy_classifier_loss_fn}.get(name)


def recipe_data(name: str, models_dir=None):
    """The recipe's training data; models_dir: where shapes_latent finds its trained autoencoder."""
    if name in flow_recipes.RECIPES:
        return flow_recipes.recipe_data(name)
    if name in latent_recipes.RECIPES:
        return latent_recipes.recipe_data(name, models_dir)
    spec = RECIPES[name]["data"]
    if name == "moons":
        return data.two_moons(spec["n"], seed=spec["seed"], noise=spec["noise"])
    if spec["name"] == "digits_labelled":
        return labelled_digits()
    return data.digits()


def recipe_manifest(name: str, models_dir=None) -> dict:
    """What a recipe adds to its manifest beyond the recipe (the latent model: its latent scale)."""
    return latent_recipes.manifest_extra(name, models_dir) if name in latent_recipes.RECIPES else {}


def recipe_schedule(name: str) -> NoiseSchedule:
    """The recipe's schedule, built by the exercise code in use (yours, or the solutions)."""
    if name in flow_recipes.RECIPES:
        return None  # velocity models: the linear path, no noise schedule
    if name == "shapes_autoencoder":
        return None  # an autoencoder: no noise schedule
    spec = RECIPES[name]["schedule"]
    return linear_schedule(spec["T"], spec["beta_start"], spec["beta_end"])
