"""Notebook 05, noise schedules: exercises 5.1-5.3 (schedules.py)."""

import pytest

from _grading import grade_cases
from _spec import Exercise, Notebook

NOTEBOOK = Notebook(
    "05", "05_noise_schedules", title="Noise schedules: how fast should the signal fade?",
    idea="linear vs cosine, SNR and log-SNR, an interactive explorer",
    needs=("1.2", "1.4", "3.1", "4.1"),
)
EXERCISES = [
    Exercise("5.1", "schedules", "cosine_alpha_bars", points=1, title="the cosine alpha-bar curve"),
    Exercise("5.2", "schedules", "betas_from_alpha_bars", points=1, title="betas back from alpha-bars"),
    Exercise("5.3", "schedules", "snr", points=1, title="the signal-to-noise ratio"),
]

exercise = pytest.mark.exercise


@exercise("5.1", points=1)
def test_cosine_alpha_bars_follow_the_squared_cosine():
    """ᾱ_t = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s) · π/2), t = 0..T (also T = 1 and another s)"""
    grade_cases("5.1", "T1000", "T4", "T10_s", "T1")


@exercise("5.2", points=1)
def test_betas_from_alpha_bars_undo_the_product_and_cap():
    """β_t = min(1 - ᾱ_t/ᾱ_{t-1}, max_beta), length T"""
    grade_cases("5.2", "small", "cosine1000", "cap")


@exercise("5.3", points=1)
def test_snr_is_signal_over_noise():
    """SNR = ᾱ/(1 - ᾱ), same shape and dtype as alpha_bars (infinite at t = 0)"""
    grade_cases("5.3", "linear1000", "float32")


# BEGIN MAINTAINER
# Only the build (tools/build.py) reads what follows; the student copy leaves it out.

import math

import torch

from _spec import Mutant, solution

schedules = solution("schedules")

MISTAKES = {
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
}
# also named here, with the messages of earlier notebooks: beta_0_included


VARIANTS = {
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
}


def make_cases(mk) -> None:
    """The graded cases of 5.1, 5.2, 5.3, with inputs from mk's seeded generator."""
    lin = schedules.linear_betas(1000)
    beta_rows = {"kind": "index", "symbol": "β", "offset": 1}
    ab_rows = {"kind": "index", "symbol": "ᾱ", "offset": 0}
    # 5.1 cosine_alpha_bars(T, s); for a grading (mk.fresh) T, s and the ᾱ's are drawn afresh, the shipped
    # cases keep these values
    t4, t10, s10 = mk.integer(4, 2, 20), mk.integer(10, 5, 50), mk.uniform(0.1, 0.01, 0.2)
    one = [("s", mk.uniform(0.008, 0.001, 0.05))] if mk.fresh else []
    for name, args, label in [("T1000", [], "the defaults (T = 1000, s = 0.008)"), ("T4", [("T", t4)], f"T = {t4}"),
                              ("T10_s", [("T", t10), ("s", s10)], f"T = {t10}, s = {s10:g}"),
                              ("T1", [("T", 1), *one], "T = 1" + "".join(f", s = {v:g}" for _, v in one))]:
        mk.case("5.1", name, args, label=label, rows=ab_rows, dtype_from="float64", what="the array of ᾱ's")

    # 5.2 betas_from_alpha_bars(alpha_bars, max_beta)
    cos_T, cos_s = mk.integer(1000, 200, 1000), mk.uniform(0.008, 0.004, 0.02)
    cos_ab = schedules.cosine_alpha_bars(cos_T, cos_s)
    small = _decreasing(mk, [1.0, 0.5, 0.25], [(0.3, 0.9)] * mk.integer(2, 2, 5))
    # the cap case: one ratio ᾱ_t/ᾱ_{t-1} above 1 - max_beta (not capped), the others far below (capped)
    cap, max_beta = _decreasing(mk, [1.0, 0.9, 0.3, 0.01], [(0.7, 0.95), (0.1, 0.35), (0.02, 0.3)]), mk.uniform(0.5, 0.4, 0.6)
    for name, args, label in [
        ("cosine1000", [("alpha_bars", cos_ab)],
         f"the cosine curve's ᾱ (T = {cos_T}{f', s = {cos_s:g}' if mk.fresh else ''}), max_beta = 0.999"),
        ("small", [("alpha_bars", torch.tensor(small, dtype=torch.float64))], f"alpha_bars = {_numbers(small)}"),
        ("cap", [("alpha_bars", torch.tensor(cap, dtype=torch.float64)), ("max_beta", max_beta)],
         f"alpha_bars = {_numbers(cap)}, max_beta = {max_beta:g}"),
    ]:
        mk.case("5.2", name, args, label=label, rows=beta_rows, dtype_from="float64", what="the array of β's")

    # 5.3 snr(alpha_bars)
    lin_T, lin_end = mk.integer(1000, 100, 1000), mk.uniform(0.02, 0.01, 0.05)
    lin = schedules.linear_betas(lin_T, 1e-4, lin_end)
    mk.case("5.3", "linear1000", [("alpha_bars", schedules.alpha_bars_from_betas(lin))],
            label=(f"ᾱ_0..ᾱ_T of a linear schedule with T = {lin_T}, β from 1e-4 to {lin_end:g}" if mk.fresh else
                   "the linear schedule's ᾱ_0..ᾱ_T") + " (SNR is infinite at t = 0)", rows=ab_rows, what="the SNR")
    mixed = [0.5, 0.2, 0.9] if not mk.fresh else [mk.uniform(0.5, 0.05, 0.95, digits=2) for _ in range(mk.integer(3, 3, 6))]
    mk.case("5.3", "float32", [("alpha_bars", torch.tensor(mixed, dtype=torch.float32))],
            label=f"alpha_bars = {_numbers(mixed)} float32 (the result keeps the dtype)", rows=ab_rows, what="the SNR")


def _decreasing(mk, shipped: list, ratios: list) -> list:
    """shipped (ᾱ_0 = 1, ᾱ_1, ...), or for a grading ᾱ's drawn from 1 down, each ratio ᾱ_t/ᾱ_{t-1} from its range
    (rounded to 3 digits, so that the label shows the exact inputs)."""
    if not mk.fresh:
        return list(shipped)
    values = [1.0]
    for low, high in ratios:
        values.append(float(f"{values[-1] * mk.uniform(0.5, low, high, digits=6):.3g}"))
    return values


def _numbers(values) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


MUTANTS = [  # (name, module, old text, new text, exercise that must lose points, what its message says)
    Mutant("cosine not normalised", "schedules",
           "return f / f[0]",
           "return f",
           "5.1", "not_normalised"),
    Mutant("cosine not squared", "schedules",
           "math.pi / 2) ** 2",
           "math.pi / 2)",
           "5.1", "cos_not_squared"),
    Mutant("betas not capped", "schedules",
           "return betas.clamp(max=max_beta)",
           "return betas",
           "5.2", "no_cap"),
    Mutant("snr upside down", "schedules",
           "return alpha_bars / (1.0 - alpha_bars)",
           "return (1.0 - alpha_bars) / alpha_bars",
           "5.3", "snr_inverted"),
]
# END MAINTAINER
