"""The learner's loop in a real browser, with the stubs: edit, save, check, fix, check again.

JupyterLab serves a copy of the whole course whose exercise files are the untouched stubs (no
solutions lent), as a learner who has just cloned it has. In headless Chromium:
1. open notebook 01, open mini_diffusion/schedules.py in JupyterLab's editor, type a wrong
   linear_betas (one β too many), save, run the check cell: ❌ with the mistake named;
2. fix it in the editor, save, run the check cell again: ✅, with no kernel restart;
3. open notebook 04 with nothing done: the guard shows what to lend, and after running the line
   it prints, the notebook runs until the first cell that needs its own exercises (4.1, 4.2).
"""

import re
import shutil

import pytest

from lab_driver import ARTIFACTS, ROOT, Lab, LabServer

pytestmark = pytest.mark.browser

WRONG = "    return torch.linspace(beta_start, beta_end, T + 1, dtype=torch.float64)\n"
RIGHT = "    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)\n"
STUB_LINE = '    raise NotImplementedError(todo("linear_betas"))\n'

CELL_OUTPUT_JS = """(needle) => {
    const cells = window.jupyterapp.shell.currentWidget.content.model.toJSON().cells;
    const cell = cells.find(c => c.cell_type === 'code' && [].concat(c.source).join('').includes(needle));
    if (!cell) return null;
    return (cell.outputs || []).map(o => [].concat(o.text || o.data?.['text/plain'] || o.evalue || '').join('')).join('\\n');
}"""


@pytest.fixture(scope="module")
def stub_course(tmp_path_factory):
    """A copy of the course with the stubs: the package copied (it gets edited), the rest linked."""
    from mini_diffusion._course.stubs import stubs

    top = tmp_path_factory.mktemp("learner") / "course"
    top.mkdir()
    for entry in ROOT.iterdir():
        if entry.name in ("mini_diffusion", "notebooks"):
            shutil.copytree(entry, top / entry.name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
        elif not entry.name.startswith("."):
            (top / entry.name).symlink_to(entry)
    for path, text in stubs(ROOT).items():
        (top / "mini_diffusion" / path.name).write_text(text, encoding="utf-8")
    return top


@pytest.fixture(scope="module")
def learner_server(browser_context, stub_course, tmp_path_factory):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    scratch = tmp_path_factory.mktemp("learner-jupyter")
    env = {"PYTHONPATH": str(stub_course), "MINI_DIFFUSION_COURSE": str(stub_course)}
    server = LabServer(stub_course, scratch, ARTIFACTS / "learner-server.log", solutions=None, env=env)
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()


def open_path(lab: Lab, *parts: str) -> None:
    """Double-click through the file browser: folders, then the file."""
    for folder in parts[:-1]:
        lab.file_item(folder).dblclick()
        lab.page.wait_for_timeout(500)
    item = lab.file_item(parts[-1])
    item.wait_for(timeout=30_000)
    item.dblclick()
    lab.page.wait_for_function(
        f"() => window.jupyterapp.shell.currentWidget?.title?.label === {parts[-1]!r}"
        " && window.jupyterapp.shell.currentWidget.context?.isReady", timeout=60_000)


def run_cell_containing(lab: Lab, needle: str, timeout: float = 120) -> str:
    """Click the code cell whose source contains needle, Shift+Enter, and wait for its output."""
    lab.page.evaluate("(n) => { const nb = window.jupyterapp.shell.currentWidget.content;"
                      " const i = nb.model.toJSON().cells.findIndex(c => [].concat(c.source).join('').includes(n));"
                      " nb.activeCellIndex = i; nb.mode = 'command'; nb.activeCell.node.scrollIntoView(); }", needle)
    lab.page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-cell-output')")
    lab.page.keyboard.press("Shift+Enter")
    lab.page.wait_for_function(
        "(n) => { const cells = window.jupyterapp.shell.currentWidget.content.model.toJSON().cells;"
        " const c = cells.find(c => [].concat(c.source).join('').includes(n));"
        " return c && (c.outputs || []).length > 0; }", arg=needle, timeout=timeout * 1000)
    lab.wait_for_kernel(timeout)
    return lab.page.evaluate(CELL_OUTPUT_JS, needle)


def type_in_editor(lab: Lab, text: str) -> None:
    """Replace the editor's whole text by typing it (select all, then the keyboard), and save with Ctrl+S."""
    editor = lab.page.locator(".jp-FileEditor:visible .cm-content")
    editor.click()
    lab.page.keyboard.press("Control+a")
    lab.page.keyboard.insert_text(text)
    lab.page.keyboard.press("Control+s")
    lab.page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000)


