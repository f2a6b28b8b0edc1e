"""Fast samplers (exercises 7.1 euler_sample, 7.2 heun_sample, 7.3 dpm_solver_sample), the Karras
noise levels (7.4 karras_sigmas) and their helpers, the spacings of sigmas_for included.

The samplers solve the probability-flow ODE dx̃/dσ = (x̃ - D(x̃; σ)) / σ. They are checked
against DDIM (Euler is DDIM with eta = 0), against an independent float64 transcription of
DPM-Solver++(2M) in the paper's own variables, against the exact ODE solution for Gaussian
data, and with the ideal denoiser of a point set, whose ODE ends on the data points.
"""

import math

import numpy as np
import pytest
import torch

from mini_diffusion.toolkit import ode
from mini_diffusion.toolkit.diffusion_process import NoiseSchedule
from mini_diffusion.toolkit.ideal import IdealDenoiser
from solutions import ddim, reverse, sampling, solvers

# sigmas_for (toolkit/ode.py) reaches ddim_timesteps (exercise 6.1) through the seam: the package's
# exercise modules are the solutions for each test.
pytestmark = pytest.mark.usefixtures("one_thread", "package_uses_solutions")

SAMPLERS = [solvers.euler_sample, solvers.heun_sample, solvers.dpm_solver_sample]
SAMPLER_IDS = ["euler", "heun", "dpm"]


