"""The course in a real browser: JupyterLab opens every notebook, runs it top to bottom with no
error shown, and the widgets react to a learner's clicks.

Each notebook is opened by double-clicking it in the file browser and run with Run → Run All
Cells from the menu bar, two notebooks at a time (see NotebookRuns). Screenshots of every
notebook and of the widgets before and after a click go to test-artifacts/browser/.
"""

import contextlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lab_driver import ARTIFACTS, NOTEBOOKS, ROOT, Lab

pytestmark = pytest.mark.browser

NOTEBOOK_FILES = sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))
RUN_TIMEOUT_S = 420  # one notebook, Run All to idle; nbval runs the same cells under its own limit
TEST_TIMEOUT_S = RUN_TIMEOUT_S + 120
REDRAW_TIMEOUT_S = 60
FORWARD = "01_forward_process.ipynb"
SCHEDULES = "05_noise_schedules.ipynb"
KEPT_OPEN = {FORWARD, SCHEDULES}  # their widgets are tested after the run, in the same tab
PARALLEL_RUNS = 2
NOTEBOOK_TEST = "test_notebook_runs_top_to_bottom_in_jupyterlab_and_shows_no_error_or_raw_latex"


@dataclass
class Run:
    name: str
    lab: Lab
    started: float
    seconds: float = 0.0
    state: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    screenshots: list = field(default_factory=list)


class NotebookRuns:
    """Runs notebooks in JupyterLab, each once per session, PARALLEL_RUNS at a time.

    The notebooks' kernels use one CPU thread each, so while one test waits for its notebook,
    the next planned notebook already runs in a tab of its own on the other core.
    """

    def __init__(self, open_lab, server, planned: list):
        self.open_lab, self.server, self.planned = open_lab, server, planned
        self.runs, self.failures = {}, {}

    def get(self, name: str) -> Run:
        """Open `name` from the file browser, Run All Cells, wait for the end (or reuse that run)."""
        if name not in self.runs and name not in self.failures:
            self._start(name)
        later = self.planned[self.planned.index(name) + 1:] if name in self.planned else []
        for upcoming in [n for n in later if n not in self.runs][: PARALLEL_RUNS - 1]:
            self._start(upcoming, quietly=True)
        if name in self.failures:
            pytest.fail(f"{name} could not be run in JupyterLab: {self.failures[name]}", pytrace=False)
        run = self.runs[name]
        if not run.state:
            self._guard(name, self._finish, run)
        return run

    def _start(self, name: str, quietly: bool = False) -> None:
        def start():
            lab = self.open_lab(Path(name).stem)
            self.runs[name] = Run(name, lab, time.monotonic())
            lab.open_from_file_browser(name)
            lab.wait_for_kernel()
            lab.run_all_cells()

        try:
            self._guard(name, start)
        except Exception:
            if not quietly:  # a notebook started ahead reports its failure in its own test
                raise

    def _finish(self, run: Run) -> None:
        run.state = run.lab.wait_until_run_finished(RUN_TIMEOUT_S)
        run.seconds = time.monotonic() - run.started
        run.problems = run.lab.problems()
        run.screenshots = run.lab.screenshot_notebook(Path(run.name).stem)
        if run.name not in KEPT_OPEN:
            self.server.shut_down_kernel(run.name)
            run.lab.close()

    def _guard(self, name: str, step, *args) -> None:
        try:
            step(*args)
        except BaseException as error:  # a pytest-timeout too: picture the tab, stop the kernel, fail
            self.failures[name] = (str(error).splitlines() or [type(error).__name__])[0]
            self.server.shut_down_kernel(name)  # a runaway kernel would slow every later test
            if name in self.runs and not self.runs[name].lab.page.is_closed():
                with contextlib.suppress(Exception):  # the picture is a courtesy; the error above is the news
                    self.runs[name].lab.page.screenshot(path=ARTIFACTS / f"FAILED-{Path(name).stem}.png")
            raise


