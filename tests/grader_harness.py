"""Run the grader (exercises/) on a copy of the package whose exercise files we choose.

The copy lives in a temporary folder that comes first on the child's sys.path (its working
directory and PYTHONPATH), so the child imports it and not the repository's editable install;
the grade report records which package was graded, and `run_grader` checks it.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

from mini_diffusion._base.catalog import EXERCISE_MODULES

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "exercises"

# One learner package with four kinds of trouble, one per module; the others are correct.
BROKEN = {
    "forward": ("return torch.sqrt(1.0 - beta_t) * x_prev + torch.sqrt(beta_t) * noise",
                "return torch.sqrt(1.0 - beta_t) * x_prev +"),  # a syntax error
    "reverse": ("beta_t / torch.sqrt(1.0 - alpha_bar_t) * eps", "beta_t / torch.sqrt(alpha_bar_t - 1.0) * eps"),  # NaN
    "schedules": ("torch.linspace(beta_start, beta_end, T, dtype=torch.float64)",
                  "torch.linspace(beta_start, beta_end, T + 1, dtype=torch.float64)"),  # wrong shape
    "sampling": ("    eps = call_model(model, x_t, t)\n",
                 "    while bool((t > 0).any()):  # never ends\n        eps = call_model(model, x_t, t)\n"),  # hangs
}


def solution_source(module: str) -> str:
    return (ROOT / "solutions" / f"{module}.py").read_text(encoding="utf-8")


def mutate(source: str, old: str, new: str) -> str:
    """source with the one occurrence of `old` replaced (a mutant that does not apply is a test bug)."""
    count = source.count(old)
    if count != 1:
        raise AssertionError(f"the mutation expects {old!r} exactly once in the solution; found it {count} times")
    return source.replace(old, new)


def package_copy(folder: Path, sources: dict | None = None) -> Path:
    """folder/mini_diffusion: the repository's package with every exercise module taken from
    solutions/, except those given in `sources` (module name -> file text)."""
    target = folder / "mini_diffusion"
    shutil.copytree(ROOT / "mini_diffusion", target, ignore=shutil.ignore_patterns("__pycache__"))
    for module in EXERCISE_MODULES:
        text = (sources or {}).get(module, solution_source(module))
        (target / f"{module}.py").write_text(text, encoding="utf-8")
    return target


def start_grader(folder: Path, *args: str, solutions: str | None = None, report_dir: Path | None = None):
    """Start `pytest exercises/` in a child whose `mini_diffusion` is folder/mini_diffusion (with
    folder = ROOT, the repository's own). Returns (process, path of its results.json)."""
    report = (report_dir or folder) / "results.json"
    env = {k: v for k, v in os.environ.items() if k not in ("MINI_DIFFUSION_SOLUTIONS", "PYTHONPATH")}
    env["PYTHONPATH"] = str(folder)
    if solutions is not None:
        env["MINI_DIFFUSION_SOLUTIONS"] = solutions
    command = [sys.executable, "-m", "pytest", str(EXERCISES), "-q", "-p", "no:cacheprovider",
               "--grade-report", str(report), *args]
    process = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, report


def finish_grader(process: subprocess.Popen, report: Path, folder: Path, timeout: float = 300) -> dict:
    """Wait for the child; return its results.json with the run's output under "_stdout"."""
    stdout, _ = process.communicate(timeout=timeout)
    assert report.is_file(), f"the grader wrote no report (exit {process.returncode}):\n{stdout[-3000:]}"
    result = json.loads(report.read_text(encoding="utf-8"))
    graded = Path(result["extra_data"]["package"])
    assert graded == (folder / "mini_diffusion").resolve(), (
        f"the grader graded {graded}, not the copy in {folder}: the editable install won over PYTHONPATH")
    result["_stdout"] = stdout
    result["_returncode"] = process.returncode
    return result


def run_grader(folder: Path, *args: str, solutions: str | None = None, timeout: float = 300) -> dict:
    process, report = start_grader(folder, *args, solutions=solutions)
    return finish_grader(process, report, folder, timeout)


def by_exercise(result: dict) -> dict:
    """exercise id -> {"score", "max_score", "outputs": [messages of its failed checks]}."""
    table = {}
    for test in result["tests"]:
        row = table.setdefault(test.get("number"), {"score": 0, "max_score": 0, "outputs": []})
        row["score"] += test["score"]
        row["max_score"] += test["max_score"]
        if test["status"] != "passed":
            row["outputs"].append(test["output"])
    return table


# --- The Gradescope bundle, as Gradescope runs it ------------------------------------------------


def unzip_bundle(archive: Path, dest: Path) -> None:
    """Extract like Gradescope does, keeping the executable bits that zipfile drops."""
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            path = z.extract(info, dest)
            if info.external_attr >> 16:
                os.chmod(path, (info.external_attr >> 16) & 0o777)


def run_bundles(prepared: list, source: Path, concurrent: int, finished=None, timeout: float = 900) -> dict:
    """source/run_autograder for each prepared {"name", "root", "env"}, `concurrent` at a time: name ->
    {"report" (results.json, or None), "output", "returncode", "seconds"}, plus what finished(run) returns
    for it when it ends. Each run dict gets "output", "returncode" and "seconds" too. Output that is not
    UTF-8 (a hostile submission's) is kept with replacement characters."""

    def collect(run) -> None:
        out, _ = run["process"].communicate(timeout=timeout)
        run["output"], run["returncode"] = out, run["process"].returncode
        run["seconds"] = time.time() - run["started"]

    waiting, running, done = list(prepared), [], {}
    while waiting or running:
        while waiting and len(running) < concurrent:
            run = waiting.pop(0)
            run["started"] = time.time()
            run["process"] = subprocess.Popen([str(source / "run_autograder")], cwd=run["root"], env=run["env"],
                                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, encoding="utf-8",
                                              errors="replace")
            run["reader"] = threading.Thread(target=collect, args=(run,), daemon=True)
            run["reader"].start()
            running.append(run)
        time.sleep(0.2)
        for run in [r for r in running if not r["reader"].is_alive()]:
            running.remove(run)
            results = run["root"] / "results" / "results.json"
            report = json.loads(results.read_text(encoding="utf-8")) if results.is_file() else None
            done[run["name"]] = {"report": report, "output": run["output"], "returncode": run["returncode"],
                                 "seconds": run["seconds"], **(finished(run) if finished else {})}
    return done
