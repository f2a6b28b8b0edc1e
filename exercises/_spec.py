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
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:  # the specs import _grading and friends by their plain names
    sys.path.insert(0, str(HERE))

BEGIN_MAINTAINER = "# BEGIN MAINTAINER"
END_MAINTAINER = "# END MAINTAINER"


# --- What a spec declares ------------------------------------------------------------------


@dataclass(frozen=True)
class Notebook:
    number: str  # "04"
    file: str  # notebooks/<file>.py / .ipynb, without the extension
    title: str = ""
    idea: str = ""  # the README's "idea" column
    needs: tuple = ()  # ids of earlier exercises this notebook's cells rely on


@dataclass(frozen=True)
class Exercise:
    id: str  # "4.1": notebook 4, first exercise
    module: str  # mini_diffusion/<module>.py
    function: str
    points: int = 1
    title: str = ""
    uses: tuple = ()  # earlier exercises this one calls (a loop uses its step): named when they fail
    notebook: str = field(default="", compare=False)  # filled in by specs() from NOTEBOOK.file


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
    """The spec module of path: the one pytest already imported (same file), or a fresh import."""
    name = path.stem
    module = sys.modules.get(name)
    if module is not None and Path(getattr(module, "__file__", "") or "").resolve() == path.resolve():
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with warnings.catch_warnings():  # loaded outside the grader (by the build, the project's tests):
            warnings.filterwarnings("ignore", message="Unknown pytest.mark.exercise")  # its marks are unregistered there
            spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


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
        return Exercise(exercise.id, exercise.module, exercise.function, exercise.points, exercise.title,
                        tuple(exercise.uses), notebook.file)
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
    """The table mini_diffusion/_course/catalog.json holds (made by tools/build.py)."""
    return {
        "made_by": "python tools/build.py (from exercises/test_*.py); do not edit by hand",
        "notebooks": [{"number": n.number, "file": n.file, "title": n.title, "idea": n.idea, "needs": list(n.needs)}
                      for n in notebooks()],
        "exercises": [{"id": e.id, "module": e.module, "function": e.function, "points": e.points, "title": e.title,
                       "uses": list(e.uses)} for e in exercises()],
    }


def strip_maintainer(source: str, name: str = "spec") -> str:
    """source without its maintainer block (what the student copy and the autograder ship)."""
    from mini_diffusion._course.release import strip_maintainer

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


def grading_seed() -> int | None:
    """The grading seed of this run (the Gradescope judge's --grading-seed), or None for the shipped cases
    (local `pytest exercises/`, md.check)."""
    import _grading

    return _grading.cases_table().get("seed")


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


# --- The Maker: cases, their expected outputs and the outputs of the known mistakes ----------

TOL64, TOL32 = 1e-6, 1e-5  # relative tolerances the grader allows (float64 / float32 results)


