"""The list of exercises: which function, in which file, taught by which notebook.

The table is mini_diffusion/_base/catalog.json, made by `python tools/build.py` from the
notebooks' specs (exercises/test_NN_*.py, where each notebook declares its exercises): edit a
spec, not the JSON. The stubs' "not implemented yet" messages, the grader and the notebooks'
check cells all read it, so an exercise is renamed or moved in one place.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

CATALOG_FILE = Path(__file__).resolve().parent / "catalog.json"


@dataclass(frozen=True)
class Exercise:
    """One exercise: the one type the catalog, the specs (exercises/test_*.py) and the grader use."""

    id: str  # "1.3": notebook 1, third exercise
    module: str  # file mini_diffusion/<module>.py
    function: str
    points: int = 1
    title: str = ""
    uses: tuple = ()  # earlier exercises this one calls (a loop calls its step): named when they fail
    notebook: str = field(default="", compare=False)  # file name in notebooks/, without extension (a spec's
    #                                                   exercises get it from their NOTEBOOK)


@dataclass(frozen=True)
class Notebook:
    """One notebook, as its spec declares it (NOTEBOOK = Notebook(...)) and the catalog lists it."""

    number: str  # "04"
    file: str  # file name in notebooks/, without extension
    title: str = ""
    idea: str = ""  # the README's "idea" column
    needs: tuple = ()  # ids of earlier exercises the notebook's cells rely on


_TABLE = json.loads(CATALOG_FILE.read_text(encoding="utf-8"))

NOTEBOOK_INFO = {n["number"]: Notebook(n["number"], n["file"], n["title"], n["idea"], tuple(n["needs"]))
                 for n in _TABLE["notebooks"]}
NOTEBOOKS = {number: info.file for number, info in NOTEBOOK_INFO.items()}  # "04" -> "04_sampling"

EXERCISES = [
    Exercise(e["id"], e["module"], e["function"], points=e["points"], title=e["title"], uses=tuple(e["uses"]),
             notebook=NOTEBOOKS[e["id"].split(".")[0].zfill(2)])
    for e in _TABLE["exercises"]
]

EXERCISE_MODULES = tuple(dict.fromkeys(e.module for e in EXERCISES))  # in course order


def by_id(id: str) -> Exercise:
    for exercise in EXERCISES:
        if exercise.id == id:
            return exercise
    known = ", ".join(e.id for e in EXERCISES)
    raise KeyError(f"no exercise {id!r}; the exercises are {known}")


def by_function(function: str) -> Exercise:
    for exercise in EXERCISES:
        if exercise.function == function:
            return exercise
    raise KeyError(f"no exercise is called {function!r}")


def exercises_of_notebook(number: str) -> list[Exercise]:
    """The exercises notebook `number` ("04") asks for, in order."""
    return [e for e in EXERCISES if e.id.split(".")[0].zfill(2) == number]


def notebook(number: str) -> Notebook:
    """Notebook `number` ("04"): its file, title, idea and the earlier exercises it needs."""
    return NOTEBOOK_INFO[number]


def needs(number: str) -> tuple:
    """The ids of the earlier exercises notebook `number` ("04") relies on."""
    return NOTEBOOK_INFO[number].needs


def todo(function: str) -> str:
    """The message a stub raises: what to do next, in a learner's terms."""
    e = by_function(function)
    return (
        f"Exercise {e.id} ({e.function}: {e.title}) is not implemented yet. "
        f"Notebook notebooks/{e.notebook}.ipynb explains it; write your code in "
        f"mini_diffusion/{e.module}.py, in place of the `raise NotImplementedError` line. "
        f"To skip ahead with the reference solution instead, run `md.lend(\"{e.id}\")` in the notebook "
        f"(no restart needed), or set MINI_DIFFUSION_SOLUTIONS={e.id} before Python starts "
        f"(MINI_DIFFUSION_SOLUTIONS={e.module} lends the whole file, =1 everything)."
    )