@pytest.fixture(scope="session")
def run_notebook(open_lab, lab_server, request):
    """run_notebook(name) -> Run, for the notebooks' tests (see NotebookRuns)."""
    # The session also holds nbval's notebook cells, which have neither originalname nor callspec.
    planned = [item.callspec.params["name"] for item in request.session.items
               if getattr(item, "originalname", None) == NOTEBOOK_TEST and hasattr(item, "callspec")]
    return NotebookRuns(open_lab, lab_server, planned).get


def picture_next_to(widget):
    """The first image (or canvas) in the same cell output as `widget`: what a widget redraws."""
    cell_output = widget.locator("xpath=ancestor::div[contains(@class, 'jp-OutputArea-output')][last()]")
    return cell_output.locator("img, canvas").first


def wait_for_redraw(picture, before: bytes, what: str) -> bytes:
    from playwright.sync_api import Error as PlaywrightError

    deadline = time.monotonic() + REDRAW_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            after = picture.screenshot(timeout=5_000)
        except PlaywrightError:  # caught while the old picture was being replaced by the new one
            after = before
        if after != before:
            return after
        time.sleep(0.5)
    raise AssertionError(f"{what}, but the picture stayed the same for {REDRAW_TIMEOUT_S} s")


# --- The harness itself ----------------------------------------------------------------------

FAILING_NOTEBOOK = {
    "cells": [
        {"cell_type": "code", "metadata": {"tags": ["raises-exception"]}, "execution_count": None, "outputs": [],
         "source": "raise KeyError('meant to fail')"},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": (
            "import ipywidgets as widgets\nout = widgets.Output()\n"
            "with out:\n    raise ValueError('a widget callback failed')\n"
            "widgets.VBox([out, widgets.RadioButtons(options=['$x_t$', 'noise'])])")},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": "1 / 0"},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": "print('not reached')"},
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_the_harness_reports_errors_skipped_cells_and_raw_latex(open_lab, lab_server):
    name = "zz_harness_check.ipynb"
    path = lab_server.root / name
    path.write_text(json.dumps(FAILING_NOTEBOOK))
    lab = open_lab("harness-check")
    try:
        lab.open_from_file_browser(name)
        lab.wait_for_kernel()
        lab.run_all_cells()
        lab.wait_until_run_finished(60)
        problems = lab.problems()
    finally:
        lab_server.shut_down_kernel(name)
        lab.close()
        path.unlink()
    text = "\n".join(problems)
    assert "ZeroDivisionError" in text, f"an error output went unnoticed; the harness saw: {problems}"
    assert "Output widget shows a traceback" in text, f"a traceback inside a widget went unnoticed: {problems}"
    assert "1 of 4 code cells never ran" in text, f"a cell that Run All skipped went unnoticed: {problems}"
    assert "KeyError" not in text, f"a cell tagged raises-exception was reported: {problems}"
    assert "raw LaTeX: $x_t$" in text, f"LaTeX left unrendered in a widget went unnoticed: {problems}"


# --- Every notebook --------------------------------------------------------------------------


@pytest.mark.timeout(TEST_TIMEOUT_S)
@pytest.mark.parametrize("name", NOTEBOOK_FILES)
def test_notebook_runs_top_to_bottom_in_jupyterlab_and_shows_no_error_or_raw_latex(run_notebook, name,
                                                                                    record_property):
    run = run_notebook(name)
    record_property("run_all_seconds", round(run.seconds, 1))
    assert run.state["code_cells"] > 0, f"{name} opened with no code cells: did the notebook load?"
    if run.problems:
        pytest.fail(f"{name}, run in JupyterLab with Run All Cells, shows errors (see "
                    f"{run.screenshots[0].relative_to(ROOT)}):\n  " + "\n  ".join(run.problems), pytrace=False)


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_jupytext_py_source_opens_as_a_notebook(open_lab, lab_server):
    jupytext = pytest.importorskip("jupytext")
    name = Path(FORWARD).with_suffix(".py").name
    if not (NOTEBOOKS / name).exists():
        pytest.skip(f"notebooks/{name} does not exist yet")
    expected = len(jupytext.read(NOTEBOOKS / name).cells)
    lab = open_lab("jupytext")
    try:
        lab.open_from_file_browser(name, open_with="Jupytext Notebook")
        state = lab.state()
        rendered = lab.page.locator(".jp-NotebookPanel:visible .jp-Cell").count()
        lab.page.screenshot(path=ARTIFACTS / "jupytext-py-as-notebook.png")
    finally:
        lab_server.shut_down_kernel(name)
        lab.close()
    assert state["cells"] == expected, (
        f"{name} opened as a notebook with {state['cells']} cells, but jupytext reads {expected} from the file")
    assert rendered == expected, f"the notebook model has {expected} cells but the page shows {rendered}"


