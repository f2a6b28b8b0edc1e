"""DDIM (exercises 6.1 ddim_timesteps, 6.2 ddim_step, 6.3 ddim_sample) against a float64 loop."""

import math

import numpy as np
import pytest
import torch

from solutions import ddim, sampling

pytestmark = pytest.mark.usefixtures("one_thread")


class ToyModel:
    """ε_θ(x, t) = 0.5·tanh(x) + t/(10T): deterministic, and it notices an off-by-one in t."""

    def __init__(self, T):
        self.T, self.seen = T, []

    def __call__(self, x_t, t):
        self.seen.append(t.clone())
        return 0.5 * torch.tanh(x_t) + (t.to(x_t.dtype) / (10 * self.T)).reshape(-1, *[1] * (x_t.dim() - 1))


def python_timesteps(T, num_steps):
    """round(T - i·T/num_steps) for i = 0..num_steps-1, with Python's exact fractions."""
    return [round(T - i * T / num_steps) for i in range(num_steps)]


@pytest.mark.parametrize(
    "T, num_steps", [(1000, 20), (1000, 1000), (1000, 1), (1000, 3), (1000, 30), (10, 3), (1, 1), (7, 7)]
)
def test_ddim_timesteps_descend_from_T_evenly_spaced(T, num_steps):
    timesteps = ddim.ddim_timesteps(T, num_steps)
    assert timesteps.dtype == torch.int64 and timesteps.shape == (num_steps,), "num_steps int64 timesteps"
    assert timesteps.tolist() == python_timesteps(T, num_steps)
    assert timesteps[0] == T and timesteps[-1] >= 1, "trailing spacing starts at T and stays in 1..T"
    assert bool((timesteps[1:] < timesteps[:-1]).all()), "strictly descending, no step repeated"


def test_ddim_timesteps_for_20_of_1000_are_1000_950_to_50():
    assert ddim.ddim_timesteps(1000, 20).tolist() == list(range(1000, 0, -50))


def reference_ddim_step(x_t, ts, t_prevs, eps, z, alpha_bars, eta):
    """x̂_0, σ and x_prev = √ᾱ_prev x̂_0 + √(1-ᾱ_prev-σ²) ε + σ z, per sample in float64 (ᾱ_0 = 1)."""
    x_t, eps, z = (v.detach().double().cpu().numpy() for v in (x_t, eps, z))
    out = []
    for i, (t, s) in enumerate(zip(ts, t_prevs)):
        a, a_prev = alpha_bars[t], alpha_bars[s]
        x0_hat = (x_t[i] - math.sqrt(1 - a) * eps[i]) / math.sqrt(a)
        sigma = eta * math.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
        out.append(math.sqrt(a_prev) * x0_hat + math.sqrt(1 - a_prev - sigma**2) * eps[i] + sigma * z[i])
    return np.stack(out)


STEP_CASES = {  # (t, t_prev) as ints, or per-sample lists for a mixed batch
    "1000->950": (1000, 950),
    "50->0": (50, 0),
    "1->0": (1, 0),
    "mixed": ([1000, 1, 2, 500, 999, 17], [950, 0, 1, 0, 998, 3]),
}


@pytest.mark.parametrize("case", list(STEP_CASES))
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_step_follows_the_ddim_update(linear, make_x, schedule_values, assert_matches, layout, dtype, case, eta):
    x_t, z = make_x(layout, dtype, seed=1), make_x(layout, dtype, seed=2)
    t, t_prev = STEP_CASES[case]
    if isinstance(t, list):
        t, t_prev = torch.tensor(t), torch.tensor(t_prev)
    ts, t_prevs = (v.tolist() if isinstance(v, torch.Tensor) else [v] * 6 for v in (t, t_prev))
    model = ToyModel(linear.T)
    out = ddim.ddim_step(model, x_t, t, t_prev, linear, eta=eta, noise=z)
    expected = reference_ddim_step(
        x_t, ts, t_prevs, model(x_t, torch.tensor(ts)), z, schedule_values(linear, dtype)[2], eta
    )
    scale = float(x_t.abs().max() / linear.alpha_bars[max(ts)].sqrt())  # x̂_0 magnifies x_t's rounding at large t
    assert_matches(out, expected, dtype, f"ddim_step (eta={eta})", scale=scale)


def test_ddim_step_with_eta_0_is_deterministic(linear, make_x):
    x_t = make_x()
    generator = torch.Generator().manual_seed(0)
    a = ddim.ddim_step(ToyModel(1000), x_t, 600, 300, linear, eta=0.0, generator=generator)
    assert torch.equal(generator.get_state(), torch.Generator().manual_seed(0).get_state()), "eta = 0 draws nothing"
    assert torch.equal(
        a, ddim.ddim_step(ToyModel(1000), x_t, 600, 300, linear, noise=make_x(seed=9))
    ), "with eta = 0 the noise must not matter"


def test_ddim_step_with_eta_1_and_one_step_back_is_ddpm_with_beta_tilde(linear, cosine, make_x):
    x_t, z = make_x(seed=1), make_x(seed=2)
    for schedule in (linear, cosine):
        t = torch.tensor([1000, 999, 500, 17, 2, 1])
        ddim_out = ddim.ddim_step(ToyModel(1000), x_t, t, t - 1, schedule, eta=1.0, noise=z)
        ddpm_out = sampling.ddpm_step(ToyModel(1000), x_t, t, schedule, noise=z, variance="beta_tilde")
        torch.testing.assert_close(
            ddim_out,
            ddpm_out,
            rtol=1e-9,
            atol=1e-9,
            msg="DDIM with eta = 1 and t_prev = t - 1 must be the DDPM step with σ² = β̃_t",
        )


