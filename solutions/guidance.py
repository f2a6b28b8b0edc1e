"""Exercises 8.1-8.6 (notebook 08): guidance, asking a diffusion model for what you want.

A conditional denoiser ε_θ(x_t, t, y) also sees a label y; trained with the label sometimes
replaced by the null label ∅ (exercises 8.1-8.2) the same network predicts both ε_θ(x_t, t, y)
and ε_θ(x_t, t, ∅), and classifier-free guidance extrapolates from one to the other (8.3-8.4).
Classifier guidance tilts an unconditional model with a noisy-image classifier's gradient (8.5);
inpainting guides with data, by replacing the known pixels at every step (8.6).
"""

import torch

from mini_diffusion.toolkit.common import as_t_tensor, noise_like
from .forward import q_sample


def _check_labels(y, batch: int, device) -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.shape[0] != batch or y.is_floating_point():
        got = f"{y.dtype} {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"y must be an int64 tensor of labels with shape [{batch}]; got {got}")
    return y.to(device)


def drop_labels(y: torch.Tensor, p_uncond: float, null_label: int = 10, generator=None) -> torch.Tensor:
    """Each label replaced by the null label with probability p_uncond, independently:

        keep_i ~ Bernoulli(1 - p_uncond),   y'_i = y_i if keep_i else null_label

    Draw one uniform u_i per label (with `generator`) and drop where u_i < p_uncond. Returns a
    new int64 tensor shaped like y; y itself is left as it was. p_uncond = 0 keeps every label,
    p_uncond = 1 drops them all.

    >>> drop_labels(torch.tensor([3, 1, 4, 1, 5]), 0.5, generator=torch.Generator().manual_seed(0))
    tensor([10,  1, 10, 10,  5])
    """
    if isinstance(p_uncond, bool) or not isinstance(p_uncond, (int, float)) or not 0 <= p_uncond <= 1:
        raise ValueError(f"p_uncond must be a probability in [0, 1]; got {p_uncond!r}")
    if not isinstance(y, torch.Tensor) or y.is_floating_point():
        raise ValueError(f"y must be an integer tensor of labels; got {y!r}")
    # BEGIN SOLUTION
    device = generator.device if generator is not None else y.device
    u = torch.rand(y.shape, generator=generator, device=device).to(y.device)
    return torch.where(u < p_uncond, torch.full_like(y, null_label), y)
    # END SOLUTION


def conditional_loss(model, x0: torch.Tensor, y: torch.Tensor, schedule, p_uncond: float = 0.1, null_label: int = 10,
                     t=None, noise=None, generator=None) -> torch.Tensor:
    """The simple loss for a conditional denoiser, with labels dropped for classifier-free guidance:

        L = E ‖ε - ε_θ(√ᾱ_t x_0 + √(1-ᾱ_t) ε, t, y')‖²,   y' = drop_labels(y, p_uncond)

    t ~ Uniform{1, …, T} when not given, then ε (when not given), then the dropped labels are
    drawn with `generator`, in that order. The mean over every element (a scalar tensor).

    >>> loss = conditional_loss(model, x0_batch, labels, schedule); loss.backward()
    """
    y = _check_labels(y, x0.shape[0], x0.device)
    if t is not None:
        t = as_t_tensor(t, x0.shape[0], device=x0.device, T=schedule.T)
    # BEGIN SOLUTION
    if t is None:
        device = generator.device if generator is not None else x0.device
        t = torch.randint(1, schedule.T + 1, (x0.shape[0],), generator=generator, device=device).to(x0.device)
    noise = noise_like(x0, noise, generator)
    y_dropped = drop_labels(y, p_uncond, null_label, generator=generator)
    x_t = q_sample(x0, t, schedule, noise)
    eps_hat = model(x_t, t, y_dropped)
    return ((noise - eps_hat) ** 2).mean()
    # END SOLUTION
