"""The Gradescope autograder bundle (`mini-diffusion release gradescope OUT.zip`): the zip to upload to Gradescope.

It is made from the instructor's course folder, the one with solutions/ (docs/instructors.md), and
holds the ready part of the package and its reference models, the whole grader with its hidden
checks, setup.sh and run_autograder. For each submission it takes only the exercise files
(schedules.py, forward.py, ...) and grades them over its own copy of everything else: run_autograder
runs the driver, release.py, as a script.

The shell scripts are templates in bundle_templates/ (read them as shell): each `@NAME@` in them is
filled with TEMPLATE_VALUES[NAME] (`fill`), and nothing else changes.
"""

import json
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

from mini_diffusion._course.course_copy import HIDDEN_DIR, IGNORED, ROOT, copy_package, course_folder, reference_models
from mini_diffusion._course.release import GRADING_SECONDS

# The autograder (paths under AUTOGRADER_ROOT, /autograder on Gradescope).
VENV = "/opt/mini-diffusion/venv"
TEMPLATES = Path(__file__).resolve().with_name("bundle_templates")
SCRIPTS = {"setup.sh": "setup.sh", "run_autograder": "run_autograder.sh"}  # name in the bundle -> its template
TEMPLATE_VALUES = {"VENV": VENV, "GRADING_SECONDS": GRADING_SECONDS}
PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")

PYTEST_INI = """\
# The autograder's pytest settings (the course's pyproject.toml is not part of the bundle).
[pytest]
addopts = -p no:cacheprovider
"""


def fill(template: str, values: dict) -> str:
    """template with each `@NAME@` replaced by values[NAME]; KeyError for a placeholder values lacks."""
    missing = sorted(set(PLACEHOLDER.findall(template)) - set(values))
    if missing:
        raise KeyError(f"the template's placeholders {', '.join(missing)} have no value")
    return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), template)


def scripts() -> dict[str, str]:
    """The bundle's shell scripts, name -> text: bundle_templates/ filled with TEMPLATE_VALUES."""
    return {name: fill((TEMPLATES / template).read_text(encoding="utf-8"), TEMPLATE_VALUES)
            for name, template in SCRIPTS.items()}


def make_gradescope_bundle(zip_path, force: bool = False, root=ROOT) -> list[str]:
    """Write Gradescope's autograder zip: setup.sh, run_autograder and course/ (the ready package,
    the grader with its hidden checks, expected values and reference models). Returns a summary."""
    from mini_diffusion._base.catalog import EXERCISE_MODULES

    root = course_folder(root)
    zip_path = Path(zip_path).resolve()
    if zip_path.suffix != ".zip":
        raise ValueError(f"the autograder bundle is a .zip file; got {zip_path.name}")
    if zip_path.exists() and not force:
        raise ValueError(f"{zip_path} exists: choose another name, or pass --force to replace it")
    with tempfile.TemporaryDirectory(prefix="mini-diffusion-bundle-") as tmp:
        bundle = Path(tmp)
        course = bundle / "course"
        copy_package(root, course, stubs=None)
        # the whole grader, maintainer blocks included, and the reference solutions: the judge draws
        # fresh cases with them at grading time; the driver keeps them from the worker (0700 folders)
        shutil.copytree(root / "exercises", course / "exercises", ignore=IGNORED)
        shutil.copytree(root / "solutions", course / "solutions", ignore=IGNORED)
        (course / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")
        (bundle / "autograder.json").write_text(json.dumps({"exercise_modules": list(EXERCISE_MODULES)}, indent=2) + "\n")
        (bundle / "requirements.txt").write_text("\n".join(requirements(root)) + "\n", encoding="utf-8")
        if (root / "constraints.txt").is_file():
            shutil.copyfile(root / "constraints.txt", bundle / "constraints.txt")
        for name, text in scripts().items():
            (bundle / name).write_text(text, encoding="utf-8")
            (bundle / name).chmod(0o755)
        models = reference_models(course)
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
