"""mini_diffusion: diffusion models built step by step, one exercise at a time.

The files in this folder are yours: each exercise module (listed in `EXERCISE_MODULES`) holds the
functions a notebook asks you to write. `toolkit/` holds the ready parts you may read and use
(the NoiseSchedule object, helpers, networks, data, training, reference models, metrics, the
ideal denoiser); `_course/` is the course's machinery (checks, lending, plots, widgets, the
command line), which you never need to open.

Stuck, or skipping ahead? `md.lend("1.1", "1.2")` (or MINI_DIFFUSION_SOLUTIONS=1.1,1.2 before
Python starts) lends the reference solutions of just those exercises; your other functions stay
yours. `md.check("1.3")` checks one exercise, `md.lent()` lists what is lent, and
`md.prerequisites("04")` names the earlier exercises a notebook needs that are not written yet.

Ready to use here: `NoiseSchedule`, `linear_schedule`, `cosine_schedule`, and the modules `data`,
`nets`, `train`, `reference`, `metrics`, `ideal` (from `toolkit/`).
"""

import importlib as _importlib

from mini_diffusion._course import seam as _seam
from mini_diffusion._base.catalog import EXERCISE_MODULES
from mini_diffusion._course.check import check
from mini_diffusion._course.guard import linear_schedule_or_reference, prerequisites
from mini_diffusion.toolkit.diffusion_process import NoiseSchedule, cosine_schedule, linear_schedule

__version__ = "0.1.0"

# Ready parts and course machinery reachable as `md.<name>` and `from mini_diffusion import <name>`.
_ROOMS = {
    **dict.fromkeys(("common", "data", "device", "ideal", "metrics", "nets", "ode", "progress", "recipes",
                     "reference", "train", "diffusion_process", "plumbing"), "toolkit"),
    **dict.fromkeys(("check", "cli", "evaluate", "explore", "quiz", "schedule_widgets", "seam", "viz",
                     "widgets"), "_course"),
    "catalog": "_base",
}

_seam.start()


def __getattr__(name):
    # Exercise modules load on first use, so a syntax error in one of your files breaks only
    # that module (and those that import it), not `import mini_diffusion` itself.
    if name in EXERCISE_MODULES:
        return _seam.exercise_module(name)
    if name in _ROOMS:
        return _importlib.import_module(f"{__name__}.{_ROOMS[name]}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def lend(*exercises: str) -> tuple[str, ...]:
    """Use the reference solutions of these exercises from now on, without restarting the kernel:
    ids ("1.1", "2.3"), notebook numbers ("01") or module names ("forward"). Your other functions
    stay yours. Returns every exercise lent now."""
    return _seam.lend(*exercises)


def lent() -> tuple[str, ...]:
    """The exercises whose reference solution is in use now (see `lend`)."""
    return _seam.lent()


def use_solutions(names=EXERCISE_MODULES) -> None:
    """Use the reference solution files for these whole exercise modules from now on (the command
    line does this; in a notebook prefer `lend`)."""
    _seam.use_whole_modules(names)


def solutions_in_use() -> tuple[str, ...]:
    """The exercise modules that are the solution files themselves in this session."""
    return _seam.whole_modules()


__all__ = ["NoiseSchedule", "linear_schedule", "cosine_schedule", "check", "lend", "lent", "prerequisites", "linear_schedule_or_reference", "solutions_in_use",
           "use_solutions", *EXERCISE_MODULES]
