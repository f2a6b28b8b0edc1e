"""How the reference models are made: data, network, schedule and training settings.

`mini-diffusion train --data moons` and `python tools/train_reference.py` both start from
these recipes, so a retrained model is made the same way as the shipped one.
"""

from mini_diffusion.toolkit import data, nets
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
}


def recipe_data(name: str):
    spec = RECIPES[name]["data"]
    if name == "moons":
        return data.two_moons(spec["n"], seed=spec["seed"], noise=spec["noise"])
    return data.digits()


def recipe_schedule(name: str) -> NoiseSchedule:
    """The recipe's schedule, built by the exercise code in use (yours, or the solutions)."""
    spec = RECIPES[name]["schedule"]
    return linear_schedule(spec["T"], spec["beta_start"], spec["beta_end"])
