# Your exercise file: replace each `raise NotImplementedError(...)` line with your code.
# (Made from solutions/losses.py by tools/build.py; the notebooks tell you what to write.)
# ruff: noqa: F401, F841  (the imports and names your code will use are already here)
"""Exercise 3.1 (notebook 03): the simple noise-prediction loss of Ho et al. (2020)."""

import torch

from mini_diffusion.toolkit.common import as_t_tensor, call_model, noise_like
from .forward import q_sample
from mini_diffusion._base.catalog import todo


def diffusion_loss(model, x0: torch.Tensor, schedule, t=None, noise=None, generator=None) -> torch.Tensor:
    """L_simple = E_{t, x_0, ε} ‖ε - ε_θ(√ᾱ_t x_0 + √(1-ᾱ_t) ε, t)‖²,  t ~ Uniform{1, …, T}.

    Noise the batch x0 ([B, ...]) to a random step t per sample, ask the model for the noise
    and return the mean squared error over every element (a scalar tensor). With t and
    noise given nothing random happens; otherwise they are drawn with `generator`.

    >>> loss = diffusion_loss(model, x0_batch, linear_schedule(1000)); loss.backward()
    >>> loss.shape, bool(loss > 0)   # one number, the mean over the batch
    (torch.Size([]), True)
    """
    noise = noise_like(x0, noise, generator)
    if t is not None:
        t = as_t_tensor(t, x0.shape[0], device=x0.device, T=schedule.T)
    raise NotImplementedError(todo("diffusion_loss"))
