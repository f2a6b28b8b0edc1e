# Your exercise file: replace each `raise NotImplementedError(...)` line with your code.
# (Made from solutions/flow.py by tools/build.py; the notebooks tell you what to write.)
# ruff: noqa: F401, F841  (the imports and names your code will use are already here)
"""Exercises 9.1-9.7 (notebook 09): flow matching on the linear path, and one language for
ε, x̂_0, score and velocity on any Gaussian path x_t = α_t · x_0 + σ_t · ε.

The linear path joins a data point x_0 (at t = 0) to a noise ε (at t = 1) by a straight line:

    x_t = (1 - t) · x_0 + t · ε,        t in [0, 1]

(t runs the same way as DDPM's: 0 is data, 1 is noise). Along it a point moves with the
constant conditional velocity u = dx_t/dt = ε - x_0. A velocity model v_θ(x_t, t) learns the
average of u over every (x_0, ε) that passes through x_t (the marginal velocity), simply by
regressing on u (Lipman et al., 2023). Sampling runs the ODE dx/dt = v_θ(x, t) backwards in t,
from noise at t = 1 to data at t = 0.

A velocity model is `model(x_t, t) -> v_hat` with t a float tensor [B] in [0, 1]. The ready
helpers (the Euler grid, the ideal velocity field) are in
mini_diffusion/toolkit/flow.py; this file holds only the exercises.
"""

import torch

from mini_diffusion.toolkit.common import extract
from mini_diffusion.toolkit.flow import as_flow_t, broadcast_t, check_prediction_kinds, euler_grid, per_sample
from mini_diffusion.toolkit.plumbing import sampler
from mini_diffusion._base.catalog import todo


