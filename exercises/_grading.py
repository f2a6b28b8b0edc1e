"""The grader's machinery: load your modules safely, call your functions, explain what is wrong.

Every check ends in one of two ways: it returns, or it raises `Feedback`, whose message is
the one paragraph you see (exercises/conftest.py turns it into the test's report). Your code
is only ever imported and called here; it gets fresh copies of every input, and the grader
compares what it handed over with its own copies afterwards.
"""

import importlib
import json
from pathlib import Path

import _maker
import _spec
from _cases import build_call, cases_table, decode, schedule, shipped, use_table  # noqa: F401  (the specs' names)
from _compare import _outputs_close, compare_output  # noqa: F401
from _feedback import Feedback, cap  # noqa: F401

PACKAGE = "mini_diffusion"


# --- The exercise table -------------------------------------------------------------------


def package():
    """`import mini_diffusion` (the ready part only: exercise modules load lazily)."""
    try:
        return importlib.import_module(PACKAGE)
    except Exception as err:  # noqa: BLE001 - anything here means nothing can be graded
        raise Feedback(f"`import mini_diffusion` fails, so nothing can be graded: {type(err).__name__}: {err}",
                       status="does not import") from None


# --- Loading and calling your code (mini_diffusion/_course/host.py) ------------------------
#
# Locally (`pytest exercises/`, `md.check`) your modules are imported in this process by a
# host.Host. In the Gradescope bundle the driver passes --worker-tree: then this process (the
# judge) never imports them; a remote_host.RemoteHost runs them in a locked-down worker process
# (sandbox.py) and only data crosses between the two.

_HOST = {"host": None, "remote": None}  # the host in use; remote: (tree, scratch) when isolated


def use_worker(tree, scratch) -> None:
    """Grade in isolation: every call goes to a worker serving the learner files of `tree`."""
    stop_worker()
    _HOST["remote"], _HOST["host"] = (Path(tree), Path(scratch)), None


def isolated() -> bool:
    return _HOST["remote"] is not None


def begin_exercise(exercise_id: str) -> None:
    """The next checks are exercise_id's (isolated mode): in a session of their own in the worker, where only
    the stand-ins that exercise's reference calls answer."""
    running = _HOST["host"]
    if running is not None and hasattr(running, "begin"):
        running.begin(exercise_id)
    elif _HOST["remote"] is not None:
        host().begin(exercise_id)


def reference_calls(stand_ins: dict) -> tuple[dict, dict]:
    """(uses, names) read from the reference solutions' source (solutions/<module>.py, else the package's
    file): uses maps each exercise function to the stand-ins ("module.function") it calls, directly or
    through helpers of its own module; names maps it to its parameters' names."""
    import ast

    from mini_diffusion._course import seam

    from mini_diffusion._base import catalog

    offered = {f"{m}.{f}" for m, functions in stand_ins.items() for f in functions}
    uses, names = {}, {}
    for module in catalog.EXERCISE_MODULES:
        path = seam.solutions_dir() / f"{module}.py"
        if not path.is_file():
            path = seam.PACKAGE_DIR / f"{module}.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported, bodies = {}, {}
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                source = node.module or ""
                source = source.removeprefix("mini_diffusion.") if node.level == 0 else source
                for alias in node.names:
                    if f"{source}.{alias.name}" in offered:
                        imported[alias.asname or alias.name] = f"{source}.{alias.name}"
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                bodies[node.name] = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                names[node.name] = [a.arg for a in node.args.posonlyargs + node.args.args]
        for exercise in (e for e in catalog.EXERCISES if e.module == module):
            seen, todo = set(), [exercise.function]
            while todo:
                name = todo.pop()
                if name in seen:
                    continue
                seen.add(name)
                todo += [n for n in bodies.get(name, ()) if n in bodies]
            uses[exercise.function] = sorted({imported[n] for f in seen for n in bodies.get(f, ()) if n in imported})
    return uses, names


def host():
    if _HOST["host"] is None:
        from _models import ModelMisuse

        if _HOST["remote"] is not None:
            from mini_diffusion._course import sandbox
            from mini_diffusion._course.remote_host import RemoteHost

            tree, scratch = _HOST["remote"]
            uses, names = reference_calls(_spec.stand_ins())
            _HOST["host"] = RemoteHost(lambda: sandbox.start(tree, scratch), _spec.stand_ins(),
                                              misuse=(ModelMisuse,), timeout=CALL_SECONDS, stand_in_uses=uses,
                                              argument_names=names)
        else:
            from mini_diffusion._course.host import Host

            _HOST["host"] = Host(stand_ins=_spec.stand_ins(), misuse=(ModelMisuse,))
    return _HOST["host"]


