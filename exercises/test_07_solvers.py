"""Notebook 07, fast samplers: exercises 7.1-7.4 (solvers.py).

Each sampler is graded three ways: exactly, step by step against a toy model; on the ideal
denoiser of four points, where the probability-flow ODE must end on a data point; and by the
quality of its moons samples with the reference model, at a small number of network evaluations.
The optional 7.4 (the Karras noise levels of spacing="karras") is graded exactly.
"""

import pytest
import torch

from _grading import Feedback, call, grade_cases, schedule
from _quality import check_moons_quality, ideal_points, require_same_landing
from _spec import Exercise, Notebook, check_generator

NOTEBOOK = Notebook(
    "07", "07_fast_samplers", title="Fast samplers: Euler, Heun and DPM-Solver++",
    idea="the probability-flow ODE, Euler, Heun, DPM-Solver++",
    needs=("4.2", "6.1", "6.3"),
)
EXERCISES = [
    Exercise("7.1", "solvers", "euler_sample", points=3, title="Euler's method on the probability-flow ODE"),
    Exercise("7.2", "solvers", "heun_sample", points=3, title="Heun's second-order sampler"),
    Exercise("7.3", "solvers", "dpm_solver_sample", points=3, title="the DPM-Solver++(2M) sampler"),
    Exercise("7.4", "solvers", "karras_sigmas", points=2, title="Karras's ρ = 7 noise levels (optional)"),
]

exercise = pytest.mark.exercise

# Moons energy ratio limits at 20 (Euler) and 19 / 10 (Heun / DPM-Solver++) network evaluations.
# The reference solutions score about 1 to 2 here; the limits leave room for the seed.
EULER_LIMIT = 4.0
HEUN_LIMIT = 3.0
DPM_LIMIT = 3.0

IDEAL_POINTS = torch.tensor([[-1.0, 0.5], [0.0, -1.0], [1.2, 1.0], [2.0, -0.3]])
IDEAL_DISTANCE = 1e-2


def check_lands_on_the_points(function: str, num_steps: int) -> None:
    """Your sampler driven by the ideal denoiser of IDEAL_POINTS: every sample must end on one of them."""
    from mini_diffusion.toolkit.ideal import IdealDenoiser

    linear = schedule("linear1000")
    points = ideal_points("7/ideal/points", IDEAL_POINTS)
    x_T = torch.randn(200, 2, generator=check_generator("7/ideal/x_T", 0))
    samples = call(function, IdealDenoiser(points, linear), (200, 2), linear, num_steps, x_T=x_T)
    if not isinstance(samples, torch.Tensor) or samples.shape != (200, 2):
        got = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise Feedback(f"{function} should return samples of shape (200, 2); it returned {got}")
    if not bool(torch.isfinite(samples).all()):
        raise Feedback(f"{function} with the ideal denoiser returned NaN or inf: a division by σ = 0 at the last step?")
    distance = torch.cdist(samples.detach().double().cpu(), points.double()).min(dim=1).values.max().item()
    if distance > IDEAL_DISTANCE:
        raise Feedback(f"{function} driven by the ideal denoiser of four points ({num_steps} steps): the ODE's "
                       f"solutions end exactly on those points, but one of your samples is {distance:.3g} away from "
                       "the nearest. Check the last step (down to σ = 0) and the start x̃_T = x_T / √ᾱ_T.")
    require_same_landing(function, samples, points, (IdealDenoiser(points, linear), (200, 2), linear, num_steps),
                         {"x_T": x_T})


@exercise("7.1", points=1)
def test_euler_sample_follows_the_ode():
    """x̃_{i+1} = x̃_i + (σ_{i+1} - σ_i) d_i with a toy model: 10, 7, 2 and 1 steps, T = 10, a seeded x_T"""
    grade_cases("7.1", "steps10", "steps7", "two_steps", "one_step", "all_steps", "seeded_images")


@exercise("7.1", points=1)
def test_euler_sample_lands_on_the_data_with_the_ideal_denoiser():
    """with the ideal denoiser of four points (50 steps) every sample ends on one of them"""
    check_lands_on_the_points("euler_sample", 50)


@exercise("7.1", points=1, timeout=120)
@pytest.mark.slow
def test_euler_sample_makes_good_moons():
    """Euler (20 steps) with the reference moons model: samples close to real two moons"""
    check_moons_quality("euler_sample", EULER_LIMIT, num_steps=20)


