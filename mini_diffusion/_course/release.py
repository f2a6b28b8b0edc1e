"""Copies of the course for students and for Gradescope (`mini-diffusion release ...`).

    mini-diffusion release student OUTDIR        the course as students get it
    mini-diffusion release gradescope OUT.zip    an autograder to upload to Gradescope

Both are made from the instructor's course folder, the one with solutions/ (docs/instructors.md).

The student copy holds the package with its exercise files as stubs (made afresh from
solutions/, so no answer can slip through whatever the instructor's own files hold), the public
checks of exercises/ with their expected values (not exercises/hidden/), the notebooks without
outputs, the reference models, the shipped benchmark results (notebook 07 shows them), the
install files and a README for students. No solutions/, tests/, tools/ or benchmark scripts:
they are the maintainers', and need the solutions.

The autograder holds the ready part of the package and its reference models, the whole grader
with its hidden checks, setup.sh and run_autograder. For each submission it takes only the
exercise files (schedules.py, forward.py, ...) and grades them over its own copy of everything
else. This file is also its driver: run_autograder runs it as a script (`python -I release.py
grade`), so at the top it imports nothing but the standard library.
"""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the course folder: mini_diffusion/_course/release.py
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", ".pytest_cache", ".DS_Store")
HIDDEN_DIR = "hidden"  # exercises/hidden/: checks kept back until the due date
BENCHMARK_RESULTS = "benchmarks/results"
STUDENT_FILES = ("pyproject.toml", "environment.yml", "constraints.txt", ".gitignore", "LICENSE")
SOLUTION_BLOCK = re.compile(r"^\s*# BEGIN SOLUTION\s*$", re.MULTILINE)

# The autograder (paths under AUTOGRADER_ROOT, /autograder on Gradescope).
VENV = "/opt/mini-diffusion/venv"
GRADING_SECONDS = 540  # a minute under Gradescope's usual limit of 10 minutes (run_autograder sets it)
MAX_FILE_BYTES = 1_000_000  # an exercise file is a few kB
SKIPPED_DIRS = {"solutions", "__MACOSX", "__pycache__", "site-packages", "node_modules", "build", "dist"}


# --- The student copy ----------------------------------------------------------------------


def make_student_release(outdir, force: bool = False, root=ROOT) -> list[str]:
    """Write the student copy of the course to outdir; returns a summary, one line per item.

    outdir must be empty or new; force empties it first (never the course folder itself).
    """
    root = _course(root)
    out = Path(outdir).resolve()
    _prepare_outdir(out, root, force)
    stubs = stub_sources(root)
    _copy_package(root, out, stubs)
    shutil.copytree(root / "exercises", out / "exercises", ignore=_ignore_at(root / "exercises", {HIDDEN_DIR}))
    strip_maintainer_blocks(out / "exercises")
    notebooks = write_notebooks(root / "notebooks", out / "notebooks")
    if (root / BENCHMARK_RESULTS).is_dir():  # measurements, not code: notebook 07 reads them
        shutil.copytree(root / BENCHMARK_RESULTS, out / BENCHMARK_RESULTS, ignore=IGNORED)
    for name in STUDENT_FILES:
        if (root / name).is_file():
            shutil.copyfile(root / name, out / name)
    pyproject = out / "pyproject.toml"
    if pyproject.is_file():  # students have no tests/; `pytest` alone grades
        text = pyproject.read_text(encoding="utf-8")
        pyproject.write_text(re.sub(r"(?m)^testpaths = .*$", 'testpaths = ["exercises"]', text), encoding="utf-8")
    (out / "README.md").write_text(student_readme(), encoding="utf-8")
    problems = leaks(out, root, stubs)
    if problems:
        raise RuntimeError("the student copy would give away what it must not:\n  " + "\n  ".join(problems))
    checks = sorted(p.name for p in (out / "exercises").glob("test_*.py"))
    return [
        f"wrote the student copy of the course to {out}",
        f"  exercise files as stubs: {', '.join(f'{m}.py' for m in stubs)}",
        f"  public checks: {', '.join(checks)} (exercises/{HIDDEN_DIR}/ left out)",
        f"  notebooks, without outputs: {', '.join(notebooks)}",
        f"  reference models: {', '.join(_reference_models(out)) or 'none found in mini_diffusion/toolkit/reference_models/'}",
        f"  benchmark results: {BENCHMARK_RESULTS}/ (the scripts that made them are left out)",
        "  left out: solutions/, tests/, tools/, benchmarks/*.py, docs/",
    ]


