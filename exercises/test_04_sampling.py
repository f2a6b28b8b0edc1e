"""Notebook 04, sampling: exercises 4.1 and 4.2 (sampling.py)."""

import pytest

from _grading import grade_cases
from _quality import DDPM_LIMIT, check_moons_quality
from _spec import Exercise, Notebook

NOTEBOOK = Notebook(
    "04", "04_sampling", title="Sampling: from pure noise to data",
    idea="the reverse loop, σ_t choices, the speed problem",
    needs=("1.1", "1.2", "2.1", "2.3"),
)
EXERCISES = [
    Exercise("4.1", "sampling", "ddpm_step", points=3, title="one DDPM reverse step"),
    Exercise("4.2", "sampling", "ddpm_sample", points=3, title="the DDPM sampling loop", uses=("4.1",)),
]

exercise = pytest.mark.exercise


@exercise("4.1", points=1)
def test_ddpm_step_with_variance_beta():
    """x_{t-1} = μ_θ + √β_t z for a batch of mixed t (no noise for the samples at t = 1), images in float32"""
    grade_cases("4.1", "beta_mixed_t", "images_float32")


@exercise("4.1", points=1)
def test_ddpm_step_with_variance_beta_tilde():
    """x_{t-1} = μ_θ + √β̃_t z for a batch of mixed t, and T = 1"""
    grade_cases("4.1", "beta_tilde_mixed_t", "single")


@exercise("4.1", points=1)
def test_ddpm_step_adds_no_noise_at_t_1():
    """at t = 1 the step returns the mean μ_θ, even when noise is given"""
    grade_cases("4.1", "t1")


@exercise("4.2", points=1)
def test_ddpm_sample_runs_t_from_T_down_to_1():
    """with a toy model and given x_T: t = T, …, 1 with variance 'beta' and 'beta_tilde', and T = 1"""
    grade_cases("4.2", "x_T_given", "beta_tilde", "single")


@exercise("4.2", points=1)
def test_ddpm_sample_draws_in_order_and_returns_the_trajectory():
    """no x_T: x_T then one z per step from the generator; trajectory=True gives [x_T, …, x_0]"""
    grade_cases("4.2", "seeded", "trajectory")


@exercise("4.2", points=1, timeout=120)
@pytest.mark.slow
def test_ddpm_sample_makes_good_moons():
    """DDPM (1000 steps, 400 samples) with the reference moons model: energy distance within 3x its floor"""
    check_moons_quality("ddpm_sample", DDPM_LIMIT)


# BEGIN MAINTAINER
# Only the build (tools/build.py) reads what follows; the student copy leaves it out.

import torch

from _spec import coef, Mutant, prev_alpha_bar, sched, SCHEDULE_NAMES, solution, t_rows

sampling = solution("sampling")
reverse = solution("reverse")

MISTAKES = {
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
}


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


VARIANTS = {
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
}


def make_cases(mk) -> None:
    """The graded cases of 4.1, 4.2, with inputs from mk's seeded generator."""
    # 4.1 ddpm_step(model, x_t, t, schedule, noise=, variance=)
    toy = {"model": "toy", "T": 1000}
    for variance in ("beta", "beta_tilde"):
        mk.case("4.1", f"{variance}_mixed_t", [("model", toy), ("x_t", mk.x_mixed()), ("t", mk.mixed), ("schedule", sched("linear1000"))],
                {"noise": mk.randn(6, 2), "variance": variance},
                label=f"a fixed toy model, {mk.lab_mixed.replace('x ', 'x_t ')}, noise given, variance='{variance}'",
                rows=t_rows(mk.mixed, 6), dtype_from="x")
    mk.case("4.1", "t1", [("model", toy), ("x_t", mk.randn(4, 3)), ("t", 1), ("schedule", sched("linear1000"))],
            {"noise": mk.randn(4, 3)}, label="a fixed toy model, x_t [4, 3], t = 1, noise given", rows=t_rows(1, 4),
            dtype_from="x", note="at t = 1 the step returns the mean μ_θ: no noise, even when noise is given")
    mk.case("4.1", "images_float32", [("model", toy), ("x_t", mk.images32()), ("t", 500), ("schedule", sched("cosine1000"))],
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


MUTANTS = [  # (name, module, old text, new text, exercise that must lose points, what its message says)
    Mutant("DDPM adds noise at t = 1", "sampling",
           "not_last = (t > 1)",
           "not_last = (t > 0)",
           "4.1", "noise_at_t1"),
    Mutant("DDPM variances swapped", "sampling",
           'if variance == "beta":',
           'if variance != "beta":',
           "4.1", "used_beta_tilde"),
    Mutant("DDPM scales noise by the variance", "sampling",
           "not_last * torch.sqrt(sigma2) * z",
           "not_last * sigma2 * z",
           "4.1", "variance_as_sigma"),
    Mutant("DDPM asks the model about t - 1", "sampling",
           "eps = call_model(model, x_t, t)",
           "eps = call_model(model, x_t, t - 1)",
           "4.1", "off-by-one in t"),
    Mutant("DDPM loop starts at T - 1", "sampling",
           "range(schedule.T, 0, -1)",
           "range(schedule.T - 1, 0, -1)",
           "4.2", "starts_at_T_minus_1"),
    Mutant("DDPM loop skips t = 1", "sampling",
           "range(schedule.T, 0, -1)",
           "range(schedule.T, 1, -1)",
           "4.2", "stops_before_1"),
    Mutant("DDPM loop drops the variance", "sampling",
           "ddpm_step(model, x, t, schedule, variance=variance, generator=generator)",
           "ddpm_step(model, x, t, schedule, generator=generator)",
           "4.2", "variance_not_passed"),
    Mutant("DDPM loop ignores the generator", "sampling",
           "ddpm_step(model, x, t, schedule, variance=variance, generator=generator)",
           "ddpm_step(model, x, t, schedule, variance=variance)",
           "4.2", "two different results"),
]
# END MAINTAINER
