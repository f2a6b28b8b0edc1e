"""The grader catches the mistakes learners really make, and names most of them.

Each mutant is the reference solution with one realistic mistake. Mutants of different
modules share a grader run (the grader grades each module on its own, with its own versions
of the formulas a module borrows from the others), so 43 mutants need 9 runs of the exact
checks (the slow sample-quality checks are left out here; the exact ones catch everything).
"""

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grader_harness import EXERCISES, by_exercise, mutate, package_copy, run_grader, solution_source  # noqa: E402

MISTAKES = json.loads((EXERCISES / "expected" / "cases.json").read_text(encoding="utf-8"))["mistakes"]

# (name, module, old text, new text, exercise that must lose points, what its message must say:
#  a key of the grader's mistake table, or a phrase)
MUTANTS = [
    ("linear betas miss beta_end", "schedules", "return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)",
     "return beta_start + (beta_end - beta_start) * torch.arange(T, dtype=torch.float64) / T", "1.1", "endpoint_excluded"),
    ("linear betas in float32", "schedules", "torch.linspace(beta_start, beta_end, T, dtype=torch.float64)",
     "torch.linspace(beta_start, beta_end, T)", "1.1", "dtype torch.float32"),
    ("alpha bars without alpha_bar_0", "schedules", "return torch.cat([alphas.new_ones(1), torch.cumprod(alphas, dim=0)])",
     "return torch.cumprod(alphas, dim=0)", "1.2", "missing_alpha_bar_0"),
    ("alpha bars without the product", "schedules", "torch.cat([alphas.new_ones(1), torch.cumprod(alphas, dim=0)])",
     "torch.cat([alphas.new_ones(1), alphas])", "1.2", "alphas_not_cumprod"),
    ("cosine not normalised", "schedules", "return f / f[0]", "return f", "5.1", "not_normalised"),
    ("cosine not squared", "schedules", "math.pi / 2) ** 2", "math.pi / 2)", "5.1", "cos_not_squared"),
    ("betas not capped", "schedules", "return betas.clamp(max=max_beta)", "return betas", "5.2", "no_cap"),
    ("snr upside down", "schedules", "return alpha_bars / (1.0 - alpha_bars)", "return (1.0 - alpha_bars) / alpha_bars",
     "5.3", "snr_inverted"),
    ("q_step without square roots", "forward", "torch.sqrt(1.0 - beta_t) * x_prev + torch.sqrt(beta_t) * noise",
     "(1.0 - beta_t) * x_prev + beta_t * noise", "1.3", "no_sqrt"),
    ("q_step uses beta_{t-1}", "forward", "beta_t = extract(schedule.betas, t, x_prev)",
     "beta_t = extract(schedule.betas, t - 1, x_prev, allow_zero=True)", "1.3", "beta_t_minus_1"),
    ("q_sample uses alpha for alpha bar", "forward", "extract(schedule.alpha_bars, t, x0)", "extract(schedule.alphas, t, x0)",
     "1.4", "alpha_for_alpha_bar"),
    ("q_sample noise scaled by the variance", "forward", "torch.sqrt(1.0 - alpha_bar_t) * noise",
     "(1.0 - alpha_bar_t) * noise", "1.4", "noise_variance_as_std"),
    ("q_sample indexes without broadcasting", "forward", "alpha_bar_t = extract(schedule.alpha_bars, t, x0)",
     "alpha_bar_t = schedule.alpha_bars[t]", "1.4", "does not broadcast"),
    ("q_sample ignores the given noise", "forward", "noise = noise_like(x0, noise, generator)",
     "noise = torch.randn_like(x0)", "1.4", "two different results"),
    ("q_sample overwrites x0", "forward", "return torch.sqrt(alpha_bar_t) * x0 + torch.sqrt(1.0 - alpha_bar_t) * noise",
     "return x0.mul_(torch.sqrt(alpha_bar_t)).add_(torch.sqrt(1.0 - alpha_bar_t) * noise)", "1.4",
     "changed its input `x0` in place"),
    ("predict_x0 overwrites x_t", "reverse",
     "    return (x_t - torch.sqrt(1.0 - alpha_bar_t) * eps) / torch.sqrt(alpha_bar_t)",
     "    return x_t.sub_(torch.sqrt(1.0 - alpha_bar_t) * eps).div_(torch.sqrt(alpha_bar_t))", "2.1",
     "changed its input `x_t` in place"),
    ("predict_x0 uses alpha for alpha bar", "reverse",
     "    return (x_t - torch.sqrt(1.0 - alpha_bar_t) * eps) / torch.sqrt(alpha_bar_t)",
     "    alpha_bar_t = extract(schedule.alphas, t, x_t)\n"
     "    return (x_t - torch.sqrt(1.0 - alpha_bar_t) * eps) / torch.sqrt(alpha_bar_t)", "2.1", "alpha_for_alpha_bar"),
    ("posterior variance beta", "reverse", "variance = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t) * beta_t",
     "variance = beta_t", "2.2", "variance_beta"),
    ("posterior uses alpha_bar_t for alpha_bar_{t-1}", "reverse",
     "alpha_bar_prev = extract(schedule.alpha_bars, t - 1, x_t, allow_zero=True)\n    mean",
     "alpha_bar_prev = extract(schedule.alpha_bars, t, x_t)\n    mean", "2.2", "alpha_bar_t_for_prev"),
    ("p_mean divides by sqrt(alpha_bar)", "reverse", "* eps) / torch.sqrt(alpha_t)", "* eps) / torch.sqrt(alpha_bar_t)",
     "2.3", "alpha_bar_for_alpha"),
    ("p_mean without the square root", "reverse", "beta_t / torch.sqrt(1.0 - alpha_bar_t) * eps",
     "beta_t / (1.0 - alpha_bar_t) * eps", "2.3", "no_sqrt_in_denominator"),
    ("loss regresses x0", "losses", "return ((noise - eps_hat) ** 2).mean()", "return ((x0 - eps_hat) ** 2).mean()",
     "3.1", "regressed_x0"),
    ("loss draws t from 0..T-1", "losses", "torch.randint(1, schedule.T + 1,", "torch.randint(0, schedule.T,", "3.1",
     "drew t = 0"),
    ("loss never draws T", "losses", "torch.randint(1, schedule.T + 1,", "torch.randint(1, schedule.T,", "3.1",
     "never drew t = T"),
    ("loss sums", "losses", "return ((noise - eps_hat) ** 2).mean()", "return ((noise - eps_hat) ** 2).sum()", "3.1",
     "sum_not_mean"),
    ("loss detached", "losses", "return ((noise - eps_hat) ** 2).mean()", "return ((noise - eps_hat) ** 2).mean().detach()",
     "3.1", "no gradient"),
    ("loss uses one t per batch", "losses", "(x0.shape[0],), generator=generator, device=device).to(x0.device)",
     "(1,), generator=generator, device=device).to(x0.device).expand(x0.shape[0])", "3.1", "one t for the whole batch"),
    ("DDPM adds noise at t = 1", "sampling", "not_last = (t > 1)", "not_last = (t > 0)", "4.1", "noise_at_t1"),
    ("DDPM variances swapped", "sampling", 'if variance == "beta":', 'if variance != "beta":', "4.1", "used_beta_tilde"),
    ("DDPM scales noise by the variance", "sampling", "not_last * torch.sqrt(sigma2) * z", "not_last * sigma2 * z", "4.1",
     "variance_as_sigma"),
    ("DDPM asks the model about t - 1", "sampling", "eps = call_model(model, x_t, t)", "eps = call_model(model, x_t, t - 1)",
     "4.1", "off-by-one in t"),
    ("DDPM loop starts at T - 1", "sampling", "range(schedule.T, 0, -1)", "range(schedule.T - 1, 0, -1)", "4.2",
     "starts_at_T_minus_1"),
    ("DDPM loop skips t = 1", "sampling", "range(schedule.T, 0, -1)", "range(schedule.T, 1, -1)", "4.2", "stops_before_1"),
    ("DDPM loop drops the variance", "sampling", "ddpm_step(model, x, t, schedule, variance=variance, generator=generator)",
     "ddpm_step(model, x, t, schedule, generator=generator)", "4.2", "variance_not_passed"),
    ("DDPM loop ignores the generator", "sampling", "ddpm_step(model, x, t, schedule, variance=variance, generator=generator)",
     "ddpm_step(model, x, t, schedule, variance=variance)", "4.2", "two different results"),
    ("DDIM timesteps ascending", "ddim", "return torch.round(T - i * T / num_steps).long()",
     "return torch.round(T - i * T / num_steps).long().flip(0)", "6.1", "ascending"),
    ("DDIM timesteps leading", "ddim", "return torch.round(T - i * T / num_steps).long()",
     "return (i * (T // num_steps)).long()", "6.1", "leading"),
    ("DDIM without the noise term", "ddim", "    if eta > 0:\n", "    if False:\n", "6.2", "noise_missing"),
    ("DDIM direction without sigma", "ddim", "torch.sqrt(1 - alpha_bar_prev - sigma**2) * eps",
     "torch.sqrt(1 - alpha_bar_prev) * eps", "6.2", "no_sigma_in_direction"),
    ("DDIM uses alpha_bar_{t-1}", "ddim", "extract(schedule.alpha_bars, t_prev, x_t, allow_zero=True)",
     "extract(schedule.alpha_bars, t - 1, x_t, allow_zero=True)", "6.2", "t_minus_1_for_t_prev"),
    ("DDIM sigma without square roots", "ddim",
     "sigma = eta * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * torch.sqrt(1 - alpha_bar_t / alpha_bar_prev)",
     "sigma = eta * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)", "6.2", "sigma_no_sqrt"),
    ("DDIM loop misses the last jump", "ddim", "zip(timesteps, timesteps[1:] + [0])", "zip(timesteps[:-1], timesteps[1:])",
     "6.3", "no_final_step"),
    ("DDIM loop drops eta", "ddim", "ddim_step(model, x, t, t_prev, schedule, eta=eta, generator=generator)",
     "ddim_step(model, x, t, t_prev, schedule, generator=generator)", "6.3", "eta_not_passed"),
]