class Maker:
    """Collects cases: their inputs, the solution's output and the matching wrong outputs.

    The inputs come from one seeded generator, drawn in notebook order (build.py calls each
    spec's make_cases in turn), so every value is reproducible.
    """

    SHIPPED_SEED = 2024  # the seed of the shipped cases (exercises/expected/, local grading and md.check)

    def __init__(self, seed: int = SHIPPED_SEED):
        from mini_diffusion._course import seam

        in_use = seam.whole_modules()  # the solution files themselves (MINI_DIFFUSION_SOLUTIONS=1, or the judge)
        missing = [e.id for e in exercises() if not (seam.is_lent(e.id) or e.module in in_use)]
        if missing:  # the solutions reach each other through the package: they must all be in use
            raise RuntimeError(f"the Maker runs the solutions: set MINI_DIFFUSION_SOLUTIONS=1 before "
                               f"mini_diffusion is imported (tools/build.py does); not lent: {missing}")
        self.tensors, self.exercises = {}, {}
        self.seed = seed
        self.fresh = seed != self.SHIPPED_SEED  # drawing for a grading (the judge): no input may be the shipped one
        self.generator = torch.Generator().manual_seed(seed)
        import _flow_models
        import _models

        # the grader's toy models: their shipped numbers for the shipped cases, numbers drawn from the grading
        # seed for a grading (the cases' expected values and the models handed to the submission use the same)
        _models.use_toy_weights(seed if self.fresh else None)
        _flow_models.use_toy_weights(seed if self.fresh else None)
        self.variants = variants()
        self.mixed = torch.tensor([1, 2, 10, 500, 999, 1000])
        self.lab_mixed = (f"x [6, 2] float64, t = {self.mixed.tolist()} (a batch of mixed t), the linear schedule "
                          "(T = 1000)")
        self._standard_schedules()

    def _standard_schedules(self):
        schedules = solution("schedules")
        lin = schedules.linear_betas(1000)
        self.add_schedule("linear1000", lin, schedules.alpha_bars_from_betas(lin))
        cos = schedules.betas_from_alpha_bars(schedules.cosine_alpha_bars(1000))
        self.add_schedule("cosine1000", cos, schedules.alpha_bars_from_betas(cos))
        fifty = schedules.linear_betas(50, 0.002, 0.2)
        self.add_schedule("linear50", fifty, schedules.alpha_bars_from_betas(fifty))
        short = schedules.linear_betas(10, 0.01, 0.3)
        self.add_schedule("linear10", short, schedules.alpha_bars_from_betas(short))
        one = torch.tensor([0.3], dtype=torch.float64)
        self.add_schedule("single", one, schedules.alpha_bars_from_betas(one))

    def randn(self, *shape, dtype=torch.float64):
        return torch.randn(*shape, generator=self.generator, dtype=torch.float64).to(dtype)

    # Plain inputs (a T, a number of steps, a ρ) drawn afresh for a grading: each returns `shipped` for the
    # shipped cases (exercises/expected/, unchanged by these calls) and a value drawn from the grading seed
    # otherwise, so that no graded input is one a student has seen. Labels are made from the values.

    def integer(self, shipped: int, low: int, high: int) -> int:
        """shipped, or an integer drawn from low..high (both included) for a grading."""
        if not self.fresh:
            return shipped
        return int(torch.randint(low, high + 1, (), generator=self.generator))

    def uniform(self, shipped: float, low: float, high: float, digits: int = 3) -> float:
        """shipped, or a float drawn from [low, high] (rounded to `digits` significant digits, for a
        readable label) for a grading."""
        if not self.fresh:
            return shipped
        value = low + (high - low) * float(torch.rand((), generator=self.generator, dtype=torch.float64))
        return float(f"{value:.{digits}g}")

    def choice(self, shipped, options):
        """shipped, or one of options for a grading."""
        if not self.fresh:
            return shipped
        options = list(options)
        return options[int(torch.randint(len(options), (), generator=self.generator))]

    def _fresh_generators(self, values: dict, label: str) -> str:
        """For a grading, a case's seeded generators ({"generator": k}) get seeds drawn from the grading
        seed (what they draw is an input too); the label says the seed used. Returns the label."""
        for key, value in values.items():
            if isinstance(value, dict) and set(value) == {"generator"}:
                seed = int(torch.randint(2**31 - 1, (), generator=self.generator))
                label = label.replace(f"seeded with {value['generator']}", f"seeded with {seed}")
                values[key] = {"generator": seed}
        return label

    def x_mixed(self):
        return self.randn(6, 2)

    def images32(self):
        return self.randn(5, 1, 3, 3, dtype=torch.float32)

    def add_schedule(self, name, betas, alpha_bars):
        self.tensors[f"schedule/{name}/betas"] = betas.to(torch.float64).clone().contiguous()
        self.tensors[f"schedule/{name}/alpha_bars"] = alpha_bars.to(torch.float64).clone().contiguous()

    def encode(self, key, value):
        if isinstance(value, torch.Tensor):
            self.tensors[key] = value.detach().clone().contiguous()
            return {"tensor": key}
        return value

    def case(self, exercise_id, name, args, kwargs=None, *, label, rows=None, note=None, output="tensor",
             dtype_from=None, what="the result", x_shape=None):
        """args/kwargs: (name, value) pairs / dict; a value may be a tensor, a decoded-spec dict or a plain value."""
        import _grading

        kwargs = dict(kwargs or {})
        if self.fresh:
            positional = dict(args)
            label = self._fresh_generators(positional, label)
            label = self._fresh_generators(kwargs, label)
            args = [(k, positional[k]) for k, _ in args]
        prefix = f"{exercise_id}/{name}"
        spec = {
            "label": label, "what": what, "output": output, "rows": rows, "note": note, "dtype_from": dtype_from,
            "args": [self.encode(f"{prefix}/{k}", v) for k, v in args],
            "kwargs": {k: self.encode(f"{prefix}/{k}", v) for k, v in kwargs.items()},
        }
        if x_shape is not None:
            spec["x_shape"] = list(x_shape)
        ex = exercise(exercise_id)
        call_args, call_kwargs = _grading.build_call(spec, self.tensors)
        expected = getattr(solution(ex.module), ex.function)(*call_args, **call_kwargs)
        floating = [v for v in _flatten(expected) if v.is_floating_point()]
        spec["tol"] = TOL32 if floating and all(v.dtype == torch.float32 for v in floating) else TOL64
        if output == "states":
            spec["states"] = len(expected)
        spec["expected"] = self.store_output(f"{prefix}/expected", expected, output)
        spec["mistakes"] = {}
        for key, variant in self.variants.get(exercise_id, {}).items():
            call_args, call_kwargs = _grading.build_call(spec, self.tensors)
            try:
                with torch.no_grad():
                    wrong = variant(*call_args, **call_kwargs)
            except Exception:  # noqa: BLE001 - a mistake that crashes on this case shows as an error anyway
                continue
            if self.distinct(wrong, expected, spec):
                spec["mistakes"][key] = self.store_output(f"{prefix}/mistake/{key}", wrong, output)
        self.exercises.setdefault(exercise_id, {"function": ex.function, "cases": {}})
        self.exercises[exercise_id]["cases"][name] = spec

    def store_output(self, key, value, output):
        if output == "pair":
            return [self.encode(f"{key}/mean", value[0].detach())["tensor"],
                    self.encode(f"{key}/variance", torch.as_tensor(value[1]).detach())["tensor"]]
        if output == "states":
            value = torch.stack(list(value))
        return self.encode(key, value.detach())["tensor"]

    def distinct(self, wrong, expected, spec) -> bool:
        """Is the wrong output clearly (10 x the tolerance) different from the right one?"""
        import _grading

        loose = {**spec, "tol": spec["tol"] * 10}
        pair = spec["output"] == "pair"
        for part in ((0, 1) if pair else (None,)):
            if not _grading._outputs_close(list(wrong) if pair else wrong, list(expected) if pair else expected,
                                           loose, part):
                return True
        return False


def _flatten(value):
    if isinstance(value, torch.Tensor):
        return [value]
    return [v for item in value for v in _flatten(item)]


def make(seed: int = Maker.SHIPPED_SEED) -> Maker:
    """Every spec's cases, in notebook order: with the shipped seed, the build's expected values; with
    another, inputs drawn afresh (the Gradescope judge draws its own at grading time)."""
    mk = Maker(seed)
    for m in specs():
        if hasattr(m, "make_cases"):
            m.make_cases(mk)
    return mk
