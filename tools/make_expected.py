"""Make the grader's expected values from the solutions: exercises/expected/.

    python tools/make_expected.py           # rewrite exercises/expected/{cases.json, expected.safetensors}
    python tools/make_expected.py --check   # exit 1 if the shipped files differ from a fresh run

For every graded case this runs the reference solution (imported from solutions/ directly) on
fixed inputs and stores inputs and output. It also runs the mistakes learners really make,
written below as small wrong variants of the formulas, and stores their outputs: when your
result matches one of them, the grader can name the mistake. A variant that gives the right
answer for a case (or fails on it) is not stored for that case.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "exercises"
for path in (ROOT, EXERCISES, ROOT / "tools"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import _grading  # noqa: E402  (exercises/_grading.py: the same decoding and comparison the grader uses)
from mini_diffusion._course.catalog import by_id  # noqa: E402
from mini_diffusion.toolkit.common import extract  # noqa: E402
from mini_diffusion.toolkit.diffusion_process import NoiseSchedule  # noqa: E402
from solutions import ddim, forward, losses, reverse, sampling, schedules  # noqa: E402

import make_expected_07  # noqa: E402  (tools/, next to this file)

TOL64, TOL32 = 1e-6, 1e-5  # relative tolerances the grader allows (float64 / float32 results)

MISTAKES = {
    # schedules
    "beta_0_included": "the result starts with β_0 = 0; return β_1..β_T only (length T): NoiseSchedule adds β_0 itself.",
    "T_plus_1_points": "T + 1 evenly spaced values from beta_start to beta_end; there are T of them (β_1..β_T).",
    "endpoint_excluded": "the last β stops short of beta_end: the step is (beta_end - beta_start) / (T - 1), so β_T = beta_end.",
    "reversed": "the values are in reverse order.",
    "missing_alpha_bar_0": "ᾱ_0 = 1 is missing at the front: the array has length T + 1 and index t holds ᾱ_t.",
    "cumprod_of_betas": "you multiplied the β's; ᾱ_t is the product of the α_s = 1 - β_s.",
    "alphas_not_cumprod": "you returned α_t; ᾱ_t is the cumulative product α_1 · α_2 · … · α_t (torch.cumprod).",
    "exclusive_cumprod": "off by one in t: ᾱ_t = α_1 ⋯ α_t includes α_t itself (yours stops at α_{t-1}).",
    "cumsum_not_cumprod": "you subtracted the β's from 1 (a sum); ᾱ_t is a product of the α's.",
    # forward
    "q_sample_coefficients_in_q_step": "you used ᾱ_t, the closed-form jump from x_0; one step from x_{t-1} uses β_t.",
    "no_sqrt": "the square roots are missing: the coefficients are √(…), not (…).",
    "noise_variance_as_std": "the noise is scaled by a variance; it needs the standard deviation, its square root.",
    "coefficients_swapped": "the two coefficients are swapped (the signal's factor went to the noise and back).",
    "beta_t_minus_1": "off by one in t: you used β_{t-1} (schedule.betas[t - 1]) where β_t belongs (schedule.betas[t]).",
    "alpha_for_alpha_bar": "you used α_t (schedule.alphas) where ᾱ_t (schedule.alpha_bars) belongs.",
    "alpha_bar_t_minus_1": "off by one in t: you used ᾱ_{t-1} where ᾱ_t belongs (index t is timestep t; index 0 is clean data).",
    "signal_no_sqrt": "x_0's coefficient is ᾱ_t; it is √ᾱ_t.",
    "beta_as_noise_scale": "the noise is scaled by √β_t, the noise of a single step; after t steps it is √(1 - ᾱ_t).",
    "plus_sign": "a sign: remove the noise with a minus, x_t - √(1 - ᾱ_t) ε.",
    "multiplied_not_divided": "you multiplied by √ᾱ_t; solving x_t = √ᾱ_t x_0 + … for x_0 divides by it.",
    "no_division": "the division by √ᾱ_t is missing.",
    "variance_beta": "the variance is β_t; the posterior's is β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) · β_t.",
    "std_not_variance": "you returned the standard deviation √β̃_t; q_posterior returns the variance β̃_t.",
    "mean_coefficients_swapped": "the coefficients of x_0 and x_t are swapped.",
    "alpha_bar_for_alpha": "you used ᾱ_t where α_t belongs (√α_t = √(1 - β_t), one step).",
    "alpha_bar_t_for_prev": "you used ᾱ_t where ᾱ_{t-1} belongs.",
    "no_sqrt_in_denominator": "the noise's coefficient is β_t / √(1 - ᾱ_t): the square root is missing.",
    "no_division_by_sqrt_alpha": "the division by √α_t is missing.",
    # loss
    "regressed_x0": "the loss compares the model's output with x_0; DDPM trains the model to predict the noise ε.",
    "sum_not_mean": "a sum; the loss is the mean over every element.",
    "per_sample_sum": "summed over each sample's elements and averaged over the batch; take the mean over every element.",
    "model_on_x0": "the model saw the clean x_0; it must see the noised x_t = q_sample(x_0, t, ε).",
    "target_x_t": "the loss compares the model's output with x_t; the target is the noise ε.",
    "rmse": "a square root of the mean squared error; the loss is the mean squared error itself.",
    "l1": "absolute errors; the loss squares them.",
    # DDPM
    "noise_at_t1": "noise added at t = 1: the last step returns the mean, with no noise.",
    "used_beta_tilde": "σ_t² = β̃_t, but variance='beta' asks for σ_t² = β_t.",
    "used_beta": "σ_t² = β_t, but variance='beta_tilde' asks for σ_t² = β̃_t.",
    "variance_as_sigma": "the noise is scaled by σ_t²; scale it by σ_t, the square root.",
    "no_noise": "no noise added: x_{t-1} = μ_θ + σ_t z (except at t = 1).",
    "model_t_minus_1": "off by one in t: the model was asked about t - 1; at step t it gets t.",
    "starts_at_T_minus_1": "the loop starts at t = T - 1; it runs t = T, T - 1, …, 1.",
    "stops_before_1": "the loop stops at t = 2; the last step, t = 1, is missing.",
    "runs_upward": "the loop runs t = 1, 2, …, T; sampling goes backwards, t = T, …, 1.",
    "variance_not_passed": "the `variance` argument is not passed on to ddpm_step.",
    "ignores_x_T": "the given x_T is ignored (fresh noise was drawn instead).",
    "trajectory_reversed": "the trajectory is in reverse order; it starts with x_T and ends with x_0.",
    # cosine and friends
    "not_normalised": "ᾱ_t = f(t) / f(0): the division by f(0) is missing, so ᾱ_0 is not 1.",
    "cos_not_squared": "f(t) is cos², squared.",
    "s_ignored": "the offset s is missing.",
    "offset_not_divided": "the angle is (t/T + s) / (1 + s) · π/2: the division by 1 + s is missing.",
    "T_values": "T values; ᾱ_0..ᾱ_T has T + 1 (t = 0..T).",
    "no_cap": "β_t is not capped at max_beta (the cosine schedule's last β would be 1).",
    "cap_fixed": "the cap is 0.999 whatever max_beta says; use the max_beta argument.",
    "ratio_inverted": "the ratio is upside down: β_t = 1 - ᾱ_t / ᾱ_{t-1}.",
    "one_minus_alpha_bar": "β_t = 1 - ᾱ_t; it is 1 - ᾱ_t / ᾱ_{t-1}, one step's worth.",
    "snr_inverted": "the ratio is upside down: SNR = ᾱ / (1 - ᾱ), signal over noise.",
    "log_snr": "you returned log SNR; return the SNR itself (plot its log).",
    "sqrt_snr": "a square root: the SNR is a ratio of variances, ᾱ / (1 - ᾱ).",
    # DDIM
    "ascending": "the timesteps go up; DDIM walks down from T.",
    "leading": "'leading' spacing from 0 (0, 50, …, 950); ours is 'trailing', starting at T (1000, 950, …, 50).",
    "leading_plus_one": "'leading' spacing from 1 (1, 51, …, 951); ours starts at T (1000, 950, …, 50).",
    "linspace_to_zero": "evenly spaced from T down to 0; the last timestep is T / num_steps, not 0 (the final jump to 0 is the sampler's job).",
    "linspace_to_one": "evenly spaced from T down to 1; the steps are T / num_steps apart: τ_i = round(T - i·T/num_steps).",
    "integer_step": "an integer step T // num_steps; the formula rounds T - i·T/num_steps, which differs when num_steps does not divide T.",
    "eta_ignored": "eta is ignored: with eta > 0, σ = eta · √((1-ᾱ_prev)/(1-ᾱ_t)) · √(1 - ᾱ_t/ᾱ_prev) and noise σ·z is added.",
    "noise_missing": "the noise σ · z is missing: with eta > 0, DDIM adds fresh noise.",
    "no_sigma_in_direction": "the direction term is √(1 - ᾱ_prev - σ²) ε: the - σ² is missing.",
    "sigma_no_sqrt": "σ needs its square roots: σ = eta · √((1-ᾱ_prev)/(1-ᾱ_t)) · √(1 - ᾱ_t/ᾱ_prev).",
    "t_minus_1_for_t_prev": "you used ᾱ_{t-1} where ᾱ_{t_prev} belongs: DDIM jumps from t to t_prev.",
    "ddpm_sigma": "σ = eta · √β_t; DDIM's σ is eta · √((1-ᾱ_prev)/(1-ᾱ_t)) · √(1 - ᾱ_t/ᾱ_prev).",
    "no_final_step": "the last jump, from the smallest timestep to t_prev = 0, is missing.",
    "eta_not_passed": "eta is not passed on to ddim_step.",
    "num_steps_ignored": "num_steps is ignored.",
    "steps_to_t_minus_1": "each step went to t - 1; DDIM jumps to the next timestep of ddim_timesteps (then to 0).",
}


# --- Wrong variants, as small functions (same arguments as the exercise function) --------


def altered(schedule, **arrays) -> NoiseSchedule:
    """A copy of schedule with some arrays replaced (for "used X where Y belongs" mistakes)."""
    s = NoiseSchedule.__new__(NoiseSchedule)
    s.betas, s.alphas, s.alpha_bars = schedule.betas, schedule.alphas, schedule.alpha_bars
    for name, values in arrays.items():
        setattr(s, name, values)
    return s


def shifted(values: torch.Tensor) -> torch.Tensor:
    """values[t - 1] at index t (and values[0] at 0): what indexing with t - 1 gives."""
    return torch.cat([values[:1], values[:-1]])


def coef(schedule, name, t, x):
    return extract(getattr(schedule, name), t, x, allow_zero=True)


def prev_alpha_bar(schedule, t, x):
    return extract(shifted(schedule.alpha_bars), t, x)


def ddpm_step_with(model, x_t, t, schedule, noise=None, variance="beta", generator=None, *, sigma2=None,
                   last_noise=False, model_t=None, sigma_power=0.5):
    """ddpm_step with a change: sigma2(...) replaces σ², noise at t = 1 too, the model asked about model_t."""
    t = torch.as_tensor(t).long().expand(x_t.shape[0]) if not isinstance(t, torch.Tensor) else t
    eps = model(x_t, model_t(t) if model_t else t)
    mean = reverse.p_mean(x_t, t, eps, schedule)
    if sigma2 is None:
        sigma2 = coef(schedule, "betas", t, x_t) if variance == "beta" else beta_tilde(schedule, t, x_t)
    else:
        sigma2 = sigma2(schedule, t, x_t)
    add = torch.ones_like(sigma2) if last_noise else (t > 1).to(x_t.dtype).reshape(sigma2.shape)
    if noise is None and not last_noise and not bool((t > 1).any()):
        return mean
    z = noise if noise is not None else torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype)
    return mean + add * sigma2**sigma_power * z


def beta_tilde(schedule, t, x):
    return (1 - prev_alpha_bar(schedule, t, x)) / (1 - coef(schedule, "alpha_bars", t, x)) * coef(schedule, "betas", t, x)


def ddpm_loop(model, shape, schedule, generator=None, variance="beta", x_T=None, trajectory=False, *,
              ts=None, step=None, ignore_x_T=False, reverse_states=False):
    if ignore_x_T and generator is None:
        raise ValueError("fresh noise without a generator is not reproducible: the grader's rerun catches it")
    x = x_T.clone() if x_T is not None and not ignore_x_T else torch.randn(shape, generator=generator)
    states = [x]
    for t in ts if ts is not None else range(schedule.T, 0, -1):
        x = (step or sampling.ddpm_step)(model, x, t, schedule, variance=variance, generator=generator)
        states.append(x)
    if reverse_states:
        states = states[::-1]
    return states if trajectory else x


def ddim_sigma(schedule, t, x, a_t, a_prev, eta):
    return eta * ((1 - a_prev) / (1 - a_t)).sqrt() * (1 - a_t / a_prev).sqrt()


def ddim_step_with(model, x_t, t, t_prev, schedule, eta=0.0, noise=None, generator=None, *, sigma=ddim_sigma,
                   direction=None, prev=None, add_noise=True):
    """ddim_step with a change: another σ, direction coefficient or ᾱ_prev."""
    t = torch.as_tensor(t).long().expand(x_t.shape[0])
    t_prev = torch.as_tensor(t_prev).long().expand(x_t.shape[0])
    eps = model(x_t, t)
    x0_hat = reverse.predict_x0(x_t, t, eps, schedule)
    a_t = coef(schedule, "alpha_bars", t, x_t)
    a_prev = prev(schedule, t, x_t) if prev else coef(schedule, "alpha_bars", t_prev, x_t)
    s = sigma(schedule, t, x_t, a_t, a_prev, eta)
    d = direction(a_prev, s) if direction else (1 - a_prev - s**2).sqrt()
    x_prev = a_prev.sqrt() * x0_hat + d * eps
    if eta > 0 and add_noise:
        z = noise if noise is not None else torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype)
        x_prev = x_prev + s * z
    return x_prev


def ddim_loop(model, shape, schedule, num_steps=50, eta=0.0, generator=None, x_T=None, *, pairs=None, step=None,
              ignore_x_T=False, step_eta=None):
    if ignore_x_T and generator is None:
        raise ValueError("fresh noise without a generator is not reproducible: the grader's rerun catches it")
    x = x_T.clone() if x_T is not None and not ignore_x_T else torch.randn(shape, generator=generator)
    ts = ddim.ddim_timesteps(schedule.T, num_steps).tolist()
    for t, t_prev in pairs(ts) if pairs else zip(ts, ts[1:] + [0]):
        x = (step or ddim.ddim_step)(model, x, t, t_prev, schedule, eta=eta if step_eta is None else step_eta,
                                     generator=generator)
    return x


def mse(a, b):
    return ((a - b) ** 2).mean()


def loss_variant(kind):
    def variant(model, x0, schedule, t=None, noise=None, generator=None):
        t = t if isinstance(t, torch.Tensor) else torch.full((x0.shape[0],), t)
        x_t = forward.q_sample(x0, t, schedule, noise)
        if kind == "regressed_x0":
            return mse(model(x_t, t), x0)
        if kind == "model_on_x0":
            return mse(noise, model(x0, t))
        if kind == "target_x_t":
            return mse(x_t, model(x_t, t))
        error = noise - model(x_t, t)
        return {"sum_not_mean": lambda: (error**2).sum(), "per_sample_sum": lambda: (error**2).flatten(1).sum(1).mean(),
                "rmse": lambda: (error**2).mean().sqrt(), "l1": lambda: error.abs().mean()}[kind]()

    return variant


VARIANTS = {
    "1.1": {
        "beta_0_included": lambda T=1000, a=1e-4, b=0.02: torch.cat([torch.zeros(1, dtype=torch.float64), schedules.linear_betas(T, a, b)]),
        "T_plus_1_points": lambda T=1000, a=1e-4, b=0.02: torch.linspace(a, b, T + 1, dtype=torch.float64),
        "endpoint_excluded": lambda T=1000, a=1e-4, b=0.02: a + (b - a) * torch.arange(T, dtype=torch.float64) / T,
        "reversed": lambda T=1000, a=1e-4, b=0.02: schedules.linear_betas(T, a, b).flip(0),
    },
    "1.2": {
        "missing_alpha_bar_0": lambda betas: torch.cumprod(1 - betas, 0),
        "cumprod_of_betas": lambda betas: torch.cat([torch.ones(1, dtype=betas.dtype), torch.cumprod(betas, 0)]),
        "alphas_not_cumprod": lambda betas: torch.cat([torch.ones(1, dtype=betas.dtype), 1 - betas]),
        "exclusive_cumprod": lambda betas: torch.cat([torch.ones(2, dtype=betas.dtype), torch.cumprod(1 - betas, 0)[:-1]]),
        "cumsum_not_cumprod": lambda betas: torch.cat([torch.ones(1, dtype=betas.dtype), 1 - torch.cumsum(betas, 0)]),
    },
    "1.3": {
        "q_sample_coefficients_in_q_step": lambda x, t, s, noise: forward.q_sample(x, t, s, noise),
        "no_sqrt": lambda x, t, s, noise: (1 - coef(s, "betas", t, x)) * x + coef(s, "betas", t, x) * noise,
        "noise_variance_as_std": lambda x, t, s, noise: (1 - coef(s, "betas", t, x)).sqrt() * x + coef(s, "betas", t, x) * noise,
        "coefficients_swapped": lambda x, t, s, noise: coef(s, "betas", t, x).sqrt() * x + (1 - coef(s, "betas", t, x)).sqrt() * noise,
        "beta_t_minus_1": lambda x, t, s, noise: forward.q_step(x, t, altered(s, betas=shifted(s.betas)), noise),
    },
    "1.4": {
        "alpha_for_alpha_bar": lambda x, t, s, noise: forward.q_sample(x, t, altered(s, alpha_bars=s.alphas), noise),
        "no_sqrt": lambda x, t, s, noise: coef(s, "alpha_bars", t, x) * x + (1 - coef(s, "alpha_bars", t, x)) * noise,
        "noise_variance_as_std": lambda x, t, s, noise: coef(s, "alpha_bars", t, x).sqrt() * x + (1 - coef(s, "alpha_bars", t, x)) * noise,
        "signal_no_sqrt": lambda x, t, s, noise: coef(s, "alpha_bars", t, x) * x + (1 - coef(s, "alpha_bars", t, x)).sqrt() * noise,
        "coefficients_swapped": lambda x, t, s, noise: (1 - coef(s, "alpha_bars", t, x)).sqrt() * x + coef(s, "alpha_bars", t, x).sqrt() * noise,
        "alpha_bar_t_minus_1": lambda x, t, s, noise: forward.q_sample(x, t, altered(s, alpha_bars=shifted(s.alpha_bars)), noise),
        "beta_as_noise_scale": lambda x, t, s, noise: coef(s, "alpha_bars", t, x).sqrt() * x + coef(s, "betas", t, x).sqrt() * noise,
    },
    "2.1": {
        "alpha_for_alpha_bar": lambda x, t, eps, s: reverse.predict_x0(x, t, eps, altered(s, alpha_bars=s.alphas)),
        "no_sqrt": lambda x, t, eps, s: (x - (1 - coef(s, "alpha_bars", t, x)) * eps) / coef(s, "alpha_bars", t, x),
        "plus_sign": lambda x, t, eps, s: (x + (1 - coef(s, "alpha_bars", t, x)).sqrt() * eps) / coef(s, "alpha_bars", t, x).sqrt(),
        "multiplied_not_divided": lambda x, t, eps, s: (x - (1 - coef(s, "alpha_bars", t, x)).sqrt() * eps) * coef(s, "alpha_bars", t, x).sqrt(),
        "no_division": lambda x, t, eps, s: x - (1 - coef(s, "alpha_bars", t, x)).sqrt() * eps,
        "alpha_bar_t_minus_1": lambda x, t, eps, s: reverse.predict_x0(x, t, eps, altered(s, alpha_bars=shifted(s.alpha_bars))),
    },
    "2.2": {
        "variance_beta": lambda x0, x, t, s: (reverse.q_posterior(x0, x, t, s)[0], coef(s, "betas", t, x)),
        "std_not_variance": lambda x0, x, t, s: (reverse.q_posterior(x0, x, t, s)[0], reverse.q_posterior(x0, x, t, s)[1].sqrt()),
        "mean_coefficients_swapped": lambda x0, x, t, s: reverse.q_posterior(x, x0, t, s),
        "alpha_bar_for_alpha": lambda x0, x, t, s: reverse.q_posterior(x0, x, t, altered(s, alphas=s.alpha_bars)),
        "alpha_bar_t_for_prev": lambda x0, x, t, s: (
            coef(s, "alpha_bars", t, x).sqrt() * coef(s, "betas", t, x) / (1 - coef(s, "alpha_bars", t, x)) * x0
            + coef(s, "alphas", t, x).sqrt() * x,
            coef(s, "betas", t, x)),
    },
    "2.3": {
        "alpha_bar_for_alpha": lambda x, t, eps, s: reverse.p_mean(x, t, eps, altered(s, alphas=s.alpha_bars)),
        "no_sqrt_in_denominator": lambda x, t, eps, s: (x - coef(s, "betas", t, x) / (1 - coef(s, "alpha_bars", t, x)) * eps) / coef(s, "alphas", t, x).sqrt(),
        "alpha_for_alpha_bar": lambda x, t, eps, s: reverse.p_mean(x, t, eps, altered(s, alpha_bars=s.alphas)),
        "plus_sign": lambda x, t, eps, s: (x + coef(s, "betas", t, x) / (1 - coef(s, "alpha_bars", t, x)).sqrt() * eps) / coef(s, "alphas", t, x).sqrt(),
        "no_division_by_sqrt_alpha": lambda x, t, eps, s: x - coef(s, "betas", t, x) / (1 - coef(s, "alpha_bars", t, x)).sqrt() * eps,
        "alpha_bar_t_minus_1": lambda x, t, eps, s: reverse.p_mean(x, t, eps, altered(s, alpha_bars=shifted(s.alpha_bars))),
    },
    "3.1": {kind: loss_variant(kind) for kind in
            ("regressed_x0", "sum_not_mean", "per_sample_sum", "model_on_x0", "target_x_t", "rmse", "l1")},
    "4.1": {
        "noise_at_t1": lambda *a, **k: ddpm_step_with(*a, **k, last_noise=True),
        "used_beta_tilde": lambda *a, **k: ddpm_step_with(*a, **k, sigma2=beta_tilde),
        "used_beta": lambda *a, **k: ddpm_step_with(*a, **k, sigma2=lambda s, t, x: coef(s, "betas", t, x)),
        "variance_as_sigma": lambda *a, **k: ddpm_step_with(*a, **k, sigma_power=1.0),
        "no_noise": lambda *a, **k: ddpm_step_with(*a, **k, sigma2=lambda s, t, x: torch.zeros_like(coef(s, "betas", t, x))),
        "model_t_minus_1": lambda *a, **k: ddpm_step_with(*a, **k, model_t=lambda t: t - 1),
    },
    "4.2": {
        "starts_at_T_minus_1": lambda m, sh, s, **k: ddpm_loop(m, sh, s, **k, ts=range(s.T - 1, 0, -1)),
        "stops_before_1": lambda m, sh, s, **k: ddpm_loop(m, sh, s, **k, ts=range(s.T, 1, -1)),
        "runs_upward": lambda m, sh, s, **k: ddpm_loop(m, sh, s, **k, ts=range(1, s.T + 1)),
        "variance_not_passed": lambda m, sh, s, **k: ddpm_loop(m, sh, s, **{**k, "variance": "beta"}),
        "ignores_x_T": lambda m, sh, s, **k: ddpm_loop(m, sh, s, **k, ignore_x_T=True),
        "noise_at_t1": lambda m, sh, s, **k: ddpm_loop(m, sh, s, **k, step=lambda *a, **kk: ddpm_step_with(*a, **kk, last_noise=True)),
        "trajectory_reversed": lambda m, sh, s, **k: ddpm_loop(m, sh, s, **k, reverse_states=True),
    },
    "5.1": {
        "not_normalised": lambda T=1000, s=0.008: torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s) * math.pi / 2) ** 2,
        "cos_not_squared": lambda T=1000, s=0.008: (lambda f: f / f[0])(torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s) * math.pi / 2)),
        "s_ignored": lambda T=1000, s=0.008: schedules.cosine_alpha_bars(T, 0.0),
        "offset_not_divided": lambda T=1000, s=0.008: (lambda f: f / f[0])(torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + s) * math.pi / 2) ** 2),
        "T_values": lambda T=1000, s=0.008: schedules.cosine_alpha_bars(T, s)[1:],
    },
    "5.2": {
        "no_cap": lambda ab, max_beta=0.999: 1 - ab[1:] / ab[:-1],
        "cap_fixed": lambda ab, max_beta=0.999: (1 - ab[1:] / ab[:-1]).clamp(max=0.999),
        "ratio_inverted": lambda ab, max_beta=0.999: (1 - ab[:-1] / ab[1:]).clamp(max=max_beta),
        "beta_0_included": lambda ab, max_beta=0.999: (1 - ab / torch.cat([ab[:1], ab[:-1]])).clamp(max=max_beta),
        "one_minus_alpha_bar": lambda ab, max_beta=0.999: (1 - ab[1:]).clamp(max=max_beta),
    },
    "5.3": {
        "snr_inverted": lambda ab: (1 - ab) / ab,
        "log_snr": lambda ab: torch.log(ab / (1 - ab)),
        "sqrt_snr": lambda ab: (ab / (1 - ab)).sqrt(),
    },
    "6.1": {
        "ascending": lambda T, n: ddim.ddim_timesteps(T, n).flip(0),
        "leading": lambda T, n: torch.arange(n) * (T // n),
        "leading_plus_one": lambda T, n: torch.arange(n) * (T // n) + 1,
        "linspace_to_zero": lambda T, n: torch.linspace(T, 0, n).round().long(),
        "linspace_to_one": lambda T, n: torch.linspace(T, 1, n).round().long(),
        "integer_step": lambda T, n: T - torch.arange(n) * (T // n),
    },
    "6.2": {
        "eta_ignored": lambda *a, **k: ddim_step_with(*a, **{**k, "eta": 0.0}),
        "noise_missing": lambda *a, **k: ddim_step_with(*a, **k, add_noise=False),
        "no_sigma_in_direction": lambda *a, **k: ddim_step_with(*a, **k, direction=lambda a_prev, s: (1 - a_prev).sqrt()),
        "sigma_no_sqrt": lambda *a, **k: ddim_step_with(
            *a, **k, sigma=lambda s, t, x, a_t, a_prev, eta: eta * (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)),
        "t_minus_1_for_t_prev": lambda *a, **k: ddim_step_with(*a, **k, prev=prev_alpha_bar),
        "ddpm_sigma": lambda *a, **k: ddim_step_with(
            *a, **k, sigma=lambda s, t, x, a_t, a_prev, eta: eta * coef(s, "betas", t, x).sqrt()),
    },
    "6.3": {
        "no_final_step": lambda m, sh, s, **k: ddim_loop(m, sh, s, **k, pairs=lambda ts: zip(ts, ts[1:])),
        "eta_not_passed": lambda m, sh, s, **k: ddim_loop(m, sh, s, **k, step_eta=0.0),
        "num_steps_ignored": lambda m, sh, s, **k: ddim_loop(m, sh, s, **{**k, "num_steps": min(50, s.T)}),
        "steps_to_t_minus_1": lambda m, sh, s, **k: ddim_loop(m, sh, s, **k, pairs=lambda ts: ((t, t - 1) for t in ts)),
        "ignores_x_T": lambda m, sh, s, **k: ddim_loop(m, sh, s, **k, ignore_x_T=True),
    },
}

SOLUTIONS = {
    "1.1": schedules.linear_betas, "1.2": schedules.alpha_bars_from_betas, "1.3": forward.q_step,
    "1.4": forward.q_sample, "2.1": reverse.predict_x0, "2.2": reverse.q_posterior, "2.3": reverse.p_mean,
    "3.1": losses.diffusion_loss, "4.1": sampling.ddpm_step, "4.2": sampling.ddpm_sample,
    "5.1": schedules.cosine_alpha_bars, "5.2": schedules.betas_from_alpha_bars, "5.3": schedules.snr,
    "6.1": ddim.ddim_timesteps, "6.2": ddim.ddim_step, "6.3": ddim.ddim_sample,
}


# Notebooks that joined later keep their cases in tools/make_expected_<nn>.py, each with
# register(SOLUTIONS, VARIANTS, MISTAKES) and add_cases(maker).
LATER_NOTEBOOKS = [make_expected_07]
for _notebook in LATER_NOTEBOOKS:
    _notebook.register(SOLUTIONS, VARIANTS, MISTAKES)


# --- Inputs --------------------------------------------------------------------------------


class Maker:
    """Collects cases: their inputs, the solution's output and the matching wrong outputs."""

    def __init__(self):
        self.tensors, self.exercises = {}, {}
        self.generator = torch.Generator().manual_seed(2024)

    def randn(self, *shape, dtype=torch.float64):
        return torch.randn(*shape, generator=self.generator, dtype=torch.float64).to(dtype)

    def add_schedule(self, name, betas, alpha_bars):
        self.tensors[f"schedule/{name}/betas"] = betas.to(torch.float64).clone().contiguous()
        self.tensors[f"schedule/{name}/alpha_bars"] = alpha_bars.to(torch.float64).clone().contiguous()

    def encode(self, key, value):
        if isinstance(value, torch.Tensor):
            self.tensors[key] = value.detach().clone().contiguous()
            return {"tensor": key}
        return value

    def case(self, exercise_id, name, args, kwargs=None, *, label, rows=None, note=None, output="tensor",
             dtype_from=None, what="the result", x_shape=None):
        """args/kwargs: (name, value) pairs / dict; a value may be a tensor, a decoded-spec dict or a plain value."""
        kwargs = kwargs or {}
        prefix = f"{exercise_id}/{name}"
        spec = {
            "label": label, "what": what, "output": output, "rows": rows, "note": note, "dtype_from": dtype_from,
            "args": [self.encode(f"{prefix}/{k}", v) for k, v in args],
            "kwargs": {k: self.encode(f"{prefix}/{k}", v) for k, v in kwargs.items()},
        }
        if x_shape is not None:
            spec["x_shape"] = list(x_shape)
        call_args, call_kwargs = _grading.build_call(spec, self.tensors)
        expected = SOLUTIONS[exercise_id](*call_args, **call_kwargs)
        floating = [v for v in _flatten(expected) if v.is_floating_point()]
        spec["tol"] = TOL32 if floating and all(v.dtype == torch.float32 for v in floating) else TOL64
        if output == "states":
            spec["states"] = len(expected)
        spec["expected"] = self.store_output(f"{prefix}/expected", expected, output)
        spec["mistakes"] = {}
        for key, variant in VARIANTS.get(exercise_id, {}).items():
            call_args, call_kwargs = _grading.build_call(spec, self.tensors)
            try:
                with torch.no_grad():
                    wrong = variant(*call_args, **call_kwargs)
            except Exception:  # noqa: BLE001 - a mistake that crashes on this case shows as an error anyway
                continue
            if self.distinct(wrong, expected, spec):
                spec["mistakes"][key] = self.store_output(f"{prefix}/mistake/{key}", wrong, output)
        self.exercises.setdefault(exercise_id, {"function": by_id(exercise_id).function, "cases": {}})
        self.exercises[exercise_id]["cases"][name] = spec

    def store_output(self, key, value, output):
        if output == "pair":
            return [self.encode(f"{key}/mean", value[0].detach())["tensor"],
                    self.encode(f"{key}/variance", torch.as_tensor(value[1]).detach())["tensor"]]
        if output == "states":
            value = torch.stack(list(value))
        return self.encode(key, value.detach())["tensor"]

    def distinct(self, wrong, expected, spec) -> bool:
        """Is the wrong output clearly (10 x the tolerance) different from the right one?"""
        loose = {**spec, "tol": spec["tol"] * 10}
        parts = (0, 1) if spec["output"] == "pair" else (None,)
        different = []
        for part in parts:
            if not _grading._outputs_close(list(wrong) if spec["output"] == "pair" else wrong, list(expected)
                                           if spec["output"] == "pair" else expected, loose, part):
                different.append(part)
        return bool(different)


