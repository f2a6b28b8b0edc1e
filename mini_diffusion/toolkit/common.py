"""Small helpers shared by the exercise modules: timesteps, broadcasting and noise.

They check their inputs so that a learner's mistake shows up as a clear message at the
call that made it, not as a shape error deep inside PyTorch.
"""

import numbers

import torch


def as_t_tensor(t, batch: int, device=None, T: int | None = None, allow_zero: bool = False):
    """t as an int64 tensor of shape [batch]; an int is repeated for every sample.

    Checks that every t lies in 1..T (0..T with allow_zero, for "clean data").
    """
    if isinstance(t, bool) or not isinstance(t, (numbers.Integral, torch.Tensor)):
        raise TypeError(f"t must be a Python int or an integer tensor of shape [B]; got {type(t).__name__}")
    low = 0 if allow_zero else 1
    if isinstance(t, numbers.Integral):
        # Checked in Python before a tensor exists: samplers call this several times per step.
        if T is not None and not low <= t <= T:
            raise _outside_error(int(t), low, T)
        return torch.full((batch,), int(t), dtype=torch.long, device=device)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"t must hold integers (timesteps 1..T); got a tensor of dtype {t.dtype}")
    if t.dim() == 0:
        t = t.expand(batch)
    elif t.dim() != 1 or t.shape[0] not in (1, batch):
        raise ValueError(
            f"t must be an int or a tensor of shape [{batch}] (one timestep per sample); got shape {tuple(t.shape)}"
        )
    t = t.to(device=device if device is not None else t.device, dtype=torch.long).expand(batch)
    if T is not None and t.numel() > 0:
        smallest, largest = torch.stack(torch.aminmax(t)).tolist()  # one pass, one read back from the device
        if smallest < low or largest > T:
            raise _outside_error(smallest if smallest < low else largest, low, T)
    return t


def _outside_error(bad: int, low: int, T: int) -> ValueError:
    return ValueError(
        f"timestep t = {bad} is outside {low}..{T}; timesteps count from 1 (first noising step) "
        f"to T = {T}{' (0 means clean data here)' if low == 0 else ''}"
    )


def extract(values: torch.Tensor, t, x: torch.Tensor, allow_zero: bool = False) -> torch.Tensor:
    """values[t] shaped [B, 1, ..., 1] to broadcast against x, in x's dtype and device.

    values is a schedule array of length T+1 (index 0 = clean data), t an int or an int
    tensor [B] in 1..T. Example: `extract(schedule.alpha_bars, t, x0)` is ᾱ_t per sample.
    """
    T = values.shape[0] - 1
    t = as_t_tensor(t, x.shape[0], device=values.device, T=T, allow_zero=allow_zero)
    out = values.index_select(0, t).to(device=x.device, dtype=x.dtype)  # values[t], in fewer steps
    return out.reshape(x.shape[0], *([1] * (x.dim() - 1)))


def noise_like(x: torch.Tensor, noise=None, generator=None) -> torch.Tensor:
    """The noise to use for x: `noise` itself when given (checked), else fresh N(0, I).

    Drawn with `generator` when one is given, so results are reproducible; the draw happens
    on the generator's device and is moved to x's device.
    """
    if noise is not None:
        if not isinstance(noise, torch.Tensor) or noise.shape != x.shape:
            got = tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
            raise ValueError(f"noise must have the same shape as x, {tuple(x.shape)}; got {got}")
        return noise.to(device=x.device, dtype=x.dtype)
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


def model_device(model, default="cpu") -> torch.device:
    """The device of a model's parameters (CPU for a parameter-free callable)."""
    params = getattr(model, "parameters", None)
    if callable(params):
        for p in params():
            return p.device
    device = getattr(model, "device", None)
    return torch.device(device if device is not None else default)


def check_num_steps(num_steps, T: int) -> int:
    if isinstance(num_steps, bool) or not isinstance(num_steps, numbers.Integral) or not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be an integer in 1..T = 1..{T}; got {num_steps!r}")
    return int(num_steps)


def call_model(model, x_t: torch.Tensor, t) -> torch.Tensor:
    """eps_hat = model(x_t, t) with t as an int tensor [B], checked to have x_t's shape."""
    t = as_t_tensor(t, x_t.shape[0], device=x_t.device)
    eps = model(x_t, t)
    if not isinstance(eps, torch.Tensor) or eps.shape != x_t.shape:
        got = tuple(eps.shape) if isinstance(eps, torch.Tensor) else type(eps).__name__
        raise ValueError(f"the model must return a noise prediction shaped like x_t, {tuple(x_t.shape)}; got {got}")
    return eps
