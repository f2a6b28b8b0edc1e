"""The grader (exercises/) grades fairly: full marks for the solutions, 0 without errors for the
stubs, and a broken module costs only its own points. Each grader run is a child `pytest exercises/`."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grader_harness import (  # noqa: E402
    BROKEN, ROOT, by_exercise, finish_grader, mutate, package_copy, solution_source, start_grader,
)

from mini_diffusion._base.catalog import EXERCISES  # noqa: E402
from mini_diffusion._course.check import CheckResult, report, run_checks  # noqa: E402


@pytest.fixture(scope="module")
def grades(tmp_path_factory):
    """The three grader runs, started together: solutions, untouched stubs, the broken package."""
    broken = tmp_path_factory.mktemp("broken")
    package_copy(broken, {m: mutate(solution_source(m), old, new) for m, (old, new) in BROKEN.items()})
    started = {
        "solutions": (ROOT, start_grader(ROOT, solutions="1", report_dir=tmp_path_factory.mktemp("solutions"))),
        "stubs": (ROOT, start_grader(ROOT, solutions="0", report_dir=tmp_path_factory.mktemp("stubs"))),
        "broken": (broken, start_grader(broken, "-m", "not slow", "--exercise-timeout", "3")),
    }
    return {name: finish_grader(process, report, folder) for name, (folder, (process, report)) in started.items()}


def visible(result: dict) -> dict:
    """The result without the hidden checks (exercises/hidden/, left out of the student release)."""
    return {**result, "tests": [t for t in result["tests"] if t["visibility"] == "visible"]}


def test_the_solutions_get_full_marks(grades):
    result = grades["solutions"]
    failed = [t["name"] + ": " + t["output"] for t in result["tests"] if t["status"] != "passed"]
    assert not failed, "the reference solutions lose points:\n" + "\n".join(failed)
    assert result["score"] == result["max_score"], result["output"]
    assert sum(t["max_score"] for t in visible(result)["tests"]) == sum(e.points for e in EXERCISES)
    assert result["_returncode"] == 0


def test_every_exercise_is_graded_for_its_catalog_points(grades):
    graded = by_exercise(visible(grades["solutions"]))
    for exercise in EXERCISES:
        assert exercise.id in graded, f"exercise {exercise.id} ({exercise.function}) has no checks in exercises/"
        assert graded[exercise.id]["max_score"] == exercise.points, (
            f"the checks of exercise {exercise.id} are worth {graded[exercise.id]['max_score']} points; the catalog "
            f"says {exercise.points}")


def test_the_report_has_gradescopes_fields(grades):
    result = grades["solutions"]
    assert {"score", "max_score", "execution_time", "tests"} <= set(result)
    assert result["execution_time"] > 0
    for test in result["tests"]:
        assert {"name", "score", "max_score", "output", "visibility"} <= set(test), test


def test_the_untouched_stubs_score_0_without_errors(grades):
    result = grades["stubs"]
    assert result["score"] == 0
    assert sum(t["max_score"] for t in visible(result)["tests"]) == sum(e.points for e in EXERCISES)
    for test in result["tests"]:
        assert "Not implemented yet" in test["output"] or "not implemented yet" in test["output"], test
    summary = result["_stdout"].strip().splitlines()[-1]
    assert "error" not in summary, f"the stubs' run has errors, not just failures: {summary}"
    assert result["_returncode"] == 1


def test_a_broken_module_costs_only_its_own_exercises(grades):
    result = grades["broken"]
    table = by_exercise(result)
    lost = {ex for ex, row in table.items() if row["score"] < row["max_score"]}
    assert lost == {"1.1", "1.3", "1.4", "2.3", "4.1", "4.2"}, (
        f"expected only the broken functions' exercises to lose points; lost: {sorted(lost)}\n{result['output']}")
    assert all(table[ex]["score"] == 0 for ex in lost), result["output"]
    messages = {ex: " ".join(table[ex]["outputs"]) for ex in lost}
    assert "forward.py does not import" in messages["1.3"] and "SyntaxError" in messages["1.3"], messages["1.3"]
    assert "line" in messages["1.4"]
    assert "NaN" in messages["2.3"], messages["2.3"]
    assert "shape" in messages["1.1"], messages["1.1"]
    assert "did not finish within" in messages["4.1"], messages["4.1"]


def test_check_shows_the_graders_verdict_for_one_exercise():
    results = run_checks(["1.1", "1.3"], solutions=["schedules"])  # 1.1 from the solutions, 1.3 a stub
    passed = {r.exercise: r.passed for r in results}
    assert passed == {"1.1": True, "1.3": False}, results
    assert "Not implemented yet" in next(r.message for r in results if r.exercise == "1.3")


def test_check_prints_a_mark_and_the_message():
    text = report([CheckResult("1.4", "1.4 q_sample: values", 1, 1, ""),
                   CheckResult("1.4", "1.4 q_sample: statistics", 0, 1, "q_sample is wrong")])
    assert text.splitlines()[0] == "❌ 1.4 q_sample: 1/2 points" and "q_sample is wrong" in text


def test_check_says_clearly_when_the_grader_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="exercises/ folder"):
        run_checks(["1.3"], exercises_dir=tmp_path)
    with pytest.raises(ValueError, match="no exercise '9.9'"):
        run_checks(["9.9"])


def test_a_package_that_does_not_import_still_gets_a_report(tmp_path):
    """Even a broken mini_diffusion/__init__.py (not an exercise file) must give 0 points with a reason, not a crash."""
    package = package_copy(tmp_path)
    (package / "__init__.py").write_text("this is not python\n", encoding="utf-8")
    process, report = start_grader(tmp_path, "--exercise", "1.1,1.2")
    stdout, _ = process.communicate(timeout=300)
    assert report.is_file(), f"the grader wrote no report (exit {process.returncode}):\n{stdout[-3000:]}"
    result = json.loads(report.read_text(encoding="utf-8"))
    assert result["score"] == 0 and result["tests"], result
    assert all("`import mini_diffusion` fails" in test["output"] for test in result["tests"]), [t["output"] for t in result["tests"]]
