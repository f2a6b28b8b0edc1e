"""The grader's own models and formulas: small, deterministic, and never the learner's.

- `ToyDenoiser`: a fixed, closed-form ε-model, so a sampler's output can be computed exactly
  (tools/build.py runs the solutions with it; the grader runs your code with it).
  It also checks how it is called: t must be an int64 tensor [B] with values in 1..T.
  Called with labels, model(x_t, t, y), it is a conditional model (notebook 08): y must be an
  int64 tensor [B] in 0..10 (10 = the null label), and each label adds its own offset.
- `SpyDenoiser`: returns zeros and writes down every t it is asked about (for the loss's t).
- `TinyDenoiser`: a small trainable MLP for points, to see that your loss makes a model learn.

The stand-ins (the grader's own q_sample, predict_x0, p_mean, ddim_timesteps, which your other
modules get while one module is graded) live in the specs of their notebooks (STAND_INS in
exercises/test_NN_*.py); _spec.stand_ins() collects them.
"""

import torch
from torch import nn

# mini_diffusion is imported inside functions, not here: the grader must load (and report
# "does not import") even when the package itself is broken.


class ModelMisuse(Exception):
    """Raised by the grader's models when your code calls them the wrong way."""


def _check_t(t, x_t, T: int):
    if not isinstance(t, torch.Tensor):
        raise ModelMisuse(
            f"your code called the model with t = {t!r} ({type(t).__name__}); a denoiser takes t as an int64 "
            f"tensor of shape [B] (one timestep per sample), e.g. torch.full((B,), t)"
        )
    if t.dtype != torch.long or t.shape != (x_t.shape[0],):
        raise ModelMisuse(
            f"your code called the model with t of dtype {t.dtype} and shape {tuple(t.shape)}; a denoiser takes "
            f"an int64 tensor of shape [B] = [{x_t.shape[0]}] (one timestep per sample)"
        )
    if bool((t < 1).any()) or bool((t > T).any()):
        bad = t[(t < 1) | (t > T)][0].item()
        raise ModelMisuse(
            f"your code called the model with t = {bad}; the model knows the timesteps 1..T = 1..{T} "
            f"(t = 0 is clean data, and there is no step after T): look for an off-by-one in t"
        )


# The toy models' numbers: these for the shipped cases (local grading, exercises/expected/); for a grading
# (the Gradescope judge), numbers drawn from its seed (use_toy_weights, called by _maker.Maker), so that no
# submission can know the model its samplers and losses are graded with.
SHIPPED_WEIGHTS = {"scale": 0.5, "shift": 0.3, "period": 7, "label": 0.2, "label_slope": 0.1}
_WEIGHTS = dict(SHIPPED_WEIGHTS)


def redraw(weights: dict, shipped: dict, seed: int | None, draw) -> dict:
    """Set a toy family's numbers `weights` to `shipped` (seed None) or to draw(seed); returns a copy."""
    weights.clear()
    weights.update(shipped if seed is None else draw(int(seed)))
    return dict(weights)


def uniforms(seed: int, salt: int, n: int) -> list:
    """n uniforms in [0, 1) from a grading seed, salted so that each toy family draws its own."""
    return torch.rand(n, generator=torch.Generator().manual_seed(seed ^ salt), dtype=torch.float64).tolist()


def _drawn_weights(seed: int) -> dict:
    u = uniforms(seed, 0x5EED70, 6)
    return {"scale": round(0.3 + 0.4 * u[0], 4), "shift": round((0.2 + 0.3 * u[1]) * (1 if u[2] < 0.5 else -1), 4),
            "period": round(4 + 6 * u[3], 3), "label": round(0.1 + 0.2 * u[4], 4),
            "label_slope": round(0.05 + 0.1 * u[5], 4)}


def use_toy_weights(seed: int | None) -> dict:
    """The toy models made from now on use the shipped numbers (seed None) or numbers drawn from seed."""
    return redraw(_WEIGHTS, SHIPPED_WEIGHTS, seed, _drawn_weights)


def toy_weights() -> dict:
    return dict(_WEIGHTS)


