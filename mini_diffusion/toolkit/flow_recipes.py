"""How the flow-matching reference models of notebook 09 are made (the recipes of `recipes`
for velocity models): data, network and training settings, trained with exercise 9.2's fm_loss.

`moons_flow` and `digits_flow` learn the linear path x_t = (1 - t) x_0 + t ε; they have no noise
schedule (`recipe_schedule` gives None and the manifest says "linear path").
"""

from mini_diffusion._base import door
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
        # 5,000 steps (the DDPM digits model had 10,000): what fitted ~40 min on the shared 2-core CPU
        # (~2-4 steps/s there); Euler-20 still reaches a Fréchet ratio of 0.75 (benchmarks/flow.py)
        "schedule": PATH,
        "loss": {"name": "fm_loss (exercise 9.2)", "t": "U(0, 1)"},
        "train": {"steps": 5_000, "batch_size": 64, "lr": 2e-3, "warmup_steps": 300, "lr_decay": "cosine",
                  "ema_decay": 0.999, "seed": 0},
    },
}


def fm_loss_fn(model, x0, schedule=None, generator=None):
    """Exercise 9.2's fm_loss (yours, or the reference when lent), in train()'s loss_fn form."""
    return door.implementation("9.2")(model, x0, generator=generator)


def recipe_data(name: str):
    """The training data of a flow recipe: fresh two moons, or the digits."""
    from mini_diffusion.toolkit import data

    spec = RECIPES[name]["data"]
    if spec["name"] == "two_moons":
        return data.two_moons(spec["n"], seed=spec["seed"], noise=spec["noise"])
    return data.digits()


# --- Reflow (Liu et al., 2023): train again on the (noise, sample) pairs of a trained flow ------


def reflow_pairs(model, n: int, num_steps: int = 100, seed: int = 0, shape=(2,)):
    """n pairs drawn from a trained flow: noise ε ~ N(0, I) and the sample Euler (num_steps) takes it
    to. Returned as one tensor [n, 2, *shape]: [:, 0] the noise, [:, 1] its sample (train() draws
    rows of one tensor; `reflow_loss_fn` splits them again)."""
    import torch

    from mini_diffusion.toolkit.common import model_device
    from mini_diffusion.toolkit.flow import euler_grid, euler_on_grid

    device = model_device(model)
    noise = torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed)).to(device)
    with torch.no_grad():
        samples = euler_on_grid(model, noise, euler_grid(num_steps))
    return torch.stack([noise, samples], dim=1)


def reflow_loss_fn(model, batch, schedule=None, generator=None):
    """fm_loss (exercise 9.2) on coupled pairs: x_0 = the flow's sample, ε = the noise it came from."""
    return door.implementation("9.2")(model, batch[:, 1], noise=batch[:, 0], generator=generator)


# --- Minibatch optimal-transport coupling (benchmarks/flow.py, part "ot") ---------------------


def ot_fm_loss_fn(model, x0, schedule=None, generator=None):
    """fm_loss (exercise 9.2) with each batch's noises re-paired to its data points by an exact
    minibatch optimal-transport assignment (toolkit.flow.minibatch_ot_noise) instead of at random."""
    import torch

    from mini_diffusion.toolkit.flow import minibatch_ot_noise

    device = generator.device if generator is not None else x0.device
    noise = torch.randn(x0.shape, generator=generator, device=device, dtype=x0.dtype).to(x0.device)
    return door.implementation("9.2")(model, x0, noise=minibatch_ot_noise(x0, noise), generator=generator)


# --- The model notebook 09 trains live (and benchmarks/flow.py measures the same way) ----------

NOTEBOOK_MOONS = {
    "data": {"name": "two_moons", "n": 8000, "seed": 9, "noise": 0.1},
    "model": {"hidden": 64, "depth": 2, "time_dim": 32},
    "train": {"steps": 600, "batch_size": 256, "lr": 3e-3, "warmup_steps": 50, "lr_decay": "cosine",
              "ema_decay": 0.995, "seed": 0},
    "final_window": 150,  # "final loss" = the mean loss of the last this many steps
}


def notebook_moons_data():
    from mini_diffusion.toolkit import data

    spec = NOTEBOOK_MOONS["data"]
    return data.two_moons(spec["n"], seed=spec["seed"], noise=spec["noise"])


def train_notebook_moons(on_step=None, progress: bool = False, threads=1, **overrides):
    """Train notebook 09's small velocity MLP on its two-moons set with fm_loss (yours or lent).
    Returns (TrainResult, data)."""
    from mini_diffusion.toolkit import train

    data = notebook_moons_data()
    model = flow_nets.FlowMLP(dim=2, **NOTEBOOK_MOONS["model"])
    settings = {**NOTEBOOK_MOONS["train"], **overrides}
    result = train.train(model, data, None, loss_fn=fm_loss_fn, on_step=on_step, progress=progress, threads=threads,
                         **settings)
    return result, data


def final_loss(losses, window: int = NOTEBOOK_MOONS["final_window"]) -> float:
    """The mean of the last `window` training losses (one batch's loss is noisy)."""
    recent = list(losses)[-window:]
    return sum(recent) / len(recent)
