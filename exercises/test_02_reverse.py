"""Notebook 02, the reverse process: exercises 2.1-2.3 (reverse.py)."""

import pytest

from _grading import grade_cases
from _spec import Exercise, Notebook

NOTEBOOK = Notebook(
    "02", "02_reverse_process", title="The reverse process: undoing one step of noise",
    idea="the posterior, β vs β̃, predicting noise, μ_θ term by term",
    needs=("1.1", "1.2", "1.4"),
)
EXERCISES = [
    Exercise("2.1", "reverse", "predict_x0", points=1, title="x0 from x_t and the noise"),
    Exercise("2.2", "reverse", "q_posterior", points=2, title="the forward-process posterior"),
    Exercise("2.3", "reverse", "p_mean", points=2, title="the model's mean from predicted noise"),
]


# BEGIN MAINTAINER
# (the stand-ins are the grader's, so they are solved formulas: only the judge has them; in the
# student copy a module's imports from your other modules get your own functions)
# The grader's own versions of the functions other exercise modules import from this notebook's:
# while one of your modules is graded, its imports from your other modules get these instead,
# so that one mistake costs points in one place only.


def predict_x0(x_t, t, eps, schedule):
    from mini_diffusion.toolkit.common import extract

    alpha_bar_t = extract(schedule.alpha_bars, t, x_t)
    return (x_t - (1 - alpha_bar_t).sqrt() * eps) / alpha_bar_t.sqrt()


def p_mean(x_t, t, eps, schedule):
    from mini_diffusion.toolkit.common import extract

    beta_t = extract(schedule.betas, t, x_t)
    alpha_t = extract(schedule.alphas, t, x_t)
    alpha_bar_t = extract(schedule.alpha_bars, t, x_t)
    return (x_t - beta_t / (1 - alpha_bar_t).sqrt() * eps) / alpha_t.sqrt()


STAND_INS = {"predict_x0": predict_x0, "p_mean": p_mean}
# END MAINTAINER

exercise = pytest.mark.exercise


@exercise("2.1", points=1)
def test_predict_x0_inverts_q_sample():
    """x̂_0 = (x_t - √(1-ᾱ_t) ε) / √ᾱ_t: mixed t, images in float32, T = 1"""
    grade_cases("2.1", "mixed_t", "images_float32", "single")


@exercise("2.2", points=1)
def test_q_posterior_mean():
    """the posterior mean √ᾱ_{t-1} β_t/(1-ᾱ_t) x_0 + √α_t (1-ᾱ_{t-1})/(1-ᾱ_t) x_t: mixed t, images, T = 1"""
    grade_cases("2.2", "mixed_t", "images_float32", "single", part=0)


@exercise("2.2", points=1)
def test_q_posterior_variance_is_beta_tilde():
    """the posterior variance β̃_t = (1-ᾱ_{t-1})/(1-ᾱ_t) β_t (0 at t = 1), in a shape that broadcasts against x"""
    grade_cases("2.2", "mixed_t", "images_float32", "single", part=1)


@exercise("2.3", points=1)
def test_p_mean_at_mixed_t():
    """μ_θ = (x_t - β_t/√(1-ᾱ_t) ε_θ) / √α_t for a batch of mixed t (1, 2, …, T)"""
    grade_cases("2.3", "mixed_t")


@exercise("2.3", points=1)
def test_p_mean_keeps_shape_and_dtype():
    """μ_θ for images in float32 (result stays float32) and with T = 1"""
    grade_cases("2.3", "images_float32", "single")


# BEGIN MAINTAINER
# Only the build (tools/build.py) reads what follows; the student copy leaves it out.

import torch

from _spec import altered, coef, Mutant, sched, SCHEDULE_NAMES, shifted, solution, t_rows

reverse = solution("reverse")

MISTAKES = {
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
}
# also named here, with the messages of earlier notebooks: alpha_for_alpha_bar, no_sqrt, alpha_bar_t_minus_1


VARIANTS = {
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
}


