"""DDPM sampling (exercises 4.1 ddpm_step and 4.2 ddpm_sample) against a step-by-step float64 loop."""

import math

import numpy as np
import pytest
import torch

from solutions import sampling

pytestmark = pytest.mark.usefixtures("one_thread")


class ToyModel:
    """ε_θ(x, t) = 0.5·tanh(x) + t/(10T): deterministic, and it notices an off-by-one in t."""

    def __init__(self, T):
        self.T, self.seen = T, []

    def __call__(self, x_t, t):
        self.seen.append(t.clone())
        return 0.5 * torch.tanh(x_t) + (t.to(x_t.dtype) / (10 * self.T)).reshape(-1, *[1] * (x_t.dim() - 1))


def reference_ddpm_step(x_t, ts, eps, z, values, variance):
    """x_{t-1} = (x_t - β_t/√(1-ᾱ_t) ε) / √α_t + σ_t z, with σ_t² = β_t or β̃_t, and no z at t = 1."""
    betas, alphas, alpha_bars = values
    x_t, eps, z = (v.detach().double().cpu().numpy() for v in (x_t, eps, z))
    out = []
    for i, t in enumerate(ts):
        mean = (x_t[i] - betas[t] / math.sqrt(1 - alpha_bars[t]) * eps[i]) / math.sqrt(alphas[t])
        beta_tilde = (1 - alpha_bars[t - 1]) / (1 - alpha_bars[t]) * betas[t]
        sigma = math.sqrt(betas[t] if variance == "beta" else beta_tilde)
        out.append(mean + sigma * z[i] if t > 1 else mean)
    return np.stack(out)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_ddpm_step_is_the_posterior_mean_plus_scaled_noise(
    linear, make_x, make_t, schedule_values, assert_matches, layout, dtype, t_case, variance
):
    x_t, z = make_x(layout, dtype, seed=1), make_x(layout, dtype, seed=2)
    t, ts = make_t(t_case, linear.T)
    model = ToyModel(linear.T)
    out = sampling.ddpm_step(model, x_t, t, linear, noise=z, variance=variance)
    eps = model(x_t, torch.as_tensor(ts))
    expected = reference_ddpm_step(x_t, ts, eps, z, schedule_values(linear, dtype), variance)
    assert_matches(out, expected, dtype, f"ddpm_step (variance={variance!r})")


def test_ddpm_step_adds_no_noise_at_t_1(linear, make_x):
    x_t, z = make_x(seed=1), make_x(seed=2)
    model = ToyModel(linear.T)
    with_noise = sampling.ddpm_step(model, x_t, 1, linear, noise=z)
    without = sampling.ddpm_step(model, x_t, 1, linear, noise=torch.zeros_like(z))
    assert torch.equal(with_noise, without), "the last step (t = 1) returns the mean: no z is added"
    generator = torch.Generator().manual_seed(0)
    sampling.ddpm_step(model, x_t, 1, linear, generator=generator)
    assert torch.equal(
        generator.get_state(), torch.Generator().manual_seed(0).get_state()
    ), "at t = 1 nothing should be drawn from the generator"


def test_ddpm_step_draws_z_with_the_generator(linear, make_x):
    x_t = make_x()
    model = ToyModel(linear.T)
    drawn = sampling.ddpm_step(model, x_t, 500, linear, generator=torch.Generator().manual_seed(7))
    z = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(7), dtype=x_t.dtype)
    assert torch.equal(drawn, sampling.ddpm_step(model, x_t, 500, linear, noise=z)), "z ~ N(0, I) from the generator"


