# Your exercise file: replace each `raise NotImplementedError(...)` line with your code.
# (Made from solutions/solvers.py by tools/build.py; the notebooks tell you what to write.)
# ruff: noqa: F401, F841  (the imports and names your code will use are already here)
"""Exercises 7.1-7.4 (notebook 07): fast samplers that solve the probability-flow ODE.

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
this ODE (see euler_sample).

The ready helpers the samplers use (sigmas_of, sigmas_for, quadratic_timesteps, denoise) are in
mini_diffusion/toolkit/ode.py; this file holds only the three solvers and
(exercise 7.4, optional) the Karras noise levels their spacing="karras" uses.

model is any denoiser `model(x_t, t) -> eps_hat`; the samplers ask it only at the integer t it
was trained on (see sigmas_for) and return x_0 of shape `shape`. They follow the sampler contract,
(model, shape, schedule, num_steps, *, spacing="trailing", <the six common options>): generator,
x_T, trajectory (the list [x_T, …, x_0] of states, in the x variable), callback(i, t, x) (after
step i, which left the stop t = t_i), progress, device; spacing is "trailing", "quadratic",
"karras" or "logsnr" (see sigmas_for). As in every sampler, you write the loop only: the
plumbing (@sampler) draws x_T and keeps the trajectory. The solvers step in x̃, so each step
yields `t, x̃, σ_{i+1}`: the stop left, the state reached and its noise level (the plumbing
reports it in the x variable, x̃ / √(1 + σ²)).
"""

import math

import torch

from mini_diffusion.toolkit.ode import denoise, sigmas_for, sigmas_of  # noqa: F401  (sigmas_of: for you)
from mini_diffusion.toolkit.plumbing import sampler
from .ddim import ddim_timesteps
from mini_diffusion._base.catalog import todo


@sampler("Euler")
def euler_sample(model, shape, schedule, num_steps: int, *, spacing: str = "trailing", x_T):
    """Euler's method on the probability-flow ODE, from σ_0 = σ_T down to σ_N = 0
    (Karras et al., 2022, Algorithm 1 without its second-order correction):

        start:   x̃_T     = x_T / √ᾱ_T = x_T · √(1 + σ_0²)       (σ_0 = σ_T)
        step i:  d_i     = (x̃_i - D(x̃_i; σ_i)) / σ_i             the slope dx̃/dσ at σ_i
                 x̃_{i+1} = x̃_i + (σ_{i+1} - σ_i) · d_i

    with (t_i, σ_i) from sigmas_for(schedule, num_steps, spacing). x̃_i is the state at the i-th
    stop σ_i (i counts the sampler's stops, so x̃_i with i = 0 is the start, not clean data). At
    σ_N = 0, x̃ = x, so x̃_N is the sample x_0.
    One network call per step (NFE = num_steps).

    Euler here is DDIM with eta = 0. Since d_i = ε̂ (the slope is the predicted noise) and
    D = x̃_i - σ_i ε̂, Euler's step is x̃_{i+1} = D + σ_{i+1} ε̂; ddim_step with eta = 0 computes
    x_prev = √ᾱ_prev x̂_0 + √(1 - ᾱ_prev) ε̂, which divided by √ᾱ_prev is the same x̂_0 + σ_prev ε̂.
    With the default spacing both take the same steps, so euler_sample gives ddim_sample's result
    to rounding (tests/test_solvers.py, test_euler_is_ddim_with_eta_zero_on_the_same_steps).

    shape: e.g. (500, 2); x_T: the starting noise (else drawn with `generator`, on `device`, by
    default the model's); spacing: "trailing", "quadratic", "karras" or "logsnr" (see sigmas_for). Returns x_0 of
    that shape, or with trajectory=True the list [x_T, …, x_0] of num_steps + 1 states in the x
    variable (x_{t_i} = x̃_i / √(1 + σ_i²)). After each step, `yield t, x, sigma_next` (the stop
    left, the x̃ reached and its σ); the plumbing does the rest.

    >>> x0 = euler_sample(model, (500, 2), schedule, 20, generator=torch.Generator().manual_seed(0))
    >>> x0.shape
    torch.Size([500, 2])
    """
    timesteps, sigmas = sigmas_for(schedule, num_steps, spacing, trailing=ddim_timesteps, karras=karras_sigmas)
    raise NotImplementedError(todo("euler_sample"))


