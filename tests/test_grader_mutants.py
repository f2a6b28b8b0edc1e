"""The grader catches the mistakes learners really make, and names most of them.

Each mutant is the reference solution with one realistic mistake; the specs
(exercises/test_NN_*.py) list them, each notebook its own. Mutants of different
modules share a grader run (the grader grades each module on its own, with its own versions
of the formulas a module borrows from the others), so the 43 mutants need 9 runs of the exact
checks (the slow sample-quality checks are left out here; the exact ones catch everything).
"""

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grader_harness import EXERCISES, by_exercise, mutate, package_copy, run_grader, solution_source  # noqa: E402

sys.path.insert(0, str(EXERCISES))
import _spec  # noqa: E402  (exercises/_spec.py: finds the specs and their MUTANTS)

MISTAKES = json.loads((EXERCISES / "expected" / "cases.json").read_text(encoding="utf-8"))["mistakes"]

# Each spec (exercises/test_NN_*.py) lists its notebook's mutants in its maintainer block:
# Mutant(name, module, old text, new text, exercise that must lose points, what its message must
# say: a key of the grader's mistake table, or a phrase).
MUTANTS = _spec.mutants()


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
