"""The grader's velocity models for flow matching (notebook 09): t is a float tensor [B] in [0, 1].

- `ToyVelocity`: a fixed, closed-form velocity, so fm_sample's output can be computed exactly;
  it checks how it is called (t a float tensor [B] in [0, 1], not DDPM's integer timesteps).
- `ToyVelocityNetwork`: the same formula with trainable numbers (for fm_loss's gradient).
- `SpyVelocity`: predicts zeros and records every t it is asked about.

`VELOCITY_MODELS` names the two a case may use ({"model": "toy_velocity"} in cases.json); the
notebook's spec teaches `_grading.decode` to build them (see exercises/test_09_flow.py).
"""

import torch
from torch import nn

from _models import ModelMisuse, redraw, uniforms


def _check_flow_t(t, x_t):
    if not isinstance(t, torch.Tensor):
        raise ModelMisuse(
            f"your code called the velocity model with t = {t!r} ({type(t).__name__}); a velocity model takes t as a "
            f"float tensor of shape [B] = [{x_t.shape[0]}] with values in [0, 1], e.g. torch.full((B,), t)"
        )
    if not t.is_floating_point() or t.shape != (x_t.shape[0],):
        raise ModelMisuse(
            f"your code called the velocity model with t of dtype {t.dtype} and shape {tuple(t.shape)}; it takes a "
            f"float tensor of shape [B] = [{x_t.shape[0]}] in [0, 1] (flow matching's time is continuous, not the "
            "integer timesteps 0..T of DDPM)"
        )
    if bool((t < 0).any()) or bool((t > 1).any()):
        bad = t[(t < 0) | (t > 1)][0].item()
        raise ModelMisuse(
            f"your code called the velocity model with t = {bad:g}; flow matching's t lies in [0, 1] (0 = data, "
            "1 = noise): draw it with torch.rand, not from the timesteps 0..T"
        )


# The numbers of the toy velocity: these for the shipped cases; for a grading, numbers drawn from its seed
# (use_toy_weights, called by _maker.Maker), so that no submission knows the model it is graded with.
SHIPPED_WEIGHTS = {"scale": 0.5, "shift": -0.4, "frequency": 3}
_WEIGHTS = dict(SHIPPED_WEIGHTS)


def _drawn_weights(seed: int) -> dict:
    u = uniforms(seed, 0xF10E, 4)
    return {"scale": round(0.3 + 0.4 * u[0], 4), "shift": round((0.2 + 0.4 * u[1]) * (1 if u[2] < 0.5 else -1), 4),
            "frequency": round(2 + 2.5 * u[3], 3)}


def use_toy_weights(seed: int | None) -> dict:
    """The toy velocities made from now on use the shipped numbers (seed None) or numbers drawn from seed."""
    return redraw(_WEIGHTS, SHIPPED_WEIGHTS, seed, _drawn_weights)


def _wave(t, x_t, frequency=3):
    return torch.cos(frequency * t.to(x_t.dtype)).reshape(-1, *([1] * (x_t.dim() - 1)))


class ToyVelocity:
    """v̂(x_t, t) = 0.5 · x_t - 0.4 · cos(3 t): cheap, exact, different at every t (the shipped numbers; a
    grading draws its own)."""

    device = torch.device("cpu")

    def __init__(self, T=None):
        self.weights = dict(_WEIGHTS)

    def __call__(self, x_t: torch.Tensor, t) -> torch.Tensor:
        _check_flow_t(t, x_t)
        w = self.weights
        return w["scale"] * x_t + w["shift"] * _wave(t, x_t, w["frequency"])


class ToyVelocityNetwork(nn.Module):
    """ToyVelocity's formula with its two numbers as trainable parameters (for the loss)."""

    def __init__(self, T=None):
        super().__init__()
        self.weights = dict(_WEIGHTS)
        self.scale = nn.Parameter(torch.tensor(self.weights["scale"], dtype=torch.float64))
        self.shift = nn.Parameter(torch.tensor(self.weights["shift"], dtype=torch.float64))

    def forward(self, x_t: torch.Tensor, t) -> torch.Tensor:
        _check_flow_t(t, x_t)
        return self.scale.to(x_t.dtype) * x_t + self.shift.to(x_t.dtype) * _wave(t, x_t, self.weights["frequency"])


class SpyVelocity:
    """Predicts zeros and records every t it is asked about (`self.seen`)."""

    device = torch.device("cpu")

    def __init__(self):
        self.seen = []

    def __call__(self, x_t: torch.Tensor, t) -> torch.Tensor:
        if isinstance(t, torch.Tensor):
            self.seen.append(t.detach().cpu().clone())
        _check_flow_t(t, x_t)
        return torch.zeros_like(x_t)


VELOCITY_MODELS = {"toy_velocity": ToyVelocity, "toy_velocity_network": ToyVelocityNetwork}
