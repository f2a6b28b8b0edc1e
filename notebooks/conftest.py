"""nbval runs each notebook with exactly the exercises it declares lent, not all of them.

A notebook's kernel starts when its first cell is set up, and it inherits this process's
environment. Setting MINI_DIFFUSION_SOLUTIONS to the notebook's own exercises plus its spec's
`needs` for that moment makes nbval's one run prove two things at once: the notebook runs
through with the reference solutions, and it calls no earlier exercise it does not declare
(tests/test_notebooks_with_stubs.py then only needs to run each notebook up to its first
exercise, not through a second time). Notebook 00 has no exercises and runs with the stubs.
"""

import os
import re

import pytest

from mini_diffusion._base import catalog

SWITCH = "MINI_DIFFUSION_SOLUTIONS"


def declared_solutions(number: str) -> str:
    """The lending value for notebook `number` ("04"): its needs, then its own exercises."""
    own = [e.id for e in catalog.exercises_of_notebook(number)]
    needs = [i for i in catalog.needs(number) if i not in own]
    return ",".join(needs + own)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    found = re.match(r"(\d\d)_", item.path.name) if item.path.suffix == ".ipynb" else None
    if found is None:
        yield
        return
    before = os.environ.get(SWITCH)
    value = declared_solutions(found.group(1))
    if value:
        os.environ[SWITCH] = value
    else:
        os.environ.pop(SWITCH, None)
    try:
        yield  # the notebook's kernel starts here, with the first cell's setup
    finally:
        if before is None:
            os.environ.pop(SWITCH, None)
        else:
            os.environ[SWITCH] = before
