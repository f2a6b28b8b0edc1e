"""The notebook pairs (notebooks/NN_name.py and .ipynb) stay in step, and tools/notebooks.py keeps them so."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("notebooks_tool", ROOT / "tools" / "notebooks.py")
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)

SOURCE = '''# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A tiny notebook

# %%
x = 6 * 7
print("not kept")

# %%
# NBVAL_CHECK_OUTPUT
print(x)
'''


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "00_tiny.py").write_text(SOURCE)
    return tmp_path


def test_every_committed_notebook_pair_is_in_step():
    assert tool.pairs(), "there are no notebooks/NN_name.py sources to check"
    found = tool.problems()
    assert not found, "notebook pairs are out of step:\n" + "\n".join(found)


def test_sync_stores_the_output_of_checked_cells_only(folder):
    tool.sync(folder=folder, log=lambda _: None)
    cells = nbformat.read(folder / "00_tiny.ipynb", as_version=4).cells
    assert cells[1].outputs == [] and cells[1].execution_count is None, "an unchecked cell kept its output"
    assert [o.text for o in cells[2].outputs] == ["42\n"], "the checked cell's printed value was not stored"
    assert cells[2].execution_count is not None, "nbval skips stored outputs of a cell without an execution count"
    assert tool.problems(folder=folder) == []


def test_rebuilding_an_unchanged_source_gives_the_same_file(folder):
    target = folder / "00_tiny.ipynb"
    assert tool.write(tool.build(folder / "00_tiny.py"), target) is True
    assert tool.write(tool.build(folder / "00_tiny.py"), target) is False, (
        "a rebuild of an unchanged source changed the .ipynb (random cell ids would make every sync a diff)"
    )


def test_check_reports_a_source_edited_after_the_last_sync(folder):
    tool.write(tool.build(folder / "00_tiny.py"), folder / "00_tiny.ipynb")
    (folder / "00_tiny.py").write_text(SOURCE.replace("6 * 7", "6 * 9"))
    found = tool.problems(folder=folder)
    assert any("differs from 00_tiny.py at cell 1" in p for p in found), f"the edit went unnoticed: {found}"


def test_check_reports_a_missing_notebook_and_an_orphan(folder):
    (folder / "01_orphan.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    found = " ".join(tool.problems(folder=folder))
    assert "00_tiny.ipynb is missing" in found and "01_orphan.ipynb has no 01_orphan.py" in found, found


def test_strip_drops_saved_outputs_but_keeps_the_checked_ones(folder):
    nb = tool.build(folder / "00_tiny.py")
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="not kept\n")]
    nb.cells[1].execution_count = 1
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="42\n")]
    nb.cells[2].execution_count = 2
    tool.write(nb, folder / "00_tiny.ipynb")
    assert any("saved outputs" in p for p in tool.problems(folder=folder))
    tool.strip(folder=folder, log=lambda _: None)
    cells = nbformat.read(folder / "00_tiny.ipynb", as_version=4).cells
    assert cells[1].outputs == [] and cells[1].execution_count is None
    assert [o.text for o in cells[2].outputs] == ["42\n"], "strip removed a checked output nbval needs"
    assert tool.problems(folder=folder) == []


def test_an_unknown_notebook_name_is_refused(folder):
    with pytest.raises(SystemExit, match="no notebook source 99"):
        tool.pairs(["99"], folder)
