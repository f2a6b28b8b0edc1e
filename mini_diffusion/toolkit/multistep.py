"""Ready higher-order multistep solvers of the probability-flow ODE: DPM-Solver++(3M) and UniPC.

Notebook 07's DPM-Solver++(2M) (exercise 7.3) fits a line through the last two denoised
estimates D; these fit a parabola (third order), and UniPC also corrects each step with the
network call the next step makes anyway. They are ready samplers, not exercises: the same
contract as every sampler of the course, for the benchmarks, the command line and the curious.

Both work in the "data plus noise" variable of toolkit/ode.py, x̃ = x_t / √ᾱ_t = x_0 + σ ε, with
the time λ = -log σ (half the log-SNR). Between two stops s → t, h = λ_t - λ_s = log(σ_s / σ_t),
the ODE's exact solution is

    x̃_t = e^(-h) · x̃_s + ∫_0^h e^(-(h-u)) · D(λ_s + u) du

and every solver here differs only in how it approximates D(λ) on the step by a polynomial
through the estimates it already has. With D's Taylor terms the integral is
Σ_k h^(k+1) φ_(k+1)(-h) D^(k)(λ_s), where

    φ_1(z) = (e^z - 1) / z,     φ_(k+1)(z) = (φ_k(z) - 1/k!) / z

(so h φ_1(-h) = 1 - e^(-h), the first-order, DDIM weight of D). `phi` computes them.

The stops are those of sigmas_for (the spacings "trailing", "quadratic", "karras", "logsnr"), or
any descending timesteps you pass as `spacing` (e.g. the optimised stops a reference model ships:
`optimised_timesteps`). The last stop is σ_N = final_sigma: 0 (clean data, the default) or, as
diffusers' final_sigmas_type="sigma_min", a small σ > 0 where the sampler stops and returns the
(almost clean) state.
"""

import math

import torch

from mini_diffusion.toolkit.common import check_num_steps
from mini_diffusion.toolkit.ode import SPACINGS, denoise, sigmas_for, sigmas_of
from mini_diffusion.toolkit.plumbing import sampler


def phi(k: int, z: float) -> float:
    """φ_k(z) of the exponential integrators (k ≥ 1): φ_1(z) = (e^z - 1)/z, φ_(k+1) = (φ_k - 1/k!)/z.

    The recursion loses digits for |z| ≪ 1 (each level divides a difference by z); the steps
    here have h ≳ 0.01, where it is good to about 1e-10 at k = 3.

    >>> round(phi(1, -1.0), 6), round(phi(2, -1.0), 6), round(phi(3, -1.0), 6)
    (0.632121, 0.367879, 0.132121)
    """
    value = math.expm1(z) / z
    for j in range(1, k):
        value = (value - 1.0 / math.factorial(j)) / z
    return value


def stops(schedule, num_steps: int, spacing="trailing", final_sigma: float = 0.0):
    """Where a multistep sampler stops: (timesteps [N] int64, sigmas [N+1] float64), both on the CPU.

    spacing: a name of sigmas_for ("trailing", "quadratic", "karras", "logsnr"), or the timesteps
    themselves, N distinct descending integers in 1..T. sigmas[N] = final_sigma, which must lie
    below the last stop's σ (0: the sampler ends on clean data).

    >>> stops(linear_schedule(1000), 3, spacing=[1000, 300, 40])[1].tolist()[-1]
    0.0
    """
    num_steps = check_num_steps(num_steps, schedule.T)
    if isinstance(spacing, str):
        if spacing not in SPACINGS:
            raise ValueError(f"spacing must be one of {', '.join(map(repr, SPACINGS))} or a list of timesteps; "
                             f"got {spacing!r}")
        timesteps, sigmas = sigmas_for(schedule, num_steps, spacing)
    else:
        timesteps = torch.as_tensor(spacing).cpu().flatten()
        listed = timesteps.tolist()
        if (timesteps.is_floating_point() or len(listed) != num_steps or not all(1 <= t <= schedule.T for t in listed)
                or any(a <= b for a, b in zip(listed, listed[1:]))):
            raise ValueError(f"spacing as timesteps must be {num_steps} distinct descending integers in 1..{schedule.T}; "
                             f"got {listed}")
        timesteps = timesteps.long()
        sigmas = torch.cat([sigmas_of(schedule).cpu()[timesteps], torch.zeros(1, dtype=torch.float64)])
    final_sigma = float(final_sigma)
    if not 0.0 <= final_sigma < float(sigmas[-2]):
        raise ValueError(f"final_sigma must lie in [0, {float(sigmas[-2]):.4g}), below the last stop's σ; "
                         f"got {final_sigma}")
    sigmas[-1] = final_sigma
    return timesteps, sigmas


