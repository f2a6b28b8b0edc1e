"""Notebook 06, DDIM: exercises 6.1-6.3 (ddim.py)."""

import pytest
import torch

from _grading import grade_cases
from _quality import DDIM_LIMIT, check_moons_quality
from _spec import Exercise, Notebook

NOTEBOOK = Notebook(
    "06", "06_ddim", title="DDIM: the same model, twenty steps instead of a thousand",
    idea="deterministic sampling, skipping steps, eta",
    needs=("1.4", "2.1", "4.1", "4.2"),
)
EXERCISES = [
    Exercise("6.1", "ddim", "ddim_timesteps", points=1, title="the DDIM timestep subsequence"),
    Exercise("6.2", "ddim", "ddim_step", points=3, title="one DDIM update"),
    Exercise("6.3", "ddim", "ddim_sample", points=2, title="the DDIM sampling loop", uses=("6.1", "6.2")),
]


# BEGIN MAINTAINER
# (the stand-ins are the grader's, so they are solved formulas: only the judge has them; in the
# student copy a module's imports from your other modules get your own functions)
# The grader's own versions of the functions other exercise modules import from this notebook's:
# while one of your modules is graded, its imports from your other modules get these instead,
# so that one mistake costs points in one place only.


def ddim_timesteps(T: int, num_steps: int) -> torch.Tensor:
    i = torch.arange(num_steps, dtype=torch.float64)
    return torch.round(T - i * T / num_steps).long()


STAND_INS = {"ddim_timesteps": ddim_timesteps}
# END MAINTAINER

exercise = pytest.mark.exercise


@exercise("6.1", points=1)
def test_ddim_timesteps_are_trailing_and_descending():
    """τ_i = round(T - i·T/num_steps): 1000, 950, …, 50 for 20 steps; int64, descending"""
    grade_cases("6.1", "T1000_n20", "T1000_n50", "T10_n3", "T1000_n1", "T7_n7", "T1000_n1000")


@exercise("6.2", points=1)
def test_ddim_step_with_eta_0_is_deterministic():
    """eta = 0: x_prev = √ᾱ_prev x̂_0 + √(1-ᾱ_prev) ε_θ for mixed (t, t_prev), t_prev = 0 included"""
    grade_cases("6.2", "eta0_mixed")


@exercise("6.2", points=1)
def test_ddim_step_with_eta_above_0_adds_sigma_noise():
    """eta = 1 and 0.5 with given noise: σ = eta·√((1-ᾱ_prev)/(1-ᾱ_t))·√(1-ᾱ_t/ᾱ_prev), direction √(1-ᾱ_prev-σ²)"""
    grade_cases("6.2", "eta1_mixed", "eta_half_mixed")


@exercise("6.2", points=1)
def test_ddim_step_keeps_shape_and_dtype():
    """images in float32 with int t and t_prev: the result stays float32 and image-shaped"""
    grade_cases("6.2", "images_float32")


@exercise("6.3", points=1)
def test_ddim_sample_follows_the_timesteps_down_to_0():
    """with a toy model and given x_T: 20 steps, 1 step, T steps, eta = 1 with a seeded generator, T = 1"""
    grade_cases("6.3", "steps20", "one_step", "all_steps", "eta1_seeded", "single")


@exercise("6.3", points=1, timeout=120)
@pytest.mark.slow
def test_ddim_sample_makes_good_moons():
    """DDIM (50 steps, 400 samples) with the reference moons model: energy distance within 3x its floor"""
    check_moons_quality("ddim_sample", DDIM_LIMIT, num_steps=50)


# BEGIN MAINTAINER
# Only the build (tools/build.py) reads what follows; the student copy leaves it out.

from _spec import coef, Mutant, prev_alpha_bar, sched, SCHEDULE_NAMES, solution, t_rows

ddim = solution("ddim")
reverse = solution("reverse")

