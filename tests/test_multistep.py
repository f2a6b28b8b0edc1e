"""The ready multistep solvers (mini_diffusion/toolkit/multistep.py) against diffusers and against the maths.

- unipc_sample = diffusers' UniPCMultistepScheduler (predict_x0=True, solver_type "bh2" or "bh1",
  lower_order_final, final_sigmas_type "zero" or "sigma_min"): run in float64 on the same σ's, the
  same model and the same x_T, the two agree to float64 round-off, for every order, spacing and
  end point tried.
- dpm_solver_3m_sample(curvature="half") = diffusers' DPMSolverMultistepScheduler(solver_order=3,
  algorithm_type="dpmsolver++"): diffusers' step() casts the state to float32, so whole runs agree
  to float32 rounding; its third-order update itself, fed float64, agrees with ours to round-off.
- curvature="exact" (our default) integrates the parabola through the last three estimates exactly;
  "half" (Lu et al.'s code, diffusers) weights the curvature term by half and is exact for lines
  only. Both are shown here on a D that is a known polynomial in λ.
"""

import math

import pytest
import torch

from mini_diffusion.toolkit import multistep, ode
from mini_diffusion.toolkit.diffusion_process import NoiseSchedule

diffusers = pytest.importorskip("diffusers")

pytestmark = [
    pytest.mark.usefixtures("one_thread", "package_uses_solutions"),  # sigmas_for's "trailing" asks the seam (6.1)
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

T = 1000
COMMON = dict(num_train_timesteps=T, beta_schedule="linear", beta_start=1e-4, beta_end=0.02, prediction_type="epsilon")


class ToyModel:
    """A fixed, smooth, nonlinear ε-model: the exact answer for unit Gaussian data, √(1-ᾱ_t) x_t,
    bent by a tanh of a linear map of x_t and t (any dtype)."""

    def __init__(self, alpha_bars, dim=2):
        g = torch.Generator().manual_seed(0)
        self.weight = torch.randn(dim, dim, generator=g, dtype=torch.float64) / dim**0.5
        self.bias = torch.randn(dim, generator=g, dtype=torch.float64)
        self.noise_std = torch.sqrt(1 - alpha_bars)  # float64, t = 0..T

    def __call__(self, x_t, t):
        std = self.noise_std[t][:, None].to(x_t.dtype)
        bend = torch.tanh(x_t @ self.weight.to(x_t.dtype) + self.bias.to(x_t.dtype) * (t.to(x_t.dtype)[:, None] / T))
        return std * (x_t + 0.5 * bend)


def schedule_of(scheduler) -> NoiseSchedule:
    alpha_bars = torch.cat([torch.ones(1, dtype=torch.float64), scheduler.alphas_cumprod.double()])
    return NoiseSchedule(scheduler.betas.double(), alpha_bars)


def diffusers_run(scheduler, model, x_T, timesteps, sigmas):
    """diffusers' sampling loop on our stops: timesteps (ours, 1..T) and σ's [N+1] replace the
    scheduler's own after set_timesteps, in float64 (the model is called with t_ours = t_diffusers + 1)."""
    scheduler.set_timesteps(len(timesteps))
    scheduler.timesteps = torch.as_tensor(timesteps) - 1
    scheduler.sigmas = sigmas.clone()
    x = x_T
    for t in scheduler.timesteps:
        x = scheduler.step(model(x, torch.full((len(x),), int(t) + 1)), t, x).prev_sample
    return x


def setting(scheduler_class, num_steps, spacing, final, seed=0, **config):
    scheduler = scheduler_class(**COMMON, final_sigmas_type=final, **config)
    schedule = schedule_of(scheduler)
    final_sigma = 0.0 if final == "zero" else float(ode.sigmas_of(schedule)[1])
    timesteps, sigmas = multistep.stops(schedule, num_steps, spacing, final_sigma)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return scheduler, schedule, ToyModel(schedule.alpha_bars), x_T, timesteps, sigmas, final_sigma


@pytest.mark.parametrize("num_steps", [1, 2, 3, 5, 8, 10, 20])
@pytest.mark.parametrize("order, variant", [(1, "bh2"), (2, "bh2"), (3, "bh2"), (2, "bh1"), (3, "bh1")])
def test_unipc_is_diffusers_unipc_to_float64_round_off(order, variant, num_steps):
    # diffusers' bh1 step straight to σ = 0 is 0 · ∞ (NaN; ours returns D as bh2 does): bh1 ends at sigma_min
    final = "zero" if variant == "bh2" else "sigma_min"
    scheduler, schedule, model, x_T, timesteps, sigmas, final_sigma = setting(
        diffusers.UniPCMultistepScheduler, num_steps, "trailing", final, solver_order=order, solver_type=variant)
    theirs = diffusers_run(scheduler, model, x_T, timesteps, sigmas)
    ours = multistep.unipc_sample(model, x_T.shape, schedule, num_steps, order=order, variant=variant, x_T=x_T,
                                  final_sigma=final_sigma)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12 * theirs.abs().max().item(),
                               msg=lambda m: f"UniPC-{order} {variant}, {num_steps} steps, differs from diffusers:\n{m}")


