"""The seam: the one place that decides, for every exercise, whose code runs: yours or the reference.

The course runs your own code everywhere (your `linear_betas` builds the schedules the notebooks
use, your `diffusion_loss` trains their models). Ready code in `toolkit/` and the course machinery
reach an exercise only through `implementation(id)` (mini_diffusion/_base/door.py), never by
importing your files themselves, so lending an exercise here changes it everywhere at once.

Lending. MINI_DIFFUSION_SOLUTIONS (read when mini_diffusion is imported) or `md.lend(...)` (at any
time, no restart) lends the reference solutions of some exercises:

  unset, "" or "0"     -> your own code everywhere (the stubs you complete)
  "1", "all" or "true" -> every exercise from solutions/
  "1.1,1.2,2.3"        -> just those exercises: your other functions in the same files stay yours
  "01", "04"           -> every exercise of those notebooks
  "forward,sampling"   -> whole modules: the file itself comes from solutions/

A module all of whose exercises are lent at import time is the solution module itself (as
`mini_diffusion.<module>`); otherwise your file is imported and the lent functions in it are
replaced by the reference ones after it runs (again after every reload, so JupyterLab's
autoreload keeps them lent).

Where things are. The course folder is the one above the package (a clone of the course, a
student release or the Gradescope bundle), or MINI_DIFFUSION_COURSE when set: `solutions/` and
`exercises/` are found there and nowhere else.
"""

import contextlib
import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

from mini_diffusion._base import catalog
from mini_diffusion._base.door import WHOLE_MODULES as _whole_modules
from mini_diffusion._base.door import exercise_module, implementation  # noqa: F401  (the machinery asks here too)

ENV_VAR = "MINI_DIFFUSION_SOLUTIONS"
COURSE_ENV_VAR = "MINI_DIFFUSION_COURSE"
PACKAGE = "mini_diffusion"
PACKAGE_DIR = Path(__file__).resolve().parent.parent


class SolutionsSwitchError(ImportError):
    """The solutions switch was set to something that cannot be honoured."""


# --- Where the course's other folders are --------------------------------------------------


def course_root() -> Path:
    """The course folder: MINI_DIFFUSION_COURSE, or the folder that holds the package."""
    override = os.environ.get(COURSE_ENV_VAR)
    return Path(override).resolve() if override else PACKAGE_DIR.parent


def solutions_dir() -> Path:
    return course_root() / "solutions"


def exercises_dir() -> Path:
    return course_root() / "exercises"


SOLUTIONS_DIR = solutions_dir()


def has_solutions() -> bool:
    return (solutions_dir() / "__init__.py").is_file()


# --- Reading the switch --------------------------------------------------------------------

_OFF = ("", "0", "false", "no", "off")
_ALL = ("1", "all", "true", "yes", "on")


def requested(value: str | None) -> tuple[str, ...]:
    """The exercise ids that MINI_DIFFUSION_SOLUTIONS=value (or md.lend's arguments) asks for,
    in the course's order. Raises SolutionsSwitchError naming what it does not know."""
    value = (value or "").strip()
    if value.lower() in _OFF:
        return ()
    if value.lower() in _ALL:
        return tuple(e.id for e in catalog.EXERCISES)
    wanted, unknown = set(), []
    for name in (n.strip() for n in value.split(",")):
        if not name:
            continue
        ids = _ids_of(name)
        if ids is None:
            unknown.append(name)
        wanted.update(ids or ())
    if unknown:
        raise SolutionsSwitchError(
            f"{ENV_VAR}={value!r} names unknown exercise(s) or module(s) {', '.join(unknown)}. Use 1 for all, or a "
            f"comma list of exercise ids ({', '.join(e.id for e in catalog.EXERCISES)}), notebook numbers "
            f"({', '.join(n for n in catalog.NOTEBOOKS if catalog.exercises_of_notebook(n))}) or module names "
            f"({', '.join(catalog.EXERCISE_MODULES)})."
        )
    return tuple(e.id for e in catalog.EXERCISES if e.id in wanted)


