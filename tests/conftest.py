"""Shared fixtures for the project's tests.

The tests import the reference solutions directly (`from solutions import forward`), so they
check the solutions whether or not MINI_DIFFUSION_SOLUTIONS is set for the run, and they
never depend on the learner's stubs. Nothing here sets that variable for anyone else.
"""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import mini_diffusion  # noqa: E402  (after the path is set, so `solutions` is the one next to it)
from mini_diffusion._base.catalog import EXERCISE_MODULES  # noqa: E402
from mini_diffusion.toolkit.diffusion_process import NoiseSchedule  # noqa: E402
from solutions import schedules as solution_schedules  # noqa: E402

CUDA = pytest.param(
    "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
)


def schedule_from_betas(betas) -> NoiseSchedule:
    """A NoiseSchedule whose ᾱ comes from the reference solution, not from the learner's stub."""
    betas = torch.as_tensor(betas, dtype=torch.float64)
    return NoiseSchedule(betas, alpha_bars=solution_schedules.alpha_bars_from_betas(betas))


@pytest.fixture(scope="session")
def make_schedule():
    """make_schedule(betas) -> NoiseSchedule built with the reference solutions."""
    return schedule_from_betas


@pytest.fixture(scope="session")
def linear():
    """The DDPM schedule, T = 1000, β from 1e-4 to 0.02."""
    return schedule_from_betas(solution_schedules.linear_betas(1000))


@pytest.fixture(scope="session")
def cosine():
    """The cosine schedule, T = 1000, s = 0.008, β capped at 0.999."""
    alpha_bars = solution_schedules.cosine_alpha_bars(1000)
    return schedule_from_betas(solution_schedules.betas_from_alpha_bars(alpha_bars))


@pytest.fixture(scope="session")
def single_step():
    """T = 1: one noising step with β_1 = 0.3, the smallest schedule there is."""
    return schedule_from_betas([0.3])