NUM_LABELS = 11  # the labels a conditional toy model knows: 0..9 and the null label 10


def _label_term(y, x_t, weight=0.2):
    """weight · cos(y + 1) for each sample (0.2 in the shipped cases), checked to be int64 labels [B] in 0..10."""
    if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != (x_t.shape[0],):
        got = f"dtype {y.dtype} and shape {tuple(y.shape)}" if isinstance(y, torch.Tensor) else repr(y)
        raise ModelMisuse(f"your code called the conditional model with y of {got}; it takes labels as an int64 "
                          f"tensor of shape [B] = [{x_t.shape[0]}], one per sample in x_t")
    if bool((y < 0).any()) or bool((y >= NUM_LABELS).any()):
        raise ModelMisuse(f"your code called the conditional model with a label {y[(y < 0) | (y >= NUM_LABELS)][0].item()}; "
                          f"it knows 0..{NUM_LABELS - 2} and the null label {NUM_LABELS - 1}")
    return (weight * torch.cos(y.to(x_t.dtype) + 1)).reshape(-1, *([1] * (x_t.dim() - 1)))


class ToyDenoiser:
    """ε̂(x_t, t) = 0.5 · x_t + 0.3 · sin(t / 7): cheap, exact, and different at every t (the numbers are the
    shipped ones; a grading draws its own, use_toy_weights)."""

    device = torch.device("cpu")

    def __init__(self, T: int):
        self.T = T
        self.weights = toy_weights()

    def __call__(self, x_t: torch.Tensor, t, y=None) -> torch.Tensor:
        _check_t(t, x_t, self.T)
        w = self.weights
        wave = torch.sin(t.to(x_t.dtype) / w["period"]).reshape(-1, *([1] * (x_t.dim() - 1)))
        if y is None:
            return w["scale"] * x_t + w["shift"] * wave
        return (w["scale"] * x_t + w["shift"] * wave
                + _label_term(y, x_t, w["label"]) * (1 + w["label_slope"] * x_t))


class ToyNetwork(nn.Module):
    """The ToyDenoiser's formula with its two numbers as trainable parameters (for the loss)."""

    def __init__(self, T: int):
        super().__init__()
        self.T = T
        self.weights = toy_weights()
        self.scale = nn.Parameter(torch.tensor(self.weights["scale"], dtype=torch.float64))
        self.shift = nn.Parameter(torch.tensor(self.weights["shift"], dtype=torch.float64))

    def forward(self, x_t: torch.Tensor, t, y=None) -> torch.Tensor:
        _check_t(t, x_t, self.T)
        wave = torch.sin(t.to(x_t.dtype) / self.weights["period"]).reshape(-1, *([1] * (x_t.dim() - 1)))
        out = self.scale.to(x_t.dtype) * x_t + self.shift.to(x_t.dtype) * wave
        return out if y is None else out + _label_term(y, x_t, self.weights["label"])


class SpyDenoiser:
    """Predicts zeros and records the t of every call (`self.seen`, a list of int64 tensors)."""

    device = torch.device("cpu")

    def __init__(self, T: int):
        self.T = T
        self.seen = []

    def __call__(self, x_t: torch.Tensor, t) -> torch.Tensor:
        if isinstance(t, torch.Tensor) and t.dtype == torch.long:
            self.seen.append(t.detach().cpu().clone())
        _check_t(t, x_t, self.T)
        return torch.zeros_like(x_t)


class TinyDenoiser(nn.Module):
    """A small MLP for 2-D points: [x_t, t/T] -> 64 -> 64 -> ε̂. Trains in seconds on a CPU."""

    def __init__(self, T: int, hidden: int = 64):
        super().__init__()
        self.T = T
        self.net = nn.Sequential(
            nn.Linear(3, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2)
        )

    def forward(self, x_t: torch.Tensor, t) -> torch.Tensor:
        _check_t(t, x_t, self.T)
        time = (t.to(x_t.dtype) / self.T).unsqueeze(1)
        return self.net(torch.cat([x_t, time], dim=1))
