# Your exercise file: replace each `raise NotImplementedError(...)` line with your code.
# (Made from solutions/ddim.py by tools/build.py; the notebooks tell you what to write.)
# ruff: noqa: F401, F841  (the imports and names your code will use are already here)
"""Exercises 6.1-6.3 (notebook 06): DDIM (Song et al., 2020), sampling with fewer steps.

DDIM keeps the trained ε-model and changes only the sampler: it jumps between the steps of a
short subsequence, deterministically when eta = 0.
"""

import torch

from mini_diffusion.toolkit.common import as_t_tensor, call_model, check_num_steps, extract, noise_like
from mini_diffusion.toolkit.plumbing import sampler
from .reverse import predict_x0
from mini_diffusion._base.catalog import todo


def ddim_timesteps(T: int, num_steps: int) -> torch.Tensor:
    """num_steps timesteps from T downwards, evenly spaced and "trailing" (they start at T):

        τ_i = round(T - i · T / num_steps),   i = 0 … num_steps-1

    Returns an int64 tensor, descending, with τ_0 = T. The sampler then steps
    τ_0 → τ_1 → … → τ_{num_steps-1} → 0.

    >>> ddim_timesteps(1000, 20)[:3], ddim_timesteps(1000, 20)[-1]
    (tensor([1000,  950,  900]), tensor(50))
    """
    check_num_steps(num_steps, T)
    raise NotImplementedError(todo("ddim_timesteps"))


@torch.no_grad()
def ddim_step(model, x_t: torch.Tensor, t, t_prev, schedule, eta: float = 0.0, noise=None, generator=None):
    """One DDIM update from step t to an earlier step t_prev (t_prev = 0 means clean data, ᾱ_0 = 1):

        x̂_0     = (x_t - √(1-ᾱ_t) ε_θ) / √ᾱ_t
        σ       = eta · √((1-ᾱ_prev) / (1-ᾱ_t)) · √(1 - ᾱ_t / ᾱ_prev)
        x_prev  = √ᾱ_prev · x̂_0  +  √(1 - ᾱ_prev - σ²) · ε_θ  +  σ · z

    eta = 0 is deterministic DDIM; eta = 1 with t_prev = t-1 is DDPM with σ² = β̃_t.
    noise: z, drawn with `generator` only when eta > 0.

    >>> x = ddim_step(model, x, 1000, 950, schedule)   # x_1000 -> x_950
    >>> x.shape
    torch.Size([500, 2])
    """
    t = as_t_tensor(t, x_t.shape[0], device=x_t.device, T=schedule.T)
    t_prev = as_t_tensor(t_prev, x_t.shape[0], device=x_t.device, T=schedule.T, allow_zero=True)
    if bool((t_prev >= t).any()):
        raise ValueError("t_prev must be smaller than t: DDIM steps go backwards in time")
    raise NotImplementedError(todo("ddim_step"))


def _check_ddim_options(arguments):
    check_num_steps(arguments["num_steps"], arguments["schedule"].T)


@sampler("DDIM", prepare=_check_ddim_options)
def ddim_sample(model, shape, schedule, num_steps: int = 50, *, eta: float = 0.0, generator=None, x_T):
    """Generate samples with DDIM: x_T ~ N(0, I), then ddim_step along ddim_timesteps(T, num_steps)
    and finally to t_prev = 0. num_steps network calls instead of T.

    Called as ddim_sample(model, shape, schedule, num_steps=50, *, eta=0.0, <the six common
    options>), as in ddpm_sample. eta = 0 is Euler's method on the probability-flow ODE
    (solvers.euler_sample, notebook 07). Returns x_0, or with trajectory=True the list
    [x_T, …, x_0] (num_steps + 1 tensors); callback(i, t, x) after each step, i = 0..num_steps-1,
    with t the timestep just left and x = x_{t_prev}.

    You write only the loop, starting from x_T, and `yield t, x` after each step (the plumbing,
    @sampler, does the rest, as in ddpm_sample).

    >>> x0 = ddim_sample(model, (64, 1, 8, 8), schedule, num_steps=50)
    >>> x0.shape
    torch.Size([64, 1, 8, 8])
    """
    raise NotImplementedError(todo("ddim_sample"))
