"""Ready parts of flow matching (notebook 09): continuous time, the ideal velocity field, paths.

On the linear path a data point x_0 (t = 0) and a noise ε (t = 1) are joined by
x_t = (1 - t) · x_0 + t · ε, and a velocity model is `model(x_t, t) -> v_hat` with t a float
tensor [B] in [0, 1].

- `broadcast_t`, `as_flow_t`, `euler_grid`: continuous t as the exercises take it;
- `IdealVelocity`: the best possible velocity for a finite set of points, in closed form, and
  `ideal_velocity_loss_floor`, the flow-matching loss it reaches (no network can go lower);
- `euler_on_grid`, `path_straightness`: run the ODE on any grid of t, and measure how straight
  the paths are;
- `VelocityFromEps`: a DDPM ε-model seen as a velocity model on the linear path;
- `per_sample`, `check_prediction_kinds`: the family of Gaussian paths x_t = α_t x_0 + σ_t ε
  (exercise 9.7 converts between its predictions);
- `minibatch_ot_noise`: minibatch optimal-transport pairing of data and noise.
"""

import numbers

import torch


def _check_unit_interval(t: torch.Tensor) -> None:
    if t.numel() and (not bool(torch.isfinite(t).all()) or float(t.min()) < 0 or float(t.max()) > 1):
        raise ValueError(f"flow-matching times t must lie in [0, 1] (0 = data, 1 = noise); got values from "
                         f"{float(t.min()):g} to {float(t.max()):g}")


def broadcast_t(t, x: torch.Tensor):
    """t ready to multiply x: a Python float stays a float; a tensor [B] (or [1], or a 0-d
    tensor) becomes [B, 1, ..., 1] in x's dtype and device. Checks t in [0, 1]."""
    if isinstance(t, bool):
        raise TypeError("t must be a float in [0, 1] or a float tensor [B]; got a bool")
    if isinstance(t, numbers.Real):
        _check_unit_interval(torch.tensor(float(t)))
        return float(t)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"t must be a float in [0, 1] or a float tensor [B]; got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"flow-matching t is continuous: a float tensor in [0, 1], not {t.dtype} "
                        "(DDPM's integer timesteps 1..T belong to the VP path)")
    _check_unit_interval(t)
    t = t.to(device=x.device, dtype=x.dtype)
    if t.dim() == 0:
        return t
    if t.dim() != 1 or t.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"t must be a float or a tensor of shape [{x.shape[0]}] (one t per sample); "
                         f"got shape {tuple(t.shape)}")
    return t.reshape(-1, *([1] * (x.dim() - 1)))


def as_flow_t(t, batch: int, x: torch.Tensor | None = None) -> torch.Tensor:
    """t as a float tensor [batch] (x's dtype and device when x is given), checked to lie in [0, 1]."""
    dtype = x.dtype if x is not None else torch.float32
    device = x.device if x is not None else None
    if isinstance(t, bool) or not isinstance(t, (numbers.Real, torch.Tensor)):
        raise TypeError(f"t must be a float in [0, 1] or a float tensor [B]; got {type(t).__name__}")
    t = torch.as_tensor(t, dtype=dtype, device=device) if not isinstance(t, torch.Tensor) else t
    if not t.is_floating_point():
        raise TypeError(f"flow-matching t is continuous: a float tensor in [0, 1], not {t.dtype}")
    if t.dim() == 0:
        t = t.expand(batch)
    if t.dim() != 1 or t.shape[0] not in (1, batch):
        raise ValueError(f"t must be a float or a tensor of shape [{batch}]; got shape {tuple(t.shape)}")
    _check_unit_interval(t)
    return t.to(device=device if device is not None else t.device, dtype=dtype).expand(batch)