def _ids_of(name: str):
    if name in catalog.EXERCISE_MODULES:
        return [e.id for e in catalog.EXERCISES if e.module == name]
    if name in catalog.NOTEBOOKS and catalog.exercises_of_notebook(name):
        return [e.id for e in catalog.exercises_of_notebook(name)]
    if any(e.id == name for e in catalog.EXERCISES):
        return [name]
    return None


def requested_modules(value: str | None, known=catalog.EXERCISE_MODULES) -> tuple[str, ...]:
    """The modules every exercise of which MINI_DIFFUSION_SOLUTIONS=value lends, in the course's order."""
    ids = set(requested(value))
    return tuple(m for m in known if all(e.id in ids for e in catalog.EXERCISES if e.module == m))


# --- The solutions -------------------------------------------------------------------------


def _solutions_package():
    folder = solutions_dir()
    loaded = sys.modules.get("solutions")
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve().parent == folder:
        return loaded
    init = folder / "__init__.py"
    if not init.is_file():
        raise SolutionsSwitchError(
            f"{ENV_VAR} asks for the reference solutions, but there is no solutions/ folder at {folder} "
            "(a student copy of the course ships without them). Unset the variable to use your own code."
        )
    return load_file("solutions", init, package_folder=folder)


# --- The one swap of learner modules, and the one loader of a file as a module ----------------