def _flatten(value):
    if isinstance(value, torch.Tensor):
        return [value]
    return [v for item in value for v in _flatten(item)]


def t_rows(t, batch):
    values = t.tolist() if isinstance(t, torch.Tensor) else [t] * batch
    return {"kind": "t", "values": values}


SCHEDULE_NAMES = {
    "linear1000": "the linear schedule (T = 1000)", "cosine1000": "the cosine schedule (T = 1000)",
    "linear50": "a linear schedule with T = 50 (β from 0.002 to 0.2)",
    "linear10": "a short linear schedule (T = 10, β from 0.01 to 0.3)", "single": "a one-step schedule (T = 1, β_1 = 0.3)",
}


def sched(name):
    return {"schedule": name}


def make() -> Maker:
    mk = Maker()
    lin = schedules.linear_betas(1000)
    mk.add_schedule("linear1000", lin, schedules.alpha_bars_from_betas(lin))
    cos = schedules.betas_from_alpha_bars(schedules.cosine_alpha_bars(1000))
    mk.add_schedule("cosine1000", cos, schedules.alpha_bars_from_betas(cos))
    fifty = schedules.linear_betas(50, 0.002, 0.2)
    mk.add_schedule("linear50", fifty, schedules.alpha_bars_from_betas(fifty))
    short = schedules.linear_betas(10, 0.01, 0.3)
    mk.add_schedule("linear10", short, schedules.alpha_bars_from_betas(short))
    one = torch.tensor([0.3], dtype=torch.float64)
    mk.add_schedule("single", one, schedules.alpha_bars_from_betas(one))

    mixed = torch.tensor([1, 2, 10, 500, 999, 1000])

    def x_mixed():
        return mk.randn(6, 2)

    def images32():
        return mk.randn(5, 1, 3, 3, dtype=torch.float32)

    lab_mixed = f"x [6, 2] float64, t = {mixed.tolist()} (a batch of mixed t), the linear schedule (T = 1000)"

    # 1.1 linear_betas(T, beta_start, beta_end)
    beta_rows = {"kind": "index", "symbol": "β", "offset": 1}
    for name, args, label, note in [
        ("T1000", [], "the defaults (T = 1000, β from 1e-4 to 0.02)", None),
        ("T5", [("T", 5), ("beta_start", 0.1), ("beta_end", 0.5)], "T = 5, beta_start = 0.1, beta_end = 0.5", None),
        ("T1", [("T", 1)], "T = 1", "with T = 1 there is one β, β_1 = beta_start; (t - 1) / (T - 1) is 0 / 0 there"),
        ("T10", [("T", 10), ("beta_start", 0.001), ("beta_end", 0.05)], "T = 10, beta_start = 0.001, beta_end = 0.05", None),
    ]:
        mk.case("1.1", name, args, label=label, rows=beta_rows, note=note, dtype_from="float64", what="the array of β's")

    # 1.2 alpha_bars_from_betas(betas)
    ab_rows = {"kind": "index", "symbol": "ᾱ", "offset": 0}
    for name, betas, label in [
        ("two", torch.tensor([0.5, 0.5], dtype=torch.float64), "betas = [0.5, 0.5]"),
        ("random5", 0.01 + 0.4 * torch.rand(5, generator=mk.generator, dtype=torch.float64), "five random β's"),
        ("linear1000", lin.clone(), "the linear schedule's 1000 β's"),
        ("single", one.clone(), "a single β, [0.3] (T = 1)"),
    ]:
        mk.case("1.2", name, [("betas", betas)], label=label, rows=ab_rows, dtype_from="float64", what="the array of ᾱ's")

    # 1.3 q_step and 1.4 q_sample (x, t, schedule, noise)
    for ex, x_name in (("1.3", "x_prev"), ("1.4", "x0")):
        mk.case(ex, "mixed_t", [(x_name, x_mixed()), ("t", mixed), ("schedule", sched("linear1000")),
                                ("noise", mk.randn(6, 2))],
                label=lab_mixed.replace("x ", f"{x_name} ") + ", noise given", rows=t_rows(mixed, 6), dtype_from="x")
        mk.case(ex, "images_float32", [(x_name, images32()), ("t", 1000 if ex == "1.3" else 500),
                                       ("schedule", sched("cosine1000")), ("noise", mk.randn(5, 1, 3, 3, dtype=torch.float32))],
                label=f"{x_name} [5, 1, 3, 3] float32 (images), t = {1000 if ex == '1.3' else 500} (an int), the cosine "
                      "schedule (T = 1000), noise given", rows=t_rows(1000 if ex == "1.3" else 500, 5), dtype_from="x")
        mk.case(ex, "single", [(x_name, mk.randn(4, 3)), ("t", 1), ("schedule", sched("single")), ("noise", mk.randn(4, 3))],
                label=f"{x_name} [4, 3] float64, t = 1, {SCHEDULE_NAMES['single']}, noise given", rows=t_rows(1, 4),
                dtype_from="x")

    # 2.1 predict_x0 and 2.3 p_mean (x_t, t, eps, schedule)
    for ex in ("2.1", "2.3"):
        mk.case(ex, "mixed_t", [("x_t", x_mixed()), ("t", mixed), ("eps", mk.randn(6, 2)), ("schedule", sched("linear1000"))],
                label=lab_mixed.replace("x ", "x_t ") + ", eps given", rows=t_rows(mixed, 6), dtype_from="x")
        mk.case(ex, "images_float32", [("x_t", images32()), ("t", 700), ("eps", mk.randn(5, 1, 3, 3, dtype=torch.float32)),
                                       ("schedule", sched("cosine1000"))],
                label="x_t [5, 1, 3, 3] float32 (images), t = 700 (an int), the cosine schedule (T = 1000)",
                rows=t_rows(700, 5), dtype_from="x")
        mk.case(ex, "single", [("x_t", mk.randn(4, 3)), ("t", 1), ("eps", mk.randn(4, 3)), ("schedule", sched("single"))],
                label=f"x_t [4, 3] float64, t = 1, {SCHEDULE_NAMES['single']}", rows=t_rows(1, 4), dtype_from="x")

    # 2.2 q_posterior(x0, x_t, t, schedule) -> (mean, variance)
    mk.case("2.2", "mixed_t", [("x0", x_mixed()), ("x_t", mk.randn(6, 2)), ("t", mixed), ("schedule", sched("linear1000"))],
            label=lab_mixed.replace("x ", "x0 and x_t "), rows=t_rows(mixed, 6), output="pair", x_shape=(6, 2),
            dtype_from="x", note="at t = 1, ᾱ_0 = 1: the mean is x_0 and the variance 0")
    mk.case("2.2", "images_float32", [("x0", images32()), ("x_t", mk.randn(5, 1, 3, 3, dtype=torch.float32)), ("t", 300),
                                      ("schedule", sched("cosine1000"))],
            label="x0 and x_t [5, 1, 3, 3] float32 (images), t = 300 (an int), the cosine schedule (T = 1000)",
            rows=t_rows(300, 5), output="pair", x_shape=(5, 1, 3, 3), dtype_from="x")
    mk.case("2.2", "single", [("x0", mk.randn(4, 3)), ("x_t", mk.randn(4, 3)), ("t", 1), ("schedule", sched("single"))],
            label=f"x0 and x_t [4, 3] float64, t = 1, {SCHEDULE_NAMES['single']}", rows=t_rows(1, 4), output="pair",
            x_shape=(4, 3), dtype_from="x")

    # 3.1 diffusion_loss(model, x0, schedule, t=, noise=) with given t and noise
    toy_net = {"model": "toy_network", "T": 1000}
    mk.case("3.1", "given_t_and_noise", [("model", toy_net), ("x0", x_mixed()), ("schedule", sched("linear1000"))],
            {"t": mixed, "noise": mk.randn(6, 2)},
            label=f"a fixed toy model, x0 [6, 2], t = {mixed.tolist()} and noise given", what="the loss", dtype_from="x")
    mk.case("3.1", "images_int_t", [("model", toy_net), ("x0", mk.randn(5, 1, 3, 3)), ("schedule", sched("cosine1000"))],
            {"t": 400, "noise": mk.randn(5, 1, 3, 3)},
            label="a fixed toy model, x0 [5, 1, 3, 3] (images), t = 400 (an int), noise given, the cosine schedule",
            what="the loss", dtype_from="x")

    # 4.1 ddpm_step(model, x_t, t, schedule, noise=, variance=)
    toy = {"model": "toy", "T": 1000}
    for variance in ("beta", "beta_tilde"):
        mk.case("4.1", f"{variance}_mixed_t", [("model", toy), ("x_t", x_mixed()), ("t", mixed), ("schedule", sched("linear1000"))],
                {"noise": mk.randn(6, 2), "variance": variance},
                label=f"a fixed toy model, {lab_mixed.replace('x ', 'x_t ')}, noise given, variance='{variance}'",
                rows=t_rows(mixed, 6), dtype_from="x")
    mk.case("4.1", "t1", [("model", toy), ("x_t", mk.randn(4, 3)), ("t", 1), ("schedule", sched("linear1000"))],
            {"noise": mk.randn(4, 3)}, label="a fixed toy model, x_t [4, 3], t = 1, noise given", rows=t_rows(1, 4),
            dtype_from="x", note="at t = 1 the step returns the mean μ_θ: no noise, even when noise is given")
    mk.case("4.1", "images_float32", [("model", toy), ("x_t", images32()), ("t", 500), ("schedule", sched("cosine1000"))],
            {"noise": mk.randn(5, 1, 3, 3, dtype=torch.float32)},
            label="a fixed toy model, x_t [5, 1, 3, 3] float32 (images), t = 500, the cosine schedule, noise given",
            rows=t_rows(500, 5), dtype_from="x")
    mk.case("4.1", "single", [("model", {"model": "toy", "T": 1}), ("x_t", mk.randn(4, 3)), ("t", 1), ("schedule", sched("single"))],
            {"noise": mk.randn(4, 3), "variance": "beta_tilde"},
            label=f"a fixed toy model, x_t [4, 3], t = 1, {SCHEDULE_NAMES['single']}, variance='beta_tilde'",
            rows=t_rows(1, 4), dtype_from="x")

    # 4.2 ddpm_sample(model, shape, schedule, generator=, variance=, x_T=, trajectory=)
    for name, T, sname, kwargs, label in [
        ("x_T_given", 50, "linear50", {"generator": {"generator": 1}, "x_T": mk.randn(4, 2)},
         "x_T [4, 2] given, a seeded generator"),
        ("beta_tilde", 50, "linear50", {"generator": {"generator": 2}, "variance": "beta_tilde", "x_T": mk.randn(4, 2)},
         "x_T [4, 2] given, a seeded generator, variance='beta_tilde'"),
        ("seeded", 10, "linear10", {"generator": {"generator": 3}},
         "no x_T (drawn first from the seeded generator, then one z per step for t = T..2)"),
        ("trajectory", 10, "linear10", {"generator": {"generator": 4}, "x_T": mk.randn(4, 2), "trajectory": True},
         "x_T [4, 2] given, a seeded generator, trajectory=True"),
        ("single", 1, "single", {"generator": {"generator": 5}, "x_T": mk.randn(4, 2)}, "x_T [4, 2] given"),
    ]:
        mk.case("4.2", name, [("model", {"model": "toy", "T": T}), ("shape", {"shape": [4, 2]}), ("schedule", sched(sname))],
                kwargs, label=f"a fixed toy model, {SCHEDULE_NAMES[sname]}, {label}",
                output="states" if kwargs.get("trajectory") else "tensor",
                rows={"kind": "states"} if kwargs.get("trajectory") else {"kind": "sample"}, dtype_from="x")

    # 5.1 cosine_alpha_bars(T, s)
    for name, args, label in [("T1000", [], "the defaults (T = 1000, s = 0.008)"), ("T4", [("T", 4)], "T = 4"),
                              ("T10_s", [("T", 10), ("s", 0.1)], "T = 10, s = 0.1"), ("T1", [("T", 1)], "T = 1")]:
        mk.case("5.1", name, args, label=label, rows=ab_rows, dtype_from="float64", what="the array of ᾱ's")

    # 5.2 betas_from_alpha_bars(alpha_bars, max_beta)
    cos_ab = schedules.cosine_alpha_bars(1000)
    for name, args, label in [
        ("cosine1000", [("alpha_bars", cos_ab)], "the cosine curve's ᾱ (T = 1000), max_beta = 0.999"),
        ("small", [("alpha_bars", torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64))], "alpha_bars = [1, 0.5, 0.25]"),
        ("cap", [("alpha_bars", torch.tensor([1.0, 0.9, 0.3, 0.01], dtype=torch.float64)), ("max_beta", 0.5)],
         "alpha_bars = [1, 0.9, 0.3, 0.01], max_beta = 0.5"),
    ]:
        mk.case("5.2", name, args, label=label, rows=beta_rows, dtype_from="float64", what="the array of β's")

    # 5.3 snr(alpha_bars)
    mk.case("5.3", "linear1000", [("alpha_bars", schedules.alpha_bars_from_betas(lin))],
            label="the linear schedule's ᾱ_0..ᾱ_T (SNR is infinite at t = 0)", rows=ab_rows, what="the SNR")
    mk.case("5.3", "float32", [("alpha_bars", torch.tensor([0.5, 0.2, 0.9], dtype=torch.float32))],
            label="alpha_bars = [0.5, 0.2, 0.9] float32 (the result keeps the dtype)", rows=ab_rows, what="the SNR")

    # 6.1 ddim_timesteps(T, num_steps)
    tau_rows = {"kind": "index", "symbol": "τ", "offset": 1}
    for T, n in [(1000, 20), (1000, 50), (10, 3), (1000, 1), (7, 7), (1000, 1000)]:
        mk.case("6.1", f"T{T}_n{n}", [("T", T), ("num_steps", n)], label=f"T = {T}, num_steps = {n}", rows=tau_rows,
                what="the array of timesteps")

    # 6.2 ddim_step(model, x_t, t, t_prev, schedule, eta=, noise=)
    t = torch.tensor([1000, 1000, 500, 20, 2, 1])
    t_prev = torch.tensor([950, 0, 450, 0, 1, 0])
    pair_rows = {"kind": "t", "values": [f"{a} → {b}" for a, b in zip(t.tolist(), t_prev.tolist())]}
    for name, eta in (("eta0_mixed", 0.0), ("eta1_mixed", 1.0), ("eta_half_mixed", 0.5)):
        kwargs = {"eta": eta}
        if eta:
            kwargs["noise"] = mk.randn(6, 2)
        mk.case("6.2", name, [("model", toy), ("x_t", x_mixed()), ("t", t), ("t_prev", t_prev), ("schedule", sched("linear1000"))],
                kwargs, label=f"a fixed toy model, x_t [6, 2], steps t → t_prev = {pair_rows['values']} (t_prev = 0 is "
                              f"clean data, ᾱ_0 = 1), the linear schedule, eta = {eta:g}{', noise given' if eta else ''}",
                rows=pair_rows, dtype_from="x")
    mk.case("6.2", "images_float32", [("model", toy), ("x_t", images32()), ("t", 1000), ("t_prev", 950), ("schedule", sched("cosine1000"))],
            {"eta": 0.0}, label="a fixed toy model, x_t [5, 1, 3, 3] float32 (images), t = 1000, t_prev = 950 (ints), "
                                "the cosine schedule, eta = 0", rows=t_rows(1000, 5), dtype_from="x")

    # 6.3 ddim_sample(model, shape, schedule, num_steps=, eta=, generator=, x_T=)
    for name, T, sname, kwargs, label in [
        ("steps20", 1000, "linear1000", {"num_steps": 20, "x_T": mk.randn(4, 2)}, "num_steps = 20, x_T [4, 2] given"),
        ("eta1_seeded", 1000, "linear1000", {"num_steps": 10, "eta": 1.0, "generator": {"generator": 6}, "x_T": mk.randn(4, 2)},
         "num_steps = 10, eta = 1 (one z per step from the seeded generator), x_T given"),
        ("one_step", 1000, "linear1000", {"num_steps": 1, "x_T": mk.randn(4, 2)}, "num_steps = 1 (T → 0 in one jump)"),
        ("all_steps", 10, "linear10", {"num_steps": 10, "x_T": mk.randn(4, 2)}, "num_steps = T = 10"),
        ("single", 1, "single", {"num_steps": 1, "x_T": mk.randn(4, 2)}, "num_steps = 1"),
    ]:
        mk.case("6.3", name, [("model", {"model": "toy", "T": T}), ("shape", {"shape": [4, 2]}), ("schedule", sched(sname))],
                kwargs, label=f"a fixed toy model, {SCHEDULE_NAMES[sname]}, {label}", rows={"kind": "sample"},
                dtype_from="x")

    for notebook in LATER_NOTEBOOKS:
        notebook.add_cases(mk)
    return mk