def euler_grid(num_steps: int) -> list:
    """The uniform grid of fm_sample: [1, 1 - 1/N, …, 1/N, 0] (N + 1 floats, N = num_steps)."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, numbers.Integral) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer; got {num_steps!r}")
    n = int(num_steps)
    return [(n - i) / n for i in range(n + 1)]


@torch.no_grad()
def euler_on_grid(model, x: torch.Tensor, ts, trajectory: bool = False):
    """Euler's method on dx/dt = model(x, t) along the decreasing times ts = [t_0, …, t_N]:
    x ← x + (t_{i+1} - t_i) · model(x, t_i). Returns the end point, or with trajectory=True the
    list of the N + 1 states. fm_sample (exercise 9.3) is this on the uniform grid."""
    ts = [float(t) for t in ts]
    states = [x]
    for t, t_next in zip(ts, ts[1:]):
        x = x + (t_next - t) * model(x, torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype))
        states.append(x)
    return states if trajectory else x


def path_straightness(states) -> torch.Tensor:
    """Per sample: the length of the polyline through states [x_1, …, x_0] over the distance
    between its ends (1 for a straight path, more for a curved one). Returns a tensor [B]."""
    xs = torch.stack([s.detach().double().flatten(1) for s in states])  # [N+1, B, D]
    length = (xs[1:] - xs[:-1]).norm(dim=2).sum(0)
    chord = (xs[-1] - xs[0]).norm(dim=1)
    return length / chord.clamp(min=1e-12)


class IdealVelocity:
    """`IdealVelocity(points)(x_t, t) -> v`: the best possible velocity when the data are
    exactly the points x^(1..N) [N, ...].

    Given x_t on the linear path, x_0 = x^(i) with posterior weight
    w_i ∝ exp(-‖x_t - (1 - t) x^(i)‖² / (2 t²)) (x_t given x_0 is N((1 - t) x_0, t² I)), and the
    noise is then ε = (x_t - (1 - t) x_0) / t, so

        v*(x_t, t) = E[ε - x_0 | x_t] = (x_t - E[x_0 | x_t]) / t

    the average of the straight-line velocities through x_t (the marginal velocity; compare
    ideal.IdealDenoiser on the VP path). t is clamped to at least t_min (at t = 0 it is undefined).
    """

    def __init__(self, points: torch.Tensor, t_min: float = 1e-4, chunk_size: int = 2048):
        if not isinstance(points, torch.Tensor) or points.dim() < 2 or points.shape[0] < 1:
            raise ValueError("points must be a tensor [N, ...] holding at least one data point")
        self.points = points.detach().to(torch.float64)
        self.t_min, self.chunk_size = t_min, chunk_size

    @property
    def device(self):
        return self.points.device

    def posterior_mean(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """E[x_0 | x_t] under the data set, for t a float or a float tensor [B] in [0, 1]."""
        t = as_flow_t(t, x_t.shape[0]).to(self.device, torch.float64).clamp(min=self.t_min).reshape(-1, 1)
        x = x_t.detach().to(self.device, torch.float64).flatten(1)  # [B, D]
        data = self.points.flatten(1)  # [N, D]
        sq_norms = (data**2).sum(1)
        out = []
        for start in range(0, x.shape[0], self.chunk_size):
            xc, tc = x[start:start + self.chunk_size], t[start:start + self.chunk_size]
            a = 1 - tc  # [b, 1]
            sq_dist = (xc**2).sum(1, keepdim=True) - 2 * a * (xc @ data.T) + a**2 * sq_norms
            weights = torch.softmax(-sq_dist.clamp(min=0) / (2 * tc**2), dim=1)
            out.append(weights @ data)
        return torch.cat(out).reshape(x_t.shape)

    def __call__(self, x_t: torch.Tensor, t) -> torch.Tensor:
        t_b = as_flow_t(t, x_t.shape[0]).to(self.device, torch.float64).clamp(min=self.t_min)
        x = x_t.detach().to(self.device, torch.float64)
        v = (x - self.posterior_mean(x_t, t_b)) / t_b.reshape(-1, *([1] * (x.dim() - 1)))
        return v.to(device=x_t.device, dtype=x_t.dtype)


def ideal_velocity_loss_floor(points: torch.Tensor, n: int = 20_000, seed: int = 0, chunk_size: int = 2048) -> float:
    """The flow-matching loss of the ideal velocity of `points` (fm_loss's mean over elements,
    with x_0 drawn from the points, t ~ U(0, 1), ε ~ N(0, I)), estimated on n draws: the lowest
    loss any velocity model trained on these points can reach. Monte Carlo, so about
    ±1-2 % at n = 20 000."""
    g = torch.Generator().manual_seed(seed)
    points = points.detach().cpu().double()
    ideal = IdealVelocity(points, chunk_size=chunk_size)
    total, count = 0.0, 0
    for start in range(0, n, chunk_size):
        b = min(chunk_size, n - start)
        x0 = points[torch.randint(len(points), (b,), generator=g)]
        t = torch.rand(b, generator=g, dtype=torch.float64)
        eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        tb = t.reshape(-1, *([1] * (x0.dim() - 1)))
        x_t = (1 - tb) * x0 + tb * eps
        total += float(((ideal(x_t, t) - (eps - x0)) ** 2).sum())
        count += x0.numel()
    return total / count


class VelocityFromEps:
    """A DDPM ε-model (integer t in 1..T, VP path) seen as a velocity model on the linear path.

    With a_t = √ᾱ_t, b_t = √(1 - ᾱ_t), dividing x_t = a_t x_0 + b_t ε by a_t + b_t gives
    y = (1 - τ) x_0 + τ ε with τ_t = b_t / (a_t + b_t): the same point on the linear path at
    time τ. So v(y, τ) = ε̂ - x̂_0 with ε̂ = model((a_t + b_t) y, t) and x̂_0 = (y - τ ε̂) / (1 - τ).
    Only the τ of the integer timesteps are allowed (`taus[t]`; the nearest one is used).
    Euler on the τ of DDIM's timesteps is then exactly DDIM (notebook 09).
    """

    def __init__(self, eps_model, schedule):
        self.model, self.schedule = eps_model, schedule
        a, b = schedule.alpha_bars.double().sqrt(), (1 - schedule.alpha_bars.double()).sqrt()
        self.scale = a + b  # [T + 1]
        self.taus = b / (a + b)  # τ_0 = 0 ... τ_T close to 1

    def timestep_of(self, tau: torch.Tensor) -> torch.Tensor:
        """The integer timestep (1..T) whose τ is nearest to each tau."""
        taus = self.taus[1:].to(tau.device)
        return (tau.double()[:, None] - taus[None, :]).abs().argmin(dim=1) + 1

    def __call__(self, y: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        tau = as_flow_t(tau, y.shape[0], y)
        t = self.timestep_of(tau)
        shape = (-1, *([1] * (y.dim() - 1)))
        scale = self.scale.to(y.device)[t].to(y.dtype).reshape(shape)
        tau_t = self.taus.to(y.device)[t].to(y.dtype).reshape(shape)
        eps = self.model(scale * y, t.to(y.device))
        x0 = (y - tau_t * eps) / (1 - tau_t)
        return eps - x0

    def start(self, x_T: torch.Tensor) -> torch.Tensor:
        """DDPM's starting noise x_T moved onto the linear path: y = x_T / (a_T + b_T), at τ_T."""
        return x_T / self.scale[-1].to(x_T.device, x_T.dtype)



