"""The grader's shipped expected values come from the current solutions (and it never imports them)."""

import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import make_expected  # noqa: E402  (puts exercises/ on sys.path too)
from _models import STAND_INS  # noqa: E402
from solutions import ddim, forward, reverse  # noqa: E402


def test_shipped_expected_values_match_a_fresh_run_of_the_solutions(one_thread):
    problems = make_expected.differences(make_expected.make(), make_expected._grading.EXPECTED_DIR)
    assert not problems, (
        "exercises/expected/ is stale (the solutions, the cases or the mistakes changed): run "
        "`python tools/make_expected.py`. Differences: " + "; ".join(problems[:10]))


def test_the_graders_stand_in_formulas_agree_with_the_solutions():
    schedule = make_expected._grading.schedule("linear1000")
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(6, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([1, 2, 10, 500, 999, 1000])
    solutions = {"q_sample": lambda: forward.q_sample(x, t, schedule, eps),
                 "predict_x0": lambda: reverse.predict_x0(x, t, eps, schedule),
                 "p_mean": lambda: reverse.p_mean(x, t, eps, schedule),
                 "ddim_timesteps": lambda: ddim.ddim_timesteps(1000, 7)}
    stand_ins = {name: fn for functions in STAND_INS.values() for name, fn in functions.items()}
    assert set(stand_ins) == set(solutions)
    for name, solution in solutions.items():
        args = {"q_sample": (x, t, schedule, eps), "ddim_timesteps": (1000, 7)}.get(name, (x, t, eps, schedule))
        torch.testing.assert_close(stand_ins[name](*args), solution(), rtol=1e-12, atol=1e-12,
                                   msg=f"the grader's stand-in {name} differs from the solution")


def test_the_grader_never_imports_the_solutions():
    """A student copy of the course ships without solutions/: the grader must not need it."""
    for path in (ROOT / "exercises").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import)\s+solutions\b", text, re.M), f"{path.name} imports solutions/"
