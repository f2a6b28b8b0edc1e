"""`mini-diffusion release`: the student copy gives nothing away and works; the Gradescope
autograder grades a correct, a stub and a broken submission fairly and always writes results.json.

Every grading is a child process (the student copy's `pytest exercises/`, and run_autograder on
four submissions), all started together by one module fixture. Runs that only test the plumbing
leave out the slow sample-quality checks (`-m "not slow"`); tests/test_grader.py covers those.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jupytext
import nbformat
import pytest

from mini_diffusion._course import cli, gradescope_bundle, maintainer_blocks, release, student_release

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grader_harness import BROKEN, by_exercise, mutate, solution_source, unzip_bundle  # noqa: E402
from mini_diffusion._base.catalog import EXERCISE_MODULES  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FAST = "-m 'not slow' --exercise-timeout 10"


def _data_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MINI_DIFFUSION_SOLUTIONS", "PYTHONPATH")}
    return {**env, **extra}





def _submission(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / "submission" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "submission" / name).write_text(text, encoding="utf-8")
    (root / "submission").mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The student copy and the autograder zip, each made once."""
    folder = tmp_path_factory.mktemp("release")
    student = folder / "student"
    bundle = folder / "autograder.zip"
    student_release.make_student_release(student)
    gradescope_bundle.make_gradescope_bundle(bundle)
    source = folder / "source"
    unzip_bundle(bundle, source)
    return {"student": student, "zip": bundle, "source": source, "stubs": student_release.stub_sources()}