def write(mk: Maker, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(mk.tensors, str(folder / "expected.safetensors"), metadata={"made_by": "tools/make_expected.py"})
    used = sorted({key for ex in mk.exercises.values() for case in ex["cases"].values() for key in case["mistakes"]})
    table = {
        "made_by": "python tools/make_expected.py (from solutions/); do not edit by hand",
        "mistakes": {key: MISTAKES[key] for key in used},
        "exercises": mk.exercises,
    }
    (folder / "cases.json").write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _same_values(shipped: torch.Tensor, fresh: torch.Tensor) -> bool:
    """Equal up to rounding: float64 to 1e-9; float32 to a few units in the last place of the
    tensor's scale (another CPU's vector instructions round float32 differently)."""
    a, b = shipped.double(), fresh.double()
    if fresh.dtype != torch.float32 or fresh.numel() == 0:
        return torch.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True)
    scale = b.abs().nan_to_num(posinf=0).max().item()
    return torch.allclose(a, b, rtol=0, atol=max(1e-6 * scale, 1e-12), equal_nan=True)


def differences(mk: Maker, folder: Path) -> list[str]:
    """What differs between a fresh run and the files in folder (empty: they are current)."""
    problems = []
    try:
        shipped = load_file(str(folder / "expected.safetensors"))
        table = json.loads((folder / "cases.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return [f"cannot read {folder}: {err}"]
    if table.get("exercises") != json.loads(json.dumps(mk.exercises)):
        problems.append("cases.json: the cases or their mistakes differ")
    for key in sorted(set(shipped) | set(mk.tensors)):
        if key not in shipped or key not in mk.tensors:
            problems.append(f"tensor {key} is {'missing' if key not in shipped else 'no longer made'}")
        elif shipped[key].dtype != mk.tensors[key].dtype or shipped[key].shape != mk.tensors[key].shape or not _same_values(
                shipped[key], mk.tensors[key]):
            problems.append(f"tensor {key} differs")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the shipped files instead of writing")
    parser.add_argument("--out", type=Path, default=_grading.EXPECTED_DIR)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    mk = make()
    if args.check:
        problems = differences(mk, args.out)
        for problem in problems[:20]:
            print(problem)
        if problems:
            print(f"{len(problems)} difference(s): run `python tools/make_expected.py` to update {args.out}")
        return 1 if problems else 0
    write(mk, args.out)
    cases = sum(len(ex["cases"]) for ex in mk.exercises.values())
    mistakes = sum(len(c["mistakes"]) for ex in mk.exercises.values() for c in ex["cases"].values())
    print(f"wrote {args.out}: {cases} cases, {mistakes} stored wrong outputs, {len(mk.tensors)} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
