"""The solutions switch, MINI_DIFFUSION_SOLUTIONS, as a learner and CI meet it.

The switch acts when mini_diffusion is imported, so the settings run in a child Python that
imports the package afresh for each one (dropping every mini_diffusion and solutions module
in between) and reports back as JSON; the student release and the acceptance command get
children of their own. The children start together: each spends most of its time importing torch.
"""

import json
import math
import shutil
import textwrap

import pytest

from mini_diffusion._course import seam
from mini_diffusion._base.catalog import EXERCISE_MODULES, NOTEBOOKS

SETTINGS = {
    "unset": None,
    "all": "1",
    "forward,sampling": " sampling, forward",
    "losses": "losses",
    "unknown": "forwrd,sampling",
}

# Runs in the child: imports mini_diffusion under each setting and reports what it got.
PROBE = textwrap.dedent("""
    import importlib, json, os, sys, torch

    def outcome(call):
        try:
            call()
            return "ok"
        except NotImplementedError as error:
            return "stub: " + str(error)

    def probe():
        md = importlib.import_module("mini_diffusion")
        from mini_diffusion.toolkit.diffusion_process import NoiseSchedule

        betas = torch.full((10,), 0.1, dtype=torch.float64)
        schedule = NoiseSchedule(betas, alpha_bars=torch.cat([torch.ones(1), torch.cumprod(1 - betas, 0)]))
        x, t = torch.zeros(4, 2), torch.tensor([1, 2, 5, 10])
        model = lambda x_t, t: torch.zeros_like(x_t)
        report = {
            "in_use": list(md.solutions_in_use()),
            "files": {name: getattr(md, name).__file__ for name in %(modules)r},
            "q_sample": outcome(lambda: md.forward.q_sample(x, t, schedule, noise=x)),
            "predict_x0": outcome(lambda: md.reverse.predict_x0(x, t, x, schedule)),
            "diffusion_loss": outcome(lambda: md.losses.diffusion_loss(model, x, schedule, t=t, noise=x)),
            "ddpm_step": outcome(lambda: md.sampling.ddpm_step(model, x, t, schedule, noise=x)),
            "linear_schedule": outcome(lambda: md.linear_schedule(1000)),
            "sampling_uses_p_mean_from": sys.modules[md.sampling.p_mean.__module__].__file__,
            "losses_uses_q_sample_from": sys.modules[md.losses.q_sample.__module__].__file__,
        }
        from mini_diffusion.forward import q_sample
        report["imported_q_sample_from"] = sys.modules[q_sample.__module__].__file__
        return report

    reports = {}
    for case, value in %(settings)r.items():
        for name in [m for m in sys.modules if m.split(".")[0] in ("mini_diffusion", "solutions")]:
            del sys.modules[name]
        os.environ.pop("MINI_DIFFUSION_SOLUTIONS", None)
        if value is not None:
            os.environ["MINI_DIFFUSION_SOLUTIONS"] = value
        try:
            reports[case] = probe()
        except ImportError as error:
            reports[case] = {"error": type(error).__name__ + ": " + str(error)}
    print(json.dumps(reports))
    """) % {"modules": EXERCISE_MODULES, "settings": SETTINGS}

ACCEPTANCE = "import mini_diffusion as md; s = md.linear_schedule(1000); print(float(s.alpha_bars[500]))"


@pytest.fixture(scope="module")
def children(run_pythons, tmp_path_factory):
    # a student release: the package without solutions/ next to it
    release = tmp_path_factory.mktemp("student_release")
    shutil.copytree(
        seam.SOLUTIONS_DIR.parent / "mini_diffusion",
        release / "mini_diffusion",
        ignore=shutil.ignore_patterns("__pycache__", "weights"),
    )
    locate = (
        "import os, mini_diffusion as md; print(md.__file__)\n"
        "os.environ['MINI_DIFFUSION_SOLUTIONS'] = '1'; import importlib; importlib.reload(md)"
    )
    return run_pythons(
        {
            "settings": dict(code=PROBE),
            "release": dict(code=locate, cwd=release, PYTHONPATH=str(release)),
            "acceptance": dict(code=ACCEPTANCE, solutions="1"),
        }
    )


def report(children, case):
    result = children["settings"]
    assert result.returncode == 0, f"the child probing the settings failed:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])[case]


def from_solutions(path):
    return "/solutions/" in path.replace("\\", "/")


