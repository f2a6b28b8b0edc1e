"""One notebook, one spec: what the grader knows about a notebook's exercises, and how it finds it.

The spec of notebook NN is its grader file, exercises/test_NN_<topic>.py. At the top it declares

    NOTEBOOK = Notebook("04", "04_sampling", title=..., idea=..., needs=("2.1", ...))
    EXERCISES = [Exercise("4.1", "sampling", "ddpm_step", points=3, title=...), ...]
    STAND_INS = {"p_mean": p_mean}   # the grader's own versions of this notebook's functions
                                     # that other exercise modules import

then its checks (the test functions), and last, between `# BEGIN MAINTAINER` and
`# END MAINTAINER`, the part only the maintainers' build uses (the student copy and the
Gradescope bundle leave it out, it is close to the answers): MISTAKES (key -> message),
VARIANTS (exercise id -> {mistake key: a wrong version of the function}), make_cases(mk)
(adds the graded cases to a Maker) and MUTANTS (wrong solutions the grader's own tests must
catch). `python tools/build.py` makes everything else from the specs: the catalog the package
reads, the stubs, the expected values in exercises/expected/ and the README's table.

This module needs no solutions/: only the maintainer parts do, and they reach the solutions
through `solution(module)` (imported on first use, by the build only).
"""

import hashlib
import importlib
import importlib.util
import sys
import warnings
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:  # the specs import _grading and friends by their plain names
    sys.path.insert(0, str(HERE))

from _cases import grading_seed  # noqa: E402

BEGIN_MAINTAINER = "# BEGIN MAINTAINER"
END_MAINTAINER = "# END MAINTAINER"


# --- What a spec declares ------------------------------------------------------------------


def _catalog():
    """mini_diffusion._base.catalog, home of the one Exercise and Notebook types. When the package itself does
    not import (a broken __init__.py), its catalog file alone (it needs only the standard library), so that the
    grader can still say why nothing can be graded instead of failing to start."""
    try:
        return importlib.import_module("mini_diffusion._base.catalog")
    except Exception:  # noqa: BLE001 - the package's own failure is reported by _grading.package()
        package = importlib.util.find_spec("mini_diffusion")  # finds the package without running it
        sys.path.insert(0, str(Path(package.origin).parent / "_base"))
        return importlib.import_module("catalog")


class Mutant(NamedTuple):
    """A reference solution with one realistic mistake: `old` replaced by `new` in solutions/<module>.py.
    The grader must take points off exercise `exercise`, and its message should contain `expect`
    (a key of the mistake table, or a phrase)."""

    name: str
    module: str
    old: str
    new: str
    exercise: str
    expect: str


# --- Finding the specs ---------------------------------------------------------------------


def spec_files(folder: Path = HERE) -> list[Path]:
    return sorted(Path(folder).glob("test_*.py"))  # hidden/ is a sub-folder: never a spec


def _load(path: Path):
    """The spec module of path (exercises/ is on sys.path): the one pytest already imported, or a fresh import."""
    with warnings.catch_warnings():  # loaded outside the grader (by the build, the project's tests):
        warnings.filterwarnings("ignore", message="Unknown pytest.mark.exercise")  # its marks are unregistered there
        module = importlib.import_module(path.stem)
    if Path(getattr(module, "__file__", "") or "").resolve() != path.resolve():
        raise ImportError(f"{path.stem} is imported from {module.__file__}, not from {path}")
    return module


_CATALOG = _catalog()
Exercise, Notebook = _CATALOG.Exercise, _CATALOG.Notebook  # one type each, the catalog's


@lru_cache(maxsize=1)
def specs() -> tuple:
    """Every notebook's spec module (exercises/test_*.py), in notebook order, checked for consistency."""
    modules = []
    for path in spec_files():
        module = _load(path)
        notebook = getattr(module, "NOTEBOOK", None)
        if not isinstance(notebook, Notebook):
            raise ValueError(f"{path.name}: no NOTEBOOK = Notebook(...) at the top (every exercises/test_*.py is a spec)")
        exercises = list(getattr(module, "EXERCISES", []))
        module.EXERCISES = [_with_notebook(e, notebook, path) for e in exercises]
        modules.append(module)
    modules.sort(key=lambda m: int(m.NOTEBOOK.number))
    _check(modules)
    return tuple(modules)


