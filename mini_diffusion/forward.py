# Your exercise file: replace each `raise NotImplementedError(...)` line with your code.
# (Made from solutions/forward.py by tools/build.py; the notebooks tell you what to write.)
# ruff: noqa: F401, F841  (the imports and names your code will use are already here)
"""Exercises 1.3 and 1.4 (notebook 01): the forward process, which adds Gaussian noise.

x has shape [B, ...] (a batch of points or images); t is an int or an int tensor [B] with
values in 1..T; schedule is a NoiseSchedule. Results keep x's dtype and device.
"""

import torch

from mini_diffusion.toolkit.common import extract, noise_like
from mini_diffusion._base.catalog import todo


def q_step(x_prev: torch.Tensor, t, schedule, noise=None, generator=None) -> torch.Tensor:
    """One noising step, a sample of q(x_t | x_{t-1}):

        x_t = √(1 - β_t) · x_{t-1} + √β_t · ε,   ε ~ N(0, I)

    x_prev: x_{t-1}, shape [B, ...]. noise: ε, shape of x_prev (drawn with `generator` when None).

    >>> s = linear_schedule(1000); x1 = q_step(torch.zeros(4, 2), 1, s, noise=torch.ones(4, 2))
    >>> round(float(x1[0, 0]), 6)  # √β_1 = √0.0001 (in float32: 0.0099999998)
    0.01
    """
    noise = noise_like(x_prev, noise, generator)
    raise NotImplementedError(todo("q_step"))


def q_sample(x0: torch.Tensor, t, schedule, noise=None, generator=None) -> torch.Tensor:
    """Jump straight from clean data to step t, a sample of q(x_t | x_0):

        x_t = √ᾱ_t · x_0 + √(1 - ᾱ_t) · ε,   ε ~ N(0, I)

    (the reparameterisation trick: a sample of N(√ᾱ_t x_0, (1-ᾱ_t) I) written as mean + std · ε).
    x0: shape [B, ...]; t: int or int tensor [B] in 1..T; noise: ε, shape of x0.

    >>> s = linear_schedule(1000)
    >>> x_t = q_sample(torch.ones(8, 2), torch.tensor([1] * 4 + [1000] * 4), s)  # mixed t
    >>> x_t.shape
    torch.Size([8, 2])
    """
    noise = noise_like(x0, noise, generator)
    raise NotImplementedError(todo("q_sample"))