def test_unset_gives_the_stubs_with_a_friendly_message(children):
    got = report(children, "unset")
    assert got["in_use"] == [], "without the variable no solution is in use"
    assert not any(from_solutions(path) for path in got["files"].values()), "every exercise module is the stub"
    message = got["q_sample"]
    assert message.startswith("stub: "), "an unimplemented exercise raises NotImplementedError"
    for part in (
        "1.4",
        "q_sample",
        f"notebooks/{NOTEBOOKS['01']}.ipynb",
        "mini_diffusion/forward.py",
        "MINI_DIFFUSION_SOLUTIONS=forward",
    ):
        assert part in message, f"the stub's message should mention {part!r}; it says: {message}"
    assert (
        "1.1" in got["linear_schedule"] and "linear_betas" in got["linear_schedule"]
    ), "linear_schedule builds on exercise 1.1, so without it the learner is sent there"


def test_1_uses_every_solution(children):
    got = report(children, "all")
    assert got["in_use"] == list(EXERCISE_MODULES)
    assert all(from_solutions(path) for path in got["files"].values()), f"not all from solutions/: {got['files']}"
    for name in ("q_sample", "predict_x0", "diffusion_loss", "ddpm_step", "linear_schedule"):
        assert got[name] == "ok", f"with MINI_DIFFUSION_SOLUTIONS=1, {name} should work; got {got[name]}"
    assert from_solutions(got["imported_q_sample_from"]), "`from mini_diffusion.forward import ...` gets the solution"


def test_a_comma_list_switches_just_those_modules(children):
    got = report(children, "forward,sampling")
    assert got["in_use"] == ["forward", "sampling"], "the listed modules, in the course's order, spaces ignored"
    switched = {name for name, path in got["files"].items() if from_solutions(path)}
    assert switched == {"forward", "sampling"}, f"only forward and sampling should come from solutions/; got {switched}"
    assert got["q_sample"] == "ok" and got["predict_x0"].startswith("stub: "), "forward switched, reverse still a stub"
    assert got["ddpm_step"] == "ok", "the sampling solution must work even though the learner's reverse is a stub"
    assert from_solutions(got["sampling_uses_p_mean_from"]), "a solution imports the other solutions, never a stub"


def test_a_solution_module_works_while_its_dependencies_are_stubs(children):
    got = report(children, "losses")
    assert got["in_use"] == ["losses"]
    assert got["q_sample"].startswith("stub: "), "forward is still the learner's stub"
    assert got["diffusion_loss"] == "ok", "the losses solution must not depend on the learner's forward"
    assert from_solutions(got["losses_uses_q_sample_from"])


def test_an_unknown_module_name_is_a_clear_error_listing_the_valid_names(children):
    error = report(children, "unknown").get("error", "")
    assert error.startswith("SolutionsSwitchError"), f"an unknown module name must stop the import; got {error!r}"
    assert "forwrd" in error, "the error should repeat the name it did not know"
    for name in EXERCISE_MODULES:
        assert name in error.split("forwrd", 1)[1], f"the error should list the valid name {name!r}: {error}"


def test_a_missing_solutions_folder_is_a_clear_error(children):
    result = children["release"]
    printed = result.stdout.strip().splitlines()
    assert printed and "student_release" in printed[0], (
        f"the student release must import without the variable (and be the copy, not the working tree):\n"
        f"{result.stdout}{result.stderr[-2000:]}"
    )
    assert result.returncode != 0, "asking for solutions that are not there must stop the import"
    assert "SolutionsSwitchError" in result.stderr and "no solutions/ folder" in result.stderr, result.stderr[-2000:]
    assert "Unset the variable" in result.stderr, "the error should say how to go on"


def test_the_acceptance_command_prints_alpha_bar_500_of_the_linear_schedule(children):
    result = children["acceptance"]
    assert result.returncode == 0, result.stderr[-2000:]
    betas = [1e-4 + (0.02 - 1e-4) * i / 999 for i in range(1000)]
    expected = math.prod(1 - beta for beta in betas[:500])
    printed = float(result.stdout.strip())
    assert math.isclose(printed, expected, rel_tol=1e-12), f"printed {printed}, ᾱ_500 = {expected}"


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, ()),
        ("", ()),
        ("0", ()),
        ("false", ()),
        ("1", EXERCISE_MODULES),
        ("all", EXERCISE_MODULES),
        ("TRUE", EXERCISE_MODULES),
        ("sampling,forward", ("forward", "sampling")),
        (" ddim , losses ,", ("losses", "ddim")),
    ],
)
def test_requested_modules_reads_the_variable(value, expected):
    assert seam.requested_modules(value) == tuple(expected)


def test_requested_modules_rejects_unknown_names_and_lists_the_valid_ones():
    with pytest.raises(seam.SolutionsSwitchError) as error:
        seam.requested_modules("forward,Sampling")
    message = str(error.value)
    assert "Sampling" in message and all(name in message for name in EXERCISE_MODULES)
    assert isinstance(error.value, ImportError), "it surfaces as an import error: the import cannot go ahead"
