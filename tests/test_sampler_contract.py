"""One contract for every sampler (issue 25, shared/COURSE.md): walks the catalog, so a new sampler cannot drift.

    name(model, shape, schedule, num_steps, *, <its own options>,
         generator=None, x_T=None, trajectory=False, callback=None, progress=False, device=None)

The head is positional and in this order, everything after it keyword-only; flow samplers have no
schedule, and inpainting takes the known image where the others take the shape. The plumbing
(checks, x_T, trajectory, callback, progress, device) is applied once, by plumbing.sampler.
"""

import ast
import importlib
import inspect
from pathlib import Path

import pytest
import torch

from mini_diffusion._base.catalog import EXERCISES
from mini_diffusion.toolkit import multistep
from mini_diffusion.toolkit.plumbing import COMMON, COMMON_DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
DIFFUSION_HEAD = ("model", "shape", "schedule", "num_steps")
HEADS = {  # the heads that differ from DIFFUSION_HEAD, and why (docs/architecture.md, "The sampler contract")
    "fm_sample": ("model", "shape", "num_steps"),  # a velocity model has no noise schedule
    "inpaint_sample": ("model", "x_known", "schedule", "num_steps"),  # one completion per known image, of its shape
}
SAMPLER_EXERCISES = [e for e in EXERCISES if e.function.endswith("_sample") and e.function != "q_sample"]
READY_SAMPLERS = [multistep.dpm_solver_3m_sample, multistep.unipc_sample]


def solution_function(exercise):
    return getattr(importlib.import_module(f"solutions.{exercise.module}"), exercise.function)


def stub_function(exercise):
    return getattr(importlib.import_module(f"mini_diffusion.{exercise.module}"), exercise.function)


def check_contract(function, name):
    parameters = list(inspect.signature(function).parameters.values())
    head = tuple(p.name for p in parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD)
    assert head == HEADS.get(name, DIFFUSION_HEAD), f"{name}: head {head}"
    assert all(p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY) for p in parameters), \
        f"{name}: no *args or **kwargs in a sampler"
    assert [p.name for p in parameters[:len(head)]] == list(head), f"{name}: the head comes first"
    tail = parameters[len(head):]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in tail), f"{name}: everything after the head is keyword-only"
    assert tuple(p.name for p in tail[-len(COMMON):]) == COMMON, f"{name}: the tail ends with the six common options"
    assert {p.name: p.default for p in tail[-len(COMMON):]} == COMMON_DEFAULTS, f"{name}: the common defaults"
    assert callable(getattr(function, "algorithm", None)), f"{name}: the plumbing is plumbing.sampler's"


def test_the_catalog_has_the_samplers():
    assert {e.function for e in SAMPLER_EXERCISES} >= {"ddpm_sample", "ddim_sample", "euler_sample", "heun_sample",
                                                        "dpm_solver_sample", "guided_sample", "inpaint_sample", "fm_sample"}


@pytest.mark.parametrize("exercise", SAMPLER_EXERCISES, ids=lambda e: e.function)
def test_every_exercise_sampler_keeps_the_contract(exercise):
    check_contract(solution_function(exercise), exercise.function)
    check_contract(stub_function(exercise), exercise.function)
    assert inspect.signature(solution_function(exercise)) == inspect.signature(stub_function(exercise))


@pytest.mark.parametrize("function", READY_SAMPLERS, ids=lambda f: f.__name__)
def test_every_ready_sampler_keeps_the_contract(function):
    check_contract(function, function.__name__)


def _preamble(function_node) -> int:
    """How many statements come before `raise NotImplementedError` (a docstring does not count)."""
    body = function_node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]
    for i, statement in enumerate(body):
        if isinstance(statement, ast.Raise):
            return i
    raise AssertionError(f"{function_node.name}: the stub raises no NotImplementedError")


@pytest.mark.parametrize("exercise", SAMPLER_EXERCISES, ids=lambda e: e.function)
def test_a_sampler_stub_gives_at_most_two_statements_before_the_learners_first_line(exercise):
    tree = ast.parse((ROOT / "mini_diffusion" / f"{exercise.module}.py").read_text(encoding="utf-8"))
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == exercise.function)
    assert _preamble(node) <= 2


# --- what the plumbing does, the same for every sampler ------------------------------------------------

def toy(x, t):
    return 0.1 * x + 0.001 * t.to(x.dtype).reshape(-1, *[1] * (x.dim() - 1))