def optimised_timesteps(name: str, sampler: str, num_steps: int, models_dir=None) -> list[int]:
    """The stops optimised for a reference model (tools/optimise_stops.py), from its manifest's
    "stops" key: {sampler: {num_steps: [timesteps]}}. Pass them as `spacing`:

        unipc_sample(model, shape, schedule, 8, order=3, spacing=optimised_timesteps("moons", "unipc3", 8))
    """
    from mini_diffusion.toolkit import reference

    manifest = reference.read_manifest(name, models_dir or reference.MODELS_DIR)
    table = manifest.get("stops", {})
    if str(num_steps) not in table.get(sampler, {}):
        shipped = {s: sorted(map(int, by_n)) for s, by_n in table.items()}
        raise ValueError(f"{name}'s manifest ships no optimised stops for {sampler} with {num_steps} steps; "
                         f"it has {shipped or 'none'} (run tools/optimise_stops.py)")
    return list(table[sampler][str(num_steps)])


def _check_3m_options(arguments):
    if arguments["curvature"] not in ("exact", "half"):
        raise ValueError(f"curvature must be 'exact' or 'half'; got {arguments['curvature']!r}")


@sampler("DPM-Solver++(3M)", prepare=_check_3m_options)
def dpm_solver_3m_sample(model, shape, schedule, num_steps: int, *, spacing="trailing", final_sigma: float = 0.0,
                         lower_order_final: bool = True, curvature: str = "exact", x_T):
    """DPM-Solver++(3M): the third-order multistep DPM-Solver++ (Lu et al., 2022, "DPM-Solver++",
    the multistep method of its section 4 taken to order 3, as in their code and diffusers'
    DPMSolverMultistepScheduler(solver_order=3)). One network call per step: NFE = num_steps.

    With D_i = D(x̃_i; σ_i), h = λ_(i+1) - λ_i and the two steps before, h_0 = λ_i - λ_(i-1),
    h_1 = λ_(i-1) - λ_(i-2) (r_0 = h_0/h, r_1 = h_1/h), the slopes of D in λ are

        Δ_0 = (D_i - D_(i-1)) / r_0,    Δ_1 = (D_(i-1) - D_(i-2)) / r_1
        D'  = Δ_0 + r_0/(r_0 + r_1) · (Δ_0 - Δ_1)        ≈ h · dD/dλ            at λ_i
        D'' = (Δ_0 - Δ_1) / (r_0 + r_1)                  ≈ h²/2 · d²D/dλ²       at λ_i

    and the step integrates that parabola, D(λ_i + u) ≈ D_i + (u/h) D' + (u/h)² D'', exactly:

        x̃_(i+1) = e^(-h) x̃_i + h φ_1(-h) · D_i + h φ_2(-h) · D' + 2 h φ_3(-h) · D''

    (h φ_1(-h) = 1 - e^(-h), h φ_2(-h) = 1 - (1 - e^(-h))/h, h φ_3(-h) = 1/2 - (h - 1 + e^(-h))/h²).
    curvature="half" takes h φ_3(-h) · D'' instead, half the curvature term, as Lu et al.'s code and
    diffusers' DPMSolverMultistepScheduler(solver_order=3) do; that step is exact only for lines,
    not parabolas (tests/test_multistep.py), so it is a second-order step with a damped correction.
    The first step is first order (DDIM), the second is exercise 7.3's 2M step: there is no history yet.
    The last step to σ_N = 0 is first order whatever the options (h = ∞: x_0 = D_(N-1)).
    lower_order_final (diffusers' default): with fewer than 15 steps also the last step to a
    final_sigma > 0 is first order and the one before second order, which steadies few-step runs.
    final_sigma: the last stop (see stops); spacing: a name of sigmas_for or your timesteps.

    >>> dpm_solver_3m_sample(model, (64, 2), schedule, 8, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([64, 2])
    """
    timesteps, sigmas = stops(schedule, num_steps, spacing, final_sigma)
    timesteps, sigmas = timesteps.tolist(), sigmas.tolist()
    lams = [-math.log(s) if s > 0 else math.inf for s in sigmas]
    n = len(timesteps)
    x = x_T * math.sqrt(1.0 + sigmas[0] ** 2)
    history = []  # D of the stops so far, newest last
    for i in range(n):
        history = [*history[-2:], denoise(model, x, timesteps[i], schedule)]
        order = min(3, i + 1)
        if sigmas[i + 1] == 0 or (lower_order_final and n < 15 and i == n - 1):
            order = 1
        elif lower_order_final and n < 15 and i == n - 2:
            order = min(order, 2)
        x = history[-1] if sigmas[i + 1] == 0 else dpm_multistep_update(x, history[-order:], lams[i - order + 1:i + 2],
                                                                         curvature)
        yield timesteps[i], x, sigmas[i + 1]


