"""The learner's stubs: generated from solutions/, current, faithful, and friendly when called."""

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from mini_diffusion._base.catalog import EXERCISES

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "exercises"))
import _grading  # noqa: E402  (decodes the graded cases' inputs)

MAKE_STUBS = ROOT / "mini_diffusion" / "_course" / "stubs.py"
SOLUTION_FILES = sorted(p.name for p in (ROOT / "solutions").glob("*.py") if p.name != "__init__.py")


def load(path: Path, name: str):
    """Execute a file as a module named `name` (inside mini_diffusion, so its relative imports work)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_stubs = load(MAKE_STUBS, "make_stubs")


def test_committed_stubs_are_up_to_date():
    result = subprocess.run([sys.executable, str(MAKE_STUBS), "--check"], capture_output=True, text=True, cwd=ROOT)
    assert (
        result.returncode == 0
    ), f"the stubs in mini_diffusion/ are stale; run `python tools/build.py`:\n{result.stdout}{result.stderr}"


def dump(node):
    return ast.dump(node) if node is not None else None


def functions(tree):
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


@pytest.mark.parametrize("filename", SOLUTION_FILES)
def test_a_stub_keeps_every_signature_docstring_and_line_outside_the_solutions(filename):
    solution = ast.parse((ROOT / "solutions" / filename).read_text())
    stub = ast.parse((ROOT / "mini_diffusion" / filename).read_text())
    assert ast.get_docstring(stub) == ast.get_docstring(solution), "the module docstring must be kept"
    solved, stubbed = functions(solution), functions(stub)
    assert list(stubbed) == list(solved), "the stub must define the same functions, in the same order"
    for name, original in solved.items():
        copy = stubbed[name]
        assert ast.dump(copy.args) == ast.dump(original.args), f"{name}: the signature changed"
        assert dump(copy.returns) == dump(original.returns), f"{name}: the return annotation changed"
        assert [ast.dump(d) for d in copy.decorator_list] == [
            ast.dump(d) for d in original.decorator_list
        ], f"{name}: the decorators changed"
        assert ast.get_docstring(copy, clean=False) == ast.get_docstring(
            original, clean=False
        ), f"{name}: docstring changed"
        if ast.dump(copy) == ast.dump(original):
            continue  # a ready helper, copied as it is
        *kept, last = copy.body
        assert (
            ast.unparse(last) == f"raise NotImplementedError(todo({name!r}))"
        ), f"{name}: must end in the friendly raise"
        assert [ast.dump(s) for s in kept] == [
            ast.dump(s) for s in original.body[: len(kept)]
        ], f"{name}: the lines before the solution block must be kept as they are"
    others = [ast.dump(node) for node in solution.body if not isinstance(node, ast.FunctionDef)]
    stub_others = [ast.dump(node) for node in stub.body if not isinstance(node, ast.FunctionDef)]
    todo_import = ast.dump(ast.parse(make_stubs.TODO_IMPORT).body[0])
    assert [node for node in stub_others if node != todo_import] == others, "imports and constants must be kept"


def test_every_exercise_function_is_a_friendly_raise_in_its_stub():
    for exercise in EXERCISES:
        stub = functions(ast.parse((ROOT / "mini_diffusion" / f"{exercise.module}.py").read_text()))
        assert exercise.function in stub, f"exercise {exercise.id}: no {exercise.function} in the stub"
        last = stub[exercise.function].body[-1]
        assert (
            ast.unparse(last) == f"raise NotImplementedError(todo({exercise.function!r}))"
        ), f"exercise {exercise.id}: {exercise.function} in mini_diffusion/{exercise.module}.py is not a stub"


# --- the generator rejects broken marker layouts -------------------------------------------

GOOD = '''"""A module."""

import torch


def f(x):
    """Doubles x."""
    y = x
    # BEGIN SOLUTION
    return 2 * y
    # END SOLUTION
'''

BROKEN = {
    "begin without end": GOOD.replace("    # END SOLUTION\n", ""),
    "end without begin": GOOD.replace("    # BEGIN SOLUTION\n", ""),
    "two blocks in one function": GOOD + "    # BEGIN SOLUTION\n    pass\n    # END SOLUTION\n",
    "block outside a function": GOOD.replace(
        "import torch\n", "import torch\n# BEGIN SOLUTION\nX = 1\n# END SOLUTION\n"
    ),
    "code after the block": GOOD + "    return y\n",
    "nested begin": GOOD.replace("    return 2 * y\n", "    # BEGIN SOLUTION\n    return 2 * y\n"),
}


@pytest.mark.parametrize("layout", list(BROKEN))
def test_the_generator_rejects_a_broken_marker_layout(layout):
    with pytest.raises(ValueError, match=r"broken\.py"):
        make_stubs.make_stub(BROKEN[layout], "broken.py")


def test_the_generator_turns_a_block_into_the_friendly_raise():
    stub = make_stubs.make_stub(GOOD, "good.py")
    tree = ast.parse(stub)
    assert "return 2 * y" not in stub and "BEGIN SOLUTION" not in stub, "the solution must not leak into the stub"
    assert make_stubs.TODO_IMPORT in stub, "the stub imports todo for its message"
    body = functions(tree)["f"].body
    assert ast.unparse(body[-1]) == "raise NotImplementedError(todo('f'))" and ast.unparse(body[-2]) == "y = x"


def test_the_generator_copies_a_file_without_blocks_unchanged():
    source = GOOD.replace("    # BEGIN SOLUTION\n", "").replace("    # END SOLUTION\n", "")
    assert make_stubs.make_stub(source, "plain.py") == source


# --- calling a stub ------------------------------------------------------------------------


def first_case_call(exercise):
    """A call of the exercise's function with the inputs of its first graded case (cases.json),
    arguments that pass the stub's own checks, so that the call reaches the raise."""
    table = _grading.cases_table()["exercises"]
    assert exercise.id in table, f"exercise {exercise.id} has no graded cases in exercises/expected/cases.json"
    case = next(iter(table[exercise.id]["cases"].values()))
    args, kwargs = _grading.build_call(case)
    return lambda f: f(*args, **kwargs)


