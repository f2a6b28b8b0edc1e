"""The one door from ready code to an exercise: `implementation(id)`, the function an exercise runs now.

Ready code (toolkit/: your `linear_betas` builds `linear_schedule`, your `diffusion_loss` trains) and
the course machinery reach an exercise only through here, never by importing your files, so that
lending an exercise (`_course/seam.py`) changes it everywhere at once.
"""

import importlib
import sys

from mini_diffusion._base import catalog

PACKAGE = "mini_diffusion"
WHOLE_MODULES: dict[str, object] = {}  # module name -> the solution module standing in for the file (seam fills it)


def exercise_module(name: str):
    """mini_diffusion.<name> as in use now: your file with the lent functions in place, or the
    solution module when all of it is lent."""
    package = sys.modules.get(PACKAGE)
    if package is not None and name in vars(package):  # already loaded (or replaced, as tests do)
        return vars(package)[name]
    if name in WHOLE_MODULES:
        return WHOLE_MODULES[name]
    return importlib.import_module(f"{PACKAGE}.{name}")


def implementation(exercise_id: str):
    """The function that exercise_id runs now: yours, or the reference one when it is lent."""
    exercise = catalog.by_id(exercise_id)
    return getattr(exercise_module(exercise.module), exercise.function)
