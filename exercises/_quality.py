"""Sample-quality checks: your samplers with the shipped reference model for two moons.

The exact checks compare your code with a toy model step by step; these ones run it the way
the notebooks do and measure the result: the energy distance from real two-moons data, as a
ratio to the floor (the distance between two real draws of the same size). A correct sampler
lands near 1; the limits below leave a wide margin for the seed and the machine.
"""

import torch

from _grading import Feedback, call

N_SAMPLES = 400
SEED = 0
# Measured with the solutions at 400 samples over seeds 0-3: DDPM-1000 0.4-1.1, DDIM-50 0.4-1.0.
# Broken samplers score far above: no noise in DDPM 80, σ = β 48, DDIM stepping to t - 1 5.4.
DDPM_LIMIT = 3.0
DDIM_LIMIT = 3.0


def moons_model():
    """A fresh copy of the reference moons model and its schedule (on the GPU when there is one)."""
    from mini_diffusion.toolkit import reference

    model, schedule, _ = reference.load("moons")
    return model, schedule


def check_moons_quality(function: str, limit: float, **kwargs) -> float:
    """Sample N_SAMPLES points with your `function` and the reference model; Feedback unless the
    moons energy ratio is at most `limit`. Returns the ratio."""
    from mini_diffusion.toolkit.metrics import moons_energy_ratio

    model, schedule = moons_model()
    generator = torch.Generator().manual_seed(SEED)
    samples = call(function, model, (N_SAMPLES, 2), schedule, generator=generator, **kwargs)
    if not isinstance(samples, torch.Tensor) or samples.shape != (N_SAMPLES, 2):
        got = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise Feedback(f"{function}(model, ({N_SAMPLES}, 2), schedule, …) should return samples of shape "
                       f"({N_SAMPLES}, 2); it returned {got}")
    if not bool(torch.isfinite(samples).all()):
        raise Feedback(f"{function} with the reference moons model returned NaN or inf samples: some step divides by "
                       "zero or blows up (check the coefficients at t = 1 and t = T).")
    ratio = moons_energy_ratio(samples.detach().cpu())
    if ratio > limit:
        raise Feedback(f"{function} with the reference moons model: the samples are {ratio:.2f} x the metric floor away "
                       f"from real two-moons data (energy distance over the distance between two real draws); "
                       f"a correct sampler gets close to 1, and the limit is {limit:g}. The exact checks of this "
                       "exercise show where it goes wrong.")
    return ratio
