"""Notebook 01, the forward process: exercises 1.1-1.4 (schedules.py and forward.py)."""

import pytest
import torch

from _grading import Feedback, call, grade_cases, schedule
from _spec import Exercise, Notebook, check_generator, fresh

NOTEBOOK = Notebook(
    "01", "01_forward_process", title="The forward process: destroying data, one small step at a time",
    idea="one noising step, the linear schedule, ᾱ and the closed form",
    needs=(),
)
EXERCISES = [
    Exercise("1.1", "schedules", "linear_betas", points=1, title="the linear beta schedule"),
    Exercise("1.2", "schedules", "alpha_bars_from_betas", points=1, title="alpha-bar as a cumulative product"),
    Exercise("1.3", "forward", "q_step", points=1, title="one forward noising step"),
    Exercise("1.4", "forward", "q_sample", points=2, title="the closed-form forward process"),
]


# BEGIN MAINTAINER
# (the stand-ins are the grader's, so they are solved formulas: only the judge has them; in the
# student copy a module's imports from your other modules get your own functions)
# The grader's own versions of the functions other exercise modules import from this notebook's:
# while one of your modules is graded, its imports from your other modules get these instead,
# so that one mistake costs points in one place only.


def q_sample(x0, t, schedule, noise=None, generator=None):
    from mini_diffusion.toolkit.common import extract, noise_like

    noise = noise_like(x0, noise, generator)
    alpha_bar_t = extract(schedule.alpha_bars, t, x0)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise


STAND_INS = {"q_sample": q_sample}
# END MAINTAINER

exercise = pytest.mark.exercise


@exercise("1.1", points=1)
def test_linear_betas_rise_evenly_from_beta_start_to_beta_end():
    """β_1..β_T evenly from beta_start to beta_end, float64, length T (also T = 1)"""
    grade_cases("1.1", "T1000", "T5", "T10", "T1")


@exercise("1.2", points=1)
def test_alpha_bars_are_the_cumulative_product_of_the_alphas():
    """ᾱ_0 = 1, ᾱ_t = α_1 ⋯ α_t, float64, length T + 1 (also T = 1)"""
    grade_cases("1.2", "two", "random5", "linear1000", "single")


@exercise("1.3", points=1)
def test_q_step_adds_one_step_of_noise():
    """x_t = √(1-β_t) x_{t-1} + √β_t ε for given ε: mixed t, images in float32, T = 1"""
    grade_cases("1.3", "mixed_t", "images_float32", "single")


@exercise("1.4", points=1)
def test_q_sample_jumps_to_step_t_in_closed_form():
    """x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε for given ε: mixed t (1, 2, …, T), images in float32, T = 1"""
    grade_cases("1.4", "mixed_t", "images_float32", "single")


@exercise("1.4", points=1)
def test_q_sample_draws_from_q_xt_given_x0_when_no_noise_is_given():
    """without noise: samples have mean √ᾱ_t x_0 and variance 1 - ᾱ_t, reproducible with a generator"""
    s = schedule("linear1000")
    n, t, point = 20_000, 300, torch.tensor([[1.5, -2.0]], dtype=torch.float64)
    if fresh():  # a grading: a point, a t and a generator seed of its own
        draw = check_generator("1.4/statistics/inputs", 0)
        t, point = int(torch.randint(50, 900, (), generator=draw)), 3 * torch.rand(1, 2, generator=draw, dtype=torch.float64) - 1.5
    x0 = point.expand(n, 2).clone()
    x_t = call("q_sample", x0, t, s, generator=check_generator("1.4/statistics", 0))
    again = call("q_sample", x0.clone(), t, s, generator=check_generator("1.4/statistics", 0))
    if not isinstance(x_t, torch.Tensor) or x_t.shape != x0.shape:
        raise Feedback(f"q_sample without noise should return a tensor shaped like x0, {tuple(x0.shape)}; it returned "
                       f"{tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else type(x_t).__name__}")
    if not torch.equal(x_t, again):
        raise Feedback("q_sample without noise gave different results for two generators with the same seed: draw "
                       "the noise with the `generator` argument (noise_like(x0, noise, generator) does this).")
    alpha_bar = float(s.alpha_bars[t])
    mean, var = x_t.mean(0), x_t.var(0)
    want_mean, want_var = alpha_bar**0.5 * x0[0], 1 - alpha_bar
    # 20,000 draws: the sample mean is within 0.03·σ and the variance within 5 % with overwhelming probability
    if not torch.allclose(mean, want_mean, atol=0.03) or not torch.allclose(var, torch.full_like(var, want_var), rtol=0.05):
        raise Feedback(f"q_sample without noise at t = {t}: over {n} draws the mean is {mean.tolist()} and the variance "
                       f"{var.tolist()}; q(x_t | x_0) has mean √ᾱ_t x_0 = {want_mean.tolist()} and variance 1 - ᾱ_t = "
                       f"{want_var:.4f}. When noise is None, draw ε ~ N(0, I) (with `generator`).")