def dpm_multistep_update(x, denoised, lams, curvature: str = "exact"):
    """One DPM-Solver++ multistep step of order len(denoised) (1, 2 or 3) in x̃, from λ_i to λ_(i+1).

    denoised: [D_(i-p+1), …, D_i], the estimates at lams[:-1] = [λ_(i-p+1), …, λ_i]; lams[-1] is
    λ_(i+1), finite. The formulas are those of dpm_solver_3m_sample: order 1 is DDIM, order 2 is
    exercise 7.3's DPM-Solver++(2M) (weight (1 - e^(-h))/2 on D', not h φ_2(-h)), order 3 adds the curvature term h φ_3(-h) · c · D'' with
    c = 2 for "exact" (the parabola's exact integral) and c = 1 for "half" (diffusers).

    >>> dpm_multistep_update(torch.zeros(1), [torch.ones(1)], [0.0, 1.0])   # 1 - e^(-1)
    tensor([0.6321])
    """
    lam, lam_next = lams[-2], lams[-1]
    h = lam_next - lam
    D = denoised[-1]
    update = -math.expm1(-h) * D  # h φ_1(-h) D_i = (1 - e^(-h)) D_i
    if len(denoised) >= 2:
        r_0 = (lam - lams[-3]) / h
        slope_0 = (D - denoised[-2]) / r_0
        if len(denoised) == 2:  # 2M's "midpoint" weight (1 - e^(-h))/2 (exercise 7.3, diffusers' default)
            update = update - 0.5 * math.expm1(-h) * slope_0
        else:
            r_1 = (lams[-3] - lams[-4]) / h
            slope_1 = (denoised[-2] - denoised[-3]) / r_1
            slope = slope_0 + r_0 / (r_0 + r_1) * (slope_0 - slope_1)
            weight = 2.0 if curvature == "exact" else 1.0
            update = update + h * phi(2, -h) * slope + weight * h * phi(3, -h) * ((slope_0 - slope_1) / (r_0 + r_1))
    return math.exp(-h) * x + update


def unipc_weights(rs, h: float, variant: str = "bh2", corrector: bool = False) -> tuple[list[float], float]:
    """UniPC's weights ρ and B(h') (Zhao et al., 2023, Algorithm 2 with the data prediction, h' = -h):
    the solution of

        R ρ = g / B(h'),    R_(j,k) = r_k^(j-1),    g_j = h' φ_(j+1)(h') · j!,    j, k = 1 … K

    with B(h') = e^(h') - 1 ("bh2") or h' ("bh1"). rs: the r_k = (λ_(i-k) - λ_i) / h < 0 of the
    p - 1 earlier estimates a step of order p uses; the corrector adds the new point, r = 1, so
    K = p for it and p - 1 for the predictor. Two small cases take ρ = 1/2 as diffusers does: the
    predictor of order 2 (the small-h limit of the solve; with bh2 it is then DPM-Solver++(2M)),
    and the corrector of order 1 (the trapezoidal rule).

    >>> unipc_weights([], 0.5, corrector=True)[0], unipc_weights([-1.0], 0.5)[0]
    ([0.5], [0.5])
    """
    hh = -h
    B = hh if variant == "bh1" else math.expm1(hh)
    points = [*rs, 1.0] if corrector else list(rs)
    if len(points) == 1 and (corrector or len(rs) == 1):
        return [0.5], B
    g = [hh * phi(j + 1, hh) * math.factorial(j) / B for j in range(1, len(points) + 1)]
    R = torch.tensor([[r ** (j - 1) for r in points] for j in range(1, len(points) + 1)], dtype=torch.float64)
    return torch.linalg.solve(R, torch.tensor(g, dtype=torch.float64)).tolist(), B


@torch.no_grad()
def _check_unipc_options(arguments):
    if arguments["order"] not in (1, 2, 3):
        raise ValueError(f"order must be 1, 2 or 3; got {arguments['order']!r}")
    if arguments["variant"] not in ("bh1", "bh2"):
        raise ValueError(f"variant must be 'bh1' or 'bh2'; got {arguments['variant']!r}")


