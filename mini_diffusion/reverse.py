# Your exercise file: replace each `raise NotImplementedError(...)` line with your code.
# (Made from solutions/reverse.py by tools/build.py; the notebooks tell you what to write.)
# ruff: noqa: F401, F841  (the imports and names your code will use are already here)
"""Exercises 2.1-2.3 (notebook 02): undoing one step, given the noise.

x_t, x0 and eps have shape [B, ...]; t is an int or an int tensor [B] in 1..T.
"""

import torch

from mini_diffusion.toolkit.common import extract
from mini_diffusion._base.catalog import todo


def predict_x0(x_t: torch.Tensor, t, eps: torch.Tensor, schedule) -> torch.Tensor:
    """The clean data implied by x_t and a noise estimate ε (q_sample solved for x_0):

        x̂_0 = (x_t - √(1 - ᾱ_t) · ε) / √ᾱ_t

    >>> s = linear_schedule(1000); eps = torch.randn(4, 2)
    >>> torch.allclose(predict_x0(q_sample(torch.ones(4, 2), 10, s, eps), 10, eps, s), torch.ones(4, 2))
    True
    """
    raise NotImplementedError(todo("predict_x0"))


def q_posterior(x0: torch.Tensor, x_t: torch.Tensor, t, schedule):
    """Mean and variance of q(x_{t-1} | x_t, x_0), the step back when x_0 is known:

        mean     = √ᾱ_{t-1} · β_t / (1 - ᾱ_t) · x_0  +  √α_t · (1 - ᾱ_{t-1}) / (1 - ᾱ_t) · x_t
        variance = β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) · β_t

    Returns (mean with the shape of x_t, variance of shape [B, 1, ..., 1]). At t = 1,
    ᾱ_0 = 1 so the mean is x_0 and the variance 0.

    >>> mean, var = q_posterior(x0, x_t, 500, linear_schedule(1000))   # x0, x_t: shape [4, 2]
    >>> mean.shape, var.shape
    (torch.Size([4, 2]), torch.Size([4, 1]))
    """
    raise NotImplementedError(todo("q_posterior"))


def p_mean(x_t: torch.Tensor, t, eps: torch.Tensor, schedule) -> torch.Tensor:
    """The mean of the learned reverse step p_θ(x_{t-1} | x_t), from predicted noise ε_θ:

        μ_θ = (x_t - β_t / √(1 - ᾱ_t) · ε_θ) / √α_t

    Equal to q_posterior's mean at x̂_0 = predict_x0(x_t, t, ε_θ).

    >>> mu = p_mean(x_t, t, model(x_t, t), schedule)   # x_t: shape [4, 2], t: shape [4]
    >>> mu.shape
    torch.Size([4, 2])
    """
    raise NotImplementedError(todo("p_mean"))