@exercise("7.2", points=1)
def test_heun_sample_averages_two_slopes():
    """Heun with a toy model: 10, 7 and 2 steps, the last step plain Euler"""
    grade_cases("7.2", "steps10", "steps7", "two_steps", "one_step", "all_steps", "seeded_images")


@exercise("7.2", points=1)
def test_heun_sample_lands_on_the_data_with_the_ideal_denoiser():
    """with the ideal denoiser of four points (25 steps) every sample ends on one of them"""
    check_lands_on_the_points("heun_sample", 25)


@exercise("7.2", points=1, timeout=120)
@pytest.mark.slow
def test_heun_sample_makes_good_moons():
    """Heun (10 steps, 19 network evaluations) with the reference moons model: samples close to real two moons"""
    check_moons_quality("heun_sample", HEUN_LIMIT, num_steps=10)


@exercise("7.3", points=1)
def test_dpm_solver_sample_is_second_order_multistep():
    """DPM-Solver++(2M) with a toy model: first order on the first and last steps, 10, 7, 2 and 1 steps"""
    grade_cases("7.3", "steps10", "steps7", "two_steps", "one_step", "all_steps", "seeded_images")


@exercise("7.3", points=1)
def test_dpm_solver_sample_lands_on_the_data_with_the_ideal_denoiser():
    """with the ideal denoiser of four points (50 steps) every sample ends on one of them"""
    check_lands_on_the_points("dpm_solver_sample", 50)


@exercise("7.3", points=1, timeout=120)
@pytest.mark.slow
def test_dpm_solver_sample_makes_good_moons():
    """DPM-Solver++ (10 steps) with the reference moons model: samples close to real two moons"""
    check_moons_quality("dpm_solver_sample", DPM_LIMIT, num_steps=10)


@exercise("7.4", points=1)
def test_karras_sigmas_are_evenly_spaced_in_sigma_to_the_one_over_rho():
    """σ_i = (σ_max^(1/ρ) + i/(N-1)·(σ_min^(1/ρ) - σ_max^(1/ρ)))^ρ: ρ = 7 from σ_T = 157.4 to σ_1 = 0.01, ρ = 3, ρ = 1"""
    grade_cases("7.4", "course10", "course18", "rho3", "rho1")


@exercise("7.4", points=1)
def test_karras_sigmas_keep_both_ends_and_go_down():
    """N = 2 is exactly [σ_max, σ_min], N = 1 is [σ_max]; float64, descending"""
    grade_cases("7.4", "two", "one", "small_range")


# BEGIN MAINTAINER
# Only the build (tools/build.py) reads what follows; the student copy leaves it out.

import math

from _spec import Mutant, solution

solvers = solution("solvers")

MISTAKES = {
    "no_x_T_scaling": "the start is x_T itself; in the ODE variable it is x̃_T = x_T / √ᾱ_T = x_T · √(1 + σ_0²).",
    "model_on_x_tilde": "the network was given x̃; it was trained on x_t = √ᾱ_t · x̃ (use denoise, which does this).",
    "wrong_direction": "the step has the wrong sign: x̃ moves by (σ_{i+1} - σ_i) · d, and σ_{i+1} < σ_i.",
    "euler_only": "no second-order correction: this is Euler's method (one slope per step, not the average of two).",
    "corrector_at_t_i": "the slope at the trial point was computed at t_i; the trial point sits at σ_{i+1}, timestep t_{i+1}.",
    "step_from_trial_point": "the corrected step starts from the trial point x̃'; it starts again from x̃_i.",
    "first_order_only": "no second-order correction: every step uses D_i alone (this is DDIM / first-order DPM-Solver).",
    "h_ratio_inverted": "the correction's factor is h_i / (2 h_{i-1}) (this step's length over twice the last one's).",
    "correction_sign": "the correction is added with the wrong sign: D_i + h_i / (2 h_{i-1}) · (D_i - D_{i-1}).",
    "rho_inverted": "ρ is applied the wrong way round: the spacing is even in σ^(1/ρ) (take the ρ-th roots of "
                    "σ_max and σ_min, interpolate, then raise to the power ρ), not in σ^ρ.",
    "rho_ignored": "the rho argument is ignored (ρ = 7 whatever it says).",
    "sigmas_ascending": "the σ's go up; they run from σ_max down to σ_min, as the sampler walks.",
    "karras_no_endpoint": "the last σ is not σ_min: the fraction is i/(N-1), so that i = N-1 lands on σ_min "
                          "(torch.linspace(0, 1, N) includes both ends).",
    "karras_no_rho": "no ρ at all: these are evenly spaced in σ; interpolate σ^(1/ρ) and raise the result to the power ρ.",
}
# also named here, with the messages of earlier notebooks: no_final_step, model_t_minus_1


