"""How the flow-matching reference models of notebook 09 are made (the recipes of `recipes`
for velocity models): data, network and training settings, trained with exercise 9.2's fm_loss.

`moons_flow` and `digits_flow` learn the linear path x_t = (1 - t) x_0 + t ε; they have no noise
schedule (`recipe_schedule` gives None and the manifest says "linear path").
"""

from mini_diffusion._course import seam
from mini_diffusion.toolkit import flow_nets

PATH = {"kind": "linear", "x_t": "(1 - t) * x0 + t * noise", "t": "[0, 1], 0 = data, 1 = noise"}

RECIPES = {
    "moons_flow": {
        "data": {"name": "two_moons", "n": 50_000, "seed": 12345, "noise": 0.1},
        "model": lambda: flow_nets.FlowMLP(dim=2, hidden=128, depth=3),
        "schedule": PATH,
        "loss": {"name": "fm_loss (exercise 9.2)", "t": "U(0, 1)"},
        "train": {"steps": 10_000, "batch_size": 512, "lr": 2e-3, "warmup_steps": 300, "lr_decay": "cosine",
                  "ema_decay": 0.999, "seed": 0},
    },
    "digits_flow": {
        "data": {"name": "digits", "source": "sklearn.datasets.load_digits (8x8, 1797 images), pixel/8 - 1"},
        "model": lambda: flow_nets.FlowUNet(in_channels=1, base_channels=24, channel_mults=(1, 2)),
        "schedule": PATH,
        "loss": {"name": "fm_loss (exercise 9.2)", "t": "U(0, 1)"},
        "train": {"steps": 5_000, "batch_size": 64, "lr": 2e-3, "warmup_steps": 300, "lr_decay": "cosine",
                  "ema_decay": 0.999, "seed": 0},
    },
}


def fm_loss_fn(model, x0, schedule=None, generator=None):
    """Exercise 9.2's fm_loss (yours, or the reference when lent), in train()'s loss_fn form."""
    return seam.implementation("9.2")(model, x0, generator=generator)


def recipe_data(name: str):
    """The training data of a flow recipe: fresh two moons, or the digits."""
    from mini_diffusion.toolkit import data

    spec = RECIPES[name]["data"]
    if spec["name"] == "two_moons":
        return data.two_moons(spec["n"], seed=spec["seed"], noise=spec["noise"])
    return data.digits()