class CountingModel:
    """Wraps a denoiser and records the timesteps it is called with."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __call__(self, x_t, t):
        self.calls.append(t.tolist())
        return self.model(x_t, t)


class GaussianDataModel:
    """The exact ε-model when the data are N(0, v) in every coordinate.

    Then x̃ = x_0 + σ ε is N(0, v + σ²) and E[ε | x̃] = σ x̃ / (v + σ²); the network input is
    x_t = √ᾱ_t x̃. The probability-flow ODE dx̃/dσ = σ x̃ / (v + σ²) is solved exactly by
    x̃(σ) = x̃(σ_0) √((v + σ²) / (v + σ_0²)).
    """

    def __init__(self, schedule, variance):
        self.alpha_bars, self.variance = schedule.alpha_bars, variance

    def __call__(self, x_t, t):
        alpha_bar = self.alpha_bars[t].to(x_t.dtype).reshape(-1, *([1] * (x_t.dim() - 1)))
        sigma = torch.sqrt((1 - alpha_bar) / alpha_bar)
        return sigma * (x_t / torch.sqrt(alpha_bar)) / (self.variance + sigma**2)


def exact_gaussian_sample(x_T, schedule, variance):
    """x_0 at the end of the exact ODE path that starts from x_T at t = T."""
    sigma_T = ode.sigmas_of(schedule)[-1].item()
    return x_T * math.sqrt(1 + sigma_T**2) * math.sqrt(variance / (variance + sigma_T**2))


def test_solvers_still_offer_the_helpers_they_use_by_name():
    for name in ("sigmas_for", "sigmas_of", "denoise"):
        assert getattr(solvers, name) is getattr(ode, name), f"solutions.solvers.{name} must be toolkit.ode's"


def test_sigmas_of_is_the_noise_std_of_x_over_root_alpha_bar(linear):
    sigmas = ode.sigmas_of(linear)
    alpha_bars = linear.alpha_bars.numpy()
    np.testing.assert_allclose(sigmas.numpy(), np.sqrt((1 - alpha_bars) / alpha_bars), rtol=1e-14)
    assert sigmas.dtype == torch.float64 and sigmas.shape == (linear.T + 1,)
    assert sigmas[0] == 0 and bool((sigmas.diff() > 0).all()), "σ_0 = 0 (clean data) and σ_t rises with t"


@pytest.mark.parametrize("num_steps", [1, 4, 7, 50, 1000])
def test_sigmas_for_takes_the_ddim_timesteps_and_their_sigmas_then_zero(linear, num_steps):
    timesteps, sigmas = ode.sigmas_for(linear, num_steps)
    assert torch.equal(timesteps, ddim.ddim_timesteps(linear.T, num_steps)), "the steps must be DDIM's trailing ones"
    assert sigmas.shape == (num_steps + 1,) and sigmas[-1] == 0, "N σ's for the model's timesteps, then σ_N = 0"
    torch.testing.assert_close(sigmas[:-1], ode.sigmas_of(linear)[timesteps], rtol=0, atol=0)
    assert bool((sigmas.diff() < 0).all()), "the σ's must go down, from σ_T to 0"


def test_sigmas_for_rejects_a_step_count_outside_1_to_T_and_unknown_spacings(linear):
    for bad in (0, linear.T + 1, 2.5):
        with pytest.raises(ValueError, match="num_steps"):
            ode.sigmas_for(linear, bad)
    with pytest.raises(ValueError, match="spacing"):
        ode.sigmas_for(linear, 10, "uniform")


@pytest.mark.parametrize("T", [1, 2, 7, 10, 1000])
def test_quadratic_timesteps_are_distinct_descending_from_T_for_every_step_count(T):
    for num_steps in range(1, T + 1):
        timesteps = ode.quadratic_timesteps(T, num_steps)
        assert timesteps.dtype == torch.int64 and timesteps.shape == (num_steps,)
        assert timesteps[0] == T and timesteps[-1] >= 1, f"T = {T}, N = {num_steps}: must run from T down to >= 1"
        assert bool((timesteps.diff() < 0).all()), f"T = {T}, N = {num_steps}: repeated or rising timesteps {timesteps}"


def test_quadratic_timesteps_follow_t_equals_T_times_the_square_of_the_remaining_fraction(linear):
    assert ode.quadratic_timesteps(1000, 10).tolist() == [1000, 810, 640, 490, 360, 250, 160, 90, 40, 10]
    assert ode.quadratic_timesteps(1000, 1000).tolist() == list(range(1000, 0, -1)), "N = T takes every step"
    timesteps, sigmas = ode.sigmas_for(linear, 10, "quadratic")
    assert timesteps.tolist()[-1] == 10 and sigmas[-2] < 0.05, "the last jump to σ = 0 starts at σ_10 ≈ 0.044"


def test_denoise_is_predict_x0_of_the_model_at_x_t_equal_root_alpha_bar_x_tilde(linear):
    g = torch.Generator().manual_seed(0)
    x_tilde = torch.randn(6, 3, generator=g, dtype=torch.float64) * 5
    t = torch.tensor([1, 10, 200, 500, 900, 1000])
    model = GaussianDataModel(linear, 0.5)
    x_t = linear.alpha_bars[t].sqrt()[:, None] * x_tilde
    expected = reverse.predict_x0(x_t, t, model(x_t, t), linear)
    torch.testing.assert_close(ode.denoise(model, x_tilde, t, linear), expected, rtol=1e-12, atol=1e-12)


# Euler on the probability-flow ODE is DDIM with eta = 0 (solutions/solvers.py, euler_sample's docstring).
@pytest.mark.parametrize("num_steps", [1, 7, 20, 1000])
def test_euler_is_ddim_with_eta_zero_on_the_same_steps(linear, num_steps):
    points = torch.randn(8, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    model = IdealDenoiser(points, linear)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    euler = solvers.euler_sample(model, (64, 2), linear, num_steps, x_T=x_T)
    reference = ddim.ddim_sample(model, (64, 2), linear, num_steps=num_steps, x_T=x_T)
    torch.testing.assert_close(euler, reference, rtol=1e-10, atol=1e-10, msg="Euler in σ must equal DDIM (eta = 0)")


def test_euler_with_quadratic_spacing_is_ddim_along_the_same_timesteps(linear):
    points = torch.randn(8, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    model = IdealDenoiser(points, linear)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    timesteps = ode.quadratic_timesteps(linear.T, 12).tolist()
    x = x_T
    for t, t_prev in zip(timesteps, timesteps[1:] + [0]):
        x = ddim.ddim_step(model, x, t, t_prev, linear)
    euler = solvers.euler_sample(model, (64, 2), linear, 12, x_T=x_T, spacing="quadratic")
    torch.testing.assert_close(euler, x, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("sampler", SAMPLERS, ids=SAMPLER_IDS)
def test_ode_driven_by_the_ideal_denoiser_ends_on_the_data_points(linear, sampler):
    points = torch.tensor([[-1.0, 0.5], [0.0, -1.0], [1.2, 1.0], [2.0, -0.3]])
    x_T = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    x0 = sampler(IdealDenoiser(points, linear), (300, 2), linear, 50, x_T=x_T)
    distance = torch.cdist(x0, points).min(dim=1).values
    assert distance.max() < 1e-3, f"with the ideal denoiser every sample must land on a data point; one is {distance.max():.2g} away"
    hit = torch.cdist(x0, points).argmin(dim=1).bincount(minlength=len(points))
    assert bool((hit > 30).all()), f"every data point should receive samples (about 75 each of 300); got {hit.tolist()}"


@pytest.mark.parametrize("sampler, nfe", [(SAMPLERS[0], lambda n: n), (SAMPLERS[1], lambda n: 2 * n - 1), (SAMPLERS[2], lambda n: n)], ids=SAMPLER_IDS)
@pytest.mark.parametrize("num_steps", [1, 2, 5, 13])
def test_samplers_call_the_model_at_the_trailing_timesteps_only_and_count_their_nfe(linear, sampler, nfe, num_steps):
    model = CountingModel(GaussianDataModel(linear, 1.0))
    sampler(model, (3, 2), linear, num_steps, generator=torch.Generator().manual_seed(0))
    called = {t for batch in model.calls for t in batch}
    assert len(model.calls) == nfe(num_steps), f"expected {nfe(num_steps)} network evaluations, got {len(model.calls)}"
    assert called <= set(ddim.ddim_timesteps(linear.T, num_steps).tolist()), "the model must be asked only at the sampler's own timesteps"
    assert all(len(set(batch)) == 1 and len(batch) == 3 for batch in model.calls), "one t for the whole batch, shape [B]"


@pytest.mark.parametrize("sampler", SAMPLERS, ids=SAMPLER_IDS)
def test_samplers_converge_to_the_exact_ode_solution_for_gaussian_data(linear, sampler):
    variance = 0.25
    model = GaussianDataModel(linear, variance)
    x_T = torch.randn(50, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = exact_gaussian_sample(x_T, linear, variance)
    errors = [(sampler(model, (50, 1), linear, n, x_T=x_T) - exact).abs().max().item() for n in (10, 100, 1000)]
    assert errors[2] < 5e-3 and errors[2] < errors[0] / 20, f"errors at 10, 100, 1000 steps: {errors}"


def test_second_order_samplers_beat_euler_at_the_same_number_of_network_calls(linear):
    variance = 0.25
    model = GaussianDataModel(linear, variance)
    x_T = torch.randn(50, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = exact_gaussian_sample(x_T, linear, variance)

    def error(sampler, num_steps):
        return (sampler(model, (50, 1), linear, num_steps, x_T=x_T) - exact).abs().max().item()

    euler, heun, dpm = error(solvers.euler_sample, 99), error(solvers.heun_sample, 50), error(solvers.dpm_solver_sample, 99)
    assert heun < euler / 2, f"Heun (50 steps, 99 calls) error {heun:.2g} should be well below Euler's (99 steps) {euler:.2g}"
    assert dpm < euler / 2, f"DPM-Solver++ error {dpm:.2g} should be well below Euler's {euler:.2g} at 99 calls"


def dpm_solver_pp_2m_reference(model, x_T, alpha_bars, timesteps):
    """DPM-Solver++(2M) as Lu et al. (2022) write it, Algorithm 2, in the x_t variable:
    α_t = √ᾱ_t, σ_t = √(1-ᾱ_t), λ_t = log(α_t / σ_t), data prediction x_θ = (x - σ ε̂) / α,

        x_{t_i} = σ_{t_i}/σ_{t_{i-1}} x_{t_{i-1}} - α_{t_i} (e^{-h_i} - 1) D_i,
        D_i = (1 + 1/(2 r_i)) x_θ(t_{i-1}) - 1/(2 r_i) x_θ(t_{i-2}),  r_i = h_{i-1}/h_i,

    first order on the first step and on the last one (to t = 0: α = 1, σ = 0, so x = x_θ).
    Plain float64 numpy, one sample row at a time.
    """
    steps = list(timesteps) + [0]
    x = x_T.numpy().astype(np.float64)
    alpha = np.sqrt(alpha_bars)
    sigma = np.sqrt(1 - alpha_bars)
    lam = lambda t: np.log(alpha[t] / sigma[t])  # noqa: E731
    previous = None
    for i in range(len(steps) - 1):
        s, t = steps[i], steps[i + 1]
        eps = model(torch.from_numpy(x), torch.full((len(x),), s)).numpy()
        x0 = (x - sigma[s] * eps) / alpha[s]
        if t == 0:
            x = x0
            break
        h = lam(t) - lam(s)
        if previous is None:
            D = x0
        else:
            r = (lam(s) - lam(previous[0])) / h
            D = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * previous[1]
        x = sigma[t] / sigma[s] * x - alpha[t] * np.expm1(-h) * D
        previous = (s, x0)
    return torch.from_numpy(x)


@pytest.mark.parametrize("num_steps", [1, 2, 3, 10, 25])
def test_dpm_solver_matches_the_papers_algorithm_in_its_own_variables(linear, num_steps):
    points = torch.randn(6, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    model = IdealDenoiser(points, linear)
    x_T = torch.randn(40, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    ours = solvers.dpm_solver_sample(model, (40, 2), linear, num_steps, x_T=x_T)
    paper = dpm_solver_pp_2m_reference(model, x_T, linear.alpha_bars.numpy(), ddim.ddim_timesteps(linear.T, num_steps).tolist())
    torch.testing.assert_close(ours, paper, rtol=1e-9, atol=1e-9, msg="DPM-Solver++(2M) in σ must equal the paper's form in λ")


def heun_reference(model, x_T, alpha_bars, timesteps):
    """Karras et al. (2022) Algorithm 1 with S_churn = 0, written out in float64 numpy."""
    sigma = np.sqrt((1 - alpha_bars) / alpha_bars)
    steps = list(timesteps) + [0]
    x = x_T.numpy() * np.sqrt(1 + sigma[steps[0]] ** 2)

    def slope(x, t):
        eps = model(torch.from_numpy(x * np.sqrt(alpha_bars[t])), torch.full((len(x),), t)).numpy()
        return eps  # (x̃ - D) / σ = ε̂ exactly

    for s, t in zip(steps, steps[1:]):
        d = slope(x, s)
        x_next = x + (sigma[t] - sigma[s]) * d
        if t != 0:
            x_next = x + (sigma[t] - sigma[s]) * (d + slope(x_next, t)) / 2
        x = x_next
    return torch.from_numpy(x)


@pytest.mark.parametrize("num_steps", [1, 2, 10])
def test_heun_matches_karras_algorithm_1_without_churn(linear, num_steps):
    points = torch.randn(6, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    model = IdealDenoiser(points, linear)
    x_T = torch.randn(40, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    ours = solvers.heun_sample(model, (40, 2), linear, num_steps, x_T=x_T)
    paper = heun_reference(model, x_T, linear.alpha_bars.numpy(), ddim.ddim_timesteps(linear.T, num_steps).tolist())
    torch.testing.assert_close(ours, paper, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("sampler", SAMPLERS, ids=SAMPLER_IDS)
def test_samplers_draw_x_T_from_the_generator_and_keep_dtype_and_shape(linear, sampler):
    model = GaussianDataModel(linear, 1.0)
    first = sampler(model, (5, 1, 2, 2), linear, 4, generator=torch.Generator().manual_seed(7))
    again = sampler(model, (5, 1, 2, 2), linear, 4, generator=torch.Generator().manual_seed(7))
    given = sampler(model, (5, 1, 2, 2), linear, 4, x_T=torch.randn(5, 1, 2, 2, generator=torch.Generator().manual_seed(7)))
    assert first.shape == (5, 1, 2, 2) and first.dtype == torch.float32
    assert torch.equal(first, again) and torch.equal(first, given), "the same seed (or the same x_T) must give the same samples"


@pytest.mark.parametrize("sampler", SAMPLERS, ids=SAMPLER_IDS)
def test_samplers_reject_an_x_T_of_the_wrong_shape(linear, sampler):
    with pytest.raises(ValueError, match="x_T"):
        sampler(GaussianDataModel(linear, 1.0), (5, 2), linear, 3, x_T=torch.zeros(4, 2))


def test_samplers_run_on_the_device_of_the_model(linear, device):
    points = torch.randn(4, 2, generator=torch.Generator().manual_seed(0)).to(device)
    model = IdealDenoiser(points, linear.to(device))
    for sampler in SAMPLERS:
        x0 = sampler(model, (16, 2), linear.to(device), 5, generator=torch.Generator(device=device).manual_seed(0))
        assert x0.device.type == device.type, f"{sampler.__name__} must return samples on the model's device"


# --- One sampler contract: the same keywords for ddpm_sample, ddim_sample and the solvers ------

ALL_SAMPLERS = [sampling.ddpm_sample, ddim.ddim_sample, *SAMPLERS]
ALL_IDS = ["ddpm", "ddim", *SAMPLER_IDS]


def steps_of(sampler, schedule, num_steps):
    return schedule.T if sampler is sampling.ddpm_sample else num_steps


@pytest.mark.parametrize("sampler", ALL_SAMPLERS, ids=ALL_IDS)
def test_every_sampler_takes_the_same_core_arguments_and_keywords(single_step, linear, sampler):
    import inspect

    parameters = list(inspect.signature(sampler).parameters)
    assert parameters[:3] == ["model", "shape", "schedule"]
    assert {"num_steps", "generator", "x_T", "trajectory", "callback", "progress", "device"} <= set(parameters)
    schedule = linear if sampler is not sampling.ddpm_sample else single_step
    model = GaussianDataModel(schedule, 1.0)
    num_steps = steps_of(sampler, schedule, 3)
    plain = sampler(model, (4, 2), schedule, num_steps=num_steps, generator=torch.Generator().manual_seed(0))
    seen = []
    states = sampler(model, (4, 2), schedule, num_steps=num_steps, generator=torch.Generator().manual_seed(0),
                     trajectory=True, callback=lambda i, t, x: seen.append((i, t, x)), progress=True, device="cpu")
    assert isinstance(states, list) and len(states) == num_steps + 1, "trajectory=True: [x_T, ..., x_0]"
    assert torch.equal(states[-1], plain), "the trajectory must end on the sample the plain call returns"
    assert [i for i, _, _ in seen] == list(range(num_steps)), "callback(i, t, x) after every step, i = 0, 1, ..."
    assert all(isinstance(t, int) for _, t, _ in seen) and seen[0][1] == schedule.T, "t: the timestep just left"
    assert all(x is state for (_, _, x), state in zip(seen, states[1:])), "the callback sees the states of the trajectory"


def test_the_trajectories_of_euler_and_ddim_agree_in_the_x_variable(linear):
    points = torch.randn(8, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    model = IdealDenoiser(points, linear)
    x_T = torch.randn(16, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    euler = solvers.euler_sample(model, (16, 2), linear, 10, x_T=x_T, trajectory=True)
    reference = ddim.ddim_sample(model, (16, 2), linear, num_steps=10, x_T=x_T, trajectory=True)
    assert len(euler) == len(reference) == 11
    for mine, theirs in zip(euler, reference):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-10)


def test_ddpm_takes_every_step_and_points_to_ddim_for_fewer(single_step, linear):
    model = GaussianDataModel(single_step, 1.0)
    x_T = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sampling.ddpm_sample(model, (3, 2), single_step, x_T=x_T, num_steps=single_step.T),
                       sampling.ddpm_sample(model, (3, 2), single_step, x_T=x_T))
    with pytest.raises(ValueError, match=r"every step.*ddim_sample\(.*eta=1\.0"):
        sampling.ddpm_sample(GaussianDataModel(linear, 1.0), (3, 2), linear, num_steps=50)


# --- Exercise 7.4 karras_sigmas and the "karras" and "logsnr" spacings --------------------------


def karras_eq5(sigma_min, sigma_max, num_steps, rho):
    """Karras et al. (2022), eq. 5, one σ at a time, in plain Python floats."""
    if num_steps == 1:
        return [sigma_max]
    return [(sigma_max ** (1 / rho) + i / (num_steps - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
            for i in range(num_steps)]


def k_diffusion_get_sigmas_karras(n, sigma_min, sigma_max, rho=7.0):
    """k-diffusion's sampling.get_sigmas_karras (Crowson), without its appended zero."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    return (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho


@pytest.mark.parametrize("sigma_min, sigma_max, num_steps, rho",
                         [(0.002, 80.0, 18, 7.0), (0.01, 157.4, 10, 7.0), (0.1, 10.0, 7, 3.0), (1.0, 2.0, 3, 1.0)])
def test_karras_sigmas_follow_eq_5_of_the_paper(sigma_min, sigma_max, num_steps, rho):
    sigmas = solvers.karras_sigmas(sigma_min, sigma_max, num_steps, rho=rho)
    assert sigmas.dtype == torch.float64 and sigmas.shape == (num_steps,)
    np.testing.assert_allclose(sigmas.numpy(), karras_eq5(sigma_min, sigma_max, num_steps, rho), rtol=1e-13)
    torch.testing.assert_close(sigmas, k_diffusion_get_sigmas_karras(num_steps, sigma_min, sigma_max, rho),
                               rtol=1e-13, atol=0)
    assert sigmas[0].item() == pytest.approx(sigma_max, rel=1e-14) and sigmas[-1].item() == pytest.approx(sigma_min, rel=1e-13)
    assert bool((sigmas.diff() < 0).all()), "descending, from sigma_max to sigma_min"
    roots = sigmas ** (1 / rho)
    np.testing.assert_allclose(roots.diff().numpy(), np.full(num_steps - 1, roots.diff()[0].item()), rtol=1e-9,
                               err_msg="σ^(1/ρ) must be evenly spaced")