def test_ddim_step_keeps_device_and_dtype(linear, make_x, device, dtype):
    x_t, z = make_x(dtype=dtype, device=device, seed=1), make_x(dtype=dtype, device=device, seed=2)
    t = torch.tensor([1000, 1, 2, 500, 999, 17], device=device)
    t_prev = torch.tensor([950, 0, 1, 0, 998, 3], device=device)
    out = ddim.ddim_step(ToyModel(1000), x_t, t, t_prev, linear, eta=1.0, noise=z)
    assert (out.device, out.dtype) == (x_t.device, x_t.dtype), "ddim_step must return x_t's device and dtype"
    on_cpu = ddim.ddim_step(ToyModel(1000), x_t.cpu(), t.cpu(), t_prev.cpu(), linear, eta=1.0, noise=z.cpu())
    torch.testing.assert_close(out.cpu(), on_cpu, msg=f"ddim_step gives other values on {device}")


def reference_ddim_sample(model, x_T, schedule, num_steps, eta, seed):
    """The DDIM loop along python_timesteps and then to 0; one z per step drawn when eta > 0."""
    generator = torch.Generator().manual_seed(seed)
    timesteps = python_timesteps(schedule.T, num_steps)
    x, batch = x_T, x_T.shape[0]
    for t, t_prev in zip(timesteps, timesteps[1:] + [0]):
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype) if eta > 0 else torch.zeros_like(x)
        eps = model(x, torch.full((batch,), t))
        x = torch.from_numpy(
            reference_ddim_step(x, [t] * batch, [t_prev] * batch, eps, z, schedule.alpha_bars.tolist(), eta)
        )
    return x


@pytest.mark.parametrize("num_steps", [1, 7, 20, 1000])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_sample_runs_the_subsequence_down_to_clean_data(linear, num_steps, eta):
    x_T = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    model = ToyModel(1000)
    got = ddim.ddim_sample(
        model, (5, 2), linear, num_steps=num_steps, eta=eta, x_T=x_T, generator=torch.Generator().manual_seed(8)
    )
    assert [int(t[0]) for t in model.seen] == python_timesteps(1000, num_steps), "the model is asked at each τ_i"
    expected = reference_ddim_sample(ToyModel(1000), x_T, linear, num_steps, eta, seed=8)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9, msg="ddim_sample differs from the DDIM loop")


def test_ddim_sample_draws_x_T_with_the_generator_when_not_given(linear):
    got = ddim.ddim_sample(ToyModel(1000), (4, 3), linear, num_steps=10, generator=torch.Generator().manual_seed(2))
    x_T = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    assert got.dtype == torch.float32 and got.shape == (4, 3), "drawn x_T is float32 of the given shape"
    torch.testing.assert_close(got, ddim.ddim_sample(ToyModel(1000), (4, 3), linear, num_steps=10, x_T=x_T))


def test_ddim_sample_with_every_step_and_eta_1_is_ddpm_with_beta_tilde(make_schedule):
    schedule = make_schedule(torch.linspace(1e-3, 0.2, 40, dtype=torch.float64))
    x_T = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ddim_out = ddim.ddim_sample(
        ToyModel(40), (6, 2), schedule, num_steps=40, eta=1.0, x_T=x_T, generator=torch.Generator().manual_seed(5)
    )
    ddpm_out = sampling.ddpm_sample(
        ToyModel(40), (6, 2), schedule, variance="beta_tilde", x_T=x_T, generator=torch.Generator().manual_seed(5)
    )
    torch.testing.assert_close(
        ddim_out,
        ddpm_out,
        rtol=1e-9,
        atol=1e-9,
        msg="DDIM over every step with eta = 1 must reproduce DDPM with σ² = β̃_t",
    )


def test_ddim_sample_trajectory_has_num_steps_plus_1_states(linear):
    x_T = torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    states = ddim.ddim_sample(ToyModel(1000), (3, 2), linear, num_steps=20, x_T=x_T, trajectory=True)
    assert isinstance(states, list) and len(states) == 21, "x_T, then one state per step"
    assert torch.equal(states[0], x_T)
    assert torch.equal(states[-1], ddim.ddim_sample(ToyModel(1000), (3, 2), linear, num_steps=20, x_T=x_T))


def test_ddim_sample_for_T_1_is_one_step_to_clean_data(single_step):
    x_T = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    got = ddim.ddim_sample(ToyModel(1), (6, 2), single_step, num_steps=1, x_T=x_T)
    torch.testing.assert_close(got, ddim.ddim_step(ToyModel(1), x_T, 1, 0, single_step), rtol=0, atol=0)


def test_ddim_sample_keeps_the_dtype_and_device_of_x_T(linear, device):
    x_T = torch.randn(4, 2, dtype=torch.float64, device=device)
    out = ddim.ddim_sample(
        ToyModel(1000),
        (4, 2),
        linear,
        num_steps=5,
        eta=1.0,
        x_T=x_T,
        device=device,
        generator=torch.Generator(device=device).manual_seed(0),
    )
    assert (out.device, out.dtype) == (x_T.device, x_T.dtype)
