"""Sample-quality checks: your samplers with the shipped reference model for two moons.

The exact checks compare your code with a toy model step by step; these ones run it the way
the notebooks do and measure the result: the energy distance from real two-moons data, as a
ratio to the floor (the distance between two real draws of the same size). A correct sampler
lands near 1; the limits below leave a wide margin for the seed and the machine.

In a grading (the Gradescope judge, fresh inputs) a sampler is graded on using the model: its samples
must also be the ones the grader's own sampler makes from the same model and the same generator, so that
samples that do not come from the model (real data, say) earn nothing however good they look.
"""

import torch

from _grading import Feedback, call
from _spec import check_generator, check_seed, fresh, reference

N_SAMPLES = 400
SEED = 0
# Measured with the solutions at 400 samples over seeds 0-3: DDPM-1000 0.4-1.1, DDIM-50 0.4-1.0.
# Broken samplers score far above: no noise in DDPM 80, σ = β 48, DDIM stepping to t - 1 5.4.
DDPM_LIMIT = 3.0
DDIM_LIMIT = 3.0


# In a grading: the median distance allowed between one of your samples and the grader's on the same noise.
# Two correct implementations differ by float32 round-off (about 1e-5 after 1000 steps); real data or any
# other sample that the model did not make is about 1 away.
SAME_AS_REFERENCE = 1e-2


def judge_samples(function: str, args: tuple, kwargs: dict | None = None, seed: int | None = None):
    """The grader's own `function` on the same inputs, with a generator seeded like yours when `seed` is
    given (a grading only: it needs the reference solutions)."""
    extra = {} if seed is None else {"generator": torch.Generator().manual_seed(seed)}
    with torch.no_grad():
        return reference(function)(*args, **(kwargs or {}), **extra)


def require_reference_samples(function: str, got, what: str, args: tuple, kwargs: dict | None = None,
                              seed: int | None = None) -> None:
    """In a grading: Feedback unless `got` are the samples the grader's own `function` makes from the same
    inputs (same model, same noise). Locally: nothing."""
    if not fresh():
        return
    want = judge_samples(function, args, kwargs, seed)
    distance = (got.detach().double().cpu() - want.detach().double().cpu()).flatten(1).norm(dim=1).median().item()
    if not distance <= SAME_AS_REFERENCE:
        raise Feedback(f"{function} with {what}: your samples are not the ones the grader's own sampler makes from the "
                       f"same model and the same generator (median distance {distance:.3g} per sample, at most "
                       f"{SAME_AS_REFERENCE:g} allowed). Samples are graded on coming from the model; the exact checks "
                       "of this exercise show where your steps differ.")


def ideal_points(name: str, shipped: torch.Tensor) -> torch.Tensor:
    """The points of an ideal-denoiser check: `shipped` locally; in a grading, the same figure turned by an
    angle and mirrored or not, as drawn from its seed, so that no submission knows where its samples must
    land (x_T is isotropic, so the check is as hard as with the shipped points)."""
    if not fresh():
        return shipped
    u = torch.rand(2, generator=check_generator(name, 0), dtype=torch.float64)
    angle = 2 * torch.pi * u[0]
    turn = torch.stack([torch.stack([angle.cos(), -angle.sin()]), torch.stack([angle.sin(), angle.cos()])])
    mirror = torch.diag(torch.tensor([1.0, -1.0 if u[1] < 0.5 else 1.0], dtype=torch.float64))
    return (shipped.double() @ (turn @ mirror).T).to(shipped.dtype)


def require_same_landing(function: str, got, points: torch.Tensor, args: tuple, kwargs: dict | None = None) -> None:
    """In a grading: Feedback unless (almost) every sample lands on the point that the grader's own
    `function` reaches from the same x_T (2 % may differ: a start near the border between two points may
    tip either way). Locally: nothing."""
    if not fresh():
        return
    want = judge_samples(function, args, kwargs)
    nearest = [torch.cdist(s.detach().double().cpu(), points.double()).argmin(dim=1) for s in (got, want)]
    differ = (nearest[0] != nearest[1]).double().mean().item()
    if differ > 0.02:
        raise Feedback(f"{function} with the ideal denoiser: {100 * differ:.0f} % of your samples end on another point "
                       "than the grader's own sampler reaches from the same x_T. The ODE decides where each start "
                       "ends; the exact checks of this exercise show where your steps differ.")


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
    seed = check_seed(f"quality/{function}", SEED)
    samples = call(function, model, (N_SAMPLES, 2), schedule, generator=torch.Generator().manual_seed(seed), **kwargs)
    if not isinstance(samples, torch.Tensor) or samples.shape != (N_SAMPLES, 2):
        got = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise Feedback(f"{function}(model, ({N_SAMPLES}, 2), schedule, …) should return samples of shape "
                       f"({N_SAMPLES}, 2); it returned {got}")
    if not bool(torch.isfinite(samples).all()):
        raise Feedback(f"{function} with the reference moons model returned NaN or inf samples: some step divides by "
                       "zero or blows up (check the coefficients at t = 1 and t = T).")
    require_reference_samples(function, samples, "the reference moons model", (model, (N_SAMPLES, 2), schedule), kwargs,
                              seed)
    ratio = moons_energy_ratio(samples.detach().cpu())
    if ratio > limit:
        raise Feedback(f"{function} with the reference moons model: the samples are {ratio:.2f} x the metric floor away "
                       f"from real two-moons data (energy distance over the distance between two real draws); "
                       f"a correct sampler gets close to 1, and the limit is {limit:g}. The exact checks of this "
                       "exercise show where it goes wrong.")
    return ratio