@pytest.fixture
def one_thread():
    """PyTorch on one CPU thread during a test: on a 2-core machine its threads slow small tensors down."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=["cpu", CUDA])
def device(request):
    return torch.device(request.param)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture(params=["contiguous", "transposed", "strided", "channels_last"])
def layout(request):
    """How x sits in memory: the functions must not assume a contiguous tensor."""
    return request.param


def random_x(layout="contiguous", dtype=torch.float64, device="cpu", seed=0, batch=6):
    """A standard-normal batch [batch, ...] laid out in memory as `layout` says."""
    generator = torch.Generator().manual_seed(seed)

    def draw(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)

    if layout == "contiguous":
        return draw(batch, 3)
    if layout == "transposed":
        x = draw(3, batch).T
    elif layout == "strided":
        x = draw(batch, 6)[:, ::2]
    elif layout == "channels_last":
        x = draw(batch, 4, 4, 2).permute(0, 3, 1, 2)
    else:
        raise ValueError(f"unknown layout {layout!r}")
    assert not x.is_contiguous()
    return x


@pytest.fixture(scope="session")
def make_x():
    """make_x(layout="contiguous", dtype=float64, device="cpu", seed=0, batch=6) -> x."""
    return random_x


def timesteps(case: str, T: int, batch: int = 6):
    """(t, per-sample list of ints) for a test case: "t=1", "t=T" (Python ints) or "mixed" (int64 [batch])."""
    if case == "t=1":
        return 1, [1] * batch
    if case == "t=T":
        return T, [T] * batch
    if case == "mixed":
        t = torch.tensor([1, T, min(2, T), max(T // 2, 1), max(T - 1, 1), min(17, T)] * batch)[:batch]
        return t, t.tolist()
    raise ValueError(f"unknown case {case!r}")


@pytest.fixture(params=["t=1", "t=T", "mixed"])
def t_case(request):
    return request.param


@pytest.fixture(scope="session")
def make_t():
    """make_t(case, T, batch=6) -> (t, [t of each sample])."""
    return timesteps


def cast_on_use(schedule, dtype):
    """(betas, alphas, alpha_bars) as Python floats, after the cast to `dtype` that every function does.

    Schedules are stored in float64 and cast to x's dtype on use; an independent float32
    reference must start from the same rounded values (1 - ᾱ_1 alone loses ~3e-4 of its value
    in that cast), and is then computed in float64.
    """
    return tuple(getattr(schedule, name).to(dtype).double().tolist() for name in ("betas", "alphas", "alpha_bars"))


@pytest.fixture(scope="session")
def schedule_values():
    """schedule_values(schedule, dtype) -> (betas, alphas, alpha_bars) lists: see `cast_on_use`."""
    return cast_on_use


def matches(got: torch.Tensor, expected, dtype, what="the result", scale=None):
    """Assert got (a tensor of `dtype`) equals the float64 reference `expected` to `dtype`'s precision.

    Tolerances are relative to the largest magnitude involved (`scale`, default: of expected).
    """
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert got.dtype == dtype, f"{what} should keep x's dtype {dtype}; got {got.dtype}"
    assert got.shape == expected.shape, f"{what} should have shape {tuple(expected.shape)}; got {tuple(got.shape)}"
    scale = scale if scale is not None else max(1.0, float(expected.abs().max()))
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    torch.testing.assert_close(
        got.detach().cpu().double(),
        expected,
        rtol=tol,
        atol=tol * scale,
        msg=lambda m: f"{what} differs from an independent float64 computation:\n{m}",
    )


@pytest.fixture(scope="session")
def assert_matches():
    """assert_matches(got, expected, dtype, what=..., scale=None): see `matches`."""
    return matches


@pytest.fixture
def package_uses_solutions(monkeypatch):
    """Make `mini_diffusion.<exercise module>` the solution for the length of one test.

    Needed for the ready helpers (linear_schedule, cosine_schedule, NoiseSchedule without
    alpha_bars) that call the package's own `schedules` module, a stub unless switched.
    """
    for name in EXERCISE_MODULES:
        module = importlib.import_module(f"solutions.{name}")
        monkeypatch.setitem(sys.modules, f"mini_diffusion.{name}", module)
        monkeypatch.setattr(mini_diffusion, name, module, raising=False)


def python_env(solutions: str | None = None, **extra) -> dict:
    """The environment for a child Python: this one, with MINI_DIFFUSION_SOLUTIONS as given."""
    env = {k: v for k, v in os.environ.items() if k != "MINI_DIFFUSION_SOLUTIONS"}
    if solutions is not None:
        env["MINI_DIFFUSION_SOLUTIONS"] = solutions
    env.update(extra)
    return env


def start_python(code: str, solutions: str | None = None, cwd=ROOT, **extra_env) -> subprocess.Popen:
    """Start `python -c code` in a child process (collect it with finish_python)."""
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=python_env(solutions, **extra_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_python(process: subprocess.Popen, timeout: float = 300) -> subprocess.CompletedProcess:
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="session")
def run_pythons():
    """run_pythons({name: dict(code=..., solutions=..., cwd=..., ...)}) -> {name: CompletedProcess}.

    The children run side by side: each spends most of its time importing torch.
    """

    def run(cases):
        started = {name: start_python(**case) for name, case in cases.items()}
        return {name: finish_python(process) for name, process in started.items()}

    return run


# The contributors' quick tier (README: `-m "not slow and not browser"`) leaves out what grades through
# the Gradescope bundle, runs notebooks or replays every mutant: each takes tens of seconds.
SLOW_MODULES = {"test_attacks.py", "test_grader_honesty.py", "test_release.py", "test_grader_mutants.py",
                "test_notebooks_with_stubs.py"}
SLOW_TESTS = {"test_the_solutions_get_full_marks", "test_help_is_there_for_every_command",
              "test_algorithm_1_gets_full_marks_on_8_6_from_the_grader"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in SLOW_MODULES or getattr(item, "originalname", item.name) in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
