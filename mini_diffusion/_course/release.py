"""The autograder's driver on Gradescope: it grades one submission and writes results.json (`python -I release.py grade`).

run_autograder (bundle_templates/run_autograder.sh) runs this file as a script for every submission,
so at the top it imports nothing but the standard library, and it loads the sandbox files by path
(`_sandbox`), never the package. The releases themselves are made elsewhere: the student copy by
student_release.py, the Gradescope bundle that holds this driver by gradescope_bundle.py (`mini-diffusion
release student OUTDIR`, `mini-diffusion release gradescope OUT.zip`).

Three parties (docs/instructors.md, "What a submission can and cannot do"): this DRIVER (root)
is the only writer of results.json; the JUDGE (`pytest exercises/`, root, in a private copy of
the course) computes the grade and never imports the submission; the WORKER (sandbox.py: its own
unprivileged user, namespaces, limits) runs the submission's functions when the judge calls them.
"""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The autograder (paths under AUTOGRADER_ROOT, /autograder on Gradescope).
GRADING_SECONDS = 540  # a minute under Gradescope's usual limit of 10 minutes (run_autograder sets it)
MAX_FILE_BYTES = 1_000_000  # an exercise file is a few kB
SKIPPED_DIRS = {"solutions", "__MACOSX", "__pycache__", "site-packages", "node_modules", "build", "dist"}

WORKER_TREE = "tree"  # under the worker's own folder: the package with the submission's files


def grade(root: Path) -> dict:
    """Grade root/submission with the grader in root/source; write root/results/results.json.

    Whatever the submission holds (nothing, the wrong layout, files that do not import, code that
    attacks the grader), the result is a report that says so, never a crash.
    """
    started = time.time()
    notes: list[str] = []
    results = root / "results" / "results.json"
    try:
        _lock(root)
        source = root / "source"
        modules = json.loads((source / "autograder.json").read_text(encoding="utf-8"))["exercise_modules"]
        found, notes = find_exercise_files(root / "submission", modules)
        if found:
            report = run_grader(source / "course", found, notes)
        else:
            report = _empty_report("", started)
    except Exception as err:  # noqa: BLE001 - the autograder must report, never crash
        print(f"the driver failed: {type(err).__name__}: {err}", flush=True)
        reason = str(err) if isinstance(err, _sandbox().CannotRun) else f"the driver failed ({type(err).__name__}: {err})"
        report = not_graded_report(reason, time.time() - started)
    if not_graded(report):  # nothing was graded: where the files were found would only mislead
        print(f"NOT GRADED: {report['extra_data']['grader_failure']}", flush=True)
    else:
        report["output"] = "\n".join([*notes, "", report.get("output", "")]).strip()
    _sandbox().kill_user(_sandbox().WORKER_UID)  # nothing of the submission's is left running now
    results.parent.mkdir(parents=True, exist_ok=True)
    if _root():
        os.chown(results.parent, 0, 0)
        os.chmod(results.parent, 0o755)
    temporary = results.with_name(".results.json.tmp")
    temporary.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temporary, results)
    return report


def not_graded_message(reason: str) -> str:
    """What a student and the instructor read when the autograder itself could not run (exercises/conftest.py
    says the same through not_graded_report)."""
    return (f"The autograder could not run: {reason}; the submission was not graded. This is not a mistake in the "
            "submission, and no check was scored: the grading machine needs fixing. Please tell your instructor.")


def not_graded_report(reason: str, seconds: float) -> dict:
    """results.json when the autograder could not run: no tests, no per-exercise zeros; extra_data says why."""
    return {"score": 0, "execution_time": round(seconds, 2), "output": not_graded_message(reason),
            "visibility": "visible", "stdout_visibility": "hidden", "tests": [],
            "extra_data": {"grader_failure": reason}}


def not_graded(report: dict) -> bool:
    return bool((report.get("extra_data") or {}).get("grader_failure"))


