"""The grader's own models and formulas: small, deterministic, and never the learner's.

- `ToyDenoiser`: a fixed, closed-form ε-model, so a sampler's output can be computed exactly
  (tools/make_expected.py runs the solutions with it; the grader runs your code with it).
  It also checks how it is called: t must be an int64 tensor [B] with values in 1..T.
- `SpyDenoiser`: returns zeros and writes down every t it is asked about (for the loss's t).
- `TinyDenoiser`: a small trainable MLP for points, to see that your loss makes a model learn.
- `STAND_INS`: the formulas other exercise modules build on (q_sample for the loss, predict_x0
  for DDIM, p_mean for DDPM, ddim_timesteps for the fast samplers). While one of your modules
  is graded, its imports from your other modules get these instead, so one mistake costs
  points in one place only.
"""

import torch
from torch import nn

# mini_diffusion is imported inside the stand-ins, not here: the grader must load (and report
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


class ToyDenoiser:
    """ε̂(x_t, t) = 0.5 · x_t + 0.3 · sin(t / 7): cheap, exact, and different at every t."""

    device = torch.device("cpu")

    def __init__(self, T: int):
        self.T = T

    def __call__(self, x_t: torch.Tensor, t) -> torch.Tensor:
        _check_t(t, x_t, self.T)
        wave = torch.sin(t.to(x_t.dtype) / 7).reshape(-1, *([1] * (x_t.dim() - 1)))
        return 0.5 * x_t + 0.3 * wave


class ToyNetwork(nn.Module):
    """The ToyDenoiser's formula with its two numbers as trainable parameters (for the loss)."""

    def __init__(self, T: int):
        super().__init__()
        self.T = T
        self.scale = nn.Parameter(torch.tensor(0.5, dtype=torch.float64))
        self.shift = nn.Parameter(torch.tensor(0.3, dtype=torch.float64))

    def forward(self, x_t: torch.Tensor, t) -> torch.Tensor:
        _check_t(t, x_t, self.T)
        wave = torch.sin(t.to(x_t.dtype) / 7).reshape(-1, *([1] * (x_t.dim() - 1)))
        return self.scale.to(x_t.dtype) * x_t + self.shift.to(x_t.dtype) * wave


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


# --- Stand-ins for the formulas other exercises call -------------------------------------


def q_sample(x0, t, schedule, noise=None, generator=None):
    from mini_diffusion.toolkit.common import extract, noise_like

    noise = noise_like(x0, noise, generator)
    alpha_bar_t = extract(schedule.alpha_bars, t, x0)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


def predict_x0(x_t, t, eps, schedule):
    from mini_diffusion.toolkit.common import extract

    alpha_bar_t = extract(schedule.alpha_bars, t, x_t)
    return (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()


def p_mean(x_t, t, eps, schedule):
    from mini_diffusion.toolkit.common import extract

    beta_t = extract(schedule.betas, t, x_t)
    alpha_t = extract(schedule.alphas, t, x_t)
    alpha_bar_t = extract(schedule.alpha_bars, t, x_t)
    return (x_t - beta_t / (1 - alpha_bar_t).sqrt() * eps) / alpha_t.sqrt()


def ddim_timesteps(T: int, num_steps: int) -> torch.Tensor:
    i = torch.arange(num_steps, dtype=torch.float64)
    return torch.round(T - i * T / num_steps).long()


# module name -> the functions of it that the grader supplies while another module is graded
STAND_INS = {
    "forward": {"q_sample": q_sample},
    "reverse": {"predict_x0": predict_x0, "p_mean": p_mean},
    "ddim": {"ddim_timesteps": ddim_timesteps},
}
