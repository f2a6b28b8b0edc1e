# Your exercise file: replace each `raise NotImplementedError(...)` line with your code.
# (Made from solutions/solvers.py by tools/build.py; the notebooks tell you what to write.)
"""Exercises 7.1-7.3 (notebook 07): fast samplers that solve the probability-flow ODE.

Divide the forward process x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε by √ᾱ_t and it becomes "data plus noise":

    x̃ = x_t / √ᾱ_t = x_0 + σ_t ε,        σ_t = √((1 - ᾱ_t) / ᾱ_t)

(σ_t is a standard deviation; σ_0 = 0 is clean data, and σ_T ≈ 157 for the linear schedule with
T = 1000.) Reverse DDPM walks back from noise at random; a deterministic path passes through the
same distributions at every σ: the probability-flow ODE (Song et al., 2021). In x̃ it reads
(Karras et al., 2022, "Elucidating the Design Space of Diffusion-Based Generative Models",
eq. 1 with σ(t) = t and the score written as (D - x̃) / σ²):

    dx̃/dσ = (x̃ - D(x̃; σ)) / σ = ε̂

where D(x̃; σ) is the denoised estimate x̂_0. Sampling means solving it from σ_T down to 0 with an
ODE solver, and a better solver needs fewer network calls. DDIM with eta = 0 is Euler's method on
this ODE.

model is any denoiser `model(x_t, t) -> eps_hat`; the samplers ask it only at the integer t it
was trained on (see sigmas_for) and return x_0 of shape `shape`.
"""

import math

import torch

from mini_diffusion.toolkit.common import call_model, check_num_steps, extract, model_device, noise_like
from .ddim import ddim_timesteps
from mini_diffusion._course.catalog import todo


def sigmas_of(schedule) -> torch.Tensor:
    """The noise level of every step, as a standard deviation in the x̃ = x_t / √ᾱ_t coordinates:

        σ_t = √((1 - ᾱ_t) / ᾱ_t),   t = 0..T   (σ_0 = 0)

    Returns a float64 tensor of length T+1 on the schedule's device. σ_t² is 1 / SNR_t.

    >>> sigmas_of(linear_schedule(1000))[[0, 1, 1000]]
    tensor([0.0000e+00, 1.0001e-02, 1.5741e+02], dtype=torch.float64)
    """
    return torch.sqrt((1.0 - schedule.alpha_bars) / schedule.alpha_bars)


SPACINGS = ("trailing", "quadratic")


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


