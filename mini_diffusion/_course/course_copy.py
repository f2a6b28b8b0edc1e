"""What both releases copy from the instructor's course folder: the ready package, without its exercise files.

The student copy (student_release.py) and the Gradescope bundle (gradescope_bundle.py) are made from the
course folder, the one with solutions/ (docs/instructors.md); both copy the ready package and its
data, and leave out caches (IGNORED).
"""

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the course folder: mini_diffusion/_course/course_copy.py
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", ".pytest_cache", ".DS_Store")
HIDDEN_DIR = "hidden"  # exercises/hidden/: checks kept back until the due date


def course_folder(root) -> Path:
    """root, resolved: ValueError unless it is the instructor's course folder (with solutions/)."""
    root = Path(root).resolve()
    needed = ("solutions/__init__.py", "mini_diffusion/_base/catalog.py", "exercises/conftest.py")
    missing = [p for p in needed if not (root / p).is_file()]
    if missing:
        raise ValueError(f"{root} is not the instructor's course folder (it has no {', '.join(missing)}): make "
                         "releases from the course repository, the copy with solutions/")
    return root


def copy_package(root: Path, dest: Path, stubs: dict | None) -> None:
    """root/mini_diffusion -> dest/mini_diffusion: the ready modules and their data, and the
    exercise modules as the given stubs (None: left out, the autograder takes them from a submission)."""
    from mini_diffusion._base.catalog import EXERCISE_MODULES

    package = root / "mini_diffusion"
    exercise_files = {f"{m}.py" for m in EXERCISE_MODULES}

    shutil.copytree(package, dest / "mini_diffusion", ignore=ignore_at(package, exercise_files))
    for module, text in (stubs or {}).items():
        (dest / "mini_diffusion" / f"{module}.py").write_text(text, encoding="utf-8")


def ignore_at(top: Path, names: set):
    """A copytree ignore: IGNORED everywhere, and `names` too in the folder `top` itself."""
    top = top.resolve()

    def ignore(folder, found):
        skipped = set(IGNORED(folder, found))
        return skipped | (names & set(found) if Path(folder).resolve() == top else set())

    return ignore


def reference_models(course: Path) -> list[str]:
    """The file names of the reference models in course/mini_diffusion/toolkit/reference_models/."""
    return sorted(p.name for p in (course / "mini_diffusion" / "toolkit" / "reference_models").glob("*.safetensors"))
