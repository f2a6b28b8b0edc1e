"""Our ODE samplers against the diffusers library's schedulers, where the algorithms coincide.

With the time shift t_ours = t_diffusers + 1 and the same ᾱ values:
- euler_sample      = EulerDiscreteScheduler(timestep_spacing="trailing", final_sigmas_type="zero")
- heun_sample       = HeunDiscreteScheduler(timestep_spacing="trailing")
- dpm_solver_sample = DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2,
                      solver_type="midpoint", timestep_spacing="trailing", final_sigmas_type="zero")
  (final_sigmas_type="zero" makes diffusers take a first-order last step for every step count,
  as we do; lower_order_final=True, the default, then changes nothing for solver_order=2.)
Thresholding and clipping stay off in all of them, as in ours; Karras σ's (use_karras_sigmas) and
σ's evenly spaced in λ (use_lu_lambdas) are compared with our "karras" and "logsnr" spacings.

diffusers keeps its schedule in float32, so our schedule is built from diffusers' own ᾱ's: what
is compared is the algorithm, run by both in float32.
"""

import pytest
import torch

from mini_diffusion.toolkit import ode
from mini_diffusion.toolkit.diffusion_process import NoiseSchedule
from solutions import solvers

diffusers = pytest.importorskip("diffusers")

pytestmark = [
    pytest.mark.usefixtures("one_thread", "package_uses_solutions"),  # sigmas_for asks the seam for ddim_timesteps
    # diffusers' own NumPy-2 deprecation notice, not ours
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

T = 1000
COMMON = dict(num_train_timesteps=T, beta_schedule="linear", beta_start=1e-4, beta_end=0.02, prediction_type="epsilon")
SCHEDULERS = {
    "euler": lambda: diffusers.EulerDiscreteScheduler(**COMMON, timestep_spacing="trailing", final_sigmas_type="zero"),
    "heun": lambda: diffusers.HeunDiscreteScheduler(**COMMON, timestep_spacing="trailing"),
    "dpm": lambda: diffusers.DPMSolverMultistepScheduler(
        **COMMON, algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint",
        timestep_spacing="trailing", lower_order_final=True, final_sigmas_type="zero",
    ),
}
OURS = {"euler": solvers.euler_sample, "heun": solvers.heun_sample, "dpm": solvers.dpm_solver_sample}


class ToyModel:
    """A fixed, smooth, deterministic ε-model of sensible size: the exact answer for unit
    Gaussian data, √(1-ᾱ_t) x_t, bent by a tanh of a linear map of x_t and t."""

    def __init__(self, alpha_bars, dim=2):
        g = torch.Generator().manual_seed(0)
        self.weight = torch.randn(dim, dim, generator=g) / dim**0.5
        self.bias = torch.randn(dim, generator=g)
        self.noise_std = torch.sqrt(1 - alpha_bars).float()  # index t = 0..T

    def __call__(self, x_t, t):
        std = self.noise_std[t][:, None]
        return std * (x_t + 0.5 * torch.tanh(x_t @ self.weight + self.bias * (t.float()[:, None] / T)))


def schedule_of(scheduler) -> NoiseSchedule:
    alpha_bars = torch.cat([torch.ones(1, dtype=torch.float64), scheduler.alphas_cumprod.double()])
    return NoiseSchedule(scheduler.betas.double(), alpha_bars)


def diffusers_sample(scheduler, model, x_T, num_steps=None, timesteps=None):
    """The usual diffusers loop; the model is called with t_ours = t_diffusers + 1.

    One deliberate difference: diffusers' Euler and Heun start from x̃_T = σ_T · x_T, where we
    (like DDIM and DPM-Solver, which work in x) start from x_T / √ᾱ_T = √(1 + σ_T²) · x_T.
    The two differ by a factor 1 + 1/(2σ_T²) ≈ 1 + 2e-5; both loops start from ours here.
    """
    scheduler.set_timesteps(num_steps, timesteps=timesteps)
    if scheduler.init_noise_sigma == 1:  # a scheduler that works in x itself
        x = x_T
    else:
        x = x_T * (1 + scheduler.sigmas.max() ** 2) ** 0.5
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(x, t)
        t_ours = torch.full((len(x),), int(round(float(t))) + 1)
        x = scheduler.step(model(model_input, t_ours), t, x).prev_sample
    return x


@pytest.mark.parametrize("num_steps", [1, 2, 5, 7, 20, 50])
@pytest.mark.parametrize("name", ["euler", "heun", "dpm"])
def test_our_sampler_agrees_with_diffusers_to_float32_precision(name, num_steps):
    scheduler = SCHEDULERS[name]()
    schedule = schedule_of(scheduler)
    model = ToyModel(schedule.alpha_bars)
    x_T = torch.randn(256, 2, generator=torch.Generator().manual_seed(num_steps))
    theirs = diffusers_sample(scheduler, model, x_T, num_steps)
    ours = OURS[name](model, (256, 2), schedule, num_steps, x_T=x_T)
    # float32 rounding over a few dozen steps: a few units in the 7th digit of the largest value
    # (measured: up to 3e-6 of it; a float64 run of ours sits as far from either)
    scale = theirs.abs().max().item()
    torch.testing.assert_close(
        ours, theirs, rtol=0, atol=1e-5 * scale,
        msg=lambda m: f"{name} with {num_steps} steps differs from diffusers beyond float32 rounding:\n{m}",
    )


@pytest.mark.parametrize("name", ["euler", "heun", "dpm"])
def test_quadratic_spacing_agrees_with_diffusers_given_the_same_custom_timesteps(name):
    scheduler = SCHEDULERS[name]()
    schedule = schedule_of(scheduler)
    model = ToyModel(schedule.alpha_bars)
    x_T = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
    timesteps = (ode.quadratic_timesteps(T, 12) - 1).tolist()  # diffusers counts from 0
    theirs = diffusers_sample(scheduler, model, x_T, timesteps=timesteps)
    ours = OURS[name](model, (256, 2), schedule, 12, x_T=x_T, spacing="quadratic")
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5 * theirs.abs().max().item())


