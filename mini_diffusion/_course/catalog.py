"""The list of exercises: which function, in which file, taught by which notebook.

The stubs' "not implemented yet" messages, the grader and the notebooks' check cells all
read this one table, so an exercise is renamed or moved in one place.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    id: str  # "1.3": notebook 1, third exercise
    module: str  # file mini_diffusion/<module>.py
    function: str
    notebook: str  # file name in notebooks/, without extension
    points: int
    title: str


NOTEBOOKS = {
    "00": "00_introduction",
    "01": "01_forward_process",
    "02": "02_reverse_process",
    "03": "03_training_loss",
    "04": "04_sampling",
    "05": "05_noise_schedules",
    "06": "06_ddim",
    "07": "07_fast_samplers",
}


def _ex(id, module, function, points, title):
    notebook = NOTEBOOKS[id.split(".")[0].zfill(2)]
    return Exercise(id, module, function, notebook, points, title)


EXERCISES = [
    _ex("1.1", "schedules", "linear_betas", 1, "the linear beta schedule"),
    _ex("1.2", "schedules", "alpha_bars_from_betas", 1, "alpha-bar as a cumulative product"),
    _ex("1.3", "forward", "q_step", 1, "one forward noising step"),
    _ex("1.4", "forward", "q_sample", 2, "the closed-form forward process"),
    _ex("2.1", "reverse", "predict_x0", 1, "x0 from x_t and the noise"),
    _ex("2.2", "reverse", "q_posterior", 2, "the forward-process posterior"),
    _ex("2.3", "reverse", "p_mean", 2, "the model's mean from predicted noise"),
    _ex("3.1", "losses", "diffusion_loss", 3, "the simple training loss"),
    _ex("4.1", "sampling", "ddpm_step", 3, "one DDPM reverse step"),
    _ex("4.2", "sampling", "ddpm_sample", 3, "the DDPM sampling loop"),
    _ex("5.1", "schedules", "cosine_alpha_bars", 1, "the cosine alpha-bar curve"),
    _ex("5.2", "schedules", "betas_from_alpha_bars", 1, "betas back from alpha-bars"),
    _ex("5.3", "schedules", "snr", 1, "the signal-to-noise ratio"),
    _ex("6.1", "ddim", "ddim_timesteps", 1, "the DDIM timestep subsequence"),
    _ex("6.2", "ddim", "ddim_step", 3, "one DDIM update"),
    _ex("6.3", "ddim", "ddim_sample", 2, "the DDIM sampling loop"),
    _ex("7.1", "solvers", "euler_sample", 3, "Euler's method on the probability-flow ODE"),
    _ex("7.2", "solvers", "heun_sample", 3, "Heun's second-order sampler"),
    _ex("7.3", "solvers", "dpm_solver_sample", 3, "the DPM-Solver++(2M) sampler"),
]

EXERCISE_MODULES = ("schedules", "forward", "reverse", "losses", "sampling", "ddim", "solvers")


def by_id(id: str) -> Exercise:
    for exercise in EXERCISES:
        if exercise.id == id:
            return exercise
    known = ", ".join(e.id for e in EXERCISES)
    raise KeyError(f"no exercise {id!r}; the exercises are {known}")


def by_function(function: str) -> Exercise:
    for exercise in EXERCISES:
        if exercise.function == function:
            return exercise
    raise KeyError(f"no exercise is called {function!r}")


def exercises_of_notebook(number: str) -> list[Exercise]:
    """The exercises notebook `number` ("04") asks for, in order."""
    return [e for e in EXERCISES if e.id.split(".")[0].zfill(2) == number]


def todo(function: str) -> str:
    """The message a stub raises: what to do next, in a learner's terms."""
    e = by_function(function)
    return (
        f"Exercise {e.id} ({e.function}: {e.title}) is not implemented yet. "
        f"Notebook notebooks/{e.notebook}.ipynb explains it; write your code in "
        f"mini_diffusion/{e.module}.py, in place of the `raise NotImplementedError` line. "
        f"To skip ahead with the reference solution instead, run `md.lend(\"{e.id}\")` in the notebook "
        f"(no restart needed), or set MINI_DIFFUSION_SOLUTIONS={e.id} before Python starts "
        f"(MINI_DIFFUSION_SOLUTIONS={e.module} lends the whole file, =1 everything)."
    )