# --- The family of Gaussian paths x_t = α_t · x_0 + σ_t · ε (exercise 9.7) ---------------------

PREDICTION_KINDS = {
    "eps": "the noise ε",
    "x0": "the clean data x_0",
    "score": "the score ∇ log p_t(x_t) = -ε / σ_t",
    "v": "Salimans & Ho's v-prediction α_t·ε - σ_t·x_0",
    "velocity": "the flow velocity dx_t/dt = α'_t·x_0 + σ'_t·ε",
}


def per_sample(c, x: torch.Tensor):
    """A path coefficient (α_t, σ_t or a derivative) ready to multiply x: a Python number stays a
    float; a tensor [B] (or [1], or 0-d) becomes [B, 1, ..., 1] in x's dtype and device."""
    if isinstance(c, bool):
        raise TypeError("a path coefficient must be a number or a float tensor [B]; got a bool")
    if isinstance(c, numbers.Real):
        return float(c)
    if not isinstance(c, torch.Tensor):
        raise TypeError(f"a path coefficient must be a number or a float tensor [B]; got {type(c).__name__}")
    c = c.to(device=x.device, dtype=x.dtype)
    if c.dim() == 0:
        return c
    if c.dim() != 1 or c.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"a path coefficient must be a number or a tensor of shape [{x.shape[0]}] (one per "
                         f"sample); got shape {tuple(c.shape)}")
    return c.reshape(-1, *([1] * (x.dim() - 1)))


def check_prediction_kinds(source, target, d_alpha=None, d_sigma=None) -> None:
    """A clear error for an unknown kind of prediction, or a velocity without the path's derivatives."""
    for role, kind in (("source", source), ("target", target)):
        if kind not in PREDICTION_KINDS:
            raise ValueError(f"{role} must be one of {', '.join(map(repr, PREDICTION_KINDS))}; got {kind!r}")
    if "velocity" in (source, target) and (d_alpha is None or d_sigma is None):
        raise ValueError("the velocity dx_t/dt = α'_t·x_0 + σ'_t·ε needs the derivatives of the path: pass d_alpha "
                         "and d_sigma (on the linear path α_t = 1 - t, σ_t = t: d_alpha = -1, d_sigma = 1)")


# --- Minibatch optimal transport (Tong et al., 2024; Pooladian et al., 2023) -------------------


def minibatch_ot_noise(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The rows of `noise` reordered so that row i goes with x0[i] and the total squared distance
    Σ_i ‖x0_i - ε_π(i)‖² is the smallest over all pairings of the batch (an exact assignment, scipy's
    linear_sum_assignment). Each batch keeps the same data and the same noises; only who is paired
    with whom changes, so the straight lines of a batch cross less."""
    from scipy.optimize import linear_sum_assignment

    if noise.shape != x0.shape:
        raise ValueError(f"noise must have x0's shape {tuple(x0.shape)}; got {tuple(noise.shape)}")
    cost = torch.cdist(x0.detach().flatten(1).double().cpu(), noise.detach().flatten(1).double().cpu()) ** 2
    rows, cols = linear_sum_assignment(cost.numpy())
    order = torch.as_tensor(cols[rows.argsort()], device=noise.device)
    return noise[order]