@sampler("Heun")
def heun_sample(model, shape, schedule, num_steps: int, *, spacing: str = "trailing", x_T):
    """Heun's method (second order) on the probability-flow ODE: Karras et al., 2022,
    Algorithm 1 with no churn (deterministic). Each step takes an Euler step, looks at the slope
    where it landed, and redoes the step with the average of the two slopes:

        d_i      = (x̃_i - D(x̃_i; σ_i)) / σ_i
        x̃'       = x̃_i + (σ_{i+1} - σ_i) · d_i                 (Euler's guess)
        d'       = (x̃' - D(x̃'; σ_{i+1})) / σ_{i+1}
        x̃_{i+1}  = x̃_i + (σ_{i+1} - σ_i) · (d_i + d') / 2

    The last step (σ_{i+1} = 0) keeps Euler's guess: the slope at σ = 0 is undefined (and the
    model has no timestep for it). The start is x̃_T = x_T · √(1 + σ_0²), as in euler_sample.
    Network calls: 2 · num_steps - 1. The other arguments, and what it returns, are as in
    euler_sample.

    >>> x0 = heun_sample(model, (500, 2), schedule, 10, x_T=torch.randn(500, 2))
    >>> x0.shape
    torch.Size([500, 2])
    """
    timesteps, sigmas = sigmas_for(schedule, num_steps, spacing, trailing=ddim_timesteps, karras=karras_sigmas)
    raise NotImplementedError(todo("heun_sample"))


@sampler("DPM-Solver++")
def dpm_solver_sample(model, shape, schedule, num_steps: int, *, spacing: str = "trailing", x_T):
    """DPM-Solver++(2M) (Lu et al., 2022, "DPM-Solver++: Fast Solver for Guided Sampling of
    Diffusion Probabilistic Models", Algorithm 2): a second-order multistep solver that works with
    the data prediction D and the time λ = -log σ. (λ is half the log-SNR: SNR = 1/σ², so
    log SNR = -2 log σ = 2λ; the paper's λ_t = log(α_t/σ_t) is this λ.)

    In λ the ODE's linear part can be integrated exactly; only D is approximated. With the step
    h_i = λ_{i+1} - λ_i = log(σ_i / σ_{i+1}):

        first order (DDIM):   x̃_{i+1} = (σ_{i+1}/σ_i) · x̃_i + (1 - σ_{i+1}/σ_i) · D_i
        second order:         the same with D_i replaced by
                              D_i + h_i / (2 h_{i-1}) · (D_i - D_{i-1})

    where D_i = D(x̃_i; σ_i). The second-order form reuses the previous step's D_{i-1} (a line
    through the last two estimates, in λ), so it costs no extra network call: NFE = num_steps.
    The first step (no D_{i-1} yet) and the last one (σ_N = 0, h = ∞) are first order; the last
    one therefore returns D_{N-1}. The start is x̃_T = x_T · √(1 + σ_0²), as in euler_sample;
    the other arguments, and what it returns, are as there too.

    >>> x0 = dpm_solver_sample(model, (64, 1, 8, 8), schedule, 10, generator=torch.Generator().manual_seed(0))
    >>> x0.shape
    torch.Size([64, 1, 8, 8])
    """
    timesteps, sigmas = sigmas_for(schedule, num_steps, spacing, trailing=ddim_timesteps, karras=karras_sigmas)
    raise NotImplementedError(todo("dpm_solver_sample"))


def karras_sigmas(sigma_min: float, sigma_max: float, num_steps: int, rho: float = 7.0) -> torch.Tensor:
    """The noise levels of Karras et al. (2022, eq. 5): num_steps σ's from sigma_max down to
    sigma_min, evenly spaced in σ^(1/ρ):

        σ_i = (σ_max^(1/ρ) + i/(N-1) · (σ_min^(1/ρ) - σ_max^(1/ρ)))^ρ,   i = 0 … N-1

    (N = 1: σ_max alone). ρ = 1 is even spacing in σ; the larger ρ, the more the stops crowd at
    small σ, where the paths bend (ρ → ∞ is even spacing in log σ). Karras et al. found ρ = 7
    best for images. The samplers' spacing="karras" (see sigmas_for) maps these σ's, from σ_T down
    to σ_1, onto the model's timesteps. Returns a float64 tensor [N], descending.

    >>> karras_sigmas(0.01, 157.4, 4)
    tensor([1.5740e+02, 2.1104e+01, 1.2463e+00, 1.0000e-02], dtype=torch.float64)
    """
    raise NotImplementedError(todo("karras_sigmas"))