# --- Wrong variants (same arguments as the samplers) --------------------------------------


def _start(model, shape, schedule, num_steps, generator, x_T, scale=True):
    timesteps, sigmas = solvers.sigmas_for(schedule, num_steps)
    from mini_diffusion.toolkit.plumbing import starting_noise

    x_T = starting_noise(model, shape, generator, x_T)
    sigmas = sigmas.tolist()
    return timesteps.tolist(), sigmas, x_T * (math.sqrt(1 + sigmas[0] ** 2) if scale else 1.0)


def _denoise_on_x_tilde(model, x, t, schedule):
    from mini_diffusion.toolkit.common import as_t_tensor

    sigma = solvers.sigmas_of(schedule)[t].item()
    return x - sigma * model(x, as_t_tensor(t, x.shape[0]))


def _denoise_t_minus_1(model, x, t, schedule):
    return solvers.denoise(model, x, t, schedule) if t == 1 else solvers.denoise(model, x, t - 1, schedule)


def euler_with(model, shape, schedule, num_steps, generator=None, x_T=None, *, scale=True,
               denoise=None, last=True, sign=1):
    denoise = denoise or solvers.denoise
    timesteps, sigmas, x = _start(model, shape, schedule, num_steps, generator, x_T, scale)
    pairs = list(zip(timesteps, sigmas, sigmas[1:]))
    for t, sigma, sigma_next in pairs if last else pairs[:-1]:
        d = (x - denoise(model, x, t, schedule)) / sigma
        x = x + sign * (sigma_next - sigma) * d
    return x


def heun_with(model, shape, schedule, num_steps, generator=None, x_T=None, *, scale=True, corrector=True,
              corrector_t=lambda t, t_next: t_next, from_trial=False):
    timesteps, sigmas, x = _start(model, shape, schedule, num_steps, generator, x_T, scale)
    for i, t in enumerate(timesteps):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        d = (x - solvers.denoise(model, x, t, schedule)) / sigma
        x_trial = x + (sigma_next - sigma) * d
        if sigma_next == 0 or not corrector:
            x = x_trial
        else:
            t_corrector = corrector_t(t, timesteps[i + 1])
            d_next = (x_trial - solvers.denoise(model, x_trial, t_corrector, schedule)) / sigma_next
            x = (x_trial if from_trial else x) + (sigma_next - sigma) * (d + d_next) / 2
    return x


def dpm_with(model, shape, schedule, num_steps, generator=None, x_T=None, *, scale=True,
             factor=lambda h, h_prev: h / (2 * h_prev), sign=1, second_order=True):
    timesteps, sigmas, x = _start(model, shape, schedule, num_steps, generator, x_T, scale)
    denoised_prev, h_prev = None, None
    for t, sigma, sigma_next in zip(timesteps, sigmas, sigmas[1:]):
        denoised = solvers.denoise(model, x, t, schedule)
        if sigma_next == 0:
            x = denoised
            continue
        h = math.log(sigma / sigma_next)
        D = denoised
        if denoised_prev is not None and second_order:
            D = denoised + sign * factor(h, h_prev) * (denoised - denoised_prev)
        x = (sigma_next / sigma) * x + (1 - sigma_next / sigma) * D
        denoised_prev, h_prev = denoised, h
    return x


def karras_with(sigma_min, sigma_max, num_steps, rho=7.0, *, power=None, ramp=None):
    ramp = ramp(num_steps) if ramp else torch.linspace(0.0, 1.0, num_steps, dtype=torch.float64)
    root = 1.0 / (power if power is not None else rho)
    return (sigma_max ** root + ramp * (sigma_min ** root - sigma_max ** root)) ** (1.0 / root)