@pytest.fixture(scope="module")
def schedule(make_schedule):
    return make_schedule(torch.linspace(1e-3, 0.2, 20, dtype=torch.float64))


def test_ddpm_sample_20_means_20_steps_or_a_clear_error(schedule):
    from solutions.sampling import ddpm_sample

    with pytest.raises(ValueError, match="num_steps"):
        ddpm_sample(toy, (4, 2), schedule, 5)
    assert ddpm_sample(toy, (4, 2), schedule, 20, x_T=torch.zeros(4, 2)).shape == (4, 2)  # 20 = T: every step
    with pytest.raises(TypeError, match="positional"):
        ddpm_sample(toy, (4, 2), schedule, None, torch.Generator())  # the generator is keyword-only


@pytest.mark.parametrize("name", ["ddpm_sample", "ddim_sample", "euler_sample", "dpm_solver_sample"])
def test_trajectory_callback_and_x_T_mean_the_same_everywhere(name, schedule):
    exercise = next(e for e in SAMPLER_EXERCISES if e.function == name)
    function = solution_function(exercise)
    steps = None if name == "ddpm_sample" else 5
    x_T = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
    seen = []
    states = function(toy, (3, 2), schedule, steps, x_T=x_T, trajectory=True, generator=torch.Generator().manual_seed(1),
                      callback=lambda i, t, x: seen.append((i, t, x)))
    n = schedule.T if steps is None else steps
    assert len(states) == n + 1 and torch.equal(states[0], x_T)
    assert [i for i, _, _ in seen] == list(range(n))
    assert seen[0][1] == schedule.T and all(isinstance(t, int) for _, t, _ in seen)
    assert all(torch.equal(x, state) for (_, _, x), state in zip(seen, states[1:]))
    x0 = function(toy, (3, 2), schedule, steps, x_T=x_T, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(x0, states[-1])


def test_x_T_is_drawn_first_from_the_generator(schedule):
    from solutions.ddim import ddim_sample

    generator = torch.Generator().manual_seed(7)
    drawn = ddim_sample(toy, (3, 2), schedule, 4, generator=generator, trajectory=True)[0]
    torch.testing.assert_close(drawn, torch.randn(3, 2, generator=torch.Generator().manual_seed(7)))


@pytest.mark.parametrize("bad,message", [
    ({"x_T": torch.zeros(2, 2)}, "x_T must be a tensor of the sample shape"),
    ({"trajectory": "yes"}, "trajectory must be True or False"),
    ({"callback": 3}, "callback must be a function"),
    ({"generator": 3}, "generator must be a torch.Generator"),
    ({"progress": 1}, "progress must be True or False"),
])
def test_the_common_options_are_checked_in_one_place(bad, message, schedule):
    from solutions.ddim import ddim_sample
    from solutions.flow import fm_sample

    with pytest.raises((TypeError, ValueError), match=message):
        ddim_sample(toy, (3, 2), schedule, 4, **bad)
    with pytest.raises((TypeError, ValueError), match=message):
        fm_sample(lambda x, t: x, (3, 2), 4, **bad)


def test_a_bad_shape_or_schedule_is_named(schedule):
    from solutions.ddim import ddim_sample

    with pytest.raises(ValueError, match="shape must be the batch shape"):
        ddim_sample(toy, torch.zeros(3, 2), schedule, 4)
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        ddim_sample(toy, (3, 2), "linear", 4)


def test_an_algorithm_that_returns_instead_of_yielding_is_told_so(schedule):
    from mini_diffusion.toolkit.plumbing import sampler

    @sampler("wrong")
    def returns(model, shape, schedule, num_steps, *, x_T):
        return x_T

    @sampler("empty")
    def yields_nothing(model, shape, schedule, num_steps, *, x_T):
        yield from ()

    with pytest.raises(TypeError, match="must yield"):
        returns(toy, (3, 2), schedule, 4)
    with pytest.raises(RuntimeError, match="yielded no step"):
        yields_nothing(toy, (3, 2), schedule, 4)


def test_the_progress_bar_knows_its_length(schedule, capsys):
    from solutions.ddim import ddim_sample

    ddim_sample(toy, (3, 2), schedule, 4, progress=True)
    bar = capsys.readouterr().err
    assert "DDIM" in bar and "0/4 " in bar  # the bar names the sampler and knows its 4 steps
