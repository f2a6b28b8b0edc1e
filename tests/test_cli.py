"""The command line: every command works, and user mistakes get one line, not a traceback."""

import os
import subprocess
import sys

import pytest


def run_cli(*args, env=None):
    env = {**os.environ, **(env or {})}
    env.pop("MINI_DIFFUSION_SOLUTIONS", None)
    return subprocess.run([sys.executable, "-m", "mini_diffusion", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_help_is_there_for_every_command():
    for args in ([], ["sample"], ["evaluate"], ["train"], ["info"], ["release"]):
        result = run_cli(*args, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout, f"--help failed for {args}: {result.stderr}"


def test_info_lists_versions_device_and_models():
    result = run_cli("info")
    assert result.returncode == 0, result.stderr
    for word in ("torch", "device", "moons", "digits"):
        assert word in result.stdout


def test_sample_digits_with_ddim_writes_a_png(tmp_path):
    out = tmp_path / "grid.png"
    result = run_cli("sample", "--model", "digits", "--sampler", "ddim", "--steps", "10", "--n", "16", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "the output should be a PNG file"


def test_evaluate_prints_the_ratio_to_the_floor():
    result = run_cli("evaluate", "--model", "moons", "--sampler", "ddim", "--steps", "20", "--n", "500")
    assert result.returncode == 0, result.stderr
    assert "floor" in result.stdout


def test_train_writes_a_loadable_model(tmp_path):
    from mini_diffusion.toolkit import reference

    result = run_cli("train", "--data", "moons", "--steps", "30", "--batch-size", "64", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    model, schedule, manifest = reference.load("moons", device="cpu", models_dir=tmp_path)
    assert manifest["training"]["steps"] == 30


@pytest.mark.parametrize(
    "args, message",
    [
        (["sample", "--model", "digits", "--sampler", "nope"], "unknown sampler"),
        (["sample", "--model", "digits", "--out", "grid.jpg"], ".png"),
        (["sample", "--model", "digits", "--steps", "5000"], "num_steps"),
        (["sample", "--model", "digits", "--device", "cuda:7"], "cuda"),
    ],
)
def test_user_mistakes_get_a_one_line_error_and_exit_code_2(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_my_code_with_unfinished_stubs_says_which_exercise_to_do():
    result = run_cli("sample", "--model", "moons", "--code", "mine", "--n", "8")
    assert result.returncode == 2 and "not implemented yet" in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_model_name_is_refused_by_argparse():
    result = run_cli("sample", "--model", "mnist")
    assert result.returncode == 2 and "invalid choice" in result.stderr
