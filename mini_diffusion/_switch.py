"""The solutions switch: MINI_DIFFUSION_SOLUTIONS picks which exercise modules come from solutions/.

  unset, "" or "0"     -> your own modules in mini_diffusion/ (the stubs you complete)
  "1", "all" or "true" -> every exercise module from solutions/
  "forward,sampling"   -> just those modules from solutions/

The solutions are loaded as the package `solutions` (from the folder next to mini_diffusion/)
and installed in sys.modules under the mini_diffusion names, so `from mini_diffusion.forward
import q_sample` anywhere gets the chosen version.
"""

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from mini_diffusion.catalog import EXERCISE_MODULES

ENV_VAR = "MINI_DIFFUSION_SOLUTIONS"
SOLUTIONS_DIR = Path(__file__).resolve().parent.parent / "solutions"


class SolutionsSwitchError(ImportError):
    """The solutions switch was set to something that cannot be honoured."""


def requested_modules(value: str | None, known=EXERCISE_MODULES) -> tuple[str, ...]:
    """The module names that MINI_DIFFUSION_SOLUTIONS=value asks for, in the course's order."""
    value = (value or "").strip()
    if value.lower() in ("", "0", "false", "no", "off"):
        return ()
    if value.lower() in ("1", "all", "true", "yes", "on"):
        return tuple(known)
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SolutionsSwitchError(
            f"{ENV_VAR}={value!r} names unknown module(s) {', '.join(unknown)}. "
            f"Use 1 for all, or a comma list of: {', '.join(known)}."
        )
    return tuple(name for name in known if name in names)


def _solutions_package():
    if "solutions" in sys.modules and Path(getattr(sys.modules["solutions"], "__file__", "")).parent == SOLUTIONS_DIR:
        return sys.modules["solutions"]
    init = SOLUTIONS_DIR / "__init__.py"
    if not init.is_file():
        raise SolutionsSwitchError(
            f"{ENV_VAR} asks for the reference solutions, but there is no solutions/ folder at {SOLUTIONS_DIR} "
            "(a student copy of the course ships without them). Unset the variable to use your own code."
        )
    spec = importlib.util.spec_from_file_location("solutions", init, submodule_search_locations=[str(SOLUTIONS_DIR)])
    package = importlib.util.module_from_spec(spec)
    sys.modules["solutions"] = package
    spec.loader.exec_module(package)
    return package


def install(package_name: str, names) -> dict:
    """Import solutions.<name> for each name and register it as <package_name>.<name>."""
    if not names:
        return {}
    _solutions_package()
    loaded = {}
    for name in names:
        # Registered before the import so that a solution importing mini_diffusion.<other switched
        # module> gets the solution too, whatever the order.
        sys.modules.pop(f"{package_name}.{name}", None)
    for name in names:
        module = importlib.import_module(f"solutions.{name}")
        sys.modules[f"{package_name}.{name}"] = module
        loaded[name] = module
    return loaded


def from_environment(package_name: str) -> dict:
    return install(package_name, requested_modules(os.environ.get(ENV_VAR)))
