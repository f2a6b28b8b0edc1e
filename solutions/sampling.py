"""Exercises 4.1 and 4.2 (notebook 04): DDPM sampling, from pure noise back to data.

model is any denoiser `model(x_t, t) -> eps_hat`, t an int tensor [B] in 1..T.
"""

import torch

from mini_diffusion.toolkit.common import as_t_tensor, call_model, extract, noise_like
from mini_diffusion.toolkit.plumbing import check_every_step, sampler
from .reverse import p_mean

VARIANCES = ("beta", "beta_tilde")


def _check_variance(variance):
    if variance not in VARIANCES:
        raise ValueError(f"variance must be 'beta' (σ_t² = β_t) or 'beta_tilde' (σ_t² = β̃_t); got {variance!r}")


@torch.no_grad()
def ddpm_step(model, x_t: torch.Tensor, t, schedule, noise=None, variance: str = "beta", generator=None):
    """One reverse step of DDPM (Ho et al., 2020, Algorithm 2):

        x_{t-1} = μ_θ(x_t, t) + σ_t · z,   z ~ N(0, I),   and z = 0 at t = 1

    with μ_θ from p_mean and σ_t² = β_t (variance="beta") or
    β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) · β_t (variance="beta_tilde").
    t: int or int tensor [B] (a batch may mix timesteps; samples at t = 1 get no noise).
    noise: z, shape of x_t; drawn with `generator` only when some t > 1.

    >>> x = ddpm_step(model, x, 1000, schedule)   # x_1000 -> x_999
    """
    _check_variance(variance)
    t = as_t_tensor(t, x_t.shape[0], device=x_t.device, T=schedule.T)
    # BEGIN SOLUTION
    eps = call_model(model, x_t, t)
    mean = p_mean(x_t, t, eps, schedule)
    if variance == "beta":
        sigma2 = extract(schedule.betas, t, x_t)
    else:
        alpha_bar_t = extract(schedule.alpha_bars, t, x_t)
        alpha_bar_prev = extract(schedule.alpha_bars, t - 1, x_t, allow_zero=True)
        sigma2 = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t) * extract(schedule.betas, t, x_t)
    not_last = (t > 1).to(x_t.dtype).reshape(sigma2.shape)
    if noise is None and not bool((t > 1).any()):
        return mean
    z = noise_like(x_t, noise, generator)
    return mean + not_last * torch.sqrt(sigma2) * z
    # END SOLUTION


def _check_ddpm_options(arguments):
    _check_variance(arguments["variance"])
    check_every_step(arguments, "ddpm_sample", " For fewer, strided steps of the same kind (ancestral, with noise) use "
                     "ddim_sample(model, shape, schedule, num_steps=..., eta=1.0).")


@sampler("DDPM", prepare=_check_ddpm_options)
def ddpm_sample(model, shape, schedule, num_steps=None, *, variance: str = "beta", generator=None, x_T):
    """Generate samples: start at x_T ~ N(0, I) and apply ddpm_step for t = T, T-1, …, 1.

    Called as ddpm_sample(model, shape, schedule, num_steps=None, *, variance="beta", generator=None,
    x_T=None, trajectory=False, callback=None, progress=False, device=None): the sampler contract.
    shape: the batch shape, e.g. (64, 2). num_steps: None or T; DDPM takes every step (for fewer,
    strided ancestral steps use ddim_sample(..., eta=1.0)). Random numbers are drawn with
    `generator` in this order: x_T, then one z per step for t = T..2 (none at t = 1).
    Returns x_0, or with trajectory=True the list [x_T, x_{T-1}, …, x_0] (T+1 tensors);
    callback(i, t, x) is called after each step, i = 0..T-1, with t the timestep just left and
    x = x_{t-1}; progress=True shows a progress bar.

    You write only the loop. The plumbing (@sampler, mini_diffusion/toolkit/plumbing.py) has
    already checked the arguments and drawn x_T (or taken the one given), and does the rest:
    after each step, `yield t, x` (the timestep just left and the state reached).

    >>> x0 = ddpm_sample(model, (500, 2), linear_schedule(1000), generator=torch.Generator().manual_seed(0))
    >>> x0.shape
    torch.Size([500, 2])
    """
    # BEGIN SOLUTION
    x = x_T
    for t in range(schedule.T, 0, -1):
        x = ddpm_step(model, x, t, schedule, variance=variance, generator=generator)
        yield t, x
    # END SOLUTION