def fm_interpolate(x0: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
    """The point at time t on the straight line from x0 (t = 0) to noise (t = 1):

        x_t = (1 - t) · x_0 + t · ε

    t: a float in [0, 1] or a float tensor [B] (one t per sample), broadcast over the other
    dimensions of x0. Returns a tensor of x0's shape, dtype and device.

    >>> fm_interpolate(torch.zeros(2, 2), torch.ones(2, 2), 0.25)
    tensor([[0.2500, 0.2500],
            [0.2500, 0.2500]])
    """
    raise NotImplementedError(todo("fm_interpolate"))


def fm_loss(model, x0: torch.Tensor, t=None, noise=None, generator=None) -> torch.Tensor:
    """The flow-matching loss: the mean squared error between the model's velocity and the
    conditional velocity of the straight line,

        L = mean ‖v_θ(x_t, t) - (ε - x_0)‖²,   x_t = (1 - t) · x_0 + t · ε

    t: a float tensor [B] in [0, 1]; when None, drawn t ~ U(0, 1) per sample (first, with
    `generator`, in x0's dtype: torch.rand(B, generator=generator, dtype=x0.dtype), since a float64
    draw gives other numbers than a float32 one); noise: ε, when None drawn from N(0, I) (after t,
    with `generator`, also in x0's dtype). The mean
    runs over every element (as diffusion_loss's). Returns a scalar that backpropagates into the
    model.

    >>> loss = fm_loss(model, x0, generator=torch.Generator().manual_seed(0))
    >>> loss.shape
    torch.Size([])
    """
    raise NotImplementedError(todo("fm_loss"))


def _check_flow_options(arguments):
    euler_grid(arguments["num_steps"])  # a positive integer


@sampler("flow Euler", prepare=_check_flow_options)
def fm_sample(model, shape, num_steps: int, *, x_T):
    """Euler's method on dx/dt = v_θ(x, t), from t = 1 (noise) down to t = 0 (data) on the
    uniform grid t_i = 1 - i / N, i = 0..N (N = num_steps):

        x_{t_{i+1}} = x_{t_i} + (t_{i+1} - t_i) · v_θ(x_{t_i}, t_i)

    (t_{i+1} - t_i = -1/N: the step goes backwards in t.) One network call per step, N in all;
    the last step lands on t = 0.

    The sampler contract without a schedule: fm_sample(model, shape, num_steps, *, generator=None,
    x_T=None, trajectory=False, callback=None, progress=False, device=None). Returns x_0 of that
    shape, or with trajectory=True the list [x_1, …, x_0] of N + 1 states; callback(i, t, x) gets
    the float t the step left. You write the loop from x_T (drawn by the plumbing, @sampler),
    and `yield t, x` after each step.

    >>> x0 = fm_sample(model, (500, 2), 20, generator=torch.Generator().manual_seed(0))
    >>> x0.shape
    torch.Size([500, 2])
    """
    ts = euler_grid(num_steps)
    raise NotImplementedError(todo("fm_sample"))


def x0_from_velocity(x_t: torch.Tensor, t, v: torch.Tensor) -> torch.Tensor:
    """The data estimate from a velocity on the linear path: x̂_0 = x_t - t · v.

    (Follow the straight line from x_t back to t = 0 with velocity v.) t: a float or a float
    tensor [B] in [0, 1], broadcast as in fm_interpolate.
    """
    raise NotImplementedError(todo("x0_from_velocity"))


def eps_from_velocity(x_t: torch.Tensor, t, v: torch.Tensor) -> torch.Tensor:
    """The noise estimate from a velocity on the linear path: ε̂ = x_t + (1 - t) · v.

    (Follow the line forward from x_t to t = 1.) t as in x0_from_velocity.
    """
    raise NotImplementedError(todo("eps_from_velocity"))


def score_from_eps(eps: torch.Tensor, t, schedule) -> torch.Tensor:
    """The score ∇ log p_t(x_t) from a noise prediction on DDPM's (VP) path:

        score = -ε / √(1 - ᾱ_t)

    t: integer timesteps 1..T (an int or an int64 tensor [B]), as everywhere in DDPM.
    """
    raise NotImplementedError(todo("score_from_eps"))


def convert_prediction(x_t: torch.Tensor, prediction: torch.Tensor, alpha, sigma, *, source: str, target: str,
                       d_alpha=None, d_sigma=None) -> torch.Tensor:
    """Turn one kind of prediction into another on any Gaussian path x_t = α_t · x_0 + σ_t · ε.

    Kinds (source and target): "eps" (ε̂), "x0" (x̂_0), "score" (∇ log p_t(x_t) = -ε̂ / σ_t),
    "v" (Salimans & Ho's v-prediction, v = α_t · ε - σ_t · x_0) and "velocity" (the flow velocity
    u = dx_t/dt = α'_t · x_0 + σ'_t · ε, which needs the derivatives d_alpha = α'_t, d_sigma = σ'_t in
    the clock t of your choice). Whatever the source, first recover the pair (x̂_0, ε̂) from x_t = α_t x̂_0 + σ_t ε̂
    and the prediction (two linear equations), then build the target from the pair:

        from ε̂:        x̂_0 = (x_t - σ_t ε̂) / α_t
        from x̂_0:      ε̂ = (x_t - α_t x̂_0) / σ_t
        from a score:  ε̂ = -σ_t · score
        from v:        x̂_0 = (α_t x_t - σ_t v) / (α_t² + σ_t²),  ε̂ = (σ_t x_t + α_t v) / (α_t² + σ_t²)
        from u:        x̂_0 = (σ'_t x_t - σ_t u) / D,  ε̂ = (α_t u - α'_t x_t) / D,  D = α_t σ'_t - σ_t α'_t

    alpha, sigma, d_alpha, d_sigma: numbers or float tensors [B] (one per sample), broadcast over the
    other dimensions of x_t. Paths: DDPM's VP (α_t = √ᾱ_t, σ_t = √(1 - ᾱ_t)), variance exploding
    (α_t = 1), the linear path of flow matching (α_t = 1 - t, σ_t = t, α' = -1, σ' = 1). Where the
    conversion has no answer (x̂_0 from ε̂ at α_t = 0, ε̂ from x̂_0 at σ_t = 0) the result is inf or nan.

    >>> x_t, v = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, -1.0]])
    >>> convert_prediction(x_t, v, 0.75, 0.25, source="velocity", target="x0", d_alpha=-1, d_sigma=1)
    tensor([[0.8750, 2.2500]])
    """
    check_prediction_kinds(source, target, d_alpha, d_sigma)
    raise NotImplementedError(todo("convert_prediction"))
