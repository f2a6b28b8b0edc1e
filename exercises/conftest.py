"""The grader as a pytest plugin: points per exercise, one-paragraph feedback, a grade table.

    pytest exercises/                              grade everything, table at the end
    pytest exercises/ --exercise 1.4               one exercise (or 1.3,1.4, or 4 for notebook 04)
    pytest exercises/ --grade-report results.json  also write Gradescope's results.json

Each check is a test marked `@pytest.mark.exercise("1.4", points=1)`. A failing check's report
is the grader's message (a `_grading.Feedback`), not a traceback. Every check runs under a time
limit (pytest-timeout, signal method), so a function that never returns fails and the run goes on.
"""

import json
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
HIDDEN = HERE / "hidden"  # checks kept back until the due date: left out of the student release
if str(HERE) not in sys.path:  # the support modules, whatever pytest's import mode
    sys.path.insert(0, str(HERE))

from _grading import Feedback, cap, package  # noqa: E402
from _report import _COLLECT_ERRORS, _LENT_NOTE, _function_name, _lent, _table, _uses, gradescope_results  # noqa: E402

DEFAULT_TIMEOUT = 30.0  # seconds per check; samplers on a slow laptop take a few
# The signal method stops a check and goes on; Windows has no SIGALRM, and the thread method
# there ends the whole run at the first hang (still better than hanging for ever).
TIMEOUT_METHOD = "signal" if hasattr(signal, "SIGALRM") else "thread"
RESULTS = pytest.StashKey[dict]()
STARTED = pytest.StashKey[float]()


def pytest_addoption(parser):
    group = parser.getgroup("mini-diffusion grader")
    group.addoption("--grade-report", metavar="PATH", default=None,
                    help="write the grade as Gradescope's results.json to PATH")
    group.addoption("--exercise", metavar="IDS", default=None,
                    help="grade only these exercises: 1.4, or 1.3,1.4, or 4 for all of notebook 04")
    group.addoption("--exercise-timeout", metavar="SECONDS", type=float, default=None,
                    help=f"time limit per check (default {DEFAULT_TIMEOUT:g} s, longer for sample-quality checks)")
    group.addoption("--worker-tree", metavar="DIR", default=None,
                    help="grade in isolation (the Gradescope driver): run the learner's code only in a locked-down "
                         "worker that serves the package in DIR; this process never imports it")
    group.addoption("--worker-scratch", metavar="DIR", default=None, help="the worker's own writable folder")
    group.addoption("--judge", action="store_true", default=False,
                    help="this process is the Gradescope judge (the driver passes it, with --worker-tree): the "
                         "package's exercise modules are the reference solutions, for the grader's stand-ins and "
                         "fresh cases only; the graded code is the worker's, so nothing is lent")
    group.addoption("--grading-seed", metavar="N", type=int, default=None,
                    help="draw the graded cases' inputs afresh from this seed, with the reference solutions "
                         "(the Gradescope driver; default: the shipped cases of exercises/expected/)")


def pytest_configure(config):
    config.addinivalue_line("markers", "exercise(id, points): a graded check of exercise `id`, worth `points`")
    config.addinivalue_line("markers", "slow: a check that trains or samples for a few seconds")
    if not config.pluginmanager.hasplugin("timeout"):
        config.addinivalue_line("markers", "timeout(seconds): per-test limit (needs pytest-timeout)")
    config.stash[RESULTS] = {}
    config.stash[STARTED] = time.time()
    _COLLECT_ERRORS.clear()
    import _grading

    tree = _option(config, "worker_tree")
    if _option(config, "judge"):
        if not tree:
            raise pytest.UsageError("--judge grades a submission in a worker: it needs --worker-tree")
        from mini_diffusion._course import seam

        seam.judge()  # the reference, for the judge's own use: not lending
    if tree:
        _grading.use_worker(tree, _option(config, "worker_scratch") or tree)
    seed = _option(config, "grading_seed")
    if seed is not None:
        _grading.use_fresh_cases(seed)