@pytest.mark.parametrize("spacing", ["quadratic", "karras", "logsnr", [1000, 700, 420, 200, 90, 35, 12]])
@pytest.mark.parametrize("final", ["zero", "sigma_min"])
@pytest.mark.parametrize("lower_order_final", [True, False])
def test_unipc_agrees_with_diffusers_on_any_stops_and_end(spacing, final, lower_order_final):
    if final == "sigma_min" and spacing in ("karras", "logsnr"):
        pytest.skip("these spacings already end at σ_1 = sigma_min: no step is left to take")
    if final == "zero" and not lower_order_final:
        pytest.skip("a full-order step to σ = 0 is ∞ - ∞ in diffusers (a singular solve); ours steps down to D")
    num_steps = 7
    scheduler, schedule, model, x_T, timesteps, sigmas, final_sigma = setting(
        diffusers.UniPCMultistepScheduler, num_steps, spacing, final, solver_order=3,
        lower_order_final=lower_order_final)
    theirs = diffusers_run(scheduler, model, x_T, timesteps, sigmas)
    ours = multistep.unipc_sample(model, x_T.shape, schedule, num_steps, order=3, spacing=spacing, x_T=x_T,
                                  final_sigma=final_sigma, lower_order_final=lower_order_final)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12 * theirs.abs().max().item())


def test_unipc_without_its_corrector_is_diffusers_with_the_corrector_disabled():
    scheduler, schedule, model, x_T, timesteps, sigmas, _ = setting(
        diffusers.UniPCMultistepScheduler, 10, "quadratic", "zero", solver_order=3, disable_corrector=list(range(10)))
    theirs = diffusers_run(scheduler, model, x_T, timesteps, sigmas)
    ours = multistep.unipc_sample(model, x_T.shape, schedule, 10, order=3, corrector=False, spacing="quadratic",
                                  x_T=x_T)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12 * theirs.abs().max().item())


@pytest.mark.parametrize("num_steps", [1, 2, 3, 5, 10, 14, 15, 20])
@pytest.mark.parametrize("final", ["zero", "sigma_min"])
def test_dpm_solver_3m_half_is_diffusers_third_order_dpm_solver_to_float32_rounding(num_steps, final):
    scheduler, schedule, model, x_T, timesteps, sigmas, final_sigma = setting(
        diffusers.DPMSolverMultistepScheduler, num_steps, "trailing", final, solver_order=3,
        algorithm_type="dpmsolver++")
    theirs = diffusers_run(scheduler, model, x_T, timesteps, sigmas)  # its step() works in float32
    ours = multistep.dpm_solver_3m_sample(model, x_T.shape, schedule, num_steps, curvature="half", x_T=x_T,
                                          final_sigma=final_sigma)
    scale = theirs.abs().max().item()
    torch.testing.assert_close(ours, theirs.double(), rtol=0, atol=2e-6 * scale,
                               msg=lambda m: f"DPM-Solver++(3M), {num_steps} steps to {final}, differs from diffusers:\n{m}")
    exact = multistep.dpm_solver_3m_sample(model, x_T.shape, schedule, num_steps, x_T=x_T, final_sigma=final_sigma)
    if num_steps >= 5:  # a third-order step is taken
        assert (exact - theirs.double()).abs().max() > 1e-4 * scale, "curvature='exact' should differ from diffusers"


def test_the_third_order_update_is_diffusers_in_float64():
    scheduler = diffusers.DPMSolverMultistepScheduler(**COMMON, solver_order=3, algorithm_type="dpmsolver++")
    schedule = schedule_of(scheduler)
    timesteps, sigmas = multistep.stops(schedule, 6, "quadratic")
    scheduler.set_timesteps(6)
    scheduler.sigmas = sigmas.clone()
    g = torch.Generator().manual_seed(1)
    x, denoised = torch.randn(32, 2, generator=g, dtype=torch.float64), [torch.randn(32, 2, generator=g,
                                                                                      dtype=torch.float64) for _ in range(3)]
    for i in (2, 3, 4):
        scheduler._step_index = i
        alpha = 1 / math.sqrt(1 + float(sigmas[i]) ** 2)  # diffusers' state is x = √ᾱ x̃
        theirs = scheduler.multistep_dpm_solver_third_order_update(denoised, sample=alpha * x)
        lams = [-math.log(s) for s in sigmas[i - 2:i + 2].tolist()]
        ours = multistep.dpm_multistep_update(x, denoised, lams, curvature="half") / math.sqrt(1 + float(sigmas[i + 1]) ** 2)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-13)