def test_karras_sigmas_limits_one_and_two_steps_and_large_rho():
    assert solvers.karras_sigmas(0.01, 157.4, 1).tolist() == pytest.approx([157.4], rel=1e-13)
    assert solvers.karras_sigmas(0.01, 157.4, 2).tolist() == pytest.approx([157.4, 0.01], rel=1e-13)
    np.testing.assert_allclose(solvers.karras_sigmas(0.5, 4.5, 5, rho=1.0).numpy(), [4.5, 3.5, 2.5, 1.5, 0.5], rtol=1e-14)
    # ρ → ∞ is even spacing in log σ
    np.testing.assert_allclose(solvers.karras_sigmas(0.01, 100.0, 5, rho=1e6).numpy(), np.geomspace(100, 0.01, 5), rtol=1e-4)


@pytest.mark.parametrize("T", [1, 2, 3, 10, 1000])
@pytest.mark.parametrize("spacing", ode.SPACINGS)
def test_every_spacing_gives_distinct_descending_timesteps_in_1_to_T(T, spacing):
    schedule = NoiseSchedule(torch.linspace(1e-4, 0.02 if T > 10 else 0.3, T, dtype=torch.float64))
    counts = range(1, T + 1) if T <= 10 else [1, 2, 3, 5, 10, 20, 50, 100, 200, 333, 500, 900, 999, 1000]
    for num_steps in counts:
        timesteps, sigmas = ode.sigmas_for(schedule, num_steps, spacing, trailing=ddim.ddim_timesteps,
                                           karras=solvers.karras_sigmas)
        assert timesteps.dtype == torch.int64 and timesteps.shape == (num_steps,), (spacing, num_steps)
        assert timesteps[0] == T and timesteps[-1] >= 1, f"{spacing}, T = {T}, N = {num_steps}: {timesteps}"
        assert bool((timesteps.diff() < 0).all()), f"{spacing}, T = {T}, N = {num_steps}: repeats in {timesteps}"
        torch.testing.assert_close(sigmas[:-1], ode.sigmas_of(schedule)[timesteps], rtol=0, atol=0)
        assert sigmas[-1] == 0
        if spacing in ("karras", "logsnr") and num_steps > 1:
            assert timesteps[-1] == 1, f"{spacing} ends at the smallest timestep"
        if num_steps == T:
            assert timesteps.tolist() == list(range(T, 0, -1)), f"{spacing}: N = T takes every step"