VARIANTS = {
    "7.4": {
        "rho_inverted": lambda lo, hi, n, rho=7.0: karras_with(lo, hi, n, rho, power=1.0 / rho),
        "rho_ignored": lambda lo, hi, n, rho=7.0: karras_with(lo, hi, n, 7.0),
        "sigmas_ascending": lambda lo, hi, n, rho=7.0: karras_with(lo, hi, n, rho).flip(0),
        "karras_no_endpoint": lambda lo, hi, n, rho=7.0: karras_with(
            lo, hi, n, rho, ramp=lambda n: torch.arange(n, dtype=torch.float64) / n),
        "karras_no_rho": lambda lo, hi, n, rho=7.0: karras_with(lo, hi, n, 1.0),
    },
    "7.1": {
        "no_x_T_scaling": lambda *a, **k: euler_with(*a, **k, scale=False),
        "model_on_x_tilde": lambda *a, **k: euler_with(*a, **k, denoise=_denoise_on_x_tilde),
        "no_final_step": lambda *a, **k: euler_with(*a, **k, last=False),
        "wrong_direction": lambda *a, **k: euler_with(*a, **k, sign=-1),
        "model_t_minus_1": lambda *a, **k: euler_with(*a, **k, denoise=_denoise_t_minus_1),
    },
    "7.2": {
        "euler_only": lambda *a, **k: heun_with(*a, **k, corrector=False),
        "corrector_at_t_i": lambda *a, **k: heun_with(*a, **k, corrector_t=lambda t, t_next: t),
        "step_from_trial_point": lambda *a, **k: heun_with(*a, **k, from_trial=True),
        "no_x_T_scaling": lambda *a, **k: heun_with(*a, **k, scale=False),
    },
    "7.3": {
        "first_order_only": lambda *a, **k: dpm_with(*a, **k, second_order=False),
        "h_ratio_inverted": lambda *a, **k: dpm_with(*a, **k, factor=lambda h, h_prev: h_prev / (2 * h)),
        "correction_sign": lambda *a, **k: dpm_with(*a, **k, sign=-1),
        "no_x_T_scaling": lambda *a, **k: dpm_with(*a, **k, scale=False),
    },
}


