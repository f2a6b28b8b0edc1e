"""The plumbing of every sampler: one `@sampler` that checks, draws x_T, keeps the trajectory, calls the callback and shows the bar.

Every sampler of the course has one public form (shared/COURSE.md, the sampler contract):

    name(model, shape, schedule, num_steps, *, <its own options>,
         generator=None, x_T=None, trajectory=False, callback=None, progress=False, device=None)

The six keywords after the sampler's own options are the same for all of them, so they are
handled here, once, and a sampler's function holds only its algorithm. It is written as a
generator that starts from x_T and yields the state after each step (smalldiffusion's "yield
every state"):

    @sampler("DDIM")
    def ddim_sample(model, shape, schedule, num_steps=50, *, eta=0.0, generator=None, x_T):
        timesteps = ddim_timesteps(schedule.T, num_steps).tolist()
        x = x_T
        for t, t_prev in zip(timesteps, timesteps[1:] + [0]):
            x = ddim_step(model, x, t, t_prev, schedule, eta=eta, generator=generator)
            yield t, x                     # the step left timestep t and reached x

`@sampler` turns that into the public function. Called, it
1. binds the arguments to the public signature (a wrong or misplaced argument is a TypeError that
   names it: `ddpm_sample(net, shape, s, 20)` means num_steps=20, never generator=20);
2. checks the common options, the model, the shape, the schedule and num_steps, then runs the
   sampler's own `prepare(arguments)` (its option checks), before anything random happens;
3. draws x_T ~ N(0, I) of the sample shape with `generator` on `device` (default: the model's), or
   checks and moves the x_T given: the one way of drawing the starting noise;
4. runs the algorithm under torch.no_grad(), with a progress bar when asked, and from each
   `yield t, x` keeps the state (trajectory=True) and calls callback(i, t, x);
5. returns the last state (x_0), or with trajectory=True the list [x_T, …, x_0].

The algorithm receives x_T (the starting state, always a tensor) and `generator` (for the
noise of its steps) when it names them; it never sees trajectory, callback, progress or device.
A sampler whose state lives in other coordinates yields `t, x̃, σ` instead: the state x̃ = x/√ᾱ at
noise level σ (the ODE solvers of notebook 07), reported in the x variable as x̃ / √(1 + σ²).
"""

import functools
import inspect
import math
import numbers

import torch

from mini_diffusion.toolkit.common import model_device, noise_like
from mini_diffusion.toolkit.progress import steps_bar

COMMON = ("generator", "x_T", "trajectory", "callback", "progress", "device")
COMMON_DEFAULTS = {"generator": None, "x_T": None, "trajectory": False, "callback": None, "progress": False,
                   "device": None}
GIVEN = ("x_T", "generator")  # what the plumbing hands the algorithm, when it names them


def starting_noise(model, shape, generator=None, x_T=None, device=None, dtype=None) -> torch.Tensor:
    """x_T ~ N(0, I) of the given shape and dtype (default: torch's, float32) on `device` (default:
    the model's), drawn with `generator`, or the x_T given, checked and moved there.

    >>> starting_noise(torch.nn.Linear(2, 2), (3, 2), generator=torch.Generator().manual_seed(0)).shape
    torch.Size([3, 2])
    """
    device = device if device is not None else model_device(model)
    if x_T is not None:
        if not isinstance(x_T, torch.Tensor) or tuple(x_T.shape) != tuple(shape):
            got = tuple(x_T.shape) if isinstance(x_T, torch.Tensor) else type(x_T).__name__
            raise ValueError(f"x_T must be a tensor of the sample shape {tuple(shape)}; got {got}")
        return x_T.to(device)
    return noise_like(torch.empty(shape, device=device, dtype=dtype), None, generator)


def public_signature(algorithm) -> inspect.Signature:
    """The algorithm's signature with the six common options as the keyword-only tail, in order."""
    own = [p for name, p in inspect.signature(algorithm).parameters.items() if name not in COMMON]
    tail = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=COMMON_DEFAULTS[name]) for name in COMMON]
    return inspect.Signature(own + tail)


def _check_shape(shape, name: str) -> tuple:
    if isinstance(shape, torch.Tensor) or not isinstance(shape, (tuple, list, torch.Size)) or not shape or \
            not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0 for n in shape):
        raise ValueError(f"{name}: shape must be the batch shape as a tuple of positive integers, e.g. (64, 2); "
                         f"got {shape!r}")
    return tuple(int(n) for n in shape)


def model_of(arguments: dict):
    """The sampler's network: `model`, or `unet` for a latent sampler (whose head also has an autoencoder)."""
    return arguments.get("model", arguments.get("unet"))


def check_every_step(arguments: dict, name: str, fewer: str = "") -> None:
    """For samplers that take every step of the schedule (DDPM, inpainting): num_steps is None or T."""
    T, steps = arguments["schedule"].T, arguments["num_steps"]
    if steps is not None and (isinstance(steps, bool) or steps != T):
        raise ValueError(f"{name} takes every step, num_steps = T = {T} (or None); got num_steps={steps!r}.{fewer}")


