"""Notebook 07's part of tools/make_expected.py: the graded cases of exercises 7.1-7.3 (solvers.py)
and the mistakes learners make in them, as small wrong variants of the samplers.

make_expected.py calls `register(SOLUTIONS, VARIANTS, MISTAKES)` once, then `add_cases(mk)` at the
end of make(); the cases use the schedules and the toy model make() already set up.
"""

import math

from mini_diffusion.toolkit.common import as_t_tensor
from solutions import solvers

# New messages only; "no_final_step" and "model_t_minus_1" are make_expected's own (DDIM, DDPM).
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
}


# --- Wrong variants (same arguments as the samplers) --------------------------------------


def _start(model, shape, schedule, num_steps, generator, x_T, scale=True):
    timesteps, sigmas = solvers.sigmas_for(schedule, num_steps)
    x_T = solvers.starting_noise(model, shape, generator, x_T)
    sigmas = sigmas.tolist()
    return timesteps.tolist(), sigmas, x_T * (math.sqrt(1 + sigmas[0] ** 2) if scale else 1.0)


def _denoise_on_x_tilde(model, x, t, schedule):
    sigma = solvers.sigmas_of(schedule)[t].item()
    return x - sigma * model(x, as_t_tensor(t, x.shape[0]))


def _denoise_t_minus_1(model, x, t, schedule):
    return solvers.denoise(model, x, t, schedule) if t == 1 else solvers.denoise(model, x, t - 1, schedule)


def euler_with(model, shape, schedule, num_steps, generator=None, x_T=None, *, scale=True,
               denoise=solvers.denoise, last=True, sign=1):
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


VARIANTS = {
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

SOLUTIONS = {"7.1": solvers.euler_sample, "7.2": solvers.heun_sample, "7.3": solvers.dpm_solver_sample}


def register(solutions: dict, variants: dict, mistakes: dict) -> None:
    """Add notebook 07's solutions, wrong variants and mistake messages to make_expected's tables."""
    solutions.update(SOLUTIONS)
    variants.update(VARIANTS)
    clash = sorted(key for key in MISTAKES if key in mistakes and mistakes[key] != MISTAKES[key])
    if clash:
        raise ValueError(f"mistake keys used with two meanings: {clash}")
    mistakes.update(MISTAKES)


def add_cases(mk) -> None:
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