def test_a_learner_edits_checks_fixes_and_checks_again_without_a_restart(browser_context, learner_server, stub_course):
    schedules = stub_course / "mini_diffusion" / "schedules.py"
    stub = schedules.read_text(encoding="utf-8")
    assert STUB_LINE in stub
    page = browser_context.new_page()
    lab = Lab(page, learner_server, "learner-loop")
    try:
        open_path(lab, "notebooks", "01_forward_process.ipynb")
        lab.wait_for_kernel()
        run_cell_containing(lab, "md.prerequisites(")  # the set-up cell: imports, autoreload

        page.locator(".jp-BreadCrumbs-home").click()
        open_path(lab, "mini_diffusion", "schedules.py")
        type_in_editor(lab, stub.replace(STUB_LINE, WRONG, 1))
        assert WRONG in schedules.read_text(encoding="utf-8"), "the editor saved the learner's code to the file"

        page.locator(".lm-TabBar-tab", has_text="01_forward_process.ipynb").click()
        wrong = run_cell_containing(lab, 'md.check("1.1")')
        page.screenshot(path=ARTIFACTS / "learner-loop-wrong.png")
        assert "❌" in wrong and "1.1" in wrong, f"a wrong linear_betas must fail its check:\n{wrong}"
        assert "T + 1" in wrong, f"the message should name the mistake (one β too many):\n{wrong}"

        page.locator(".lm-TabBar-tab", has_text="schedules.py").click()
        type_in_editor(lab, stub.replace(STUB_LINE, RIGHT, 1))
        page.locator(".lm-TabBar-tab", has_text="01_forward_process.ipynb").click()
        right = run_cell_containing(lab, 'md.check("1.1")')
        page.screenshot(path=ARTIFACTS / "learner-loop-fixed.png")
        assert "✅" in right and "❌" not in right, f"after the fix the check passes, no restart:\n{right}"
    finally:
        schedules.write_text(stub, encoding="utf-8")
        lab.close()


def test_a_learner_who_starts_at_notebook_04_is_shown_what_to_lend_and_gets_to_its_exercises(browser_context, learner_server):
    page = browser_context.new_page()
    lab = Lab(page, learner_server, "start-at-04")
    try:
        open_path(lab, "notebooks", "04_sampling.ipynb")
        lab.wait_for_kernel()
        guard = run_cell_containing(lab, "md.prerequisites(")
        lend = re.search(r"md\.lend\([^)]*\)", guard or "")
        assert lend and "MINI_DIFFUSION_SOLUTIONS=" in guard, f"the guard should print both lending lines:\n{guard}"

        # the learner pastes the printed line into a new cell below and runs it, then runs the rest
        page.keyboard.press("Escape")
        page.keyboard.press("a")  # a new cell above the next one, i.e. below the set-up cell
        page.keyboard.press("Enter")
        page.keyboard.insert_text(lend.group(0))
        page.keyboard.press("Shift+Enter")
        lab.wait_for_kernel()
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-below')")
        state = lab.wait_until_run_finished(timeout=420)
        page.screenshot(path=ARTIFACTS / "learner-start-at-04.png")
        assert state["errors"], "with 4.1 not written, some cell of notebook 04 must stop at it"
        first = state["errors"][0]
        assert "NotImplementedError" in first and re.search(r"Exercise 4\.[12] ", first), (
            f"the first error should be one of notebook 04's own exercises (4.1, 4.2), nothing earlier: "
            f"{state['errors'][:3]}")
    finally:
        lab.close()