def grader_failure() -> str | None:
    """Why the worker could not be started or reached (isolated mode; sandbox.CannotRun): the grader's
    failure, for which no check may be scored or blamed on the submission. None while all is well."""
    running = _HOST["host"]
    failure = getattr(running, "failure", None)
    return None if failure is None else str(failure)


def worker_note() -> str:
    """One line on the worker (isolated mode), for the judge's log: its Python, torch, and how it got them."""
    first = getattr(_HOST["host"], "first", None)
    if not first:
        return ""
    return (f"worker: Python {first.get('python')}, torch {first.get('torch')}, uid {first.get('uid')}; "
            f"{first.get('view') or 'the judge’s own Python'}")


def stop_worker() -> None:
    """End the worker (isolated mode): the next call starts a fresh one."""
    running = _HOST["host"]
    if running is not None and hasattr(running, "stop"):
        running.stop()


CALL_SECONDS = 120.0  # the longest one call may take in the worker (the checks' own limits are shorter)


def call(function: str, *args, **kwargs):
    """Your `function(*args, **kwargs)`; any exception becomes Feedback, and inputs must come back
    unchanged (the host keeps its own copies of every tensor and schedule it passes)."""
    package()
    from mini_diffusion._course.host import Outcome

    try:
        return host().call(function, args, kwargs)
    except Outcome as outcome:
        raise Feedback(outcome.message, status=outcome.status) from None


# --- The cases (exercises/_cases.py) and grading with them ------------------------------


def use_fresh_cases(seed: int) -> None:
    """Grade with cases drawn afresh from `seed`, their expected outputs computed now by the reference
    solutions (the Gradescope judge: no value a submission could have seen in advance is graded)."""
    mk = _maker.make(seed)
    messages = _spec.mistakes()
    used = sorted({key for ex in mk.exercises.values() for case in ex["cases"].values() for key in case["mistakes"]})
    table = {"mistakes": {key: messages[key] for key in used}, "exercises": mk.exercises, "seed": seed}
    use_table(json.loads(json.dumps(table)), dict(mk.tensors))



def grade_cases(exercise_id: str, *names: str, part: int | None = None) -> None:
    """Run the shipped cases of an exercise through your function; Feedback for a wrong one.

    A wrong case whose mistake the grader cannot name does not stop the run: a later case may
    recognise it, and its message is the one shown (otherwise the first wrong case's).
    part: compare only this element of a returned pair (0 = mean, 1 = variance of q_posterior).
    """
    table = cases_table()["exercises"][exercise_id]
    failures = []
    for name in names:
        case = table["cases"][name]
        args, kwargs = build_call(case)
        try:
            got = call(table["function"], *args, **kwargs)
            check_case(table["function"], case, got, part)
        except Feedback as failure:
            if failure.status != "failed" or getattr(failure, "mistake", None):
                raise
            failures.append(failure)
    if failures:
        raise failures[0]


def check_case(function: str, case: dict, got, part=None) -> None:
    expected = _outputs(case["expected"], case)
    try:
        compare_output(got, expected, case, part)
    except Feedback as failure:
        mistakes = {key: _outputs(value, case) for key, value in case["mistakes"].items()}
        found = next((key for key, output in mistakes.items() if _outputs_close(got, output, case, part)), None)
        # every input of a case is fixed (noise, x_T, a seeded generator): a result that changes
        # from one call to the next means some of them were ignored
        if found is None and failure.status == "wrong values":
            again_args, again_kwargs = build_call(case)
            again = call(function, *again_args, **again_kwargs)
            if not _outputs_close(got, again, case, part):
                raise Feedback(f"{function} gave two different results for the same inputs ({case['label']}): it "
                               "ignores the noise or x_T it was given, or draws random numbers without the "
                               "`generator` argument. With noise given nothing random may happen; otherwise draw "
                               "with `generator`.") from None
        if failure.status == "wrong values":
            text = f"{function} gives wrong values for {case['label']}. {failure.message}"
        else:
            text = f"{function}, called with {case['label']}: {failure.message}"
        if found is not None:
            text += f" Likely mistake: {cases_table()['mistakes'][found]}"
        else:
            text += getattr(failure, "hint", "")
        named = Feedback(text + _note(case))
        named.mistake = found
        raise named from None


def _note(case) -> str:
    return f" ({case['note']})" if case.get("note") else ""


def _outputs(spec, case):
    """A shipped output in the structure the function returns: tensor, pair, or list of states."""
    if isinstance(spec, list):
        return [shipped(key) for key in spec]
    if case["output"] == "states":
        return list(shipped(spec).unbind(0))
    return shipped(spec)