def load_file(full_name: str, path: Path, package_folder: Path | None = None):
    """The module of the file at `path`, imported as `full_name` (in sys.modules while it runs, and after,
    unless it fails). package_folder: load it as a package whose submodules are in that folder."""
    locations = [str(package_folder)] if package_folder is not None else None
    spec = importlib.util.spec_from_file_location(full_name, path, submodule_search_locations=locations)
    module = importlib.util.module_from_spec(spec)
    sys.modules[full_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(full_name, None)
        raise
    return module


@contextlib.contextmanager
def swapped(modules: dict):
    """While inside, mini_diffusion.<name> is modules[name] for each name (the grader's stand-ins while one
    learner file is imported), and the package's own attribute of that name is hidden; then all as before."""
    package = importlib.import_module(PACKAGE)
    saved_modules = {m: sys.modules.get(f"{PACKAGE}.{m}") for m in modules}
    saved_attributes = {m: vars(package).get(m) for m in modules}
    try:
        for name, module in modules.items():
            sys.modules[f"{PACKAGE}.{name}"] = module
            vars(package).pop(name, None)
        yield
    finally:
        for name in modules:
            if saved_modules[name] is None:
                sys.modules.pop(f"{PACKAGE}.{name}", None)
            else:
                sys.modules[f"{PACKAGE}.{name}"] = saved_modules[name]
            if saved_attributes[name] is not None:
                vars(package)[name] = saved_attributes[name]
            else:
                vars(package).pop(name, None)


def solution(exercise_id: str):
    """The reference solution of one exercise (a function of solutions/<module>.py)."""
    exercise = catalog.by_id(exercise_id)
    _solutions_package()
    return getattr(importlib.import_module(f"solutions.{exercise.module}"), exercise.function)


# --- What is lent now ----------------------------------------------------------------------

_lent: set[str] = set()


def lent() -> tuple[str, ...]:
    """The exercises whose reference solution is in use now, in the course's order."""
    return tuple(e.id for e in catalog.EXERCISES if e.id in _lent)


def is_lent(exercise_id: str) -> bool:
    return exercise_id in _lent


def whole_modules() -> tuple[str, ...]:
    """The exercise modules that are the solution files themselves in this session."""
    return tuple(m for m in catalog.EXERCISE_MODULES if m in _whole_modules)


def _lent_function(exercise):
    reference = solution(exercise.id)

    @functools.wraps(reference)
    def lent_function(*args, **kwargs):
        return reference(*args, **kwargs)

    lent_function.__lent__ = exercise.id
    return lent_function


def _apply(module) -> None:
    """Put the reference function in place of each lent exercise of this learner module, and in
    every other loaded exercise module that imported the learner's version by name."""
    name = module.__name__.rsplit(".", 1)[-1]
    for exercise in catalog.EXERCISES:
        if exercise.module != name or exercise.id not in _lent:
            continue
        current = module.__dict__.get(exercise.function)
        if getattr(current, "__lent__", None) == exercise.id:
            continue
        replacement = _lent_function(exercise)
        module.__dict__[exercise.function] = replacement
        if current is None:
            continue
        for other in _loaded_learner_modules():
            for key, value in list(vars(other).items()):
                if value is current:
                    vars(other)[key] = replacement


def _loaded_learner_modules():
    for name in catalog.EXERCISE_MODULES:
        module = sys.modules.get(f"{PACKAGE}.{name}")
        if module is not None and name not in _whole_modules:
            yield module


class _LendingLoader(importlib.machinery.SourceFileLoader):
    """Your exercise file, loaded as usual, then the lent functions put in place."""

    def exec_module(self, module):
        super().exec_module(module)
        _apply(module)


class _LearnerFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package != PACKAGE or name not in catalog.EXERCISE_MODULES or name in _whole_modules:
            return None
        location = PACKAGE_DIR / f"{name}.py"
        return importlib.util.spec_from_file_location(fullname, location, loader=_LendingLoader(fullname, str(location)))


_FINDER = _LearnerFinder()


def _install_whole(names) -> dict:
    """solutions.<name> registered as mini_diffusion.<name> for each name (the whole file lent)."""
    if not names:
        return {}
    _solutions_package()
    for name in names:
        # dropped before the imports so that a solution importing another lent module gets the solution
        sys.modules.pop(f"{PACKAGE}.{name}", None)
    loaded = {}
    for name in names:
        loaded[name] = sys.modules[f"{PACKAGE}.{name}"] = importlib.import_module(f"solutions.{name}")
    _whole_modules.update(loaded)
    package = sys.modules.get(PACKAGE)  # `md.forward` too, also when your file was loaded before
    if package is not None:
        vars(package).update(loaded)
    return loaded


def start() -> dict:
    """Read MINI_DIFFUSION_SOLUTIONS once, when the package is imported. Returns the whole modules
    lent (name -> solution module)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    value = os.environ.get(ENV_VAR)
    ids = requested(value)
    if ids:
        _solutions_package()  # a clear error now when there is no solutions/ folder
    _lent.update(ids)
    return _install_whole(requested_modules(value))


def lend(*names: str) -> tuple[str, ...]:
    """Lend the reference solutions of these exercises from now on: ids ("1.1"), notebook numbers
    ("01") or module names ("forward"), as MINI_DIFFUSION_SOLUTIONS takes them. Your other functions
    stay yours. Returns the exercises lent now."""
    ids = requested(",".join(str(n) for n in names)) if names else ()
    if ids:
        _solutions_package()
    _lent.update(ids)
    for module in _loaded_learner_modules():
        _apply(module)
    return lent()


def judge() -> dict:
    """The Gradescope judge's own package (`pytest exercises/ --judge`): every exercise module is the
    reference solution module, for the judge's stand-ins and the cases it draws. This is not lending:
    the judge grades a submission's code in a separate worker, so nothing here is marked lent and
    `lent()` does not change. Returns name -> module."""
    names = [n for n in catalog.EXERCISE_MODULES if n not in _whole_modules]
    return _install_whole(names)


def use_whole_modules(names) -> dict:
    """Lend these modules whole (the command line's --code solutions). Returns name -> module."""
    names = [n for n in names if n not in _whole_modules]
    _lent.update(e.id for e in catalog.EXERCISES if e.module in names)
    return _install_whole(names)