def _root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _lock(root: Path) -> None:
    """Under root: the grader (source/) and the submission are root's alone (0700)."""
    if not _root():
        return
    for folder in (root / "source", root / "submission"):
        if folder.is_dir():
            os.chmod(folder.resolve(), 0o700)


def _sandbox():
    """mini_diffusion/_course/sandbox.py and the sandbox_*.py files it imports, as the package `_course` of the
    folder above (the driver runs with `python -I`, apart from the package: mini_diffusion/__init__.py would
    import torch; _course/__init__.py holds only a docstring). Nothing else of this folder is imported."""
    import importlib

    sys.dont_write_bytecode = True  # source/ stays exactly as unpacked
    if "_course.sandbox" not in sys.modules:
        uid = os.environ.get("AUTOGRADER_WORKER_UID", "")
        os.environ["MINI_DIFFUSION_WORKER_UID"] = uid if uid.isdigit() and int(uid) >= 1000 else ""
        above = str(Path(__file__).resolve().parent.parent)
        if above not in sys.path:
            sys.path.append(above)  # last: nothing the driver already imports is shadowed
    return importlib.import_module("_course.sandbox")


def _empty_report(output: str, started: float) -> dict:
    return {"score": 0, "execution_time": round(time.time() - started, 2), "output": output,
            "visibility": "visible", "stdout_visibility": "hidden", "tests": []}


def find_exercise_files(submission: Path, modules) -> tuple[dict, list[str]]:
    """(module name -> file, notes for the student) for a submission's exercise files.

    A submission may be a mini_diffusion/ folder, the whole course folder (at any depth), or the
    loose files. The folder named mini_diffusion wins, then the one with the most exercise
    files, then the shallowest; solutions/, virtual environments and hidden folders are skipped.
    """
    wanted = [f"{m}.py" for m in modules]
    candidates = []
    if submission.is_dir():
        for folder, subfolders, files in os.walk(submission):
            subfolders[:] = sorted(d for d in subfolders if d not in SKIPPED_DIRS and not d.startswith(".")
                                   and not (Path(folder) / d / "pyvenv.cfg").exists())
            have = [name for name in wanted if name in files]
            if have:
                candidates.append((Path(folder), have))
    if not candidates:
        listing = sorted(p.name for p in submission.iterdir())[:20] if submission.is_dir() else []
        return {}, [
            "No exercise files were found in your submission, so nothing could be graded. Upload your "
            f"mini_diffusion/ folder (or the whole course folder, or its files {', '.join(wanted)}).",
            f"Your submission holds: {', '.join(listing) or 'nothing'}.",
        ]
    folder, have = min(candidates, key=lambda c: (c[0].name != "mini_diffusion", -len(c[1]),
                                                  len(c[0].relative_to(submission).parts)))
    where = folder.relative_to(submission).as_posix()
    where = "the top of your submission" if where == "." else f"{where}/"
    notes = [f"Graded your exercise files from {where}; the rest of the course comes from the grader's own copy."]
    others = [c[0].relative_to(submission).as_posix() for c in candidates if c[0] != folder]
    if others:
        notes.append(f"Exercise files elsewhere in your submission were not graded: {', '.join(others[:5])}.")
    found = {}
    for name in have:
        path = folder / name
        if path.is_symlink() or not path.is_file():
            notes.append(f"{name} is a link or not a regular file, so it was not used.")
        elif path.stat().st_size > MAX_FILE_BYTES:
            notes.append(f"{name} is larger than {MAX_FILE_BYTES // 1000} kB, far too large for an exercise file, so "
                         "it was not used.")
        else:
            found[name[:-3]] = path
    missing = [f"mini_diffusion/{name}" for name in wanted if name[:-3] not in found]
    if missing:
        notes.append(f"Missing from your submission: {', '.join(missing)}; their exercises get 0 points.")
    return found, notes