def make_cases(mk) -> None:
    """The graded cases of 7.1, 7.2, 7.3, with inputs from mk's seeded generator."""
    """The cases of 7.1-7.3: a toy model, x_T given (or drawn from a seeded generator), several step counts."""
    toy = {"model": "toy", "T": 1000}
    names = {"linear1000": "the linear schedule (T = 1000)", "linear10": "a short linear schedule (T = 10)"}
    for exercise_id in ("7.1", "7.2", "7.3"):
        for name, T, sname, shape, kwargs, label in [
            ("steps10", 1000, "linear1000", [4, 2], {"num_steps": 10, "x_T": mk.randn(4, 2)},
             "num_steps = 10, x_T [4, 2] given"),
            ("steps7", 1000, "linear1000", [4, 2], {"num_steps": 7, "x_T": mk.randn(4, 2)},
             "num_steps = 7 (timesteps 1000, 857, 714, …, 143), x_T given"),
            ("one_step", 1000, "linear1000", [4, 2], {"num_steps": 1, "x_T": mk.randn(4, 2)},
             "num_steps = 1 (σ_T → 0 in one step)"),
            ("two_steps", 1000, "linear1000", [4, 2], {"num_steps": 2, "x_T": mk.randn(4, 2)}, "num_steps = 2"),
            ("all_steps", 10, "linear10", [4, 2], {"num_steps": 10, "x_T": mk.randn(4, 2)}, "num_steps = T = 10"),
            ("seeded_images", 1000, "linear1000", [3, 1, 2, 2], {"num_steps": 5, "generator": {"generator": 7}},
             "shape (3, 1, 2, 2), num_steps = 5, no x_T (drawn in float32 from the seeded generator)"),
        ]:
            mk.case(exercise_id, name,
                    [("model", {**toy, "T": T}), ("shape", {"shape": shape}), ("schedule", {"schedule": sname})],
                    kwargs, label=f"a fixed toy model, {names[sname]}, {label}", rows={"kind": "sample"},
                    dtype_from="x")

    # 7.4 karras_sigmas(sigma_min, sigma_max, num_steps, rho=7.0); σ_1 and σ_T of the linear schedule
    sigma_rows = {"kind": "index", "symbol": "σ", "offset": 0}
    alpha_bars = mk.tensors["schedule/linear1000/alpha_bars"]
    levels = ((1 - alpha_bars) / alpha_bars).sqrt()  # σ_t of the linear schedule, t = 0..1000
    sigma_1, sigma_T = float(levels[1]), float(levels[-1])
    # for a grading (mk.fresh) the σ's, N and ρ are drawn afresh; the shipped cases keep these values
    lo, hi = mk.uniform(sigma_1, 0.002, 0.05, digits=4), mk.uniform(sigma_T, 20.0, 200.0, digits=4)
    n10, n18 = mk.integer(10, 5, 14), mk.integer(18, 15, 30)
    k_lo, k_hi, k_n, k_rho = (mk.uniform(0.002, 0.001, 0.01), mk.uniform(80.0, 40.0, 120.0), mk.integer(6, 4, 9),
                              mk.uniform(3.0, 2.0, 5.0, digits=2))
    e_lo, e_hi, e_n = mk.uniform(0.5, 0.2, 1.0, digits=2), mk.uniform(4.5, 3.0, 6.0, digits=2), mk.integer(5, 3, 8)
    s_lo = mk.uniform(1.0, 0.5, 1.5, digits=2)
    s_hi, s_n = (mk.uniform(2.0, s_lo + 0.5, s_lo + 2.0, digits=2), mk.integer(4, 3, 6))
    for name, args, kwargs, label in [
        ("course10", [("sigma_min", lo), ("sigma_max", hi), ("num_steps", n10)], [],
         f"sigma_min = {lo:.4g}, sigma_max = {hi:.4g}, num_steps = {n10}, ρ = 7" if mk.fresh else
         f"sigma_min = σ_1 = {sigma_1:.4g}, sigma_max = σ_T = {sigma_T:.4g} (the linear schedule), num_steps = 10, ρ = 7"),
        ("course18", [("sigma_min", lo), ("sigma_max", hi), ("num_steps", n18)], [],
         f"sigma_min = {lo:.4g}, sigma_max = {hi:.4g}, num_steps = {n18}, ρ = 7"),
        ("rho3", [("sigma_min", k_lo), ("sigma_max", k_hi), ("num_steps", k_n)], {"rho": k_rho},
         f"sigma_min = {k_lo:g}, sigma_max = {k_hi:g}{'' if mk.fresh else ' (Karras et al.' + chr(39) + 's range)'}, "
         f"num_steps = {k_n}, rho = {k_rho:g}"),
        ("rho1", [("sigma_min", e_lo), ("sigma_max", e_hi), ("num_steps", e_n)], {"rho": 1.0},
         f"sigma_min = {e_lo:g}, sigma_max = {e_hi:g}, num_steps = {e_n}, rho = 1 (evenly spaced in σ"
         + ("" if mk.fresh else ": 4.5, 3.5, …, 0.5") + ")"),
        ("two", [("sigma_min", lo), ("sigma_max", hi), ("num_steps", 2)], [],
         f"sigma_min = {lo:.4g}, sigma_max = {hi:.4g}, num_steps = 2 (just the two ends)"),
        ("one", [("sigma_min", lo), ("sigma_max", hi), ("num_steps", 1)], [],
         f"sigma_min = {lo:.4g}, sigma_max = {hi:.4g}, num_steps = 1 (σ_max alone)"),
        ("small_range", [("sigma_min", s_lo), ("sigma_max", s_hi), ("num_steps", s_n)], [],
         f"sigma_min = {s_lo:g}, sigma_max = {s_hi:g}, num_steps = {s_n}, ρ = 7"),
    ]:
        mk.case("7.4", name, args, kwargs or {}, label=label, rows=sigma_rows, dtype_from="float64",
                what="the array of σ's")


MUTANTS = [  # (name, module, old text, new text, exercise that must lose points, what its message says)
    Mutant("Karras rho the wrong way round", "solvers",
           "max_root, min_root = sigma_max ** (1.0 / rho), sigma_min ** (1.0 / rho)\n"
           "    return (max_root + ramp * (min_root - max_root)) ** rho",
           "max_root, min_root = sigma_max ** rho, sigma_min ** rho\n"
           "    return (max_root + ramp * (min_root - max_root)) ** (1.0 / rho)",
           "7.4", "rho_inverted"),
    Mutant("Karras sigmas ascending", "solvers",
           "ramp = torch.linspace(0.0, 1.0, num_steps, dtype=torch.float64)",
           "ramp = torch.linspace(1.0, 0.0, num_steps, dtype=torch.float64)",
           "7.4", "sigmas_ascending"),
    Mutant("Karras sigmas miss sigma_min", "solvers",
           "ramp = torch.linspace(0.0, 1.0, num_steps, dtype=torch.float64)",
           "ramp = torch.arange(num_steps, dtype=torch.float64) / num_steps",
           "7.4", "karras_no_endpoint"),
]
# END MAINTAINER
