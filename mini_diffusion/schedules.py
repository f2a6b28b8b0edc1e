# Your exercise file: replace each `raise NotImplementedError(...)` line with your code.
# (Made from solutions/schedules.py by tools/build.py; the notebooks tell you what to write.)
# ruff: noqa: F401, F841  (the imports and names your code will use are already here)
"""Exercises 1.1, 1.2 (notebook 01) and 5.1-5.3 (notebook 05): noise schedules.

Conventions: β_1..β_T is a tensor of length T; ᾱ_0..ᾱ_T has length T+1 with ᾱ_0 = 1,
so index t is timestep t. Everything here is float64.
"""

import math

import torch
from mini_diffusion._base.catalog import todo


def linear_betas(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """β_1..β_T rising in equal steps from beta_start to beta_end (Ho et al., 2020).

        β_t = beta_start + (beta_end - beta_start) · (t - 1) / (T - 1),   t = 1..T

    Returns a float64 tensor of shape [T] (β_1 first). With T = 1 it is [beta_start].

    >>> linear_betas(5, 0.1, 0.5)
    tensor([0.1000, 0.2000, 0.3000, 0.4000, 0.5000], dtype=torch.float64)
    """
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive integer; got {T!r}")
    raise NotImplementedError(todo("linear_betas"))


def alpha_bars_from_betas(betas: torch.Tensor) -> torch.Tensor:
    """ᾱ_0..ᾱ_T from β_1..β_T:  α_t = 1 - β_t,  ᾱ_t = α_1 · α_2 · … · α_t,  ᾱ_0 = 1.

    betas: shape [T], every β_t in (0, 1). Returns float64, shape [T+1].

    >>> alpha_bars_from_betas(torch.tensor([0.5, 0.5]))
    tensor([1.0000, 0.5000, 0.2500], dtype=torch.float64)
    """
    betas = torch.as_tensor(betas, dtype=torch.float64)
    if betas.dim() != 1 or not bool(((betas > 0) & (betas < 1)).all()):
        raise ValueError("betas must be a 1-D tensor β_1..β_T with every β_t in (0, 1)")
    raise NotImplementedError(todo("alpha_bars_from_betas"))


def cosine_alpha_bars(T: int = 1000, s: float = 0.008) -> torch.Tensor:
    """ᾱ_0..ᾱ_T of the cosine schedule (Nichol & Dhariwal, 2021):

        ᾱ_t = f(t) / f(0),   f(t) = cos²( (t/T + s) / (1 + s) · π/2 )

    The small offset s keeps β_t from being vanishingly small near t = 0.
    Returns float64, shape [T+1], with ᾱ_0 = 1 and ᾱ_T ≈ 0.

    >>> cosine_alpha_bars(4)[0], round(float(cosine_alpha_bars(4)[2]), 4)
    (tensor(1., dtype=torch.float64), 0.4938)
    """
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive integer; got {T!r}")
    raise NotImplementedError(todo("cosine_alpha_bars"))


def betas_from_alpha_bars(alpha_bars: torch.Tensor, max_beta: float = 0.999) -> torch.Tensor:
    """β_1..β_T back from ᾱ_0..ᾱ_T, capped at max_beta:

        β_t = min(1 - ᾱ_t / ᾱ_{t-1}, max_beta)

    The cap matters at t = T for the cosine schedule, where ᾱ_T ≈ 0 would give β_T = 1.
    alpha_bars: shape [T+1] starting with ᾱ_0 = 1. Returns float64, shape [T].

    >>> betas_from_alpha_bars(torch.tensor([1.0, 0.5, 0.25]))
    tensor([0.5000, 0.5000], dtype=torch.float64)
    """
    alpha_bars = torch.as_tensor(alpha_bars, dtype=torch.float64)
    if alpha_bars.dim() != 1 or alpha_bars.numel() < 2:
        raise ValueError("alpha_bars must be a 1-D tensor ᾱ_0..ᾱ_T of length T+1 >= 2")
    raise NotImplementedError(todo("betas_from_alpha_bars"))


def snr(alpha_bars: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio of x_t:  SNR(t) = ᾱ_t / (1 - ᾱ_t).

    Same shape as alpha_bars (infinite at t = 0, where there is no noise).
    Plot log(SNR) to compare schedules: the cosine schedule falls more evenly.

    >>> snr(torch.tensor([0.5, 0.2]))
    tensor([1.0000, 0.2500])
    """
    alpha_bars = torch.as_tensor(alpha_bars)
    raise NotImplementedError(todo("snr"))