def run_grader(course_source: Path, found: dict, notes: list[str]) -> dict:
    """Run the judge (`pytest exercises/` in a private copy of the course) on the submission's exercise
    files, which only the worker reads; return the judge's report."""
    import secrets

    started = time.time()
    seconds = float(os.environ.get("AUTOGRADER_TIMEOUT", GRADING_SECONDS))
    sandbox = _sandbox()
    uid = str(sandbox.WORKER_UID)
    judge_dir = Path(tempfile.mkdtemp(prefix="mini-diffusion-judge-"))  # 0700: root's alone
    try:  # the worker's folder, where its user can enter it (TMPDIR may be private)
        worker_dir = Path(tempfile.mkdtemp(prefix="mini-diffusion-worker-", dir=sandbox.shared_temp()))
    except Exception:
        shutil.rmtree(judge_dir, ignore_errors=True)
        raise
    try:
        course = judge_dir / "course"
        shutil.copytree(course_source, course)
        tree, scratch = sandbox.prepare_tree(course / "mini_diffusion", found, worker_dir)
        report_file, log_file = judge_dir / "report.json", judge_dir / "judge.log"
        seed = secrets.randbelow(2**31)
        env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": str(judge_dir),
               "TMPDIR": str(judge_dir), "PYTHONPATH": str(course), "PYTHONDONTWRITEBYTECODE": "1",
               "MPLBACKEND": "Agg", "LC_ALL": "C.UTF-8", "MINI_DIFFUSION_WORKER_UID": uid}
        # --judge: the judge reaches the reference solutions for its stand-ins and fresh cases without lending
        # them (no MINI_DIFFUSION_SOLUTIONS): the code it grades is the worker's, and nothing is said to be lent
        command = [sys.executable, "-m", "pytest", "exercises", "-q", "-p", "no:cacheprovider", "--judge",
                   "--grade-report", str(report_file), "--worker-tree", str(tree), "--worker-scratch", str(scratch),
                   "--grading-seed", str(seed), *shlex.split(os.environ.get("AUTOGRADER_PYTEST_ARGS", ""))]
        print(f"judge: seed {seed}; {sandbox.describe()}", flush=True)
        with open(log_file, "wb") as log:  # a file, not a pipe: nothing can hold the driver's output open
            process = subprocess.Popen(command, cwd=course, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            grace = min(15.0, seconds / 4)
            if not _wait(process, max(1.0, seconds - grace - (time.time() - started))):
                _signal_group(process, signal.SIGINT)  # pytest stops and still writes the report of the checks run
                if not _wait(process, grace):
                    _signal_group(process, signal.SIGKILL)
                    _wait(process, 10)
                notes.append(f"Grading was stopped after {seconds:g} s: the checks that had not run yet get no points.")
        _signal_group(process, signal.SIGKILL)  # whatever the judge left behind
        sandbox.kill_user(sandbox.WORKER_UID)
        print(log_file.read_text(encoding="utf-8", errors="replace")[-200_000:])  # the autograder's stdout, instructors only
        if not report_file.is_file():
            return not_graded_report(f"the judge (pytest) ended before it wrote a report (exit code {process.returncode}; "
                                     "its output is in the autograder's stdout)", time.time() - started)
        report = json.loads(report_file.read_text(encoding="utf-8"))
        report.setdefault("extra_data", {})["seed"] = seed
        return report
    finally:
        sandbox.kill_user(sandbox.WORKER_UID)
        shutil.rmtree(judge_dir, ignore_errors=True)
        shutil.rmtree(worker_dir, ignore_errors=True)


def _wait(process, seconds: float) -> bool:
    try:
        process.wait(timeout=seconds)
        return True
    except subprocess.TimeoutExpired:
        return False


def _signal_group(process, number) -> None:
    try:
        os.killpg(process.pid, number)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def _main(argv) -> int:
    if argv != ["grade"]:
        print("usage: python -I release.py grade   (run by the autograder's run_autograder)", file=sys.stderr)
        return 2
    report = grade(Path(os.environ.get("AUTOGRADER_ROOT", "/autograder")))
    return 1 if not_graded(report) else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
