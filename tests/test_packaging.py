"""The install story stays true: pyproject, environment.yml, README and CI agree."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"torch": "pytorch"}  # conda-forge's name for a PyPI package, where they differ


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0].strip().lower()


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def conda_dependencies() -> dict:
    deps, in_deps = {}, False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if line.startswith("dependencies:"):
            in_deps = True
        elif in_deps and re.match(r"^  - [A-Za-z]", line):
            requirement = line[4:].strip()
            deps[_name(requirement)] = requirement.replace(" ", "")
    return deps


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = pyproject()["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["course"]
    conda = conda_dependencies()
    for requirement in wanted:
        name = _name(requirement)
        conda_name = CONDA_NAMES.get(name, name)
        assert conda_name in conda, f"environment.yml lacks {conda_name} (pyproject has {requirement})"
        spec = requirement[len(name):].replace(" ", "")
        assert conda[conda_name] == conda_name + spec, (
            f"environment.yml pins {conda[conda_name]} but pyproject asks {requirement}: keep them in step"
        )
    extra = set(conda) - {CONDA_NAMES.get(_name(r), _name(r)) for r in wanted} - {"python", "pip", "pip:"}
    assert not extra, f"environment.yml has dependencies pyproject does not: {sorted(extra)}"


def test_environment_yml_installs_the_package_itself():
    assert re.search(r"^\s+- -e \.$", (ROOT / "environment.yml").read_text(), re.M), "environment.yml must pip-install the package (-e .)"


def test_python_and_torch_floors():
    project = pyproject()["project"]
    assert project["requires-python"] == ">=3.10"
    torch = [r for r in project["dependencies"] if _name(r) == "torch"]
    assert torch == ["torch>=2.10"], "torch >= 2.10: older releases let weights_only loads run code"


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_has_exactly_two_setup_commands_one_opens_the_course_one_runs_the_tests():
    setup = [c for c in readme_commands() if c.startswith("python3 -m venv")]
    assert len(setup) == 2, f"README should give exactly two set-up commands; found {len(setup)}"
    course, tests = setup
    assert course.endswith("jupyter lab notebooks/"), "the first command should open the course in JupyterLab"
    assert "pytest" in tests, "the second command should run the tests"


def test_ci_runs_exactly_the_readme_test_command():
    test_command = [c for c in readme_commands() if c.startswith("python3 -m venv") and "pytest" in c][0]
    ci = (ROOT / ".ci" / "run").read_text()
    ci_lines = [line.strip() for line in ci.splitlines()]
    assert test_command in ci_lines, ".ci/run must run README's test command verbatim"
    assert "set -euo pipefail" in ci, ".ci/run must fail when a step fails"
    torch_first = test_command.index("pip install torch==2.13.0")
    assert torch_first < test_command.index('-e ".[course,dev]"'), "torch==2.13.0 (a CPU build here) goes in first"


def test_constraints_pin_torch_and_every_pyproject_dependency():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    assert pins.get("torch") == "2.13.0"
    project = pyproject()["project"]
    for requirement in project["dependencies"] + sum(project["optional-dependencies"].values(), []):
        name = _name(requirement).replace("_", "-")
        assert name in pins, f"constraints.txt does not pin {name}; refresh it (see README, For maintainers)"
