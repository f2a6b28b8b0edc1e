"""Lending by exercise: one reference function in place of the learner's, the rest stay theirs.

Each case runs in a fresh Python over a copy of the package whose exercise files are the stubs
(with, where a case says so, one function written by the "learner"), since lending acts on
import and on the learner's own files.
"""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A copy of the course (package as stubs, solutions/) in a temporary folder."""
    from mini_diffusion._course.stubs import stubs

    top = tmp_path_factory.mktemp("course")
    shutil.copytree(ROOT / "mini_diffusion", top / "mini_diffusion", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "solutions", top / "solutions", ignore=shutil.ignore_patterns("__pycache__"))
    for path, text in stubs(ROOT).items():
        (top / "mini_diffusion" / path.name).write_text(text, encoding="utf-8")
    return top


def run(course: Path, code: str, solutions: str | None = None, short: bool = True) -> dict:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(course), "MINI_DIFFUSION_COURSE": str(course)}
    if solutions is not None:
        env["MINI_DIFFUSION_SOLUTIONS"] = solutions
    prelude = "import json, torch, mini_diffusion as md\n"
    probe = PROBE if short else PROBE.replace('.split(" (")[0]', "")
    result = subprocess.run([sys.executable, "-c", prelude + probe + textwrap.dedent(code)], cwd=course, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"the child failed:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])



PROBE = """
def works(call):
    try:
        call()
        return "ok"
    except NotImplementedError as error:
        return "stub: " + str(error).split(" (")[0]
"""


def test_lending_one_exercise_replaces_that_function_alone(course):
    got = run(course, """
        print(json.dumps({
            "lent": list(md.lent()),
            "linear_betas": works(lambda: md.schedules.linear_betas(10)),
            "snr": works(lambda: md.schedules.snr(torch.tensor([0.5]))),
            "file": md.schedules.__file__,
        }))
    """, solutions="1.1")
    assert got["lent"] == ["1.1"]
    assert got["linear_betas"] == "ok", "1.1 is lent, so linear_betas works"
    assert got["snr"].startswith("stub: Exercise 5.3"), "5.3 in the same file stays the learner's stub"
    assert "/solutions/" not in got["file"], "the learner's file is still the module; only one function is lent"


def test_notebook_numbers_lend_that_notebooks_exercises_only(course):
    got = run(course, """
        print(json.dumps({"lent": list(md.lent()),
                          "cosine": works(lambda: md.schedules.cosine_alpha_bars(10)),
                          "schedule": works(lambda: md.linear_schedule(100))}))
    """, solutions="01")
    assert got["lent"] == ["1.1", "1.2", "1.3", "1.4"]
    assert got["schedule"] == "ok", "linear_schedule is built from 1.1 and 1.2, both lent"
    assert got["cosine"].startswith("stub: Exercise 5.1"), "notebook 05's exercises stay the learner's"


def test_md_lend_works_at_run_time_without_a_restart(course):
    got = run(course, """
        before = works(lambda: md.linear_schedule(100))
        md.lend("1.1", "1.2")
        after = works(lambda: md.linear_schedule(100))
        print(json.dumps({"before": before, "after": after, "lent": list(md.lent())}))
    """)
    assert got["before"].startswith("stub: Exercise 1.1")
    assert got["after"] == "ok"
    assert got["lent"] == ["1.1", "1.2"]


def test_a_learners_function_calling_a_lent_one_gets_the_reference(course):
    # The learner wrote ddpm_step (4.1) but not p_mean (2.3): lending 2.3 must reach their
    # `from .reverse import p_mean`, also when it was imported before the lend.
    sampling = course / "mini_diffusion" / "sampling.py"
    original = sampling.read_text(encoding="utf-8")
    written = original.replace('raise NotImplementedError(todo("ddpm_step"))',
                               "return p_mean(x_t, t, call_model(model, x_t, t), schedule)", 1)
    assert written != original
    sampling.write_text(written, encoding="utf-8")
    try:
        got = run(course, """
            s = md.NoiseSchedule(torch.full((10,), 0.1, dtype=torch.float64),
                                 alpha_bars=torch.cumprod(torch.cat([torch.ones(1), torch.full((10,), 0.9)]), 0))
            model = lambda x, t: torch.zeros_like(x)
            x = torch.ones(3, 2)
            before = works(lambda: md.sampling.ddpm_step(model, x, 5, s, noise=x))
            md.lend("2.3")
            after = works(lambda: md.sampling.ddpm_step(model, x, 5, s, noise=x))
            import importlib; importlib.reload(md.sampling)   # what autoreload does after an edit
            reloaded = works(lambda: md.sampling.ddpm_step(model, x, 5, s, noise=x))
            print(json.dumps({"before": before, "after": after, "reloaded": reloaded}))
        """)
    finally:
        sampling.write_text(original, encoding="utf-8")
    assert got["before"].startswith("stub: Exercise 2.3"), "the learner's ddpm_step runs and meets the p_mean stub"
    assert got["after"] == "ok", "after md.lend('2.3') the learner's ddpm_step calls the reference p_mean"
    assert got["reloaded"] == "ok", "a reload of the learner's file keeps the lent function in place"


def test_lending_survives_a_reload_of_the_learners_file(course):
    got = run(course, """
        import importlib
        md.lend("1.1")
        importlib.reload(md.schedules)
        print(json.dumps({"linear_betas": works(lambda: md.schedules.linear_betas(10)),
                          "snr": works(lambda: md.schedules.snr(torch.tensor([0.5])))}))
    """)
    assert got["linear_betas"] == "ok" and got["snr"].startswith("stub: Exercise 5.3")


def test_an_unknown_id_is_a_clear_error_listing_the_valid_ones(course):
    got = run(course, """
        try:
            md.lend("1.9")
            print(json.dumps({"error": ""}))
        except ImportError as error:
            print(json.dumps({"error": type(error).__name__ + ": " + str(error)}))
    """)
    error = got["error"]
    assert error.startswith("SolutionsSwitchError") and "1.9" in error, error
    for valid in ("1.1", "7.3", "04", "forward"):
        assert valid in error.split("1.9", 1)[1], f"the error should list {valid!r}: {error}"


def test_the_stub_message_says_how_to_lend_just_that_exercise(course):
    got = run(course, """
        print(json.dumps({"message": works(lambda: md.schedules.snr(torch.tensor([0.5])))}))
    """, short=False)
    assert 'md.lend("5.3")' in got["message"] and "MINI_DIFFUSION_SOLUTIONS=5.3" in got["message"], got["message"]