# BEGIN MAINTAINER
# Only the build (tools/build.py) reads what follows; the student copy leaves it out.

from _spec import altered, coef, Mutant, sched, SCHEDULE_NAMES, shifted, solution, t_rows

schedules = solution("schedules")
forward = solution("forward")

MISTAKES = {
    "beta_0_included": "the result starts with β_0 = 0; return β_1..β_T only (length T): NoiseSchedule adds β_0 itself.",
    "T_plus_1_points": "T + 1 evenly spaced values from beta_start to beta_end; there are T of them (β_1..β_T).",
    "endpoint_excluded": "the last β stops short of beta_end: the step is (beta_end - beta_start) / (T - 1), so β_T = beta_end.",
    "reversed": "the values are in reverse order.",
    "missing_alpha_bar_0": "ᾱ_0 = 1 is missing at the front: the array has length T + 1 and index t holds ᾱ_t.",
    "cumprod_of_betas": "you multiplied the β's; ᾱ_t is the product of the α_s = 1 - β_s.",
    "alphas_not_cumprod": "you returned α_t; ᾱ_t is the cumulative product α_1 · α_2 · … · α_t (torch.cumprod).",
    "exclusive_cumprod": "off by one in t: ᾱ_t = α_1 ⋯ α_t includes α_t itself (yours stops at α_{t-1}).",
    "cumsum_not_cumprod": "you subtracted the β's from 1 (a sum); ᾱ_t is a product of the α's.",
    "q_sample_coefficients_in_q_step": "you used ᾱ_t, the closed-form jump from x_0; one step from x_{t-1} uses β_t.",
    "no_sqrt": "the square roots are missing: the coefficients are √(…), not (…).",
    "noise_variance_as_std": "the noise is scaled by a variance; it needs the standard deviation, its square root.",
    "coefficients_swapped": "the two coefficients are swapped (the signal's factor went to the noise and back).",
    "beta_t_minus_1": "off by one in t: you used β_{t-1} (schedule.betas[t - 1]) where β_t belongs (schedule.betas[t]).",
    "alpha_for_alpha_bar": "you used α_t (schedule.alphas) where ᾱ_t (schedule.alpha_bars) belongs.",
    "signal_no_sqrt": "x_0's coefficient is ᾱ_t; it is √ᾱ_t.",
    "alpha_bar_t_minus_1": "off by one in t: you used ᾱ_{t-1} where ᾱ_t belongs (index t is timestep t; index 0 is clean data).",
    "beta_as_noise_scale": "the noise is scaled by √β_t, the noise of a single step; after t steps it is √(1 - ᾱ_t).",
}


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
}


