"""mini_diffusion: diffusion models built step by step, one exercise at a time.

Exercise modules (yours to complete; see the notebooks): `schedules`, `forward`, `reverse`,
`losses`, `sampling`, `ddim`. Set MINI_DIFFUSION_SOLUTIONS=1 (or a comma list such as
`forward,sampling`) before importing to use the reference solutions instead.

Ready to use: `NoiseSchedule`, `linear_schedule`, `cosine_schedule`, and the modules `data`,
`nets`, `train`, `reference`, `metrics`, `ideal`.
"""

import importlib as _importlib

from mini_diffusion import _switch
from mini_diffusion.catalog import EXERCISE_MODULES
from mini_diffusion.check import check
from mini_diffusion.noise_schedule import NoiseSchedule, cosine_schedule, linear_schedule

__version__ = "0.1.0"

_from_solutions = _switch.from_environment(__name__)
globals().update(_from_solutions)


def __getattr__(name):
    # Exercise modules load on first use, so a syntax error in one of your files breaks only
    # that module (and those that import it), not `import mini_diffusion` itself.
    if name in EXERCISE_MODULES:
        module = _from_solutions.get(name) or _importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def use_solutions(names=EXERCISE_MODULES) -> None:
    """Use the reference solutions for these exercise modules from now on (the command line
    does this; in a notebook prefer MINI_DIFFUSION_SOLUTIONS, set before the import)."""
    loaded = _switch.install(__name__, [n for n in names if n not in _from_solutions])
    _from_solutions.update(loaded)
    globals().update(loaded)


def solutions_in_use() -> tuple[str, ...]:
    """The exercise modules that come from solutions/ in this session (see MINI_DIFFUSION_SOLUTIONS)."""
    return tuple(_from_solutions)


__all__ = ["NoiseSchedule", "linear_schedule", "cosine_schedule", "solutions_in_use", "use_solutions", *EXERCISE_MODULES]