def make_cases(mk) -> None:
    """The graded cases of 2.1, 2.2, 2.3, with inputs from mk's seeded generator."""
    # 2.1 predict_x0 and 2.3 p_mean (x_t, t, eps, schedule)
    for ex in ("2.1", "2.3"):
        mk.case(ex, "mixed_t", [("x_t", mk.x_mixed()), ("t", mk.mixed), ("eps", mk.randn(6, 2)), ("schedule", sched("linear1000"))],
                label=mk.lab_mixed.replace("x ", "x_t ") + ", eps given", rows=t_rows(mk.mixed, 6), dtype_from="x")
        mk.case(ex, "images_float32", [("x_t", mk.images32()), ("t", 700), ("eps", mk.randn(5, 1, 3, 3, dtype=torch.float32)),
                                       ("schedule", sched("cosine1000"))],
                label="x_t [5, 1, 3, 3] float32 (images), t = 700 (an int), the cosine schedule (T = 1000)",
                rows=t_rows(700, 5), dtype_from="x")
        mk.case(ex, "single", [("x_t", mk.randn(4, 3)), ("t", 1), ("eps", mk.randn(4, 3)), ("schedule", sched("single"))],
                label=f"x_t [4, 3] float64, t = 1, {SCHEDULE_NAMES['single']}", rows=t_rows(1, 4), dtype_from="x")

    # 2.2 q_posterior(x0, x_t, t, schedule) -> (mean, variance)
    mk.case("2.2", "mixed_t", [("x0", mk.x_mixed()), ("x_t", mk.randn(6, 2)), ("t", mk.mixed), ("schedule", sched("linear1000"))],
            label=mk.lab_mixed.replace("x ", "x0 and x_t "), rows=t_rows(mk.mixed, 6), output="pair", x_shape=(6, 2),
            dtype_from="x", note="at t = 1, ᾱ_0 = 1: the mean is x_0 and the variance 0")
    mk.case("2.2", "images_float32", [("x0", mk.images32()), ("x_t", mk.randn(5, 1, 3, 3, dtype=torch.float32)), ("t", 300),
                                      ("schedule", sched("cosine1000"))],
            label="x0 and x_t [5, 1, 3, 3] float32 (images), t = 300 (an int), the cosine schedule (T = 1000)",
            rows=t_rows(300, 5), output="pair", x_shape=(5, 1, 3, 3), dtype_from="x")
    mk.case("2.2", "single", [("x0", mk.randn(4, 3)), ("x_t", mk.randn(4, 3)), ("t", 1), ("schedule", sched("single"))],
            label=f"x0 and x_t [4, 3] float64, t = 1, {SCHEDULE_NAMES['single']}", rows=t_rows(1, 4), output="pair",
            x_shape=(4, 3), dtype_from="x")


MUTANTS = [  # (name, module, old text, new text, exercise that must lose points, what its message says)
    Mutant("predict_x0 overwrites x_t", "reverse",
           "    return (x_t - torch.sqrt(1.0 - alpha_bar_t) * eps) / torch.sqrt(alpha_bar_t)",
           "    return x_t.sub_(torch.sqrt(1.0 - alpha_bar_t) * eps).div_(torch.sqrt(alpha_bar_t))",
           "2.1", "changed its input `x_t` in place"),
    Mutant("predict_x0 uses alpha for alpha bar", "reverse",
           "    return (x_t - torch.sqrt(1.0 - alpha_bar_t) * eps) / torch.sqrt(alpha_bar_t)",
           "    alpha_bar_t = extract(schedule.alphas, t, x_t)\n    return (x_t - torch.sqrt(1.0 - alpha_bar_t) * eps) / torch.sqrt(alpha_bar_t)",
           "2.1", "alpha_for_alpha_bar"),
    Mutant("posterior variance beta", "reverse",
           "variance = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t) * beta_t",
           "variance = beta_t",
           "2.2", "variance_beta"),
    Mutant("posterior uses alpha_bar_t for alpha_bar_{t-1}", "reverse",
           "alpha_bar_prev = extract(schedule.alpha_bars, t - 1, x_t, allow_zero=True)\n    mean",
           "alpha_bar_prev = extract(schedule.alpha_bars, t, x_t)\n    mean",
           "2.2", "alpha_bar_t_for_prev"),
    Mutant("p_mean divides by sqrt(alpha_bar)", "reverse",
           "* eps) / torch.sqrt(alpha_t)",
           "* eps) / torch.sqrt(alpha_bar_t)",
           "2.3", "alpha_bar_for_alpha"),
    Mutant("p_mean without the square root", "reverse",
           "beta_t / torch.sqrt(1.0 - alpha_bar_t) * eps",
           "beta_t / (1.0 - alpha_bar_t) * eps",
           "2.3", "no_sqrt_in_denominator"),
]
# END MAINTAINER