def _with_notebook(exercise: Exercise, notebook: Notebook, path: Path) -> Exercise:
    if exercise.id.split(".")[0].zfill(2) != notebook.number:
        raise ValueError(f"{path.name}: exercise {exercise.id} does not belong to notebook {notebook.number}")
    if exercise.notebook in ("", notebook.file):
        return Exercise(exercise.id, exercise.module, exercise.function, points=exercise.points,
                        title=exercise.title, uses=tuple(exercise.uses), notebook=notebook.file)
    raise ValueError(f"{path.name}: exercise {exercise.id} names another notebook ({exercise.notebook})")


def _check(modules) -> None:
    numbers = [m.NOTEBOOK.number for m in modules]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"two specs for one notebook: {numbers}")
    ids = [e.id for m in modules for e in m.EXERCISES]
    if len(set(ids)) != len(ids):
        raise ValueError(f"an exercise id is declared twice: {ids}")
    functions = [e.function for m in modules for e in m.EXERCISES]
    if len(set(functions)) != len(functions):
        raise ValueError(f"an exercise function is declared twice: {functions}")
    for m in modules:
        for e in m.EXERCISES:
            unknown = [u for u in e.uses if u not in ids]
            if unknown:
                raise ValueError(f"exercise {e.id} uses unknown exercises {unknown}")
        own = {e.function for e in m.EXERCISES}
        strange = sorted(set(getattr(m, "STAND_INS", {})) - own)
        if strange:
            raise ValueError(f"{Path(m.__file__).name}: STAND_INS for functions not of this notebook: {strange}")


def notebooks() -> list[Notebook]:
    return [m.NOTEBOOK for m in specs()]


def exercises() -> list[Exercise]:
    return [e for m in specs() for e in m.EXERCISES]


def exercise(exercise_id: str) -> Exercise:
    for e in exercises():
        if e.id == exercise_id:
            return e
    raise KeyError(f"no exercise {exercise_id!r} in the specs")


def uses(exercise_id: str) -> tuple:
    """The earlier exercises that exercise_id calls (empty when it is unknown)."""
    try:
        return exercise(exercise_id).uses
    except KeyError:
        return ()


def stand_ins() -> dict:
    """module name -> {function: the grader's own version}, from every spec's STAND_INS."""
    table = {}
    for m in specs():
        by_function = {e.function: e for e in m.EXERCISES}
        for function, fn in getattr(m, "STAND_INS", {}).items():
            table.setdefault(by_function[function].module, {})[function] = fn
    return table


def stand_in(function: str):
    """The grader's own version of an exercise function (for the hidden checks' answers)."""
    for functions in stand_ins().values():
        if function in functions:
            return functions[function]
    raise KeyError(f"the grader has no stand-in for {function}")


def mistakes() -> dict:
    """Every spec's MISTAKES, merged (a key means one thing everywhere)."""
    table = {}
    for m in specs():
        for key, text in getattr(m, "MISTAKES", {}).items():
            if key in table and table[key] != text:
                raise ValueError(f"mistake {key!r} has two messages ({Path(m.__file__).name} and an earlier spec)")
            table[key] = text
    return table


def variants() -> dict:
    table = {}
    for m in specs():
        for exercise_id, found in getattr(m, "VARIANTS", {}).items():
            table[exercise_id] = dict(found)
    return table


def mutants() -> list[Mutant]:
    return [mutant for m in specs() for mutant in getattr(m, "MUTANTS", [])]