@pytest.fixture(scope="module")
def graded(built, tmp_path_factory):
    """Start every grading at once, then collect them: name -> (results.json, output)."""
    stubs = built["stubs"]
    student = built["student"]
    runs = {}
    report = student / "results.json"
    runs["student copy"] = (subprocess.Popen(
        [sys.executable, "-m", "pytest", "exercises/", "-q", "--grade-report", str(report)], cwd=student,
        env=_env(PYTHONPATH=str(student)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), report)

    whole_repo = {f"mini-diffusion-main/mini_diffusion/{m}.py": stubs[m] for m in EXERCISE_MODULES}
    whole_repo.update({f"mini-diffusion-main/solutions/{m}.py": solution_source(m) for m in EXERCISE_MODULES})
    whole_repo["mini-diffusion-main/mini_diffusion/common.py"] = "raise RuntimeError('a ready module from a submission')\n"
    whole_repo["mini-diffusion-main/exercises/conftest.py"] = "raise RuntimeError('a grader from a submission')\n"
    loose = {f"{m}.py": solution_source(m) for m in EXERCISE_MODULES if m != "losses"}
    loose["forward.py"] = mutate(solution_source("forward"), *BROKEN["forward"])  # a syntax error
    submissions = {
        "correct": {f"mini_diffusion/{m}.py": solution_source(m) for m in EXERCISE_MODULES},
        "stubs": whole_repo,
        "broken": loose,
        "empty": {"notes.txt": "I could not finish.\n"},
    }
    for number, (name, files) in enumerate(submissions.items()):
        root = _submission(tmp_path_factory.mktemp(name), files)
        (root / "source").symlink_to(built["source"], target_is_directory=True)
        env = _env(AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable, AUTOGRADER_PYTEST_ARGS=FAST,
                   AUTOGRADER_WORKER_UID=str(64200 + number))  # gradings at once: one worker user each
        process = subprocess.Popen([str(built["source"] / "run_autograder")], cwd=root, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        runs[name] = (process, root / "results" / "results.json")
    results = {}
    for name, (process, path) in runs.items():
        output, _ = process.communicate(timeout=600)
        assert path.is_file(), f"{name}: no results.json was written (exit {process.returncode}):\n{output[-3000:]}"
        results[name] = (json.loads(path.read_text(encoding="utf-8")), output)
    return results



# --- The student copy ----------------------------------------------------------------------


def test_the_student_copy_has_no_solutions_hidden_checks_or_maintainer_files(built):
    student = built["student"]
    for name in ("solutions", "tests", "tools", "docs", "exercises/hidden"):
        assert not (student / name).exists(), f"the student copy must not contain {name}/"
    assert not list((student / "benchmarks").rglob("*.py")), "the student copy must not contain the benchmark scripts"
    for name in ("samplers.csv", "samplers.png"):  # notebook 07 shows the shipped measurements
        assert (student / "benchmarks" / "results" / name).is_file(), f"the student copy lacks benchmarks/results/{name}"
    assert student_release.leaks(student, ROOT, built["stubs"]) == [], "the student copy holds solution code"
    for module in EXERCISE_MODULES:
        text = (student / "mini_diffusion" / f"{module}.py").read_text(encoding="utf-8")
        assert text == built["stubs"][module] and "NotImplementedError(todo(" in text, (
            f"mini_diffusion/{module}.py in the student copy must be the stub made from solutions/{module}.py")


def test_the_student_copy_ships_the_specs_without_their_maintainer_blocks_and_stand_ins(built):
    """The specs' maintainer blocks (stand-ins, mistakes, wrong variants, cases, mutants) are near-answers:
    the student copy leaves them out; the autograder's judge needs them (issue 13)."""
    with zipfile.ZipFile(built["zip"]) as z:
        zipped = {n: z.read(n).decode("utf-8") for n in z.namelist() if n.startswith("course/exercises/test_")}
    for spec in sorted((ROOT / "exercises").glob("test_*.py")):
        full = spec.read_text(encoding="utf-8")
        assert "# BEGIN MAINTAINER" in full or not full.count("MUTANTS"), spec.name
        # the autograder keeps them (its judge draws fresh cases with them), where only the judge reads
        assert zipped[f"course/exercises/{spec.name}"] == full, f"{spec.name} in the autograder zip is not the full spec"
        for where, text in (("student copy", (built["student"] / "exercises" / spec.name).read_text(encoding="utf-8")),):
            for word in ("# BEGIN MAINTAINER", "# END MAINTAINER", "MUTANTS", "VARIANTS", "def make_cases", "STAND_INS"):
                assert word not in text, f"{spec.name} in the {where} still holds its maintainer block ({word})"
            assert text == maintainer_blocks.strip_maintainer(full, spec.name), f"{spec.name} in the {where} is not the stripped spec"
            assert "NOTEBOOK = Notebook(" in text and "EXERCISES = [" in text, f"{spec.name} lost its declarations"


def test_stripping_rejects_unpaired_maintainer_markers():
    for broken in ("x = 1\n# BEGIN MAINTAINER\ny = 2\n", "x = 1\n# END MAINTAINER\n",
                   "# BEGIN MAINTAINER\n# BEGIN MAINTAINER\n# END MAINTAINER\n"):
        with pytest.raises(ValueError, match="spec.py"):
            maintainer_blocks.strip_maintainer(broken, "spec.py")
    assert maintainer_blocks.strip_maintainer("a = 1\n\n# BEGIN MAINTAINER\nb = 2\n# END MAINTAINER\n", "s.py") == "a = 1\n"


def test_the_student_copy_has_the_public_checks_expected_values_and_models(built):
    student = built["student"]
    public = {p for p in _data_files(ROOT / "exercises") if not p.startswith("hidden/")}
    assert _data_files(student / "exercises") == public, "the student copy's exercises/ differs from the public grader"
    for data in ("weights", "reference_models"):
        assert (ROOT / "mini_diffusion" / "toolkit" / data).is_dir(), f"mini_diffusion/toolkit/{data}/ is missing"
        assert _data_files(student / "mini_diffusion" / "toolkit" / data) == _data_files(
            ROOT / "mini_diffusion" / "toolkit" / data), f"mini_diffusion/toolkit/{data}/ must ship complete in the student copy"
    for name in ("pyproject.toml", "environment.yml"):
        assert (student / name).is_file(), f"the student copy needs {name} to install"
    assert 'testpaths = ["exercises"]' in (student / "pyproject.toml").read_text(), (
        "the student copy has no tests/, so plain `pytest` should grade exercises/")


def test_the_student_readme_says_how_to_install_open_check_and_grade_and_that_solutions_are_unavailable(built):
    text = (built["student"] / "README.md").read_text(encoding="utf-8")
    for phrase in ('pip install -e ".[course]"', "jupyter lab notebooks/", 'md.check("1.4")', "pytest exercises/",
                   "not available here"):
        assert phrase in text, f"the student README should mention {phrase!r}"


def test_the_student_notebooks_are_valid_blank_and_paired_with_their_sources(built):
    notebooks = built["student"] / "notebooks"
    sources = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    assert sources, "the course has no notebook sources"
    for source in sources:
        ipynb, py = notebooks / f"{source.stem}.ipynb", notebooks / source.name
        assert ipynb.is_file() and py.is_file(), f"{source.stem}: the student copy needs both halves of the pair"
        nb = nbformat.read(ipynb, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{ipynb.name} still has outputs"
        paired = jupytext.read(py)
        assert [c.source for c in nb.cells] == [c.source for c in paired.cells], (
            f"{ipynb.name} and {py.name} hold different cells: jupytext would refuse or overwrite one")
        assert py.stat().st_mtime >= ipynb.stat().st_mtime, f"{py.name} is older than its notebook: jupytext warns"
    assert (notebooks / "jupytext.toml").is_file(), "the pairing settings must come along"


def test_pytest_exercises_in_the_student_copy_gives_0_points_with_friendly_messages(built, graded):
    result, output = graded["student copy"]
    assert Path(result["extra_data"]["package"]) == (built["student"] / "mini_diffusion").resolve(), (
        "the run graded another mini_diffusion than the student copy's (the editable install won?)")
    assert result["score"] == 0 and result["max_score"] > 0, result["output"]
    for test in result["tests"]:
        assert "not implemented yet" in test["output"].lower(), test
        assert test["visibility"] == "visible", f"the student copy has no hidden checks, yet: {test['name']}"
    summary = output.strip().splitlines()[-1]
    assert "error" not in summary, f"the untouched student copy should fail its checks, not error: {summary}"


def test_a_release_refuses_a_non_empty_folder_and_the_course_itself(built, tmp_path):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        student_release.make_student_release(occupied)
    assert (occupied / "keep.txt").read_text() == "mine", "a refused release must leave the folder alone"
    for inside_the_course in (ROOT, ROOT.parent, ROOT / "notebooks" / "student"):
        with pytest.raises(ValueError):
            student_release.make_student_release(inside_the_course, force=True)
    assert (ROOT / "solutions" / "forward.py").is_file() and (ROOT / "notebooks").is_dir(), "the course was touched"
    with pytest.raises(ValueError, match="exists"):
        gradescope_bundle.make_gradescope_bundle(built["zip"])
    with pytest.raises(ValueError, match=".zip"):
        gradescope_bundle.make_gradescope_bundle(tmp_path / "autograder.tar")


def test_the_command_line_replaces_a_folder_only_with_force(tmp_path, capsys):
    out = tmp_path / "student"
    out.mkdir()
    (out / "old.txt").write_text("from before")
    assert cli.main(["release", "student", str(out)]) == 2
    assert "--force" in capsys.readouterr().err, "the refusal should say how to go ahead"
    assert cli.main(["release", "student", str(out), "--force"]) == 0
    assert not (out / "old.txt").exists() and (out / "mini_diffusion" / "forward.py").is_file()


# --- The Gradescope autograder -------------------------------------------------------------


def test_the_autograder_zip_has_gradescopes_files_the_grader_and_no_exercise_code(built):
    with zipfile.ZipFile(built["zip"]) as z:
        names = set(z.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in z.infolist()}
    for name in ("setup.sh", "run_autograder", "course/exercises/conftest.py", "course/exercises/expected/cases.json"):
        assert name in names, f"the autograder zip needs {name} at that path"
    assert modes["run_autograder"] & 0o111 and modes["setup.sh"] & 0o111, "Gradescope runs the scripts: executable"
    assert any(n.startswith("course/exercises/hidden/test_") for n in names), "the hidden checks must be in the zip"
    # issue 13: the judge draws fresh cases with the reference solutions, so they are in the zip, but only
    # in course/solutions/, which the driver copies into the judge's private (0700) folder: the worker,
    # the only process that runs submitted code, runs as another user and cannot read it
    assert "course/solutions/forward.py" in names, "the judge needs the reference solutions"
    assert not any("/solutions/" in n or n.startswith("solutions/") for n in names
                   if not n.startswith("course/solutions/")), "solutions only where the judge reads them"
    assert 'mkdtemp(prefix="mini-diffusion-judge-")' in (built["source"] / "course" / "mini_diffusion" / "_course" /
                                                        "release.py").read_text(), "the judge's copy must be private"
    for module in EXERCISE_MODULES:
        assert f"course/mini_diffusion/{module}.py" not in names, f"{module}.py must come from the submission only"
    for data in ("weights", "reference_models"):
        assert (ROOT / "mini_diffusion" / "toolkit" / data).is_dir(), f"mini_diffusion/toolkit/{data}/ is missing"
        shipped = {n.split(f"course/mini_diffusion/toolkit/{data}/", 1)[1] for n in names
                   if f"/mini_diffusion/toolkit/{data}/" in n}
        assert shipped == _data_files(ROOT / "mini_diffusion" / "toolkit" / data), f"mini_diffusion/toolkit/{data}/ is incomplete"
    setup = (built["source"] / "setup.sh").read_text()
    assert "download.pytorch.org/whl/cpu" in setup and "requirements.txt" in setup
    requirements = (built["source"] / "requirements.txt").read_text()
    assert "pytest-timeout" in requirements and "torch" not in requirements, requirements


def test_a_correct_submission_gets_full_marks_and_the_hidden_checks_show_after_the_due_date(graded):
    result, output = graded["correct"]
    assert not release.not_graded(result), result["output"]
    failed = [t["name"] + ": " + t["output"] for t in result["tests"] if t["status"] != "passed"]
    assert not failed, "the solutions submitted as mini_diffusion/ lose points:\n" + "\n".join(failed) + output[-2000:]
    assert result["score"] == result["max_score"] > 0
    hidden = [t for t in result["tests"] if t["visibility"] == "after_due_date"]
    assert hidden and all(t["visibility"] == "visible" for t in result["tests"] if t not in hidden), (
        "the hidden checks should be reported with visibility after_due_date, the others visible")
    assert not any(t["name"] in result["output"] for t in hidden), "the visible summary must not list hidden checks"
    assert "from mini_diffusion/" in result["output"], result["output"]


def test_a_stub_submission_gets_0_and_its_solutions_and_ready_modules_are_ignored(graded):
    result, output = graded["stubs"]
    assert result["score"] == 0 and result["max_score"] > 0, (
        "a submission of stubs scored points: was a solutions/ folder or a grader file from the submission used?\n"
        + result["output"])
    assert all("not implemented yet" in t["output"].lower() for t in result["tests"]), result["output"]
    assert "mini-diffusion-main/mini_diffusion/" in result["output"], "the report should say where the files came from"


def test_a_broken_submission_costs_only_the_broken_and_missing_files_and_says_why(graded):
    result, output = graded["broken"]
    table = by_exercise(result)
    lost = {ex for ex, row in table.items() if row["score"] < row["max_score"]}
    assert lost == {"1.3", "1.4", "3.1"}, f"only forward.py (syntax error) and losses.py (missing) should cost points: {lost}"
    assert all("does not import" in o and "SyntaxError" in o for o in table["1.3"]["outputs"]), table["1.3"]
    assert all("losses.py is missing" in o for o in table["3.1"]["outputs"]), table["3.1"]
    assert "Missing from your submission: mini_diffusion/losses.py" in result["output"], result["output"]
    assert "top of your submission" in result["output"], result["output"]


def test_a_submission_without_exercise_files_gets_a_report_that_says_so(graded):
    result, _ = graded["empty"]
    assert result["score"] == 0 and result["tests"] == []
    assert "No exercise files were found" in result["output"] and "notes.txt" in result["output"], result["output"]


def test_run_autograder_writes_a_report_even_when_python_cannot_run(built, tmp_path):
    """The autograder's own failure: a report that says it could not run and graded nothing (no per-check
    zeros), and a non-zero exit for the instructor."""
    root = _submission(tmp_path, {"mini_diffusion/forward.py": solution_source("forward")})
    (root / "source").symlink_to(built["source"], target_is_directory=True)
    run = subprocess.run([str(built["source"] / "run_autograder")], cwd=root, capture_output=True, text=True,
                         env=_env(AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=shutil.which("false")), timeout=60)
    assert run.returncode != 0, "run_autograder must exit non-zero when it could not grade"
    result = json.loads((root / "results" / "results.json").read_text())
    assert result["score"] == 0 and result["tests"] == [], result
    assert "could not run" in result["output"] and "the submission was not graded" in result["output"], result
    assert release.not_graded(result), result