def test_ddpm_step_for_T_1_returns_the_mean(single_step, make_x, schedule_values):
    x_t, z = make_x(seed=1), make_x(seed=2)
    model = ToyModel(1)
    out = sampling.ddpm_step(model, x_t, 1, single_step, noise=z, variance="beta")
    expected = reference_ddpm_step(
        x_t,
        [1] * 6,
        model(x_t, torch.ones(6, dtype=torch.long)),
        z,
        schedule_values(single_step, torch.float64),
        "beta",
    )
    torch.testing.assert_close(out, torch.from_numpy(expected), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_ddpm_step_keeps_device_and_dtype(linear, make_x, device, dtype, variance):
    x_t, z = make_x(dtype=dtype, device=device, seed=1), make_x(dtype=dtype, device=device, seed=2)
    t = torch.tensor([1, 2, 100, 500, 999, 1000], device=device)
    out = sampling.ddpm_step(ToyModel(linear.T), x_t, t, linear, noise=z, variance=variance)
    assert (out.device, out.dtype) == (x_t.device, x_t.dtype), "ddpm_step must return x_t's device and dtype"
    on_cpu = sampling.ddpm_step(ToyModel(linear.T), x_t.cpu(), t.cpu(), linear, noise=z.cpu(), variance=variance)
    torch.testing.assert_close(out.cpu(), on_cpu, msg=f"ddpm_step gives other values on {device}")


def reference_ddpm_sample(model, shape, schedule, seed, variance, dtype=torch.float64):
    """Algorithm 2 of Ho et al. as a plain loop; random numbers drawn as documented: x_T, then z for t = T..2."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator, dtype=dtype)
    values = tuple(getattr(schedule, n).tolist() for n in ("betas", "alphas", "alpha_bars"))
    states = [x]
    for t in range(schedule.T, 0, -1):
        z = torch.randn(shape, generator=generator, dtype=dtype) if t > 1 else torch.zeros(shape, dtype=dtype)
        eps = model(x, torch.full((shape[0],), t))
        x = torch.from_numpy(reference_ddpm_step(x, [t] * shape[0], eps, z, values, variance))
        states.append(x)
    return states


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_ddpm_sample_runs_every_step_from_T_down_to_1(make_schedule, variance):
    schedule = make_schedule(torch.linspace(1e-3, 0.2, 50, dtype=torch.float64))
    model = ToyModel(schedule.T)
    generator = torch.Generator().manual_seed(11)
    x_T = torch.randn((8, 2), generator=generator, dtype=torch.float64)
    got = sampling.ddpm_sample(model, (8, 2), schedule, generator=generator, variance=variance, x_T=x_T)
    assert [int(t[0]) for t in model.seen] == list(range(50, 0, -1)), "the model is asked at t = T, T-1, ..., 1"
    assert all(t.dtype == torch.int64 and t.shape == (8,) for t in model.seen), "t: int64 tensor [B]"
    expected = reference_ddpm_sample(ToyModel(schedule.T), (8, 2), schedule, 11, variance)[-1]
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10, msg="ddpm_sample differs from Algorithm 2")


def test_ddpm_sample_draws_x_T_with_the_generator_when_not_given(make_schedule):
    schedule = make_schedule(torch.linspace(1e-3, 0.2, 20, dtype=torch.float64))
    got = sampling.ddpm_sample(ToyModel(schedule.T), (5, 3), schedule, generator=torch.Generator().manual_seed(4))
    expected = reference_ddpm_sample(ToyModel(schedule.T), (5, 3), schedule, 4, "beta", dtype=torch.float32)[-1]
    assert got.dtype == torch.float32 and got.shape == (5, 3), "drawn x_T is float32 of the given shape"
    torch.testing.assert_close(got, expected.float(), rtol=1e-5, atol=1e-5)


def test_ddpm_sample_trajectory_lists_x_T_to_x_0(make_schedule):
    schedule = make_schedule(torch.linspace(1e-3, 0.2, 30, dtype=torch.float64))
    x_T = torch.randn(4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    states = sampling.ddpm_sample(
        ToyModel(30), (4, 2), schedule, generator=torch.Generator().manual_seed(1), x_T=x_T, trajectory=True
    )
    final = sampling.ddpm_sample(ToyModel(30), (4, 2), schedule, generator=torch.Generator().manual_seed(1), x_T=x_T)
    assert isinstance(states, list) and len(states) == 31, "T + 1 states: x_T, x_(T-1), ..., x_0"
    assert torch.equal(states[0], x_T) and torch.equal(states[-1], final), "the list starts at x_T and ends at x_0"


def test_ddpm_sample_for_T_1_is_a_single_noiseless_step(single_step):
    x_T = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    got = sampling.ddpm_sample(ToyModel(1), (6, 2), single_step, x_T=x_T)
    expected = sampling.ddpm_step(ToyModel(1), x_T, 1, single_step)
    assert torch.equal(got, expected)


def test_ddpm_sample_keeps_the_dtype_and_device_of_x_T(make_schedule, device):
    schedule = make_schedule(torch.linspace(1e-3, 0.2, 10, dtype=torch.float64))
    x_T = torch.randn(4, 2, dtype=torch.float64, device=device)
    out = sampling.ddpm_sample(
        ToyModel(10), (4, 2), schedule, x_T=x_T, device=device, generator=torch.Generator(device=device).manual_seed(0)
    )
    assert (out.device, out.dtype) == (x_T.device, x_T.dtype)