def pytest_unconfigure(config):
    import _grading

    _grading.stop_worker()


def _is_hidden(item) -> bool:
    return HIDDEN in Path(item.path).resolve().parents


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    """The hidden checks run after the visible ones, in a fresh worker (isolated mode): nothing the
    learner's code saw in them can reach a visible check's message."""
    import _grading

    previous = item.config.stash.get(_PREVIOUS_HIDDEN, False)
    if _is_hidden(item) and not previous:
        _grading.stop_worker()
    item.config.stash[_PREVIOUS_HIDDEN] = _is_hidden(item)
    marker = _exercise_marker(item)
    if marker is not None and _grading.isolated():  # each exercise in a session of its own (worker_sessions.py)
        _grading.begin_exercise(marker.args[0])
    yield


_PREVIOUS_HIDDEN = pytest.StashKey[bool]()


def _option(config, name):
    try:
        return config.getoption(name)
    except ValueError:  # the plugin's options are missing when this conftest was not loaded first
        return None


def _exercise_marker(item):
    return item.get_closest_marker("exercise")


def _wanted(exercise_id: str, selection: str | None) -> bool:
    if not selection:
        return True
    for wanted in (s.strip() for s in selection.split(",")):
        if exercise_id == wanted or ("." not in wanted and exercise_id.split(".")[0] == wanted.lstrip("0")):
            return True
    return False


@pytest.hookimpl(tryfirst=True)  # before -k, so that `-k 1.4` or `-k q_sample` can select
def pytest_collection_modifyitems(config, items):
    selection = _option(config, "exercise")
    keep, drop = [], []
    for item in items:
        marker = _exercise_marker(item)
        if marker is None:
            keep.append(item)
            continue
        if not _wanted(marker.args[0], selection):
            drop.append(item)
            continue
        keep.append(item)
        item.extra_keyword_matches.update({marker.args[0], _function_name(marker.args[0])})
        seconds = _option(config, "exercise_timeout") or marker.kwargs.get("timeout", DEFAULT_TIMEOUT)
        item.add_marker(pytest.mark.timeout(seconds, method=TIMEOUT_METHOD), append=False)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = sorted(keep, key=_is_hidden)  # stable: the visible checks first, in their order, then the hidden