def sigmas_for(schedule, num_steps: int, spacing: str = "trailing"):
    """Where an ODE sampler with num_steps steps stops: timesteps t_0 > … > t_{N-1} and their σ's,
    then σ_N = 0 (clean data).

        σ_i = σ_{t_i},   i = 0..N-1,      σ_N = 0

    The network was trained only at the integer timesteps 1..T, so we evaluate it only there.
    spacing picks the t_i:
      "trailing"   t_i = ddim_timesteps(T, N): T, T - T/N, …, T/N, DDIM's steps (and those of
                   diffusers' schedulers with timestep_spacing="trailing"). The default.
      "quadratic"  t_i = quadratic_timesteps(T, N): more stops at small t, and a last jump to
                   σ = 0 from much closer by.

    Returns (timesteps: int64 tensor [N], sigmas: float64 tensor [N+1]), both on the CPU.

    >>> timesteps, sigmas = sigmas_for(linear_schedule(1000), 4)
    >>> timesteps.tolist(), [round(s, 3) for s in sigmas.tolist()]
    ([1000, 750, 500, 250], [157.407, 17.247, 3.424, 0.953, 0.0])
    """
    if spacing == "trailing":
        timesteps = ddim_timesteps(schedule.T, num_steps)
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
    """
    alpha_bar_t = extract(schedule.alpha_bars, t, x_tilde)  # also checks that t lies in 1..T
    sigma_t = torch.sqrt((1.0 - alpha_bar_t) / alpha_bar_t)
    eps = call_model(model, torch.sqrt(alpha_bar_t) * x_tilde, t)
    return x_tilde - sigma_t * eps


def starting_noise(model, shape, generator=None, x_T=None) -> torch.Tensor:
    """x_T ~ N(0, I) of the given shape on the model's device (drawn with `generator`), or the
    x_T given, checked. This is noise in the x variable; a sampler scales it to x̃_T = x_T / √ᾱ_T."""
    if x_T is not None:
        if not isinstance(x_T, torch.Tensor) or tuple(x_T.shape) != tuple(shape):
            got = tuple(x_T.shape) if isinstance(x_T, torch.Tensor) else type(x_T).__name__
            raise ValueError(f"x_T must be a tensor of the sample shape {tuple(shape)}; got {got}")
        return x_T.to(model_device(model))
    return noise_like(torch.empty(shape, device=model_device(model)), None, generator)


@torch.no_grad()
def euler_sample(
    model, shape, schedule, num_steps: int, generator=None, x_T=None, spacing: str = "trailing"
) -> torch.Tensor:
    """Euler's method on the probability-flow ODE, from σ_0 = σ_T down to σ_N = 0
    (Karras et al., 2022, Algorithm 1 without its second-order correction):

        start:   x̃_T     = x_T / √ᾱ_T = x_T · √(1 + σ_0²)       (σ_0 = σ_T)
        step i:  d_i     = (x̃_i - D(x̃_i; σ_i)) / σ_i             the slope dx̃/dσ at σ_i
                 x̃_{i+1} = x̃_i + (σ_{i+1} - σ_i) · d_i

    with (t_i, σ_i) from sigmas_for(schedule, num_steps, spacing). x̃_i is the state at the i-th
    stop σ_i (i counts the sampler's stops, so x̃_i with i = 0 is the start, not clean data). At
    σ_N = 0, x̃ = x, so x̃_N is the sample x_0.
    One network call per step (NFE = num_steps). With the default spacing it takes DDIM's steps,
    and gives DDIM's result (eta = 0) to rounding.

    shape: e.g. (500, 2); x_T: the starting noise (else drawn with `generator`); spacing:
    "trailing" or "quadratic" (see sigmas_for). Returns x_0 of that shape.

    >>> x0 = euler_sample(model, (500, 2), schedule, 20, generator=torch.Generator().manual_seed(0))
    """
    timesteps, sigmas = sigmas_for(schedule, num_steps, spacing)
    x_T = starting_noise(model, shape, generator, x_T)
    raise NotImplementedError(todo("euler_sample"))


@torch.no_grad()
def heun_sample(
    model, shape, schedule, num_steps: int, generator=None, x_T=None, spacing: str = "trailing"
) -> torch.Tensor:
    """Heun's method (second order) on the probability-flow ODE: Karras et al., 2022,
    Algorithm 1 with no churn (deterministic). Each step takes an Euler step, looks at the slope
    where it landed, and redoes the step with the average of the two slopes:

        d_i      = (x̃_i - D(x̃_i; σ_i)) / σ_i
        x̃'       = x̃_i + (σ_{i+1} - σ_i) · d_i                 (Euler's guess)
        d'       = (x̃' - D(x̃'; σ_{i+1})) / σ_{i+1}
        x̃_{i+1}  = x̃_i + (σ_{i+1} - σ_i) · (d_i + d') / 2

    The last step (σ_{i+1} = 0) keeps Euler's guess: the slope at σ = 0 is undefined (and the
    model has no timestep for it). The start is x̃_T = x_T · √(1 + σ_0²), as in euler_sample.
    Network calls: 2 · num_steps - 1.

    >>> x0 = heun_sample(model, (500, 2), schedule, 10, x_T=torch.randn(500, 2))
    """
    timesteps, sigmas = sigmas_for(schedule, num_steps, spacing)
    x_T = starting_noise(model, shape, generator, x_T)
    raise NotImplementedError(todo("heun_sample"))


@torch.no_grad()
def dpm_solver_sample(
    model, shape, schedule, num_steps: int, generator=None, x_T=None, spacing: str = "trailing"
) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al., 2022, "DPM-Solver++: Fast Solver for Guided Sampling of
    Diffusion Probabilistic Models", Algorithm 2): a second-order multistep solver that works with
    the data prediction D and the log-SNR time λ = -log σ.

    In λ the ODE's linear part can be integrated exactly; only D is approximated. With the step
    h_i = λ_{i+1} - λ_i = log(σ_i / σ_{i+1}):

        first order (DDIM):   x̃_{i+1} = (σ_{i+1}/σ_i) · x̃_i + (1 - σ_{i+1}/σ_i) · D_i
        second order:         the same with D_i replaced by
                              D_i + h_i / (2 h_{i-1}) · (D_i - D_{i-1})

    where D_i = D(x̃_i; σ_i). The second-order form reuses the previous step's D_{i-1} (a line
    through the last two estimates, in λ), so it costs no extra network call: NFE = num_steps.
    The first step (no D_{i-1} yet) and the last one (σ_N = 0, h = ∞) are first order; the last
    one therefore returns D_{N-1}. The start is x̃_T = x_T · √(1 + σ_0²), as in euler_sample.

    >>> x0 = dpm_solver_sample(model, (64, 1, 8, 8), schedule, 10, generator=torch.Generator().manual_seed(0))
    """
    timesteps, sigmas = sigmas_for(schedule, num_steps, spacing)
    x_T = starting_noise(model, shape, generator, x_T)
    raise NotImplementedError(todo("dpm_solver_sample"))
