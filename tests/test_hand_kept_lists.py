"""Prose that lists things is checked against the things: folder docstrings, the CLI's help,
README's notebook table and the recipe for a new notebook in docs/grading.md."""

import re
import subprocess
import sys
from pathlib import Path

from mini_diffusion._base import catalog
from mini_diffusion._course.evaluate import SAMPLERS

ROOT = Path(__file__).resolve().parent.parent


def modules_in(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}


def test_each_folder_docstring_names_every_module_in_it():
    import mini_diffusion._course as course
    import mini_diffusion.toolkit as toolkit

    for package in (toolkit, course):
        folder = Path(package.__file__).parent
        missing = sorted(m for m in modules_in(folder) if f"`{m}`" not in package.__doc__)
        assert not missing, f"{folder.name}/__init__.py's docstring does not mention {missing}"


def test_the_package_docstring_names_no_stale_exercise_list():
    import mini_diffusion

    named = [m for m in catalog.EXERCISE_MODULES if re.search(rf"`{m}`", mini_diffusion.__doc__)]
    assert named in ([], list(catalog.EXERCISE_MODULES)), (
        f"the package docstring lists some exercise modules by hand ({named}); list all or point to EXERCISE_MODULES")


def test_every_sampler_of_the_command_line_is_an_exercise_and_its_help_says_which():
    for name, exercise_id in SAMPLERS.items():
        assert catalog.by_id(exercise_id).function.endswith("_sample"), f"sampler {name} -> {exercise_id} is no sampler"
    # Notebook 08's samplers need more than a model and a schedule (labels, a known image): not on the command line.
    needs_more = {"q_sample", "guided_sample", "inpaint_sample"}
    samplers = {e.id for e in catalog.EXERCISES if e.function.endswith("_sample") and e.function not in needs_more}
    assert samplers <= set(SAMPLERS.values()), f"samplers missing from the command line: {samplers - set(SAMPLERS.values())}"
    help_text = subprocess.run([sys.executable, "-m", "mini_diffusion", "sample", "--help"], capture_output=True,
                               text=True, cwd=ROOT).stdout
    flat = " ".join(help_text.split())
    for name, exercise_id in SAMPLERS.items():
        assert f"{name} (exercise {exercise_id})" in flat, f"`mini-diffusion sample --help` should name {name}"


def test_readmes_notebook_table_lists_every_notebook_and_exercise_from_the_catalog():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- notebooks:start -->", 1)[1].split("<!-- notebooks:end -->", 1)[0]
    for number, file in catalog.NOTEBOOKS.items():
        assert f"`{file}`" in table, f"README's table misses notebook {file}"
    for exercise in catalog.EXERCISES:
        assert f"{exercise.id} `{exercise.function}`" in table, f"README's table misses exercise {exercise.id}"


def test_the_recipe_for_a_new_notebook_names_four_places_and_one_command():
    text = (ROOT / "docs" / "grading.md").read_text(encoding="utf-8")
    recipe = text.split("## Adding a notebook's exercises", 1)[1].split("\n## ", 1)[0]
    steps = re.findall(r"^\d+\. \*\*(.+?)\*\*", recipe, flags=re.M)
    assert len(steps) <= 4, f"the recipe asks for {len(steps)} hand-edited places: {steps}"
    commands = set(re.findall(r"`(python [^`]+)`", recipe))
    assert commands == {"python tools/build.py"}, f"the recipe should need one command, tools/build.py: {commands}"
    for place in ("solutions/", "exercises/test_NN_", "notebooks/NN_", "tests/"):
        assert place in recipe, f"the recipe should name {place}"
