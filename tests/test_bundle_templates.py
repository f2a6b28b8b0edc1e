"""The Gradescope bundle's shell scripts, kept as templates in mini_diffusion/_course/bundle_templates/:
each, filled as the bundle fills it, is valid bash with no placeholder left, and every template and
value is used."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mini_diffusion._course import gradescope_bundle

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = sorted(p.name for p in gradescope_bundle.TEMPLATES.iterdir() if p.is_file())


def test_every_template_is_a_script_of_the_bundle_and_every_script_has_one():
    assert TEMPLATES, f"no templates in {gradescope_bundle.TEMPLATES}"
    assert sorted(gradescope_bundle.SCRIPTS.values()) == TEMPLATES, (
        f"bundle_templates/ holds {TEMPLATES}, the bundle writes {gradescope_bundle.SCRIPTS}")


@pytest.mark.parametrize("name", sorted(gradescope_bundle.SCRIPTS))
def test_a_filled_template_is_valid_bash_with_no_placeholder_left(name, tmp_path):
    text = gradescope_bundle.scripts()[name]
    left = gradescope_bundle.PLACEHOLDER.findall(text)
    assert not left, f"{name}: placeholders left unfilled: {left}"
    assert "@" not in text, f"{name}: an @ is left after filling (a misspelt placeholder?)"
    assert text.startswith("#!/usr/bin/env bash\n"), f"{name} must start with its shebang"
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    script = tmp_path / name
    script.write_text(text, encoding="utf-8")
    check = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, f"{name} is not valid bash once filled:\n{check.stderr}"


def test_every_value_fills_a_placeholder():
    used = set()
    for template in gradescope_bundle.SCRIPTS.values():
        used |= set(gradescope_bundle.PLACEHOLDER.findall((gradescope_bundle.TEMPLATES / template).read_text()))
    assert used == set(gradescope_bundle.TEMPLATE_VALUES), (
        f"placeholders {sorted(used)}, values {sorted(gradescope_bundle.TEMPLATE_VALUES)}")


def test_a_placeholder_without_a_value_is_an_error_not_left_in_the_script():
    assert gradescope_bundle.fill('echo "$HOME" @VENV@\n', {"VENV": "/v"}) == 'echo "$HOME" /v\n'
    with pytest.raises(KeyError, match="NOWHERE"):
        gradescope_bundle.fill("echo @NOWHERE@\n", {"VENV": "/v"})


def test_run_autograder_runs_the_driver_that_the_package_holds():
    text = gradescope_bundle.scripts()["run_autograder"]
    driver = '"$AUTOGRADER_ROOT/source/course/mini_diffusion/_course/release.py" grade'
    assert driver in text, "run_autograder should run the driver, release.py grade"
    assert "def _main(argv)" in (ROOT / "mini_diffusion" / "_course" / "release.py").read_text(encoding="utf-8")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is new in Python 3.11")
def test_the_templates_are_package_data():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    data = project["tool"]["setuptools"]["package-data"]["mini_diffusion"]
    assert "_course/bundle_templates/*" in data, f"pyproject.toml's package-data should ship the templates: {data}"