@pytest.fixture(autouse=True)
def _one_cpu_thread():
    """The checks use small tensors, which PyTorch's threads slow down on a few CPU cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _title(item) -> str:
    doc = (getattr(item, "function", None).__doc__ or "").strip().splitlines()
    return doc[0].strip() if doc else item.name


def _explain(excinfo, item) -> tuple[str, str]:
    """(status, message) for a failed check."""
    err = excinfo.value
    if isinstance(err, Feedback):
        status = {"wrong values": "failed"}.get(err.status, err.status)
        return status, err.message
    text = str(err)
    if "Timeout" in text and "pytest-timeout" in text:
        seconds = item.get_closest_marker("timeout").args[0]
        return "timed out", (f"did not finish within {seconds:g} s and was stopped: an endless loop, or many more "
                             "steps than needed? (The other checks went on.)")
    if isinstance(err, NotImplementedError):
        return "not implemented", f"not implemented yet: {text}"
    try:  # a package that does not import breaks the grader's own imports too: say that, not "grader error"
        package()
    except Feedback as broken:
        return broken.status, broken.message
    return "grader error", (f"the grader itself failed here ({type(err).__name__}: {text}). This is not your "
                            "mistake; please report it.")


FAILURE = pytest.StashKey[str]()  # why the grader itself could not run (isolated mode): then nothing is graded
FAILURE_EXIT = 3  # the judge's exit status then (the driver reads the report's extra_data too)


def _grader_failure(item, call) -> str | None:
    """The reason the grader could not run this check (its worker could not start: _grading.grader_failure),
    or None. Then no check is graded: the session stops, and the report says so (not the student's doing)."""
    import _grading

    failure = _grading.grader_failure()
    if failure is None:
        return None
    item.config.stash[FAILURE] = failure
    item.session.shouldstop = "the autograder could not run"
    return failure


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    marker = _exercise_marker(item)
    if marker is None:
        return report
    failure = item.config.stash.get(FAILURE, None) or _grader_failure(item, call)
    if failure is not None:  # no points, and no message blaming the submission: the grade says why
        item.config.stash[RESULTS].pop(item.nodeid, None)
        if report.failed:
            report.longrepr = f"[not graded] the autograder could not run: {failure}"
        return report
    exercise_id, points = marker.args[0], marker.kwargs.get("points", 1)
    function = _function_name(exercise_id)
    results = item.config.stash[RESULTS]
    entry = results.setdefault(item.nodeid, {
        "exercise": exercise_id, "function": function, "title": _title(item), "max_score": points,
        "score": 0, "status": "not run", "output": "", "hidden": _is_hidden(item),
    })
    if report.failed:
        status, message = _explain(call.excinfo, item) if call.excinfo else ("grader error", str(report.longrepr))
        # a loop exercise calls its module's step exercise (Exercise.uses in the spec): when the step
        # fails too, say so at the loop
        failed_before = [u for u in _uses(exercise_id) if any(
            e["exercise"] == u and e["status"] != "passed" for e in results.values())]
        if failed_before and status in ("failed", "error"):
            message += (f" (This exercise calls your {', '.join(_function_name(u) for u in failed_before)}, which "
                        f"fails its own checks ({', '.join(failed_before)}): fix that first.)")
        message = cap(message)
        entry.update(status=status, output=message, score=0)
        report.longrepr = f"[{exercise_id} {function}] {message}"
        report.sections = [(title, cap(text)) for title, text in report.sections]
    elif report.when == "call" and report.passed:
        entry.update(status="passed", output=_LENT_NOTE if exercise_id in _lent() else "", score=points)
    return report


def pytest_collectreport(report):
    """A grader file that does not even load still shows up in the grade."""
    if report.failed and str(report.fspath).startswith(str(HERE)):
        _COLLECT_ERRORS.append((str(report.fspath), cap(str(report.longrepr))))


def pytest_terminal_summary(terminalreporter, config):
    failure = config.stash.get(FAILURE, None)
    if failure is not None:
        from mini_diffusion._course.release import not_graded_message

        terminalreporter.write_sep("=", "mini-diffusion: not graded")
        terminalreporter.write_line(not_graded_message(failure))
        return
    results = config.stash[RESULTS]
    if not results and not _COLLECT_ERRORS:
        return
    terminalreporter.write_sep("=", "mini-diffusion grade")
    terminalreporter.write_line(_table(results, terminalreporter._tw.fullwidth))
    import _grading

    if _grading.worker_note():
        terminalreporter.write_line(_grading.worker_note())
    if not config.pluginmanager.hasplugin("timeout"):
        terminalreporter.write_line("(pytest-timeout is not installed: a function that never returns will hang "
                                    "the grader; `pip install pytest-timeout`)")
    path = _option(config, "grade_report")
    if path:
        terminalreporter.write_line(f"grade report: {path}")


def pytest_sessionfinish(session, exitstatus):
    failure = session.config.stash.get(FAILURE, None)
    if failure is not None:
        session.exitstatus = FAILURE_EXIT
    path = _option(session.config, "grade_report")
    if not path:
        return
    seconds = time.time() - session.config.stash[STARTED]
    if failure is not None:
        from mini_diffusion._course.release import not_graded_report

        Path(path).write_text(json.dumps(not_graded_report(failure, seconds), indent=2, ensure_ascii=False) + "\n",
                              encoding="utf-8")
        return
    results = session.config.stash[RESULTS]
    report = gradescope_results(results, seconds)
    Path(path).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