def test_the_exact_curvature_integrates_a_parabola_in_lambda_and_half_only_a_line():
    """With D a polynomial in λ of degree ≤ 2, the step from λ_i to λ_(i+1) has the closed form
    e^(-h) x̃_i + Σ_k h^(k+1) φ_(k+1)(-h) D^(k)(λ_i); the exact third-order update gives it,
    'half' only when D is a line."""
    lams = [0.3, 0.9, 1.2, 2.0]  # λ_(i-2), λ_(i-1), λ_i, λ_(i+1): uneven steps
    x = torch.tensor([0.7], dtype=torch.float64)
    h = lams[3] - lams[2]
    for coefficients in ([1.5, -0.4, 0.0], [1.5, -0.4, 0.8]):
        a, b, c = coefficients  # D(λ) = a + b (λ - λ_i) + c (λ - λ_i)²

        def D(lam):
            return torch.tensor([a + b * (lam - lams[2]) + c * (lam - lams[2]) ** 2], dtype=torch.float64)

        closed = (math.exp(-h) * x + h * multistep.phi(1, -h) * a + h**2 * multistep.phi(2, -h) * b
                  + h**3 * multistep.phi(3, -h) * 2 * c)
        estimates = [D(lam) for lam in lams[:3]]
        exact = multistep.dpm_multistep_update(x, estimates, lams, curvature="exact")
        half = multistep.dpm_multistep_update(x, estimates, lams, curvature="half")
        torch.testing.assert_close(exact, closed, rtol=0, atol=1e-12)
        if c == 0:
            torch.testing.assert_close(half, closed, rtol=0, atol=1e-12)
        else:
            assert (half - closed).abs().item() > 1e-3, "'half' should miss a parabola's integral"


def test_unipc_predictor_of_order_3_and_its_corrector_integrate_polynomials_of_their_degree():
    """UniP-3 (three estimates) is exact for a parabola in λ, UniC-2 (two estimates and the new one)
    likewise; with the bh1 and bh2 B(h) alike."""
    lams = [0.3, 0.9, 1.2, 2.0]
    h = lams[3] - lams[2]
    x = torch.tensor([0.7], dtype=torch.float64)
    a, b, c = 1.5, -0.4, 0.8

    def D(lam):
        return torch.tensor([a + b * (lam - lams[2]) + c * (lam - lams[2]) ** 2], dtype=torch.float64)

    closed = (math.exp(-h) * x + h * multistep.phi(1, -h) * a + h**2 * multistep.phi(2, -h) * b
              + h**3 * multistep.phi(3, -h) * 2 * c)
    for variant in ("bh1", "bh2"):
        predicted = multistep._unipc_update(x, [D(lam) for lam in lams[:3]], lams, 2, 3, variant)
        corrected = multistep._unipc_update(x, [D(lam) for lam in lams[1:3]], lams, 2, 2, variant, new=D(lams[3]))
        torch.testing.assert_close(predicted, closed, rtol=0, atol=1e-10)
        torch.testing.assert_close(corrected, closed, rtol=0, atol=1e-10)


def test_unipc_predictor_of_order_2_is_dpm_solver_2m():
    from solutions import solvers

    schedule = schedule_of(diffusers.UniPCMultistepScheduler(**COMMON))
    model = ToyModel(schedule.alpha_bars)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for spacing in ("trailing", "quadratic"):
        ours = multistep.unipc_sample(model, x_T.shape, schedule, 9, corrector=False, spacing=spacing, x_T=x_T)
        course = solvers.dpm_solver_sample(model, x_T.shape, schedule, 9, x_T=x_T, spacing=spacing)
        torch.testing.assert_close(ours, course, rtol=0, atol=1e-12)


@pytest.mark.parametrize("sampler", [multistep.dpm_solver_3m_sample, multistep.unipc_sample])
def test_the_samplers_keep_the_sampler_contract(sampler):
    import inspect

    params = inspect.signature(sampler).parameters
    assert list(params)[:4] == ["model", "shape", "schedule", "num_steps"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in list(params.values())[4:])
    assert list(params)[-6:] == ["generator", "x_T", "trajectory", "callback", "progress", "device"]
    schedule = schedule_of(diffusers.UniPCMultistepScheduler(**COMMON))
    model = ToyModel(schedule.alpha_bars)
    seen = []
    states = sampler(model, (16, 2), schedule, 5, generator=torch.Generator().manual_seed(0), trajectory=True,
                     callback=lambda i, t, x: seen.append((i, t)))
    again = sampler(model, (16, 2), schedule, 5, generator=torch.Generator().manual_seed(0))
    assert len(states) == 6 and torch.equal(states[-1], again), "the trajectory ends on the sample"
    assert seen == list(enumerate(ode.sigmas_for(schedule, 5)[0].tolist())), "callback(i, t, x) after each step"


def test_stops_checks_what_it_is_given():
    schedule = schedule_of(diffusers.UniPCMultistepScheduler(**COMMON))
    with pytest.raises(ValueError, match="distinct descending"):
        multistep.stops(schedule, 3, [1000, 500, 500])
    with pytest.raises(ValueError, match="3 distinct descending"):
        multistep.stops(schedule, 3, [1000, 500])
    with pytest.raises(ValueError, match="spacing must be one of"):
        multistep.stops(schedule, 3, "cosine")
    with pytest.raises(ValueError, match="final_sigma"):
        multistep.stops(schedule, 3, "karras", final_sigma=float(ode.sigmas_of(schedule)[1]))
