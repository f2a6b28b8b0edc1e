"""Ready helpers of the probability-flow ODE (notebook 07): noise levels, stops, the denoiser, x_T.

The fast samplers of solvers.py (exercises 7.1-7.3) work in the "data plus noise" variable

    x̃ = x_t / √ᾱ_t = x_0 + σ_t ε,        σ_t = √((1 - ᾱ_t) / ᾱ_t)

and solve dx̃/dσ = (x̃ - D(x̃; σ)) / σ from σ_T down to 0. These helpers are the parts that are
not the solver itself: σ_t for every t (sigmas_of), where a sampler with N steps stops
(sigmas_for, with the spacings in SPACINGS and quadratic_timesteps), the denoised estimate D of
an ε-model (denoise), and the starting noise x_T (starting_noise).
"""

import torch

from mini_diffusion._course import seam
from mini_diffusion.toolkit.common import call_model, check_num_steps, extract, model_device, noise_like

SPACINGS = ("trailing", "quadratic")


def sigmas_of(schedule) -> torch.Tensor:
    """The noise level of every step, as a standard deviation in the x̃ = x_t / √ᾱ_t coordinates:

        σ_t = √((1 - ᾱ_t) / ᾱ_t),   t = 0..T   (σ_0 = 0)

    Returns a float64 tensor of length T+1 on the schedule's device. σ_t² is 1 / SNR_t.

    >>> sigmas_of(linear_schedule(1000))[[0, 1, 1000]]
    tensor([0.0000e+00, 1.0001e-02, 1.5741e+02], dtype=torch.float64)
    """
    return torch.sqrt((1.0 - schedule.alpha_bars) / schedule.alpha_bars)


def quadratic_timesteps(T: int, num_steps: int) -> torch.Tensor:
    """num_steps timesteps from T down, crowded near t = 0 where the ODE's paths bend most
    (the "quadratic" subsequence of DDIM, Song et al., 2020, appendix D.2):

        t_i = round(T · ((N - i) / N)²),   i = 0 … N-1     (then raised to at least N - i)

    The raise only matters for N > √T, where rounding would repeat small timesteps; it keeps
    them distinct, down to 1. Returns an int64 tensor, descending.

    >>> quadratic_timesteps(1000, 10).tolist()
    [1000, 810, 640, 490, 360, 250, 160, 90, 40, 10]
    """
    check_num_steps(num_steps, T)
    remaining = torch.arange(num_steps, 0, -1, dtype=torch.float64)  # N - i
    return torch.maximum(torch.round(T * (remaining / num_steps) ** 2), remaining).long()


def sigmas_for(schedule, num_steps: int, spacing: str = "trailing", trailing=None):
    """Where an ODE sampler with num_steps steps stops: timesteps t_0 > … > t_{N-1} and their σ's,
    then σ_N = 0 (clean data).

        σ_i = σ_{t_i},   i = 0..N-1,      σ_N = 0

    The network was trained only at the integer timesteps 1..T, so we evaluate it only there.
    spacing picks the t_i:
      "trailing"   t_i = ddim_timesteps(T, N): T, T - T/N, …, T/N, DDIM's steps (and those of
                   diffusers' schedulers with timestep_spacing="trailing"). The default.
                   ddim_timesteps is exercise 6.1: `trailing` when given (the samplers pass the one
                   their module imports), else the one in use now (yours, or the lent reference).
      "quadratic"  t_i = quadratic_timesteps(T, N): more stops at small t, and a last jump to
                   σ = 0 from much closer by.

    Returns (timesteps: int64 tensor [N], sigmas: float64 tensor [N+1]), both on the CPU.

    >>> timesteps, sigmas = sigmas_for(linear_schedule(1000), 4)
    >>> timesteps.tolist(), [round(s, 3) for s in sigmas.tolist()]
    ([1000, 750, 500, 250], [157.407, 17.247, 3.424, 0.953, 0.0])
    """
    if spacing == "trailing":
        # DDIM's trailing steps (exercise 6.1): the caller's ddim_timesteps, or the one in use now
        timesteps = (trailing or seam.implementation("6.1"))(schedule.T, num_steps)
    elif spacing == "quadratic":
        timesteps = quadratic_timesteps(schedule.T, num_steps)
    else:
        raise ValueError(f"spacing must be one of {', '.join(map(repr, SPACINGS))}; got {spacing!r}")
    sigmas = sigmas_of(schedule).cpu()[timesteps]
    return timesteps, torch.cat([sigmas, sigmas.new_zeros(1)])


def denoise(model, x_tilde: torch.Tensor, t, schedule) -> torch.Tensor:
    """The denoised estimate D(x̃; σ_t) = x̂_0 of the ε-model, in the x̃ coordinates:

        x_t = √ᾱ_t · x̃,    ε̂ = model(x_t, t),    D = x̃ - σ_t · ε̂

    This is predict_x0(x_t, t, ε̂) of notebook 02 written in x̃: the network still sees x_t, the
    input it was trained on. x_tilde: shape [B, ...]; t: int or int tensor [B] in 1..T.

    >>> x0_hat = denoise(model, x_tilde, 1000, schedule)
    >>> x0_hat.shape == x_tilde.shape
    True
    """
    alpha_bar_t = extract(schedule.alpha_bars, t, x_tilde)  # also checks that t lies in 1..T
    sigma_t = torch.sqrt((1.0 - alpha_bar_t) / alpha_bar_t)
    eps = call_model(model, torch.sqrt(alpha_bar_t) * x_tilde, t)
    return x_tilde - sigma_t * eps


def starting_noise(model, shape, generator=None, x_T=None, device=None) -> torch.Tensor:
    """x_T ~ N(0, I) of the given shape on `device` (default: the model's), drawn with
    `generator`, or the x_T given, checked and moved there. This is noise in the x variable; a
    sampler scales it to x̃_T = x_T / √ᾱ_T.

    >>> starting_noise(model, (3, 2), generator=torch.Generator().manual_seed(0)).shape
    torch.Size([3, 2])
    """
    device = device if device is not None else model_device(model)
    if x_T is not None:
        if not isinstance(x_T, torch.Tensor) or tuple(x_T.shape) != tuple(shape):
            got = tuple(x_T.shape) if isinstance(x_T, torch.Tensor) else type(x_T).__name__
            raise ValueError(f"x_T must be a tensor of the sample shape {tuple(shape)}; got {got}")
        return x_T.to(device)
    return noise_like(torch.empty(shape, device=device), None, generator)