def make_cases(mk) -> None:
    """The graded cases of 1.1, 1.2, 1.3, 1.4, with inputs from mk's seeded generator."""
    lin = schedules.linear_betas(1000)
    one = torch.tensor([0.3], dtype=torch.float64)
    # 1.1 linear_betas(T, beta_start, beta_end)
    beta_rows = {"kind": "index", "symbol": "β", "offset": 1}
    # for a grading (mk.fresh) T and the β's are drawn afresh; the shipped cases keep these values
    short = (mk.integer(5, 3, 20), mk.uniform(0.1, 0.05, 0.2), mk.uniform(0.5, 0.3, 0.6))
    ten = (mk.integer(10, 5, 50), mk.uniform(0.001, 0.0005, 0.005), mk.uniform(0.05, 0.01, 0.1))
    single = [("beta_start", mk.uniform(1e-4, 0.001, 0.2)), ("beta_end", mk.uniform(0.02, 0.3, 0.6))] if mk.fresh else []
    for name, args, label, note in [
        ("T1000", [], "the defaults (T = 1000, β from 1e-4 to 0.02)", None),
        ("T5", [("T", short[0]), ("beta_start", short[1]), ("beta_end", short[2])],
         "T = {}, beta_start = {:g}, beta_end = {:g}".format(*short), None),
        ("T1", [("T", 1), *single], "T = 1" + "".join(f", {k} = {v:g}" for k, v in single),
         "with T = 1 there is one β, β_1 = beta_start; (t - 1) / (T - 1) is 0 / 0 there"),
        ("T10", [("T", ten[0]), ("beta_start", ten[1]), ("beta_end", ten[2])],
         "T = {}, beta_start = {:g}, beta_end = {:g}".format(*ten), None),
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
        mk.case(ex, "mixed_t", [(x_name, mk.x_mixed()), ("t", mk.mixed), ("schedule", sched("linear1000")),
                                ("noise", mk.randn(6, 2))],
                label=mk.lab_mixed.replace("x ", f"{x_name} ") + ", noise given", rows=t_rows(mk.mixed, 6), dtype_from="x")
        mk.case(ex, "images_float32", [(x_name, mk.images32()), ("t", 1000 if ex == "1.3" else 500),
                                       ("schedule", sched("cosine1000")), ("noise", mk.randn(5, 1, 3, 3, dtype=torch.float32))],
                label=f"{x_name} [5, 1, 3, 3] float32 (images), t = {1000 if ex == '1.3' else 500} (an int), the cosine "
                      "schedule (T = 1000), noise given", rows=t_rows(1000 if ex == "1.3" else 500, 5), dtype_from="x")
        mk.case(ex, "single", [(x_name, mk.randn(4, 3)), ("t", 1), ("schedule", sched("single")), ("noise", mk.randn(4, 3))],
                label=f"{x_name} [4, 3] float64, t = 1, {SCHEDULE_NAMES['single']}, noise given", rows=t_rows(1, 4),
                dtype_from="x")


MUTANTS = [  # (name, module, old text, new text, exercise that must lose points, what its message says)
    Mutant("linear betas miss beta_end", "schedules",
           "return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)",
           "return beta_start + (beta_end - beta_start) * torch.arange(T, dtype=torch.float64) / T",
           "1.1", "endpoint_excluded"),
    Mutant("linear betas in float32", "schedules",
           "torch.linspace(beta_start, beta_end, T, dtype=torch.float64)",
           "torch.linspace(beta_start, beta_end, T)",
           "1.1", "dtype torch.float32"),
    Mutant("alpha bars without alpha_bar_0", "schedules",
           "return torch.cat([alphas.new_ones(1), torch.cumprod(alphas, dim=0)])",
           "return torch.cumprod(alphas, dim=0)",
           "1.2", "missing_alpha_bar_0"),
    Mutant("alpha bars without the product", "schedules",
           "torch.cat([alphas.new_ones(1), torch.cumprod(alphas, dim=0)])",
           "torch.cat([alphas.new_ones(1), alphas])",
           "1.2", "alphas_not_cumprod"),
    Mutant("q_step without square roots", "forward",
           "torch.sqrt(1.0 - beta_t) * x_prev + torch.sqrt(beta_t) * noise",
           "(1.0 - beta_t) * x_prev + beta_t * noise",
           "1.3", "no_sqrt"),
    Mutant("q_step uses beta_{t-1}", "forward",
           "beta_t = extract(schedule.betas, t, x_prev)",
           "beta_t = extract(schedule.betas, t - 1, x_prev, allow_zero=True)",
           "1.3", "beta_t_minus_1"),
    Mutant("q_sample uses alpha for alpha bar", "forward",
           "extract(schedule.alpha_bars, t, x0)",
           "extract(schedule.alphas, t, x0)",
           "1.4", "alpha_for_alpha_bar"),
    Mutant("q_sample noise scaled by the variance", "forward",
           "torch.sqrt(1.0 - alpha_bar_t) * noise",
           "(1.0 - alpha_bar_t) * noise",
           "1.4", "noise_variance_as_std"),
    Mutant("q_sample indexes without broadcasting", "forward",
           "alpha_bar_t = extract(schedule.alpha_bars, t, x0)",
           "alpha_bar_t = schedule.alpha_bars[t]",
           "1.4", "does not broadcast"),
    Mutant("q_sample ignores the given noise", "forward",
           "noise = noise_like(x0, noise, generator)",
           "noise = torch.randn_like(x0)",
           "1.4", "two different results"),
    Mutant("q_sample overwrites x0", "forward",
           "return torch.sqrt(alpha_bar_t) * x0 + torch.sqrt(1.0 - alpha_bar_t) * noise",
           "return x0.mul_(torch.sqrt(alpha_bar_t)).add_(torch.sqrt(1.0 - alpha_bar_t) * noise)",
           "1.4", "changed its input `x0` in place"),
]
# END MAINTAINER