def check_common(arguments: dict, name: str) -> None:
    """The checks every sampler shares: the model, the schedule, num_steps and the six options."""
    from mini_diffusion.toolkit.diffusion_process import NoiseSchedule

    if "shape" in arguments:
        arguments["shape"] = _check_shape(arguments["shape"], name)
    if not callable(model_of(arguments)):
        raise TypeError(f"{name}: the model must be callable, model(x_t, t) -> prediction")
    schedule = arguments.get("schedule", None)
    if "schedule" in arguments and not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"{name}: schedule must be a NoiseSchedule (e.g. linear_schedule(1000)); "
                        f"got {type(schedule).__name__}")
    steps = arguments.get("num_steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1
                              or (schedule is not None and steps > schedule.T)):
        within = f"in 1..T = 1..{schedule.T}" if schedule is not None else "a positive integer"
        raise ValueError(f"{name}: num_steps must be an integer {within}; got {steps!r}")
    if not isinstance(arguments["trajectory"], bool):
        raise TypeError(f"{name}: trajectory must be True or False; got {arguments['trajectory']!r}")
    if not isinstance(arguments["progress"], bool):
        raise TypeError(f"{name}: progress must be True or False; got {arguments['progress']!r}")
    callback = arguments["callback"]
    if callback is not None and not callable(callback):
        raise TypeError(f"{name}: callback must be a function callback(i, t, x) or None; got {type(callback).__name__}")
    generator = arguments["generator"]
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{name}: generator must be a torch.Generator or None; got {type(generator).__name__}")


def device_of(arguments: dict) -> torch.device:
    """Where a sampler runs: the `device` asked for, else the model's (for a sampler's prepare)."""
    if arguments.get("device") is not None:
        return torch.device(arguments["device"])
    return model_device(model_of(arguments))


def _number(t):
    """A step's t as a Python number: int for timesteps, float for continuous time."""
    return t.item() if isinstance(t, torch.Tensor) else t


def default_total(arguments: dict):
    """How many steps a sampler takes, for its progress bar: num_steps, or T when it is None."""
    if arguments.get("num_steps") is not None:
        return arguments["num_steps"]
    schedule = arguments.get("schedule")
    return schedule.T if schedule is not None else None


def run_steps(steps, x_T, trajectory: bool, callback, progress: bool, desc: str, total, name: str):
    """Drive an algorithm's generator of steps; returns the last state, or the list of states."""
    if not inspect.isgenerator(steps):
        raise TypeError(f"{name} must yield (t, x) after each step (it is a generator: the plumbing keeps the "
                        f"trajectory and returns the last x); it returned {type(steps).__name__} instead")
    states = [x_T] if trajectory else None
    x = None
    for i, step in enumerate(steps_bar(steps, enabled=progress, desc=desc, total=total)):
        if not isinstance(step, tuple) or len(step) not in (2, 3) or not isinstance(step[1], torch.Tensor):
            raise TypeError(f"{name} must yield (t, x) after each step, x the state reached (or (t, x̃, σ) in the "
                            f"ODE solvers' coordinates); step {i} yielded {type(step).__name__}")
        x = step[1] if len(step) == 2 or step[2] == 0 else step[1] / math.sqrt(1.0 + float(step[2]) ** 2)
        if states is not None:
            states.append(x)
        if callback is not None:
            callback(i, _number(step[0]), x)
    if x is None:
        raise RuntimeError(f"{name} yielded no step: yield (t, x) after each step of its loop")
    return states if states is not None else x


def sampler(desc: str, *, prepare=None, like=None, total=default_total):
    """Make a sampler's algorithm (a generator of steps) into the public sampler of the contract.

    desc: the progress bar's name. prepare(arguments): the sampler's own checks, run on the bound
    arguments (a dict it may also update, e.g. to move a mask to the model's device) before x_T
    is drawn. like(arguments): a tensor whose shape and dtype the samples take, when the head has
    no `shape` (inpainting: the known image). total(arguments): the number of steps, for the bar.
    """
    def wrap(algorithm):
        signature = public_signature(algorithm)
        own = inspect.signature(algorithm).parameters
        name = algorithm.__name__
        if like is None and "shape" not in own:
            raise TypeError(f"{name}: a sampler's head needs `shape`, or @sampler(like=...) to find it")

        @functools.wraps(algorithm)
        def public(*args, **kwargs):
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as error:
                raise TypeError(f"{name}{signature}: {error}") from None
            bound.apply_defaults()
            arguments = bound.arguments
            check_common(arguments, name)
            if prepare is not None:
                prepare(arguments)
            template = like(arguments) if like is not None else None
            sample_shape = tuple(template.shape) if template is not None else arguments["shape"]  # checked above
            x_T = starting_noise(model_of(arguments), sample_shape, arguments["generator"], arguments["x_T"],
                                 arguments["device"],
                                 dtype=template.dtype if template is not None else None)
            given = {"x_T": x_T, "generator": arguments["generator"]}
            call = {key: (given[key] if key in GIVEN else arguments[key]) for key in own}
            with torch.no_grad():
                return run_steps(algorithm(**call), x_T, arguments["trajectory"], arguments["callback"],
                                 arguments["progress"], desc, total(arguments), name)

        public.__signature__ = signature
        public.algorithm = algorithm  # the learner's generator, for tests and for reading
        return public

    return wrap