MISTAKES = {
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
# also named here, with the messages of earlier notebooks: ignores_x_T


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


VARIANTS = {
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


def make_cases(mk) -> None:
    """The graded cases of 6.1, 6.2, 6.3, with inputs from mk's seeded generator."""
    toy = {"model": "toy", "T": 1000}
    # 6.1 ddim_timesteps(T, num_steps)
    tau_rows = {"kind": "index", "symbol": "τ", "offset": 1}
    # for a grading (mk.fresh) T and num_steps are drawn afresh, each case keeping its kind: num_steps dividing T,
    # not dividing it (odd, so that no T - i·T/num_steps ends in .5 and rounding is never a matter of convention),
    # one step, every step
    short_T = mk.integer(10, 8, 30)
    short_n = mk.choice(3, [n for n in range(3, short_T, 2) if short_T % n])
    every_T = mk.integer(1000, 200, 1000)
    for name, T, n in [("T1000_n20", 1000, mk.choice(20, [8, 10, 20, 25, 40])),
                       ("T1000_n50", 1000, mk.choice(50, [50, 100, 125, 200, 250])),
                       ("T10_n3", short_T, short_n), ("T1000_n1", mk.integer(1000, 10, 1000), 1),
                       ("T7_n7", *(mk.integer(7, 2, 12),) * 2), ("T1000_n1000", every_T, every_T)]:
        mk.case("6.1", name, [("T", T), ("num_steps", n)], label=f"T = {T}, num_steps = {n}", rows=tau_rows,
                what="the array of timesteps")

    # 6.2 ddim_step(model, x_t, t, t_prev, schedule, eta=, noise=)
    t = torch.tensor([1000, 1000, 500, 20, 2, 1])
    t_prev = torch.tensor([950, 0, 450, 0, 1, 0])
    pair_rows = {"kind": "t", "values": [f"{a} → {b}" for a, b in zip(t.tolist(), t_prev.tolist())]}
    for name, eta in (("eta0_mixed", 0.0), ("eta1_mixed", 1.0), ("eta_half_mixed", 0.5)):
        kwargs = {"eta": eta}
        if eta:
            kwargs["noise"] = mk.randn(6, 2)
        mk.case("6.2", name, [("model", toy), ("x_t", mk.x_mixed()), ("t", t), ("t_prev", t_prev), ("schedule", sched("linear1000"))],
                kwargs, label=f"a fixed toy model, x_t [6, 2], steps t → t_prev = {pair_rows['values']} (t_prev = 0 is "
                              f"clean data, ᾱ_0 = 1), the linear schedule, eta = {eta:g}{', noise given' if eta else ''}",
                rows=pair_rows, dtype_from="x")
    mk.case("6.2", "images_float32", [("model", toy), ("x_t", mk.images32()), ("t", 1000), ("t_prev", 950), ("schedule", sched("cosine1000"))],
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


MUTANTS = [  # (name, module, old text, new text, exercise that must lose points, what its message says)
    Mutant("DDIM timesteps ascending", "ddim",
           "return torch.round(T - i * T / num_steps).long()",
           "return torch.round(T - i * T / num_steps).long().flip(0)",
           "6.1", "ascending"),
    Mutant("DDIM timesteps leading", "ddim",
           "return torch.round(T - i * T / num_steps).long()",
           "return (i * (T // num_steps)).long()",
           "6.1", "leading"),
    Mutant("DDIM without the noise term", "ddim",
           "    if eta > 0:\n",
           "    if False:\n",
           "6.2", "noise_missing"),
    Mutant("DDIM direction without sigma", "ddim",
           "torch.sqrt(1 - alpha_bar_prev - sigma**2) * eps",
           "torch.sqrt(1 - alpha_bar_prev) * eps",
           "6.2", "no_sigma_in_direction"),
    Mutant("DDIM uses alpha_bar_{t-1}", "ddim",
           "extract(schedule.alpha_bars, t_prev, x_t, allow_zero=True)",
           "extract(schedule.alpha_bars, t - 1, x_t, allow_zero=True)",
           "6.2", "t_minus_1_for_t_prev"),
    Mutant("DDIM sigma without square roots", "ddim",
           "sigma = eta * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * torch.sqrt(1 - alpha_bar_t / alpha_bar_prev)",
           "sigma = eta * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)",
           "6.2", "sigma_no_sqrt"),
    Mutant("DDIM loop misses the last jump", "ddim",
           "zip(timesteps, timesteps[1:] + [0])",
           "zip(timesteps[:-1], timesteps[1:])",
           "6.3", "no_final_step"),
    Mutant("DDIM loop drops eta", "ddim",
           "ddim_step(model, x, t, t_prev, schedule, eta=eta, generator=generator)",
           "ddim_step(model, x, t, t_prev, schedule, generator=generator)",
           "6.3", "eta_not_passed"),
]
# END MAINTAINER