def _course(root) -> Path:
    root = Path(root).resolve()
    needed = ("solutions/__init__.py", "mini_diffusion/_course/catalog.py", "exercises/conftest.py")
    missing = [p for p in needed if not (root / p).is_file()]
    if missing:
        raise ValueError(f"{root} is not the instructor's course folder (it has no {', '.join(missing)}): make "
                         "releases from the course repository, the copy with solutions/")
    return root


def _prepare_outdir(out: Path, root: Path, force: bool) -> None:
    if out == root or out in root.parents:
        raise ValueError(f"{out} holds the course itself: choose a new folder for the release")
    if any(out == root / d or (root / d) in out.parents for d in ("mini_diffusion", "exercises", "notebooks", "solutions")):
        raise ValueError(f"{out} lies inside a folder the release copies from: choose a folder outside it")
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ValueError(f"{out} is not empty: choose a new folder, or pass --force to replace what is in it")
        if (out / ".git").exists():
            raise ValueError(f"{out} is a git repository: refusing to empty it, even with --force")
        for child in out.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    out.mkdir(parents=True, exist_ok=True)


MAINTAINER_BEGIN = re.compile(r"^\s*# BEGIN MAINTAINER\s*$")
MAINTAINER_END = re.compile(r"^\s*# END MAINTAINER\s*$")


def strip_maintainer(source: str, name: str) -> str:
    """A spec (exercises/test_NN_*.py) without its maintainer block: the lines from `# BEGIN
    MAINTAINER` to `# END MAINTAINER` (the mistakes, wrong variants, cases and mutants the build
    uses, close to the answers). The markers must pair up, as the solution blocks' do (_course/stubs.py)."""
    out, inside = [], False
    for number, line in enumerate(source.splitlines(keepends=True), 1):
        if MAINTAINER_BEGIN.match(line):
            if inside:
                raise ValueError(f"{name}:{number}: BEGIN MAINTAINER inside a maintainer block")
            inside = True
        elif MAINTAINER_END.match(line):
            if not inside:
                raise ValueError(f"{name}:{number}: END MAINTAINER without BEGIN")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{name}: BEGIN MAINTAINER without END")
    return "".join(out).rstrip("\n") + "\n"


