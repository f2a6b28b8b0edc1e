"""What tools/build.py makes from the specs is current, and the grader never imports the solutions."""

import re
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "exercises"))
import _grading  # noqa: E402
import _spec  # noqa: E402
from solutions import ddim, forward, reverse  # noqa: E402


def test_the_catalog_stubs_expected_values_and_readme_table_are_current():
    """`python tools/build.py --check`: catalog.json, the stubs, exercises/expected/ and README's table."""
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "build.py"), "--check"], capture_output=True,
                            text=True, cwd=ROOT, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, (
        "something the specs (exercises/test_*.py) or the solutions determine is stale: run "
        f"`python tools/build.py`.\n{result.stdout}{result.stderr[-3000:]}")


def test_the_graders_stand_in_formulas_agree_with_the_solutions():
    schedule = _grading.schedule("linear1000")
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(6, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([1, 2, 10, 500, 999, 1000])
    solutions = {"q_sample": lambda: forward.q_sample(x, t, schedule, eps),
                 "predict_x0": lambda: reverse.predict_x0(x, t, eps, schedule),
                 "p_mean": lambda: reverse.p_mean(x, t, eps, schedule),
                 "ddim_timesteps": lambda: ddim.ddim_timesteps(1000, 7)}
    stand_ins = {name: fn for functions in _spec.stand_ins().values() for name, fn in functions.items()}
    assert set(stand_ins) == set(solutions)
    for name, solution in solutions.items():
        args = {"q_sample": (x, t, schedule, eps), "ddim_timesteps": (1000, 7)}.get(name, (x, t, eps, schedule))
        torch.testing.assert_close(stand_ins[name](*args), solution(), rtol=1e-12, atol=1e-12,
                                   msg=f"the grader's stand-in {name} differs from the solution")


def test_the_grader_never_imports_the_solutions():
    """A student copy of the course ships without solutions/: the grader must not need it."""
    for path in [*(ROOT / "exercises").glob("*.py"), *(ROOT / "exercises" / "hidden").glob("*.py")]:
        text = _spec.strip_maintainer(path.read_text(encoding="utf-8"), path.name)
        assert not re.search(r"^\s*(from|import)\s+solutions\b", text, re.M), f"{path.name} imports solutions/"
        # the Maker (_maker.py) runs the solutions, in the build and in the judge (whose bundle has them); the
        # student copy never calls it
        assert "solution(" not in text or path.name in ("_spec.py", "_maker.py"), \
            f"{path.name} uses the solutions outside its maintainer block"


def test_every_spec_declares_its_notebook_and_the_specs_cover_every_notebook():
    numbers = [n.number for n in _spec.notebooks()]
    files = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    assert [n.file for n in _spec.notebooks()] == files, "every notebook needs its spec, exercises/test_NN_*.py"
    assert numbers == sorted(numbers)
    for exercise in _spec.exercises():
        notebook = next(n for n in _spec.notebooks() if n.file == exercise.notebook)
        assert exercise.id.split(".")[0].zfill(2) == notebook.number