def catalog() -> dict:
    """The table mini_diffusion/_base/catalog.json holds (made by tools/build.py)."""
    return {
        "made_by": "python tools/build.py (from exercises/test_*.py); do not edit by hand",
        "notebooks": [{"number": n.number, "file": n.file, "title": n.title, "idea": n.idea, "needs": list(n.needs)}
                      for n in notebooks()],
        "exercises": [{"id": e.id, "module": e.module, "function": e.function, "points": e.points, "title": e.title,
                       "uses": list(e.uses)} for e in exercises()],
    }


def strip_maintainer(source: str, name: str = "spec") -> str:
    """source without its maintainer block (what the student copy and the autograder ship)."""
    from mini_diffusion._course.maintainer_blocks import strip_maintainer

    return strip_maintainer(source, name)


# --- The solutions, for the maintainer parts ----------------------------------------------


class _Solution:
    """solutions/<module>.py, imported on first use (the grader itself never touches it)."""

    def __init__(self, module: str):
        self._module = module

    def __getattr__(self, attr):
        # private names are never a solution's: pytest's collection and inspect ask for some
        # (_pytestfixturefunction, __test__, ...), and the grader must not import the solutions
        if attr.startswith("_"):
            raise AttributeError(attr)
        if str(ROOT) not in sys.path:
            sys.path.append(str(ROOT))  # last: a package copy on PYTHONPATH stays the one in use
        return getattr(importlib.import_module(f"solutions.{self._module}"), attr)


def solution(module: str) -> _Solution:
    return _Solution(module)


# --- Shared helpers of the wrong variants ---------------------------------------------------


def altered(schedule, **arrays):
    """A copy of schedule with some arrays replaced (for "used X where Y belongs" mistakes)."""
    from mini_diffusion.toolkit.diffusion_process import NoiseSchedule

    s = NoiseSchedule.__new__(NoiseSchedule)
    s.betas, s.alphas, s.alpha_bars = schedule.betas, schedule.alphas, schedule.alpha_bars
    for name, values in arrays.items():
        setattr(s, name, values)
    return s


def shifted(values: torch.Tensor) -> torch.Tensor:
    """values[t - 1] at index t (and values[0] at 0): what indexing with t - 1 gives."""
    return torch.cat([values[:1], values[:-1]])


def coef(schedule, name, t, x):
    from mini_diffusion.toolkit.common import extract

    return extract(getattr(schedule, name), t, x, allow_zero=True)


def prev_alpha_bar(schedule, t, x):
    from mini_diffusion.toolkit.common import extract

    return extract(shifted(schedule.alpha_bars), t, x)


def t_rows(t, batch):
    values = t.tolist() if isinstance(t, torch.Tensor) else [t] * batch
    return {"kind": "t", "values": values}


def sched(name):
    return {"schedule": name}


SCHEDULE_NAMES = {
    "linear1000": "the linear schedule (T = 1000)", "cosine1000": "the cosine schedule (T = 1000)",
    "linear50": "a linear schedule with T = 50 (β from 0.002 to 0.2)",
    "linear10": "a short linear schedule (T = 10, β from 0.01 to 0.3)", "single": "a one-step schedule (T = 1, β_1 = 0.3)",
}


# --- Inputs of the checks that are not cases (statistics, quality), drawn from the grading seed -----


def check_seed(name: str, shipped: int) -> int:
    """The seed of a check's own generator: `shipped` locally; under a grading seed, a seed derived from it and
    `name` (one name per use), so that no input of a graded check is one a student has seen."""
    seed = grading_seed()
    if seed is None:
        return shipped
    return int.from_bytes(hashlib.sha256(f"{seed}/{name}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def check_generator(name: str, shipped: int) -> torch.Generator:
    """A torch.Generator seeded with check_seed(name, shipped)."""
    return torch.Generator().manual_seed(check_seed(name, shipped))


def fresh() -> bool:
    """Is this run graded on inputs drawn from a grading seed (the judge)?"""
    return grading_seed() is not None


def reference(function: str):
    """The reference solution of an exercise function: the judge's own answer on a check's fresh inputs. Only
    a grading calls it (fresh() is true where solutions/ is, in the bundle; never in a student copy)."""
    return getattr(solution(next(e.module for e in exercises() if e.function == function)), function)