def strip_maintainer_blocks(folder: Path) -> None:
    """Strip the maintainer block of every spec in a copied exercises/ folder (hidden/ included)."""
    for path in sorted(Path(folder).rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if any(MAINTAINER_BEGIN.match(line) or MAINTAINER_END.match(line) for line in text.splitlines()):
            path.write_text(strip_maintainer(text, path.name), encoding="utf-8")


def stub_sources(root=ROOT) -> dict[str, str]:
    """Exercise module name -> its stub, made afresh from solutions/<module>.py (_course/stubs.py)."""
    from mini_diffusion._course.catalog import EXERCISE_MODULES
    from mini_diffusion._course.stubs import make_stub

    solutions = Path(root) / "solutions"
    return {m: make_stub((solutions / f"{m}.py").read_text(encoding="utf-8"), f"{m}.py") for m in EXERCISE_MODULES}


def _copy_package(root: Path, dest: Path, stubs: dict | None) -> None:
    """root/mini_diffusion -> dest/mini_diffusion: the ready modules and their data, and the
    exercise modules as the given stubs (None: left out, the autograder takes them from a submission)."""
    from mini_diffusion._course.catalog import EXERCISE_MODULES

    package = root / "mini_diffusion"
    exercise_files = {f"{m}.py" for m in EXERCISE_MODULES}

    shutil.copytree(package, dest / "mini_diffusion", ignore=_ignore_at(package, exercise_files))
    for module, text in (stubs or {}).items():
        (dest / "mini_diffusion" / f"{module}.py").write_text(text, encoding="utf-8")


def _ignore_at(top: Path, names: set):
    """A copytree ignore: IGNORED everywhere, and `names` too in the folder `top` itself."""
    top = top.resolve()

    def ignore(folder, found):
        skipped = set(IGNORED(folder, found))
        return skipped | (names & set(found) if Path(folder).resolve() == top else set())

    return ignore


def write_notebooks(src: Path, dest: Path) -> list[str]:
    """Each notebook of src as a fresh .ipynb (from its jupytext .py source when there is one)
    with no outputs, next to its .py; other files copied as they are. Returns the notebook names.

    Every output goes, even those nbval checks: they were made with the solutions, and a
    student's notebook starts blank. The .py is written after the .ipynb, so jupytext never
    finds the pair's source older than the notebook.
    """
    try:
        import jupytext
        import nbformat
    except ImportError as err:
        raise ImportError(f"the student release writes the notebooks with jupytext and nbformat ({err}): "
                          "pip install jupytext") from None
    dest.mkdir(parents=True, exist_ok=True)
    sources = {p.stem: p for p in src.glob("[0-9][0-9]_*.py")}
    names = sorted(set(sources) | {p.stem for p in src.glob("*.ipynb")})
    for name in names:
        nb = jupytext.read(sources[name]) if name in sources else nbformat.read(src / f"{name}.ipynb", as_version=4)
        nb.metadata.pop("jupytext", None)  # the pairing lives in notebooks/jupytext.toml
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None
        nbformat.validate(nb)
        nbformat.write(nb, dest / f"{name}.ipynb")
        if name in sources:
            shutil.copyfile(sources[name], dest / f"{name}.py")
    for path in src.iterdir():
        if path.stem in names and path.suffix in (".py", ".ipynb"):
            continue
        if path.is_dir():
            shutil.copytree(path, dest / path.name, ignore=IGNORED)
        elif not IGNORED(str(src), [path.name]):
            shutil.copyfile(path, dest / path.name)
    return names


def leaks(out: Path, root: Path, stubs: dict) -> list[str]:
    """What a student copy must not hold: the solutions, hidden checks, or a solution block anywhere."""
    problems = []
    if (out / "solutions").exists():
        problems.append("a solutions/ folder")
    if (out / "exercises" / HIDDEN_DIR).exists():
        problems.append(f"exercises/{HIDDEN_DIR}/ (the hidden checks)")
    for module, text in stubs.items():
        if (out / "mini_diffusion" / f"{module}.py").read_text(encoding="utf-8") != text:
            problems.append(f"mini_diffusion/{module}.py is not the stub")
    answers = {p.read_bytes() for p in (root / "solutions").glob("*.py") if p.stat().st_size > 200}
    for path in sorted(out.rglob("*.py")):
        data = path.read_bytes()
        if data in answers or SOLUTION_BLOCK.search(data.decode("utf-8", errors="replace")):
            problems.append(f"{path.relative_to(out)} holds solution code")
    return problems


def _reference_models(course: Path) -> list[str]:
    return sorted(p.name for p in (course / "mini_diffusion" / "toolkit" / "reference_models").glob("*.safetensors"))


def student_readme() -> str:
    """The README of the student copy: install, open, check, grade, submit."""
    from mini_diffusion._course.catalog import EXERCISE_MODULES, EXERCISES, NOTEBOOKS

    rows = []
    for number, name in NOTEBOOKS.items():
        own = [e for e in EXERCISES if e.notebook == name]
        work = ", ".join(f"{e.id} `{e.function}` (`mini_diffusion/{e.module}.py`)" for e in own) or "—"
        rows.append(f"| `notebooks/{name}.ipynb` | {work} |")
    table = "\n".join(rows)
    graded = ", ".join(f"`{m}.py`" for m in EXERCISE_MODULES)
    return f"""# mini-diffusion: your copy of the course

Learn diffusion models by building one: Jupyter notebooks that take you from the forward
process to DDPM, noise schedules, DDIM and fast samplers, and a small PyTorch package,
`mini_diffusion`, whose exercise functions you write yourself. Everything runs on a laptop CPU.

## Install (once)

```bash
python3 -m venv .venv && . .venv/bin/activate
pip install torch            # on Linux without a GPU: pip install torch --index-url https://download.pytorch.org/whl/cpu
pip install -e ".[course]"
```

With conda instead: `conda env create -f environment.yml && conda activate mini-diffusion`.
If a later release of a library breaks something, `pip install -c constraints.txt -e ".[course]"`
installs the versions the course was tested with.

## Open the course

```bash
jupyter lab notebooks/
```

Work through the notebooks in order:

| notebook | you implement |
|---|---|
{table}

## Work, check, grade

1. **Implement** the function a notebook names in `mini_diffusion/<module>.py`: replace the
   `raise NotImplementedError(...)` line with your code. The notebooks reload your edits.
2. **Check** it with the cell below the exercise, `md.check("1.4")`: ✅, or one paragraph saying
   what was expected, what came back and often the likely mistake.
3. **Grade** everything so far from a terminal in this folder:

   ```bash
   pytest exercises/                  # points per exercise and a total
   pytest exercises/ --exercise 1.4   # one exercise (or 4 for all of notebook 04)
   ```

   Functions you have not written yet show as "not implemented yet" with 0 points; that is
   expected, not an error.

## Good to know

- **No solutions in this copy.** The notebooks mention `MINI_DIFFUSION_SOLUTIONS`, a switch that
  swaps in reference solutions; it is not available here (setting it gives an error), so every
  exercise runs your own code.
- **Your instructor may grade with more checks** than `pytest exercises/` runs here (hidden
  checks, shown after the due date), so the final score can differ from the one you see.
- **Submit** what your instructor asks for; usually your `mini_diffusion/` folder. Only the
  exercise files ({graded}) are graded; keep their file names and function signatures.
"""


# --- The Gradescope autograder -------------------------------------------------------------


def make_gradescope_bundle(zip_path, force: bool = False, root=ROOT) -> list[str]:
    """Write Gradescope's autograder zip: setup.sh, run_autograder and course/ (the ready package,
    the grader with its hidden checks, expected values and reference models). Returns a summary."""
    from mini_diffusion._course.catalog import EXERCISE_MODULES

    root = _course(root)
    zip_path = Path(zip_path).resolve()
    if zip_path.suffix != ".zip":
        raise ValueError(f"the autograder bundle is a .zip file; got {zip_path.name}")
    if zip_path.exists() and not force:
        raise ValueError(f"{zip_path} exists: choose another name, or pass --force to replace it")
    with tempfile.TemporaryDirectory(prefix="mini-diffusion-bundle-") as tmp:
        bundle = Path(tmp)
        course = bundle / "course"
        _copy_package(root, course, stubs=None)
        # the whole grader, maintainer blocks included, and the reference solutions: the judge draws
        # fresh cases with them at grading time; the driver keeps them from the worker (0700 folders)
        shutil.copytree(root / "exercises", course / "exercises", ignore=IGNORED)
        shutil.copytree(root / "solutions", course / "solutions", ignore=IGNORED)
        (course / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")
        (bundle / "autograder.json").write_text(json.dumps({"exercise_modules": list(EXERCISE_MODULES)}, indent=2) + "\n")
        (bundle / "requirements.txt").write_text("\n".join(requirements(root)) + "\n", encoding="utf-8")
        if (root / "constraints.txt").is_file():
            shutil.copyfile(root / "constraints.txt", bundle / "constraints.txt")
        for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER)):
            (bundle / name).write_text(text, encoding="utf-8")
            (bundle / name).chmod(0o755)
        models = _reference_models(course)
        zip_path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(bundle.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(bundle).as_posix())  # keeps the executable bits
    hidden = sorted(p.name for p in (root / "exercises" / HIDDEN_DIR).glob("test_*.py"))
    return [
        f"wrote the Gradescope autograder {zip_path} ({zip_path.stat().st_size / 1e6:.1f} MB)",
        f"  grades a submission's {', '.join(f'{m}.py' for m in EXERCISE_MODULES)}",
        f"  hidden checks (shown after the due date): {', '.join(hidden) or 'none'}",
        f"  reference models: {', '.join(models) or 'none found in mini_diffusion/toolkit/reference_models/'}",
        "  upload it in Gradescope: assignment > Configure Autograder > Zip file upload (docs/instructors.md)",
    ]


