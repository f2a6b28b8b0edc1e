"""The simple training loss (exercise 3.1 diffusion_loss)."""

import math

import pytest
import torch
from torch import nn

from solutions import losses

pytestmark = pytest.mark.usefixtures("one_thread")


class RecordingModel:
    """ε_θ(x, t) = tanh(x) + t/T, a fixed denoiser that remembers every t it was asked about."""

    def __init__(self, T):
        self.T, self.seen = T, []

    def __call__(self, x_t, t):
        self.seen.append(t)
        return torch.tanh(x_t) + (t.to(x_t.dtype) / self.T).reshape(-1, *[1] * (x_t.dim() - 1))


def reference_loss(x0, ts, alpha_bars, noise, T):
    """mean over every element of (ε - ε_θ(√ᾱ_t x_0 + √(1-ᾱ_t) ε, t))², in float64 loops."""
    x0, noise = x0.double().cpu().flatten(1).tolist(), noise.double().cpu().flatten(1).tolist()
    total, count = 0.0, 0
    for i, t in enumerate(ts):
        for x, e in zip(x0[i], noise[i]):
            x_t = math.sqrt(alpha_bars[t]) * x + math.sqrt(1 - alpha_bars[t]) * e
            total += (e - (math.tanh(x_t) + t / T)) ** 2
            count += 1
    return total / count


def test_diffusion_loss_is_the_mean_squared_noise_error(linear, make_x, make_t, schedule_values, layout, dtype, t_case):
    x0, noise = make_x(layout, dtype, seed=1), make_x(layout, dtype, seed=2)
    t, ts = make_t(t_case, linear.T)
    loss = losses.diffusion_loss(RecordingModel(linear.T), x0, linear, t=t, noise=noise)
    assert loss.shape == () and loss.dtype == dtype, "the loss is a scalar tensor in x0's dtype"
    expected = reference_loss(x0, ts, schedule_values(linear, dtype)[2], noise, linear.T)
    assert math.isclose(
        loss.item(), expected, rel_tol=1e-12 if dtype == torch.float64 else 1e-5
    ), f"loss {loss.item()} differs from the independent value {expected}"


def test_diffusion_loss_gives_the_model_int64_timesteps_one_per_sample(linear, make_x):
    model = RecordingModel(linear.T)
    losses.diffusion_loss(model, make_x(), linear, t=5)
    (t,) = model.seen
    assert t.dtype == torch.int64 and t.tolist() == [5] * 6, "the model gets t as an int64 tensor [B]"


def test_diffusion_loss_is_zero_for_a_model_that_knows_the_noise(linear, make_x):
    x0, noise = make_x(seed=1), make_x(seed=2)
    loss = losses.diffusion_loss(lambda x_t, t: noise, x0, linear, t=400, noise=noise)
    assert loss.item() == 0.0, "a perfect noise prediction must cost nothing"


def test_diffusion_loss_draws_t_uniformly_from_1_to_T(make_schedule):
    schedule = make_schedule([0.1] * 10)
    model = RecordingModel(schedule.T)
    n = 20_000
    losses.diffusion_loss(model, torch.zeros(n, 1), schedule, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(model.seen[0], minlength=schedule.T + 1)
    assert counts[0] == 0, "t = 0 is clean data, never a training step"
    assert counts.numel() == schedule.T + 1, "t must stay within 1..T"
    expected, se = n / schedule.T, math.sqrt(n * (1 / schedule.T) * (1 - 1 / schedule.T))
    assert bool(
        ((counts[1:] - expected).abs() < 5 * se).all()
    ), f"t should be uniform on 1..10; counts {counts.tolist()}"


def test_diffusion_loss_for_T_1_always_uses_t_1(single_step):
    model = RecordingModel(1)
    losses.diffusion_loss(model, torch.zeros(50, 2), single_step, generator=torch.Generator().manual_seed(0))
    assert model.seen[0].tolist() == [1] * 50


def test_diffusion_loss_is_reproducible_with_a_generator(linear, make_x):
    x0 = make_x()

    def loss(seed):
        return losses.diffusion_loss(
            RecordingModel(linear.T), x0, linear, generator=torch.Generator().manual_seed(seed)
        )

    assert loss(3).item() == loss(3).item(), "the same seed must give the same loss"
    assert loss(3).item() != loss(4).item(), "another seed should draw other t and noise"


def test_diffusion_loss_backpropagates_into_the_model(linear, make_x):
    torch.manual_seed(0)
    net = nn.Linear(3, 3).double()
    loss = losses.diffusion_loss(lambda x_t, t: net(x_t), make_x(), linear, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert net.weight.grad is not None and bool(net.weight.grad.abs().sum() > 0), "the loss must carry gradients"


def test_diffusion_loss_keeps_device_and_dtype(linear, make_x, device, dtype):
    x0 = make_x(dtype=dtype, device=device)
    model = RecordingModel(linear.T)
    loss = losses.diffusion_loss(model, x0, linear, generator=torch.Generator(device=device).manual_seed(0))
    assert (loss.device, loss.dtype) == (x0.device, x0.dtype), "the loss lives where x0 lives, in x0's dtype"
    assert model.seen[0].device == x0.device, "the model gets t on x0's device"
