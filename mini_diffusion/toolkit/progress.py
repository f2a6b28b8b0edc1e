"""Progress bars that work in a terminal and in JupyterLab alike, and the plumbing of a sampler's loop.

Every sampler of the course (ddpm_sample, ddim_sample, euler_sample, heun_sample,
dpm_solver_sample) accepts the same keywords trajectory=, callback= and progress=. What they
ask for is the same in every sampler, so it lives here, in SamplerLoop, and a sampler's own loop
stays the few lines of its algorithm:

    loop = SamplerLoop(x, trajectory, callback, progress, desc="DDIM")
    for t, t_prev in loop(steps):          # the steps, with a progress bar when asked for
        x = ddim_step(model, x, t, t_prev, schedule)
        loop.record(t, x)                  # the state after the step: trajectory and callback
    return loop.result(x)                  # x_0, or the list [x_T, …, x_0]
"""

import math

from tqdm.auto import tqdm


def steps_bar(iterable, enabled: bool = True, desc: str | None = None, **kwargs):
    """Wrap `iterable` in a tqdm bar when enabled, else return it unchanged.

    >>> list(steps_bar(range(3), enabled=False))
    [0, 1, 2]
    """
    if not enabled:
        return iterable
    return tqdm(iterable, desc=desc, leave=False, **kwargs)


class SamplerLoop:
    """What a sampler's loop does besides its update: a progress bar, the trajectory, the callback.

    x_T: the starting state (the first entry of the trajectory). trajectory: keep every state,
    and result() returns the list [x_T, …, x_0]. callback: called as callback(i, t, x) after
    step i = 0, 1, …, with t the integer timestep that step started from (the one just left) and
    x the state it reached. progress: show a tqdm bar named desc.

    States are always reported in the x_t variable of DDPM and DDIM, so that trajectories and
    callbacks mean the same for every sampler. The ODE solvers step in x̃ = x_t / √ᾱ_t instead;
    they pass sigmas = [σ_0, …, σ_N] (the noise levels of their stops), and the state after step
    i is reported as x = x̃ / √(1 + σ_{i+1}²) (that is √ᾱ · x̃; at σ_N = 0 the sample itself).

    >>> loop = SamplerLoop(torch.zeros(2), trajectory=True, callback=lambda i, t, x: print(i, t, x.tolist()))
    >>> for t in loop([3, 2, 1]):
    ...     loop.record(t, torch.full((2,), float(t)))
    0 3 [3.0, 3.0]
    1 2 [2.0, 2.0]
    2 1 [1.0, 1.0]
    >>> [x.tolist() for x in loop.result(None)]
    [[0.0, 0.0], [3.0, 3.0], [2.0, 2.0], [1.0, 1.0]]
    """

    def __init__(self, x_T, trajectory: bool = False, callback=None, progress: bool = False,
                 desc: str | None = None, sigmas=None):
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be a function callback(i, t, x) or None; got {type(callback).__name__}")
        self.states = [x_T] if trajectory else None
        self.callback, self.progress, self.desc = callback, progress, desc
        self.scales = None if sigmas is None else [1.0 / math.sqrt(1.0 + float(s) ** 2) for s in sigmas]
        self.i = 0

    def __call__(self, steps):
        """The steps to loop over, in a progress bar when one was asked for."""
        if self.progress and not hasattr(steps, "__len__"):
            steps = list(steps)  # so that the bar knows how long it is
        return steps_bar(steps, enabled=self.progress, desc=self.desc)

    def record(self, t, x) -> None:
        """After a step from timestep t: keep the state x (trajectory) and call the callback."""
        i, self.i = self.i, self.i + 1
        if self.states is None and self.callback is None:
            return
        if self.scales is not None:
            x = x * self.scales[i + 1]  # x̃ -> x_t = x̃ / √(1 + σ²)
        if self.states is not None:
            self.states.append(x)
        if self.callback is not None:
            self.callback(i, int(t), x)

    def result(self, x):
        """What the sampler returns: the list of states with trajectory=True, else x (= x_0)."""
        return self.states if self.states is not None else x