def requirements(root=ROOT) -> list[str]:
    """What the autograder installs besides torch: the package's dependencies, pytest, pytest-timeout."""
    try:
        import tomllib

        project = tomllib.loads((Path(root) / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        dependencies = project["dependencies"]
    except ModuleNotFoundError:  # Python 3.10: read them from the installed package instead
        from importlib.metadata import requires

        dependencies = [r for r in requires("mini-diffusion") or [] if "extra ==" not in r]
    wanted = [d for d in dependencies if not re.match(r"torch\b", d)]
    return wanted + ["pytest>=8", "pytest-timeout>=2.2"]


PYTEST_INI = """\
# The autograder's pytest settings (the course's pyproject.toml is not part of the bundle).
[pytest]
addopts = -p no:cacheprovider
"""

SETUP_SH = f"""\
#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder's image (Ubuntu): Python, a CPU build
# of PyTorch and the course's dependencies, in a virtual environment that run_autograder uses.
set -euxo pipefail
HERE="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv python3-pip
python3 -m venv {VENV}
PIP="{VENV}/bin/pip"
"$PIP" install --upgrade pip
# The versions the course was tested with when this Python can install them, else the newest.
"$PIP" install -c "$HERE/constraints.txt" torch --index-url https://download.pytorch.org/whl/cpu \\
  || "$PIP" install torch --index-url https://download.pytorch.org/whl/cpu
"$PIP" install -c "$HERE/constraints.txt" -r "$HERE/requirements.txt" || "$PIP" install -r "$HERE/requirements.txt"
# Fail the image build here, where its log shows why, rather than at the first submission.
"{VENV}/bin/python" -c "import torch, numpy, safetensors, sklearn, matplotlib, tqdm, pytest, pytest_timeout"
"""

RUN_AUTOGRADER = f"""\
#!/usr/bin/env bash
# Gradescope runs this for every submission. It grades the exercise files found in
# $AUTOGRADER_ROOT/submission and always writes $AUTOGRADER_ROOT/results/results.json.
# AUTOGRADER_ROOT (default /autograder), AUTOGRADER_PYTHON, AUTOGRADER_TIMEOUT (seconds) and
# AUTOGRADER_PYTEST_ARGS (extra pytest arguments) let you run it elsewhere, e.g. in tests.
export AUTOGRADER_ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
# Keep this a minute under the assignment's autograder timeout in Gradescope, so that a report is
# written even for code that hangs (the checks not run by then get no points).
export AUTOGRADER_TIMEOUT="${{AUTOGRADER_TIMEOUT:-{GRADING_SECONDS}}}"
PYTHON="${{AUTOGRADER_PYTHON:-{VENV}/bin/python}}"
[ -x "$PYTHON" ] || PYTHON=python3
RESULTS="$AUTOGRADER_ROOT/results/results.json"
mkdir -p "$AUTOGRADER_ROOT/results"
rm -f "$RESULTS"
# exit status: 0 graded (whatever the score), non-zero when the autograder itself could not run
"$PYTHON" -I "$AUTOGRADER_ROOT/source/course/mini_diffusion/_course/release.py" grade
STATUS=$?
if [ ! -s "$RESULTS" ]; then
  cat > "$RESULTS" <<'EOF'
{{"score": 0, "output": "The autograder could not run: its Python did not start or stopped before writing a report; the submission was not graded. This is not a mistake in the submission: please tell your instructor.", "visibility": "visible", "stdout_visibility": "hidden", "tests": [], "extra_data": {{"grader_failure": "the driver's Python did not start or stopped before writing a report"}}}}
EOF
  [ "$STATUS" -ne 0 ] || STATUS=1
fi
exit "$STATUS"
"""


# --- The autograder's driver (runs on Gradescope, standard library only) -------------------
#
# Three parties (docs/instructors.md, "What a submission can and cannot do"): this DRIVER (root)
# is the only writer of results.json; the JUDGE (`pytest exercises/`, root, in a private copy of
# the course) computes the grade and never imports the submission; the WORKER (sandbox.py: its own
# unprivileged user, namespaces, limits) runs the submission's functions when the judge calls them.

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
    """mini_diffusion/_course/sandbox.py, loaded by path (the driver runs with `python -I`)."""
    import importlib.util

    name = "mini_diffusion_autograder_sandbox"
    sys.dont_write_bytecode = True  # source/ stays exactly as unpacked
    if name not in sys.modules:
        uid = os.environ.get("AUTOGRADER_WORKER_UID", "")
        os.environ["MINI_DIFFUSION_WORKER_UID"] = uid if uid.isdigit() and int(uid) >= 1000 else ""
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().with_name("sandbox.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


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