def test_karras_spacing_takes_the_timesteps_nearest_to_karras_sigmas_in_log_sigma(linear):
    levels = ode.sigmas_of(linear)
    for num_steps in (5, 10, 25):
        targets = solvers.karras_sigmas(levels[1].item(), levels[-1].item(), num_steps)
        timesteps, sigmas = ode.sigmas_for(linear, num_steps, "karras", karras=solvers.karras_sigmas)
        for t, target in zip(timesteps.tolist(), targets.tolist()):
            gaps = (levels[1:].log() - math.log(target)).abs()
            assert t == int(gaps.argmin()) + 1, f"N = {num_steps}: σ = {target:.4g} should go to t = {int(gaps.argmin()) + 1}"
    assert ode.sigmas_for(linear, 10, "karras", karras=solvers.karras_sigmas)[0].tolist() == \
        [1000, 938, 865, 776, 664, 512, 302, 103, 19, 1]


def test_logsnr_spacing_is_evenly_spaced_in_lambda_up_to_the_integer_timesteps(linear):
    levels = ode.sigmas_of(linear)
    for num_steps in (4, 10, 30):
        timesteps, sigmas = ode.sigmas_for(linear, num_steps, "logsnr")
        lam = -sigmas[:-1].log()
        targets = torch.linspace(lam[0].item(), -levels[1].log().item(), num_steps, dtype=torch.float64)
        np.testing.assert_allclose(lam[[0, -1]].numpy(), [-levels[-1].log().item(), -levels[1].log().item()], rtol=1e-14)
        # each stop is the integer timestep nearest its target λ: off by at most half the local gap
        # between neighbouring timesteps' λ's
        lam_all = -levels[1:].log()
        for t, target in zip(timesteps.tolist(), targets.tolist()):
            assert t == int((lam_all - target).abs().argmin()) + 1
    assert ode.sigmas_for(linear, 10, "logsnr")[0].tolist() == [1000, 887, 758, 604, 411, 203, 74, 23, 6, 1]


