"""Check an exercise from its notebook: `mini_diffusion._course.check("1.3")`.

It runs the grader's own checks for that exercise (exercises/ in the course folder, the same
ones `pytest exercises/` runs) apart from the notebook, in a child that a warm worker forks for
each check (see check_worker.py), so it always sees the files as you saved them, a function that hangs
cannot freeze the notebook, and the result is exactly what the grader would say. The check uses the same exercise modules as this session: yours,
or the solutions that MINI_DIFFUSION_SOLUTIONS switched on.
"""

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mini_diffusion._course import seam

PACKAGE_DIR = seam.PACKAGE_DIR


@dataclass
class CheckResult:
    """One graded check: its exercise, what it checks, points, and the grader's message if it failed."""

    exercise: str
    name: str
    score: float
    max_score: float
    message: str

    @property
    def passed(self) -> bool:
        return self.score == self.max_score


def check(*exercise_ids: str) -> None:
    """Run the grader's checks for these exercises ("1.3", or "4" for all of notebook 04) and print
    ✅ or ❌ with the grader's message for each. The first check starts a worker (about 2 s); the next take a fraction of a second."""
    print(report(run_checks(exercise_ids), lent=seam.lent()))


def run_checks(exercise_ids, solutions=None, exercises_dir=None, timeout: float = 600) -> list[CheckResult]:
    """The grader's verdicts for exercise_ids, as CheckResults.

    solutions: the exercises (ids, notebook numbers or modules) lent from solutions/ (default: those
        lent in this session, see md.lend).
    exercises_dir: the grader's folder (default: exercises/ in the course folder).
    """
    from mini_diffusion._base.catalog import EXERCISES

    ids = _checked_ids(exercise_ids, EXERCISES)
    folder = Path(exercises_dir) if exercises_dir is not None else seam.exercises_dir()
    if not (folder / "conftest.py").is_file():
        raise FileNotFoundError(
            f"check() needs the course's grader, the exercises/ folder, and it is not at {folder}. It comes with the "
            "course repository (next to mini_diffusion/): work in a clone of the course, or run `pytest exercises/` "
            "there."
        )
    in_use = seam.lent() if solutions is None else tuple(solutions)
    env = {"MINI_DIFFUSION_SOLUTIONS": ",".join(in_use) or "0"}
    with tempfile.TemporaryDirectory() as tmp:
        results_file = Path(tmp) / "results.json"
        # Plugins the grader does not use are left out: nbval alone (installed for the notebook
        # tests) took 2 s per check importing Jupyter's JSON schemas.
        # unraisableexception runs gc.collect twice at the end (0.2 s) and assertion rewriting
        # re-parses the check files (0.1 s): neither changes a verdict.
        args = [str(folder), "-q", "-p", "no:cacheprovider", "-p", "no:nbval", "-p", "no:anyio",
                "-p", "no:unraisableexception", "-p", "no:threadexception", "--assert=plain",
                "--exercise", ",".join(ids), "--grade-report", str(results_file)]
        output, code = _run_grader(folder, args, env, timeout)
        if not results_file.is_file():
            raise RuntimeError(f"the grader did not finish (exit code {code}):\n{output[-2000:]}")
        graded = json.loads(results_file.read_text(encoding="utf-8"))
    return [CheckResult(t.get("number", "?"), t["name"], t["score"], t["max_score"],
                        "" if t["status"] == "passed" else t["output"]) for t in graded["tests"]]


_WORKERS: dict = {}  # exercises folder -> its warm worker (one per kernel)


def _run_grader(folder: Path, args: list, env: dict, timeout: float) -> tuple[str, int]:
    """Run pytest with args apart from this process: in the warm worker (forked per check) where the
    system can fork, else in a fresh Python. Returns (output, exit code)."""
    child_env = {**os.environ, **env,
                 # the checked package is this one: its folder goes first on the child's import path
                 "PYTHONPATH": os.pathsep.join([str(PACKAGE_DIR.parent), *filter(None, [os.environ.get("PYTHONPATH")])])}
    if hasattr(os, "fork"):
        from mini_diffusion._course.check_worker import Worker

        worker = _WORKERS.get(folder) or _WORKERS.setdefault(folder, Worker(folder, PACKAGE_DIR.parent, child_env))
        reply = worker.run(args, env, timeout)
        return reply["output"], reply["returncode"]
    run = subprocess.run([sys.executable, "-m", "pytest", *args], cwd=PACKAGE_DIR.parent, env=child_env,
                         capture_output=True, text=True, timeout=timeout)
    return run.stdout + run.stderr, run.returncode


def _checked_ids(exercise_ids, exercises) -> list[str]:
    if isinstance(exercise_ids, str):
        exercise_ids = [exercise_ids]
    known = [e.id for e in exercises]
    ids = [str(i).strip() for i in exercise_ids]
    if not ids:
        raise ValueError(f"say which exercise to check, e.g. check(\"1.3\"); the exercises are {', '.join(known)}")
    for i in ids:
        matches = i in known if "." in i else any(k.split(".")[0] == i.lstrip("0") for k in known)
        if not matches:
            raise ValueError(f"there is no exercise {i!r}; the exercises are {', '.join(known)} "
                             "(or a notebook number such as \"4\" for all of its exercises)")
    return ids


def report(results: list[CheckResult], lent=()) -> str:
    """The results as text: ✅/❌ per exercise, then each failed check's message. An exercise in
    `lent` is said to be the reference solution's result, not the learner's."""
    if not results:
        return "No checks ran for this exercise yet."
    lines, by_exercise = [], {}
    for r in results:
        by_exercise.setdefault(r.exercise, []).append(r)
    for exercise, checks in by_exercise.items():
        score, total = sum(c.score for c in checks), sum(c.max_score for c in checks)
        name = checks[0].name.split(":")[0]
        mark = "✅" if score == total else "❌"
        if exercise in lent:
            lines.append(f"checking the reference solution of {exercise} (lent), not yours:")
        lines.append(f"{mark} {name}: {score:g}/{total:g} point{'s' if total != 1 else ''}")
        messages = dict.fromkeys(c.message for c in checks if not c.passed)  # in order, each once
        lines += [f"   • {m}" for m in messages]
    return "\n".join(lines)