@sampler("UniPC", prepare=_check_unipc_options)
def unipc_sample(model, shape, schedule, num_steps: int, *, order: int = 2, variant: str = "bh2",
                 corrector: bool = True, spacing="trailing", final_sigma: float = 0.0, lower_order_final: bool = True,
                 x_T):
    """UniPC (Zhao et al., 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast
    Sampling of Diffusion Models", Algorithm 2, data prediction): a multistep predictor UniP-p and
    a corrector UniC that reuses the network call made at the predicted point, so the corrected
    step is of order p + 1 at no extra cost: NFE = num_steps. diffusers'
    UniPCMultistepScheduler(solver_order=order, solver_type=variant) with its defaults.

    At stop i with D_i and the earlier D_(i-k) at λ_(i-k) (r_k = (λ_(i-k) - λ_i)/h < 0,
    Δ_k = (D_(i-k) - D_i) / r_k), with h' = -h and B = B(h') (variant "bh2": e^(h') - 1, the
    default; "bh1": h'):

        predictor  x̃_(i+1) = e^(-h) x̃_i + (1 - e^(-h)) D_i - B · Σ_(k<p) ρ_k Δ_k
        corrector  after D_(i+1) = D(x̃_(i+1); σ_(i+1)) is computed for the next step,
                   x̃_(i+1) ← e^(-h) x̃_i + (1 - e^(-h)) D_i - B · (Σ_(k<p) ρ^c_k Δ_k + ρ^c_p (D_(i+1) - D_i))

    ρ and ρ^c solve UniPC's small linear systems (_unipc_weights; p = 2's predictor takes ρ = 1/2,
    which makes UniP-2 with bh2 exactly DPM-Solver++(2M)). D_(i+1) stays the one computed at the
    predicted point: the corrector moves the state, not the network's answer. The order p of a
    step is min(order, i + 1) (the history there is), and with lower_order_final (diffusers'
    default) also ≤ N - i, so the last steps step down to 1. The last step to σ_N = 0 is
    x_0 = D_(N-1), so the corrector of the state before it changes nothing then.
    corrector=False leaves UniP alone. final_sigma and spacing: as in dpm_solver_3m_sample.

    >>> unipc_sample(model, (64, 2), schedule, 8, order=3, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([64, 2])
    """
    timesteps, sigmas = stops(schedule, num_steps, spacing, final_sigma)
    timesteps, sigmas = timesteps.tolist(), sigmas.tolist()
    lams = [-math.log(s) if s > 0 else math.inf for s in sigmas]
    n = len(timesteps)
    x = x_T * math.sqrt(1.0 + sigmas[0] ** 2)
    history = []  # D of the stops so far, newest last (history[-1] is D_i)
    previous = None  # (x̃_(i-1), the order p of the step i-1 → i)
    for i in range(n):
        D = denoise(model, x, timesteps[i], schedule)
        if corrector and previous is not None:
            x = _unipc_update(previous[0], history, lams, i - 1, previous[1], variant, new=D)
        history = [*history[-(order - 1):], D] if order > 1 else [D]
        p = min(order, i + 1, n - i if lower_order_final else order)
        if sigmas[i + 1] == 0:
            p = 1
        previous = (x, p)
        x = D if sigmas[i + 1] == 0 else _unipc_update(x, history, lams, i, p, variant)
        yield timesteps[i], x, sigmas[i + 1]


def _unipc_update(x, history, lams, i, p, variant, new=None):
    """One UniP-p step from stop i to i + 1 (new=None), or its UniC correction with the new estimate
    D_(i+1) = new. history ends with D_i, and holds the p - 1 before it."""
    h = lams[i + 1] - lams[i]
    D_i = history[-1]
    rs = [(lams[i - k] - lams[i]) / h for k in range(1, p)]
    slopes = [(history[-1 - k] - D_i) / r for k, r in zip(range(1, p), rs)]
    base = math.exp(-h) * x - math.expm1(-h) * D_i  # DDIM: e^(-h) x̃_i + (1 - e^(-h)) D_i
    if new is None and p == 1:
        return base
    rho, B = unipc_weights(rs, h, variant, corrector=new is not None)
    terms = [w * s for w, s in zip(rho, slopes)]
    if new is not None:
        terms.append(rho[-1] * (new - D_i))
    return base - B * sum(terms)
