"""Every notebook as a learner meets it with nothing done: the guard, the lending line, and no dead end.

For each notebook N, with the untouched stubs:
1. its first cell prints the guard, and for a notebook that builds on earlier exercises the exact
   MINI_DIFFUSION_SOLUTIONS=… line that lends just those (its spec's `needs`, none written yet);
2. with exactly that value set, the notebook runs until its first cell that needs one of its own
   exercises, and the error there names that exercise ("Exercise 4.1 …"): no earlier cell fails;
3. lending its own exercises there (md.lend, no restart), that cell runs.
That the rest runs through with exactly its needs and its own exercises lent is nbval's one run of
the notebook (notebooks/conftest.py lends exactly those), so no notebook runs through twice; a
notebook that calls an earlier exercise its spec does not declare fails there.
Notebook 00 has no exercises: nbval runs it with the stubs alone (notebooks/conftest.py lends nothing).
"""

import os
import re
from pathlib import Path

import pytest

from mini_diffusion._base import catalog

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
LENDING_LINE = re.compile(r"MINI_DIFFUSION_SOLUTIONS=([0-9.,]+)")


def _client(path: Path, solutions: str):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    env = {k: v for k, v in os.environ.items() if k != "MINI_DIFFUSION_SOLUTIONS"}
    if solutions:
        env["MINI_DIFFUSION_SOLUTIONS"] = solutions
    env["MPLBACKEND"] = "Agg"
    client = NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    return notebook, client, env


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", "") or "")
        parts.append(str(output.get("data", {}).get("text/plain", "")))
        parts.append(" ".join(output.get("traceback", []) or []) + output.get("evalue", ""))
    return "\n".join(parts)


def _run(path: Path, solutions: str, stop_after_first_code_cell=False, lend_on_error=()):
    """Execute the notebook cell by cell. Returns (outputs of the first code cell, index and text of
    the first error, the error of that cell run again after lending `lend_on_error`, or None)."""
    from nbclient.exceptions import CellExecutionError

    notebook, client, env = _client(path, solutions)
    first_output, first_error, later_error = None, None, None
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        with client.setup_kernel():
            code_cells = [(i, c) for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
            position = 0
            while position < len(code_cells):
                index, cell = code_cells[position]
                try:
                    client.execute_cell(cell, index)
                except CellExecutionError:
                    if first_error is None:
                        first_error = (index, _text(cell))
                        if not lend_on_error:
                            break
                        lend = notebook.cells[index].copy()
                        lend.source = "md.lend(" + ", ".join(f'"{i}"' for i in lend_on_error) + ")"
                        lend.outputs = []
                        client.execute_cell(lend, index)
                        continue  # the same cell again, now with the notebook's own exercises lent
                    later_error = (index, _text(cell))
                    break
                if first_error is not None:
                    break  # the failed cell ran once lent: nbval runs the rest (notebooks/conftest.py)
                if first_output is None:
                    first_output = _text(cell)
                    if stop_after_first_code_cell:
                        break
                position += 1
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return first_output, first_error, later_error


def _number(path: Path) -> str:
    return path.name[:2]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_guides_a_learner_who_has_written_nothing(path):
    number = _number(path)
    own = [e.id for e in catalog.exercises_of_notebook(number)]
    needs = [i for i in catalog.needs(number) if i not in own]
    first, _, _ = _run(path, "", stop_after_first_code_cell=True)
    assert first is not None, f"notebook {number}'s first code cell failed with the stubs"
    found = LENDING_LINE.search(first)
    if needs:
        assert found, f"notebook {number}'s first cell should print the MINI_DIFFUSION_SOLUTIONS=… line:\n{first}"
        assert found.group(1).split(",") == needs, (
            f"the guard should lend exactly the notebook's needs {needs}; it printed {found.group(1)}")
        assert "md.lend(" in first, "the guard also gives the in-notebook call"
    else:
        assert not found, f"notebook {number} builds on nothing earlier, yet its guard asks to lend:\n{first}"

    if not own:  # nbval runs it through with the stubs alone (notebooks/conftest.py lends its needs: none)
        assert not needs, f"notebook {number} has no exercises and should build on none"
        return
    _, error, later = _run(path, ",".join(needs), lend_on_error=tuple(own))
    assert error is not None, f"with only its needs lent, notebook {number} should stop at one of its own exercises"
    index, text = error
    named = re.search(r"Exercise (\d+\.\d+)", text)
    assert named and named.group(1) in own, (
        f"notebook {number}, cell {index}: the first error should name one of its own exercises {own}, so no "
        f"earlier cell depends on an undeclared exercise; it says:\n{text[-1500:]}")
    assert later is None, (
        f"notebook {number}, cell {later[0]}: after md.lend of its own exercises (no restart) the cell that "
        f"stopped must run\n{later[1][-1500:]}")
