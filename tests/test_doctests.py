"""The `>>>` examples in the docstrings of solutions/*.py and mini_diffusion/toolkit/*.py run, and say what they show.

A learner reads those docstrings in the stubs (the examples are copied there) and in JupyterLab's
help; an example that does not run, or prints something else, teaches the wrong thing. Each
module's examples run with its own globals plus a small namespace of the names they use:
`model` (a toy ε-model of any shape, with trainable numbers so that a loss can go backward),
`schedule`, `x`, `x_t`, `t`, `x0`, `x0_batch`, `x_tilde` and the schedule builders.
"""

import doctest
import importlib
from pathlib import Path

import pytest
import torch
from torch import nn

from mini_diffusion._base.catalog import EXERCISE_MODULES

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.usefixtures("one_thread", "package_uses_solutions")  # linear_schedule runs exercise 1.1


def with_examples(folder: Path, package: str, names) -> list[str]:
    return [f"{package}.{name}" for name in names if ">>>" in (folder / f"{name}.py").read_text(encoding="utf-8")]


TOOLKIT = ROOT / "mini_diffusion" / "toolkit"
MODULES = (with_examples(ROOT / "solutions", "solutions", EXERCISE_MODULES)
           + with_examples(TOOLKIT, "mini_diffusion.toolkit", sorted(p.stem for p in TOOLKIT.glob("*.py") if p.stem != "__init__")))


class ToyEpsModel(nn.Module):
    """ε̂(x_t, t) = a · tanh(x_t) + b · t / T for x_t of any shape [B, ...]."""

    def __init__(self, T: int = 1000):
        super().__init__()
        self.T = T
        self.a = nn.Parameter(torch.tensor(0.5))
        self.b = nn.Parameter(torch.tensor(0.1))

    def forward(self, x_t, t):
        return self.a * torch.tanh(x_t) + self.b * (t.to(x_t.dtype) / self.T).reshape(-1, *[1] * (x_t.dim() - 1))


def namespace() -> dict:
    import mini_diffusion
    from solutions.forward import q_sample

    torch.manual_seed(0)
    return {
        "torch": torch,
        "linear_schedule": mini_diffusion.linear_schedule,
        "cosine_schedule": mini_diffusion.cosine_schedule,
        "NoiseSchedule": mini_diffusion.NoiseSchedule,
        "q_sample": q_sample,
        "schedule": mini_diffusion.linear_schedule(1000),
        "model": ToyEpsModel(1000),
        "x": torch.randn(500, 2),
        "x_t": torch.randn(4, 2),
        "t": torch.tensor([1, 10, 500, 1000]),
        "x0": torch.randn(4, 2),
        "x0_batch": torch.randn(64, 2),
        "x_tilde": torch.randn(4, 2),
    }


def test_there_are_examples_to_run():
    assert {"solutions.forward", "solutions.ddim", "solutions.solvers", "mini_diffusion.toolkit.ode"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_the_docstring_examples_run_and_print_what_they_show(name):
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder().find(module, extraglobs=namespace())
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    report = []
    for test in sorted(tests, key=lambda test: test.name):
        runner.run(test, out=report.append)
    results = runner.summarize(verbose=False)
    assert results.attempted > 0, f"{name} was listed for its examples, but none was found"
    assert results.failed == 0, f"{results.failed} docstring example(s) of {name} failed:\n" + "".join(report)
