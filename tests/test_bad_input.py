"""Bad input gets a clear ValueError (or TypeError) that says what was expected."""

import pytest
import torch

from mini_diffusion.toolkit.common import as_t_tensor, extract
from mini_diffusion.toolkit.ideal import IdealDenoiser
from mini_diffusion.toolkit.diffusion_process import NoiseSchedule
from solutions import ddim, forward, losses, reverse, sampling, schedules

X = torch.zeros(4, 2)


def zero_model(x_t, t):
    return torch.zeros_like(x_t)


# every function that takes a timestep, called with t (the linear schedule, T = 1000)
WITH_T = {
    "q_step": lambda s, t: forward.q_step(X, t, s, noise=X),
    "q_sample": lambda s, t: forward.q_sample(X, t, s, noise=X),
    "predict_x0": lambda s, t: reverse.predict_x0(X, t, X, s),
    "q_posterior": lambda s, t: reverse.q_posterior(X, X, t, s),
    "p_mean": lambda s, t: reverse.p_mean(X, t, X, s),
    "diffusion_loss": lambda s, t: losses.diffusion_loss(zero_model, X, s, t=t, noise=X),
    "ddpm_step": lambda s, t: sampling.ddpm_step(zero_model, X, t, s, noise=X),
    "ddim_step": lambda s, t: ddim.ddim_step(zero_model, X, t, 0, s),
    "extract": lambda s, t: extract(s.alpha_bars, t, X),
    "IdealDenoiser": lambda s, t: IdealDenoiser(X, s)(X, t),
}
BAD_T = {"0": 0, "T+1": 1001, "-1": -1, "one bad in a batch": torch.tensor([1, 500, 1001, 3])}


@pytest.mark.parametrize("bad", list(BAD_T))
@pytest.mark.parametrize("function", list(WITH_T))
def test_a_timestep_outside_1_to_T_is_refused(linear, function, bad):
    with pytest.raises(ValueError) as error:
        WITH_T[function](linear, BAD_T[bad])
    message = str(error.value)
    assert "1..1000" in message and "outside" in message, f"{function}: the message should give the range: {message}"


@pytest.mark.parametrize("function", list(WITH_T))
def test_a_float_timestep_is_a_type_error_that_asks_for_integers(linear, function):
    with pytest.raises(TypeError, match="int"):
        WITH_T[function](linear, 2.5)
    with pytest.raises(TypeError, match="integers"):
        WITH_T[function](linear, torch.tensor([1.0, 2.0, 3.0, 4.0]))


def test_a_timestep_batch_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match=r"shape \[4\]"):
        as_t_tensor(torch.tensor([1, 2, 3]), 4, T=10)


def test_ddim_step_needs_t_prev_below_t(linear):
    with pytest.raises(ValueError, match="t_prev must be smaller than t"):
        ddim.ddim_step(zero_model, X, 500, 500, linear)
    with pytest.raises(ValueError, match="0..1000"):
        ddim.ddim_step(zero_model, X, 500, -1, linear)


WITH_NOISE = {
    "q_step": lambda s, z: forward.q_step(X, 5, s, noise=z),
    "q_sample": lambda s, z: forward.q_sample(X, 5, s, noise=z),
    "diffusion_loss": lambda s, z: losses.diffusion_loss(zero_model, X, s, t=5, noise=z),
    "ddpm_step": lambda s, z: sampling.ddpm_step(zero_model, X, 5, s, noise=z),
    "ddpm_step at t = 1": lambda s, z: sampling.ddpm_step(zero_model, X, 1, s, noise=z),
    "ddim_step": lambda s, z: ddim.ddim_step(zero_model, X, 5, 0, s, eta=1.0, noise=z),
}


@pytest.mark.parametrize("noise", [torch.zeros(4, 3), torch.zeros(2, 4), torch.zeros(8)], ids=["[4,3]", "[2,4]", "[8]"])
@pytest.mark.parametrize("function", list(WITH_NOISE))
def test_noise_of_another_shape_than_x_is_refused(linear, function, noise):
    with pytest.raises(ValueError) as error:
        WITH_NOISE[function](linear, noise)
    message = str(error.value)
    assert "same shape" in message and "(4, 2)" in message, f"{function}: the message should give x's shape: {message}"


@pytest.mark.parametrize(
    "call",
    [
        lambda s: sampling.ddpm_step(zero_model, X, 5, s, variance="fixed_small"),
        lambda s: sampling.ddpm_sample(zero_model, (4, 2), s, variance="large"),
    ],
    ids=["ddpm_step", "ddpm_sample"],
)
def test_an_unknown_variance_is_refused_naming_the_choices(linear, call):
    with pytest.raises(ValueError) as error:
        call(linear)
    message = str(error.value)
    assert "'beta'" in message and "'beta_tilde'" in message, f"the message should list the variances: {message}"


@pytest.mark.parametrize("num_steps", [0, 1001, -5, 2.0, True])
@pytest.mark.parametrize(
    "call",
    [
        lambda s, n: ddim.ddim_timesteps(s.T, n),
        lambda s, n: ddim.ddim_sample(zero_model, (4, 2), s, num_steps=n),
    ],
    ids=["ddim_timesteps", "ddim_sample"],
)
def test_num_steps_outside_1_to_T_is_refused(linear, call, num_steps):
    with pytest.raises(ValueError) as error:
        call(linear, num_steps)
    assert "1..T = 1..1000" in str(error.value), f"the message should give the range: {error.value}"


@pytest.mark.parametrize(
    "betas", [[0.1, 0.0], [0.1, 1.0], [-0.1], [0.5, 1.5], [float("nan")]], ids=["0", "1", "negative", "above 1", "nan"]
)
def test_betas_outside_0_1_are_refused(betas):
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        NoiseSchedule(betas)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        schedules.alpha_bars_from_betas(torch.tensor(betas))


def test_betas_must_be_a_nonempty_1d_sequence():
    for betas in ([], [[0.1, 0.2]]):
        with pytest.raises(ValueError, match="1-D"):
            NoiseSchedule(betas)


def test_alpha_bars_of_the_wrong_length_are_refused():
    with pytest.raises(ValueError, match="T\\+1 = 3"):
        NoiseSchedule([0.1, 0.2], alpha_bars=[1.0, 0.9])
    with pytest.raises(ValueError, match="length T\\+1 >= 2"):
        schedules.betas_from_alpha_bars(torch.tensor([1.0]))


@pytest.mark.parametrize("T", [0, -3, 2.5, True])
@pytest.mark.parametrize("function", [schedules.linear_betas, schedules.cosine_alpha_bars])
def test_T_must_be_a_positive_integer(function, T):
    with pytest.raises(ValueError, match="positive integer"):
        function(T)


def test_a_model_that_returns_the_wrong_shape_is_named(linear):
    with pytest.raises(ValueError, match="shaped like x_t"):
        sampling.ddpm_step(lambda x_t, t: x_t[:, :1], X, 5, linear)
    with pytest.raises(ValueError, match="shaped like x_t"):
        ddim.ddim_step(lambda x_t, t: x_t.sum(), X, 5, 0, linear)
    with pytest.raises(ValueError, match="shaped like x_t"):  # [B, 1] against [B, 2] would broadcast silently
        losses.diffusion_loss(lambda x_t, t: x_t[:, :1], X, linear, t=5)
