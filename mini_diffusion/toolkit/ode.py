"""Ready helpers of the probability-flow ODE (notebook 07): noise levels, stops, the denoiser, x_T.

The fast samplers of solvers.py (exercises 7.1-7.3) work in the "data plus noise" variable

    x̃ = x_t / √ᾱ_t = x_0 + σ_t ε,        σ_t = √((1 - ᾱ_t) / ᾱ_t)

and solve dx̃/dσ = (x̃ - D(x̃; σ)) / σ from σ_T down to 0. These helpers are the parts that are
not the solver itself: σ_t for every t (sigmas_of), where a sampler with N steps stops
(sigmas_for, with the spacings in SPACINGS: quadratic_timesteps, logsnr_timesteps and
timesteps_nearest, which maps any descending σ's, such as Karras's, onto the model's integer
timesteps), the denoised estimate D of
an ε-model (denoise). (The starting noise x_T is drawn by the samplers' plumbing, plumbing.starting_noise.)
"""

import torch

from mini_diffusion._base import door
from mini_diffusion.toolkit.common import call_model, check_num_steps, extract

SPACINGS = ("trailing", "quadratic", "karras", "logsnr")


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


def timesteps_nearest(schedule, sigmas) -> torch.Tensor:
    """The model's integer timesteps for N descending noise levels σ_0 > … > σ_{N-1}: each σ_i
    goes to the timestep whose σ_t is nearest on a log scale (|log σ_t - log σ_i| smallest, the
    scale on which the stops are spread; σ_t grows with t), and then, so that the N timesteps stay
    distinct and descending within 1..T, it is clamped to

        N - i  ≤  t_i  ≤  t_{i-1} - 1          (t_{-1} = T + 1)

    A stop that would repeat the one before moves one timestep down, and none goes so low that
    the remaining stops no longer fit above 0. This only matters where the σ's are closer
    together than the schedule's own steps (many steps, near t = 1 or t = T); with N = T it
    gives T, T - 1, …, 1. Returns an int64 tensor [N] on the CPU.

    >>> timesteps_nearest(linear_schedule(1000), torch.tensor([157.4, 1.0, 0.01])).tolist()
    [1000, 259, 1]
    """
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64).cpu().flatten()
    num_steps = check_num_steps(len(sigmas), schedule.T)
    if not bool(torch.isfinite(sigmas).all()) or not bool((sigmas > 0).all()):
        raise ValueError(f"the noise levels must be finite and positive; got {sigmas.tolist()}")
    log_levels = sigmas_of(schedule).cpu()[1:].log()  # log σ_t, t = 1..T
    nearest = ((log_levels[None, :] - sigmas.log()[:, None]).abs().argmin(dim=1) + 1).tolist()
    timesteps, above = [], schedule.T + 1
    for i, t in enumerate(nearest):
        above = max(min(t, above - 1), num_steps - i)
        timesteps.append(above)
    return torch.tensor(timesteps, dtype=torch.int64)


def logsnr_timesteps(schedule, num_steps: int) -> torch.Tensor:
    """num_steps timesteps evenly spaced in λ = -log σ (half the log-SNR), from t = T down to the
    smallest timestep t = 1 (DPM-Solver's "time_uniform_logSNR"; the σ's are geometric):

        λ_i = λ_T + i/(N-1) · (λ_1 - λ_T),   i = 0 … N-1      (N = 1: λ_T alone)

    mapped onto the model's timesteps by timesteps_nearest. Returns an int64 tensor, descending.

    >>> logsnr_timesteps(linear_schedule(1000), 5).tolist()
    [1000, 723, 303, 31, 1]
    """
    check_num_steps(num_steps, schedule.T)
    levels = sigmas_of(schedule).cpu()
    lam_T, lam_1 = -levels[schedule.T].log(), -levels[1].log()
    lam = lam_T + torch.linspace(0.0, 1.0, num_steps, dtype=torch.float64) * (lam_1 - lam_T)
    return timesteps_nearest(schedule, torch.exp(-lam))


def karras_timesteps(schedule, num_steps: int, karras=None, rho: float = 7.0) -> torch.Tensor:
    """num_steps timesteps at Karras et al.'s σ's (2022, eq. 5, ρ = 7) between σ_max = σ_T and
    σ_min = σ_1, the smallest noise level the model knows, mapped onto the model's timesteps by
    timesteps_nearest. karras_sigmas is exercise 7.4: `karras` when given (the samplers pass the one
    their module defines), else the one in use now (yours, or the lent reference).
    Returns an int64 tensor, descending.

    >>> karras_timesteps(linear_schedule(1000), 5).tolist()
    [1000, 844, 594, 143, 1]
    """
    check_num_steps(num_steps, schedule.T)
    levels = sigmas_of(schedule).cpu()
    karras = karras or door.implementation("7.4")
    sigmas = karras(float(levels[1]), float(levels[schedule.T]), num_steps, rho=rho)
    return timesteps_nearest(schedule, sigmas)


def sigmas_for(schedule, num_steps: int, spacing: str = "trailing", trailing=None, karras=None):
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
      "karras"     t_i = karras_timesteps(schedule, N): Karras et al.'s σ's with ρ = 7 from σ_T
                   down to σ_1, each mapped to the timestep with the nearest σ_t (timesteps_nearest).
                   karras_sigmas is exercise 7.4: `karras` when given (the samplers pass the one
                   their module defines), else the one in use now.
      "logsnr"     t_i = logsnr_timesteps(schedule, N): evenly spaced in λ = -log σ from σ_T down
                   to σ_1, mapped the same way.
    In every spacing σ_i is then the σ of the model's own timestep t_i, so the model is asked
    only where it was trained. "karras" and "logsnr" end at t = 1, the smallest σ the model knows.

    Returns (timesteps: int64 tensor [N], sigmas: float64 tensor [N+1]), both on the CPU.

    >>> timesteps, sigmas = sigmas_for(linear_schedule(1000), 4)
    >>> timesteps.tolist(), [round(s, 3) for s in sigmas.tolist()]
    ([1000, 750, 500, 250], [157.407, 17.247, 3.424, 0.953, 0.0])
    """
    if spacing == "trailing":
        # DDIM's trailing steps (exercise 6.1): the caller's ddim_timesteps, or the one in use now
        timesteps = (trailing or door.implementation("6.1"))(schedule.T, num_steps)
    elif spacing == "quadratic":
        timesteps = quadratic_timesteps(schedule.T, num_steps)
    elif spacing == "karras":
        timesteps = karras_timesteps(schedule, num_steps, karras)
    elif spacing == "logsnr":
        timesteps = logsnr_timesteps(schedule, num_steps)
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