def test_every_exercise_has_a_first_case_to_call_its_stub_with():
    table = _grading.cases_table()["exercises"]
    assert sorted(table) == sorted(e.id for e in EXERCISES)


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: f"{e.id}-{e.function}")
def test_a_stub_raises_a_message_that_says_what_to_do(exercise, monkeypatch):
    # ready code reaches other exercises through the seam (a solver's ddim_timesteps, 6.1): give it
    # their reference solutions, so that the call reaches this stub's own raise
    from mini_diffusion._course import seam

    real = seam.implementation
    monkeypatch.setattr(seam, "implementation", lambda i: real(i) if i == exercise.id else seam.solution(i))
    module = load(ROOT / "mini_diffusion" / f"{exercise.module}.py", f"mini_diffusion._stub_{exercise.module}")
    for name, value in list(vars(module).items()):  # what it imports from other exercises, e.g. ddim_timesteps
        other = next((e for e in EXERCISES if e.function == name and e.id != exercise.id), None)
        if other is not None and callable(value):
            monkeypatch.setattr(module, name, seam.solution(other.id))
    with pytest.raises(NotImplementedError) as error:
        first_case_call(exercise)(getattr(module, exercise.function))
    message = str(error.value)
    for part, meaning in [
        (f"Exercise {exercise.id}", "the exercise number"),
        (exercise.function, "the function"),
        (f"notebooks/{exercise.notebook}.ipynb", "the notebook that explains it"),
        (f"mini_diffusion/{exercise.module}.py", "the file to edit"),
        (f"MINI_DIFFUSION_SOLUTIONS={exercise.module}", "how to skip ahead"),
    ]:
        assert part in message, f"the stub's message should name {meaning} ({part!r}); it says: {message}"