def rounds(mutants):
    """Groups of mutants with at most one per module: each group is one grader run."""
    groups = []
    for mutant in mutants:
        group = next((g for g in groups if all(m[1] != mutant[1] for m in g)), None)
        if group is None:
            groups.append(group := [])
        group.append(mutant)
    return groups


def grade_round(folder: Path, group) -> dict:
    sources = {module: mutate(solution_source(module), old, new) for _, module, old, new, _, _ in group}
    package_copy(folder, sources)
    targets = ",".join(sorted({exercise_id for *_, exercise_id, _ in group}))
    return by_exercise(run_grader(folder, "-m", "not slow", "--exercise", targets, "--exercise-timeout", "60"))


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    """mutant name -> (points lost on its exercise, its messages)."""
    groups = rounds(MUTANTS)
    folders = [tmp_path_factory.mktemp(f"round{i}") for i in range(len(groups))]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(grade_round, folders, groups))
    found = {}
    for group, table in zip(groups, results):
        for name, _, _, _, exercise_id, _ in group:
            row = table[exercise_id]
            found[name] = (row["max_score"] - row["score"], " ".join(row["outputs"]))
    return found


def test_the_mutants_apply_to_the_current_solutions():
    for name, module, old, new, _, _ in MUTANTS:
        mutate(solution_source(module), old, new)  # raises if the text is not there exactly once
    assert len(MUTANTS) >= 20, "the grader's tests need at least 20 realistic mutants"


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_every_mutant_loses_points(verdicts, mutant):
    lost, messages = verdicts[mutant[0]]
    assert lost > 0, f"the mutant '{mutant[0]}' kept every point of exercise {mutant[4]}: the grader misses this mistake"


def test_most_messages_name_the_mistake(verdicts):
    named, unnamed = [], []
    for name, _, _, _, _, expected in MUTANTS:
        phrase = MISTAKES.get(expected, expected)
        (named if phrase in verdicts[name][1] else unnamed).append(name)
    print(f"\n{len(named)} of {len(MUTANTS)} mutants' messages name the mistake; not named: {unnamed}")
    assert len(named) >= 0.9 * len(MUTANTS), (
        f"only {len(named)} of {len(MUTANTS)} messages name the mistake; these do not: "
        + "; ".join(f"{n}: {verdicts[n][1][:300]}" for n in unnamed))
