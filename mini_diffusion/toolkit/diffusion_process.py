"""NoiseSchedule: the β, α and ᾱ arrays of a diffusion process, indexed by t = 0..T.

Index 0 stands for clean data (β_0 = 0, α_0 = ᾱ_0 = 1), so `schedule.alpha_bars[t]` is
exactly ᾱ_t of the paper for t = 1..T. Arrays are kept in float64 (the products of a
thousand numbers near one lose digits in float32) and cast to the data's dtype on use.
"""

import torch

from mini_diffusion._base import door


class NoiseSchedule:
    """β_1..β_T and everything derived from them.

    betas: β_1..β_T, a 1-D tensor (or list) of length T with every β in (0, 1).
    alpha_bars: optional ᾱ_0..ᾱ_T (length T+1) when they are known already (the reference
        models ship them); otherwise computed with your `schedules.alpha_bars_from_betas` (exercise 1.2).

    Attributes (float64, length T+1): `betas`, `alphas` (α_t = 1 - β_t), `alpha_bars`; `T`.
    """

    def __init__(self, betas, alpha_bars=None):
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.dim() != 1 or betas.numel() < 1:
            raise ValueError(f"betas must be a 1-D sequence β_1..β_T with T >= 1; got shape {tuple(betas.shape)}")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("every β_t must lie in (0, 1): β = 0 adds no noise and β = 1 erases the signal")
        if alpha_bars is None:
            alpha_bars = door.implementation("1.2")(betas)  # yours, or the reference when 1.2 is lent
        alpha_bars = torch.as_tensor(alpha_bars, dtype=torch.float64, device=betas.device)
        T = betas.numel()
        if alpha_bars.shape != (T + 1,):
            raise ValueError(f"alpha_bars must have length T+1 = {T + 1} (ᾱ_0..ᾱ_T); got shape {tuple(alpha_bars.shape)}")
        self.betas = torch.cat([betas.new_zeros(1), betas])
        self.alphas = 1.0 - self.betas
        self.alpha_bars = alpha_bars

    @property
    def T(self) -> int:
        return self.betas.numel() - 1

    @property
    def device(self) -> torch.device:
        return self.betas.device

    def to(self, device) -> "NoiseSchedule":
        """A copy on `device` (float64 kept, except on Apple MPS which has no float64)."""
        device = torch.device(device)
        dtype = torch.float32 if device.type == "mps" else torch.float64
        moved = NoiseSchedule.__new__(NoiseSchedule)
        moved.betas = self.betas.to(device, dtype)
        moved.alphas = self.alphas.to(device, dtype)
        moved.alpha_bars = self.alpha_bars.to(device, dtype)
        return moved

    def __repr__(self) -> str:
        return (
            f"NoiseSchedule(T={self.T}, β_1={self.betas[1].item():.3g}, β_T={self.betas[-1].item():.3g}, "
            f"ᾱ_T={self.alpha_bars[-1].item():.3g}, device={self.device.type})"
        )


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
    """The DDPM schedule (Ho et al., 2020): β_t from beta_start to beta_end in equal steps."""
    return NoiseSchedule(door.implementation("1.1")(T, beta_start, beta_end))


def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
    """The cosine schedule (Nichol & Dhariwal, 2021): ᾱ_t = f(t)/f(0), β_t capped at max_beta.

    As in the paper (and diffusers' "squaredcos_cap_v2"), ᾱ is rebuilt from the capped β's.
    """
    cosine_alpha_bars, betas_from_alpha_bars = door.implementation("5.1"), door.implementation("5.2")
    return NoiseSchedule(betas_from_alpha_bars(cosine_alpha_bars(T, s), max_beta))
