"""Hidden checks for notebook 04 (shown to students after the due date): ddpm_step's edge cases."""

import pytest
import torch

from _grading import Feedback, call, schedule
from _hidden import expect
from _models import ToyDenoiser
from _spec import check_generator, stand_in


def grader_p_mean(*args, **kwargs):
    """The grader's own p_mean (STAND_INS of exercises/test_02_reverse.py)."""
    return stand_in("p_mean")(*args, **kwargs)


exercise = pytest.mark.exercise


def grader_ddpm_step(model, x_t, t: int, s, noise, variance):
    """x_{t-1} = μ_θ + σ_t z for one int t > 1, by the grader's formulas."""
    t_batch = torch.full((x_t.shape[0],), t, dtype=torch.long)
    mean = grader_p_mean(x_t, t_batch, model(x_t, t_batch), s)
    beta_t = s.betas[t]
    sigma2 = beta_t if variance == "beta" else (1 - s.alpha_bars[t - 1]) / (1 - s.alpha_bars[t]) * beta_t
    return mean + float(sigma2) ** 0.5 * noise


@exercise("4.1", points=1)
def test_ddpm_step_with_an_int_t_at_t_T_of_a_cosine_schedule():
    """t as a Python int (the model still gets an int64 tensor [B]): t = T of a cosine schedule, where β_T = 0.999"""
    model = ToyDenoiser(1000)
    gen = check_generator("hidden/4.1/int_t", 41)
    x_t = torch.randn(3, 2, 2, generator=gen, dtype=torch.float64)
    noise = torch.randn(3, 2, 2, generator=gen, dtype=torch.float64)
    for s_name, t, variance in (("cosine1000", 1000, "beta"), ("linear1000", 500, "beta_tilde")):
        s = schedule(s_name)
        got = call("ddpm_step", model, x_t.clone(), t, s, noise=noise.clone(), variance=variance)
        expect("ddpm_step", got, grader_ddpm_step(model, x_t, t, s, noise, variance),
               f"t = {t} as a Python int, a {s_name[:-4]} schedule, variance={variance!r}, x_t [3, 2, 2] in float64",
               [t] * 3)


@exercise("4.1", points=1)
def test_ddpm_step_without_noise_draws_z_with_the_generator_and_the_right_spread():
    """no noise given: z comes from the generator (same seed, same result) and x_{t-1} spreads by σ_t² = β_t or β̃_t"""
    s = schedule("linear1000")
    model, n, t = ToyDenoiser(1000), 20_000, 10
    x_t = torch.zeros(n, 2, dtype=torch.float64)
    for variance in ("beta", "beta_tilde"):
        got = call("ddpm_step", model, x_t.clone(), t, s, variance=variance, generator=check_generator("hidden/4.1/spread", 4))
        again = call("ddpm_step", model, x_t.clone(), t, s, variance=variance, generator=check_generator("hidden/4.1/spread", 4))
        if not isinstance(got, torch.Tensor) or got.shape != x_t.shape:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise Feedback(f"ddpm_step without noise should return a tensor shaped like x_t, {tuple(x_t.shape)}; it "
                           f"returned {shape}")
        if not torch.equal(got, again):
            raise Feedback("ddpm_step without noise gave different results for two generators with the same seed: draw "
                           "z with the `generator` argument (noise_like(x_t, noise, generator) does this).")
        beta_t = float(s.betas[t])
        want = beta_t if variance == "beta" else float((1 - s.alpha_bars[t - 1]) / (1 - s.alpha_bars[t])) * beta_t
        spread = got.var(dim=0)
        # 20,000 draws: the sample variance is within 5 % of σ_t² with overwhelming probability
        if not torch.allclose(spread, torch.full_like(spread, want), rtol=0.05):
            raise Feedback(f"ddpm_step without noise at t = {t}, variance={variance!r}: over {n} draws from the same x_t "
                           f"the variance of x_{{t-1}} is {[round(v, 7) for v in spread.tolist()]}; it should be σ_t² = "
                           f"{want:.7f}. When noise is None, draw z ~ N(0, I) (with `generator`) and add σ_t · z.")
