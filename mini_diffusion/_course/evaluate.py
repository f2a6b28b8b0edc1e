"""Sample a model with a named sampler and score the samples against the real data.

Used by the command line (`mini-diffusion sample/evaluate`), the reference-model training
script, the notebooks and the benchmarks, so all of them measure quality the same way:
moons by energy distance, digits by Fréchet distance in a digit classifier's features, each as
a ratio to the floor (the same distance between two independent real samples).
"""

import time

import torch

from mini_diffusion._course import seam
from mini_diffusion.toolkit.common import model_device

DATA_SHAPES = {"moons": (2,), "digits": (1, 8, 8)}

# Sampler name -> the exercise that implements it. Every sampler is called the same way,
# sampler(model, shape, schedule, num_steps=steps, generator=g) -> x_0 (DDPM accepts only num_steps = T).
SAMPLERS = {"ddpm": "4.2", "ddim": "6.3", "euler": "7.1", "heun": "7.2", "dpm": "7.3", "flow": "9.3"}
# Ready samplers (mini_diffusion/toolkit/multistep.py), not exercises: called the same way.
READY_SAMPLERS = {"dpm3m": "dpm_solver_3m_sample", "unipc": "unipc_sample"}
FLOW_SAMPLERS = ("flow",)  # fm_sample(model, shape, num_steps, generator=g): a velocity model, no schedule
FLOW_DEFAULT_STEPS = 20


def sampler_function(name: str):
    """The sampler called `name` as in use now: yours, or the reference one when it is lent.

    Looked up at call time through the seam, so the solutions switch and your own code apply, and
    a sampler's module is imported only when that sampler is used.
    """
    if name in READY_SAMPLERS:
        from mini_diffusion.toolkit import multistep

        return getattr(multistep, READY_SAMPLERS[name])
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of: {', '.join([*SAMPLERS, *READY_SAMPLERS])}")
    return seam.implementation(SAMPLERS[name])


def generate(model, schedule, sampler: str, n: int, data: str, steps: int | None = None, seed: int = 0):
    """n samples of the data set `data` ("moons" or "digits") and the wall time in seconds.
    steps: the sampler's num_steps (default T: every step, the only choice DDPM accepts)."""
    if sampler not in SAMPLERS and sampler not in READY_SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of: {', '.join([*SAMPLERS, *READY_SAMPLERS])}")
    if data not in DATA_SHAPES:
        raise ValueError(f"unknown data {data!r}; choose one of: {', '.join(DATA_SHAPES)}")
    device = model_device(model)
    generator = torch.Generator(device=device).manual_seed(seed)
    flow = sampler in FLOW_SAMPLERS
    steps = (FLOW_DEFAULT_STEPS if flow else schedule.T) if steps is None else steps
    shape = (n, *DATA_SHAPES[data])
    previous_threads = torch.get_num_threads()
    if device.type == "cpu":  # a small CPU can be many times slower with its default threading
        torch.set_num_threads(_fastest_threads(model, shape, flow=flow))
    try:
        run = sampler_function(sampler)
        start = time.perf_counter()
        with torch.no_grad():
            if flow:
                x = run(model, shape, num_steps=steps, generator=generator)
            else:
                x = run(model, shape, schedule, num_steps=steps, generator=generator)
        return x.cpu().float(), time.perf_counter() - start
    finally:
        torch.set_num_threads(previous_threads)


def _fastest_threads(model, shape, flow: bool = False) -> int:
    from mini_diffusion.toolkit.device import best_num_threads

    x = torch.randn(shape)
    t = torch.full((shape[0],), 0.5) if flow else torch.full((shape[0],), 500, dtype=torch.long)
    with torch.no_grad():
        return best_num_threads(lambda: model(x, t), key=(type(model).__name__, shape))


def quality(samples: torch.Tensor, data: str, seed: int = 0) -> dict:
    """{"metric": name, "value": ratio to the floor} for samples of `data`."""
    from mini_diffusion.toolkit import metrics

    if data == "moons":
        return {"metric": "energy distance / floor", "ratio": metrics.moons_energy_ratio(samples, seed=seed)}
    if data == "digits":
        return {"metric": "Fréchet distance (classifier features) / floor", "ratio": metrics.digits_fd_ratio(samples)}
    raise ValueError(f"unknown data {data!r}; choose one of: {', '.join(DATA_SHAPES)}")
