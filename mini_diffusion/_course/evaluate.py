"""Sample a model with a named sampler and score the samples against the real data.

Used by the command line (`mini-diffusion sample/evaluate`), the reference-model training
script, the notebooks and the benchmarks, so all of them measure quality the same way:
moons by energy distance, digits by Fréchet distance in a digit classifier's features, each as
a ratio to the floor (the same distance between two independent real samples).
"""

import time

import torch

from mini_diffusion.toolkit.common import model_device

DATA_SHAPES = {"moons": (2,), "digits": (1, 8, 8)}


def samplers() -> dict:
    """Sampler name -> function(model, shape, schedule, steps, generator) -> x_0.

    Looked up at call time through the package, so the solutions switch and your own code apply.
    """
    import mini_diffusion as md

    return {
        "ddpm": lambda m, shape, s, steps, g: md.sampling.ddpm_sample(m, shape, s, generator=g),
        "ddim": lambda m, shape, s, steps, g: md.ddim.ddim_sample(m, shape, s, num_steps=steps, generator=g),
        "euler": lambda m, shape, s, steps, g: md.solvers.euler_sample(m, shape, s, steps, generator=g),
        "heun": lambda m, shape, s, steps, g: md.solvers.heun_sample(m, shape, s, steps, generator=g),
        "dpm": lambda m, shape, s, steps, g: md.solvers.dpm_solver_sample(m, shape, s, steps, generator=g),
    }


def generate(model, schedule, sampler: str, n: int, data: str, steps: int | None = None, seed: int = 0):
    """n samples of the data set `data` ("moons" or "digits") and the wall time in seconds."""
    table = samplers()
    if sampler not in table:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of: {', '.join(table)}")
    if data not in DATA_SHAPES:
        raise ValueError(f"unknown data {data!r}; choose one of: {', '.join(DATA_SHAPES)}")
    device = model_device(model)
    generator = torch.Generator(device=device).manual_seed(seed)
    steps = schedule.T if steps is None else steps
    shape = (n, *DATA_SHAPES[data])
    previous_threads = torch.get_num_threads()
    if device.type == "cpu":  # a small CPU can be many times slower with its default threading
        torch.set_num_threads(_fastest_threads(model, shape))
    try:
        start = time.perf_counter()
        with torch.no_grad():
            x = table[sampler](model, shape, schedule, steps, generator)
        return x.cpu().float(), time.perf_counter() - start
    finally:
        torch.set_num_threads(previous_threads)


def _fastest_threads(model, shape) -> int:
    from mini_diffusion.toolkit.device import best_num_threads

    x = torch.randn(shape)
    t = torch.full((shape[0],), 500, dtype=torch.long)
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
