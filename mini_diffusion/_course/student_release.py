"""The student copy of the course (`mini-diffusion release student OUTDIR`): the course as students get it.

It is made from the instructor's course folder, the one with solutions/ (docs/instructors.md), and
holds the package with its exercise files as stubs (made afresh from solutions/, so no answer can
slip through whatever the instructor's own files hold), the public checks of exercises/ with their
expected values (not exercises/hidden/, and without the specs' maintainer blocks), the notebooks
without outputs, the reference models, the shipped benchmark results (notebook 07 shows them), the
install files and a README for students. No solutions/, tests/, tools/ or benchmark scripts: they
are the maintainers', and need the solutions.
"""

import re
import shutil
from pathlib import Path

from mini_diffusion._course.course_copy import HIDDEN_DIR, IGNORED, ROOT, copy_package, course_folder, ignore_at, reference_models
from mini_diffusion._course.maintainer_blocks import strip_maintainer_blocks

BENCHMARK_RESULTS = "benchmarks/results"
STUDENT_FILES = ("pyproject.toml", "environment.yml", "constraints.txt", ".gitignore", "LICENSE")
SOLUTION_BLOCK = re.compile(r"^\s*# BEGIN SOLUTION\s*$", re.MULTILINE)


def make_student_release(outdir, force: bool = False, root=ROOT) -> list[str]:
    """Write the student copy of the course to outdir; returns a summary, one line per item.

    outdir must be empty or new; force empties it first (never the course folder itself).
    """
    root = course_folder(root)
    out = Path(outdir).resolve()
    _prepare_outdir(out, root, force)
    stubs = stub_sources(root)
    copy_package(root, out, stubs)
    shutil.copytree(root / "exercises", out / "exercises", ignore=ignore_at(root / "exercises", {HIDDEN_DIR}))
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
        f"  reference models: {', '.join(reference_models(out)) or 'none found in mini_diffusion/toolkit/reference_models/'}",
        f"  benchmark results: {BENCHMARK_RESULTS}/ (the scripts that made them are left out)",
        "  left out: solutions/, tests/, tools/, benchmarks/*.py, docs/",
    ]


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


def stub_sources(root=ROOT) -> dict[str, str]:
    """Exercise module name -> its stub, made afresh from solutions/<module>.py (_course/stubs.py)."""
    from mini_diffusion._base.catalog import EXERCISE_MODULES
    from mini_diffusion._course.stubs import make_stub

    solutions = Path(root) / "solutions"
    return {m: make_stub((solutions / f"{m}.py").read_text(encoding="utf-8"), f"{m}.py") for m in EXERCISE_MODULES}


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


def student_readme() -> str:
    """The README of the student copy: install, open, check, grade, submit."""
    from mini_diffusion._base.catalog import EXERCISE_MODULES, EXERCISES, NOTEBOOKS

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