def test_timesteps_nearest_keeps_stops_distinct_where_sigmas_crowd(linear):
    crowded = torch.tensor([157.4, 157.3, 0.0101, 0.01001, 0.01])  # three σ's nearest t = 1, two nearest t = T
    assert ode.timesteps_nearest(linear, crowded).tolist() == [1000, 999, 3, 2, 1]
    with pytest.raises(ValueError, match="positive"):
        ode.timesteps_nearest(linear, torch.tensor([1.0, 0.0]))


def test_sigmas_for_takes_karras_sigmas_from_the_caller_or_the_seam(linear):
    seen = []

    def spy(sigma_min, sigma_max, num_steps, rho=7.0):
        seen.append((sigma_min, sigma_max, num_steps, rho))
        return solvers.karras_sigmas(sigma_min, sigma_max, num_steps, rho)

    ode.sigmas_for(linear, 6, "karras", karras=spy)
    levels = ode.sigmas_of(linear)
    assert seen == [(levels[1].item(), levels[-1].item(), 6, 7.0)], "σ_1 to σ_T, ρ = 7"
    by_seam = ode.sigmas_for(linear, 6, "karras")[0]  # the package uses the solutions in this test
    assert torch.equal(by_seam, ode.sigmas_for(linear, 6, "karras", karras=solvers.karras_sigmas)[0])


@pytest.mark.parametrize("sampler", SAMPLERS, ids=SAMPLER_IDS)
@pytest.mark.parametrize("spacing", ["karras", "logsnr"])
def test_new_spacings_converge_to_the_exact_ode_solution_for_gaussian_data(linear, sampler, spacing):
    model = GaussianDataModel(linear, 0.25)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = exact_gaussian_sample(x_T, linear, 0.25)
    errors = [(sampler(model, (64, 2), linear, n, x_T=x_T, spacing=spacing) - exact).abs().max().item()
              for n in (10, 100, 1000)]
    assert errors[2] < 5e-3 and errors[2] < errors[0] / 20, f"{spacing}: errors at 10, 100, 1000 steps: {errors}"