@pytest.mark.parametrize("name", ["euler", "heun", "dpm"])
def test_diffusers_asks_the_model_at_our_timesteps(name):
    scheduler = SCHEDULERS[name]()
    scheduler.set_timesteps(10)
    expected = ode.sigmas_for(schedule_of(scheduler), 10)[0].tolist()
    asked = sorted({int(round(float(t))) + 1 for t in scheduler.timesteps}, reverse=True)
    assert asked == expected, "with trailing spacing diffusers must use our timesteps shifted by one"


KARRAS = dict(**COMMON, use_karras_sigmas=True, final_sigmas_type="zero")


@pytest.mark.parametrize("num_steps", [2, 5, 10, 18, 50])
def test_karras_sigmas_are_diffusers_use_karras_sigmas(num_steps):
    """diffusers' _convert_to_karras (ρ = 7, σ_min and σ_max of the training schedule) gives the
    same σ's as exercise 7.4, to float32 precision (diffusers keeps its σ's in float32)."""
    scheduler = diffusers.EulerDiscreteScheduler(**KARRAS)
    scheduler.set_timesteps(num_steps)
    levels = ode.sigmas_of(schedule_of(scheduler))
    ours = solvers.karras_sigmas(levels[1].item(), levels[-1].item(), num_steps)
    theirs = scheduler.sigmas[:-1].double()
    torch.testing.assert_close(ours, theirs, rtol=2e-6, atol=0)


@pytest.mark.parametrize("num_steps", [5, 10, 20, 30])
@pytest.mark.parametrize("spacing, option", [("karras", "use_karras_sigmas"), ("logsnr", "use_lu_lambdas")])
def test_karras_and_logsnr_timesteps_are_diffusers_rounded_ones(spacing, option, num_steps):
    """diffusers' DPM-Solver++ rounds the timesteps of its Karras σ's (use_karras_sigmas) and of
    its σ's evenly spaced in λ (use_lu_lambdas); ours, the nearest in log σ, are the same, shifted by one.
    (With many steps diffusers' rounding repeats small timesteps, e.g. 2, 2 for use_lu_lambdas and 50
    steps; ours are then moved apart, see timesteps_nearest.)"""
    scheduler = diffusers.DPMSolverMultistepScheduler(
        **COMMON, algorithm_type="dpmsolver++", final_sigmas_type="zero", **{option: True})
    scheduler.set_timesteps(num_steps)
    ours = ode.sigmas_for(schedule_of(scheduler), num_steps, spacing, karras=solvers.karras_sigmas)[0]
    assert ours.tolist() == (scheduler.timesteps + 1).tolist()


@pytest.mark.parametrize("name", ["euler", "heun", "dpm"])
@pytest.mark.parametrize("spacing", ["karras", "logsnr"])
def test_karras_and_logsnr_spacing_agree_with_diffusers_given_the_same_timesteps(name, spacing):
    scheduler = SCHEDULERS[name]()
    schedule = schedule_of(scheduler)
    model = ToyModel(schedule.alpha_bars)
    x_T = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
    timesteps = ode.sigmas_for(schedule, 12, spacing, karras=solvers.karras_sigmas)[0]
    theirs = diffusers_sample(scheduler, model, x_T, timesteps=(timesteps - 1).tolist())
    ours = OURS[name](model, (256, 2), schedule, 12, x_T=x_T, spacing=spacing)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5 * theirs.abs().max().item())