# --- Widgets ---------------------------------------------------------------------------------


def skip_if_missing(name):
    if name not in NOTEBOOK_FILES:
        pytest.skip(f"notebooks/{name} does not exist yet")


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_moving_the_t_slider_in_01_redraws_the_noised_picture(run_notebook):
    skip_if_missing(FORWARD)
    page = run_notebook(FORWARD).lab.page
    label = page.locator(".widget-label", has_text=re.compile(r"^\s*t\s*$"))
    slider = page.locator(".widget-slider", has=label).first
    assert slider.count(), f"{FORWARD} shows no slider labelled 't'"
    slider.scroll_into_view_if_needed()
    readout = slider.locator(".widget-readout")
    picture = picture_next_to(slider)
    value_before, before = readout.inner_text(), picture.screenshot(path=ARTIFACTS / "01-t-slider-before.png")

    handle, track = slider.locator(".noUi-handle").bounding_box(), slider.locator(".noUi-base").bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(track["x"] + 0.4 * track["width"], handle["y"] + handle["height"] / 2, steps=8)
    page.mouse.up()

    assert readout.inner_text() != value_before, f"dragging the t slider left its value at {value_before}"
    after = wait_for_redraw(picture, before, f"t moved from {value_before} to {readout.inner_text()}")
    (ARTIFACTS / "01-t-slider-after.png").write_bytes(after)


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_a_quiz_answer_in_01_shows_its_feedback(run_notebook):
    skip_if_missing(FORWARD)
    page = run_notebook(FORWARD).lab.page
    feedback = page.locator(".quiz-feedback").first
    assert feedback.count(), f"{FORWARD} shows no quiz (no element with class quiz-feedback)"
    question = feedback.locator("xpath=..")
    question.scroll_into_view_if_needed()
    assert not feedback.inner_text().strip(), "the quiz shows feedback before any answer was checked"
    option = question.locator(".widget-radio-box label").first
    option.click()
    question.get_by_role("button", name="Check").click()
    page.wait_for_function("el => el.innerText.trim().length > 0", arg=feedback.element_handle(),
                           timeout=REDRAW_TIMEOUT_S * 1000)
    text = feedback.inner_text().strip()
    assert "Pick an answer" not in text, f"the click on “{option.inner_text()}” did not select it: {text}"
    question.screenshot(path=ARTIFACTS / "01-quiz-feedback.png")


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_the_schedule_explorer_in_05_redraws_when_the_schedule_changes(run_notebook):
    skip_if_missing(SCHEDULES)
    page = run_notebook(SCHEDULES).lab.page
    label = page.locator(".widget-label", has_text=re.compile(r"^\s*schedule\s*$"))
    toggle = page.locator(".widget-toggle-buttons", has=label).first
    assert toggle.count(), f"{SCHEDULES} shows no schedule explorer (toggle buttons labelled 'schedule')"
    toggle.scroll_into_view_if_needed()
    picture = picture_next_to(toggle)
    before = picture.screenshot(path=ARTIFACTS / "05-explorer-linear.png")
    toggle.locator("button", has_text=re.compile(r"^\s*cosine\s*$")).click()
    after = wait_for_redraw(picture, before, "the explorer was switched from linear to cosine")
    (ARTIFACTS / "05-explorer-cosine.png").write_bytes(after)
