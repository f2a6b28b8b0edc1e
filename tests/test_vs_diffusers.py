"""Agreement with diffusers' DDPMScheduler and DDIMScheduler, the field's reference implementation.

Their timestep t_d is our t - 1 (our t = 1..T, theirs 0..T-1). diffusers keeps its schedule in
float32, so each comparison runs twice:
- "float64": diffusers' scheduler is handed our float64 ᾱ; then every step must agree to
  float64 round-off, which checks the formulas themselves;
- "float32": diffusers as it ships, float32 schedule and samples; then we agree to float32
  precision, the size of the differences between the two schedules (and, for the last DDPM
  steps, of diffusers' own float32 round-off: see the DDPM loop test).
"""

import pytest
import torch

import mini_diffusion
from solutions import ddim, sampling

diffusers = pytest.importorskip(
    "diffusers", reason="diffusers, the test oracle, comes with the dev extra (pip install -e .[dev])"
)

pytestmark = pytest.mark.usefixtures("one_thread")

T = 1000
DIFFUSERS_NAME = {"linear": "linear", "cosine": "squaredcos_cap_v2"}
VARIANCE_TYPE = {"beta": "fixed_large", "beta_tilde": "fixed_small"}
# diffusers' ᾱ is a float32 cumulative product of T factors: each product rounds once, so its
# relative error can grow to about T float32 units in the last place.
CUMPROD_RTOL = T * 2.0**-24


@pytest.fixture(scope="module")
def ours(linear, cosine):
    return {"linear": linear, "cosine": cosine}


def ddpm_scheduler(schedule_name, variance="beta", schedule=None):
    scheduler = diffusers.DDPMScheduler(
        num_train_timesteps=T,
        beta_schedule=DIFFUSERS_NAME[schedule_name],
        variance_type=VARIANCE_TYPE[variance],
        clip_sample=False,
    )
    if schedule is not None:  # hand it our float64 schedule
        scheduler.betas = schedule.betas[1:]
        scheduler.alphas = schedule.alphas[1:]
        scheduler.alphas_cumprod = schedule.alpha_bars[1:]
    return scheduler


def ddim_scheduler(schedule_name, schedule=None, num_train_timesteps=T):
    scheduler = diffusers.DDIMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule=DIFFUSERS_NAME[schedule_name],
        clip_sample=False,
        set_alpha_to_one=True,
        timestep_spacing="trailing",
    )
    if schedule is not None:
        scheduler.alphas_cumprod = schedule.alpha_bars[1:]
        scheduler.final_alpha_cumprod = schedule.alpha_bars[0]
    return scheduler


def toy_model(schedule):
    """A deterministic ε_θ(x, t), our t = 1..T, that keeps samples of unit size: the exact noise
    predictor for N(0, I) data, √(1-ᾱ_t)·x, plus a wobble in t that notices an off-by-one."""

    def model(x, t):
        t = torch.as_tensor(t).reshape(-1, *[1] * (x.dim() - 1))
        alpha_bar = schedule.alpha_bars[t].to(x.dtype)
        return torch.sqrt(1 - alpha_bar) * x + 0.1 * torch.sin(t.to(x.dtype) / 37) * torch.tanh(x)

    return model


def for_diffusers(model):
    """The same model called with diffusers' t_d = t - 1."""
    return lambda x, t_d: model(x, torch.full((x.shape[0],), int(t_d) + 1))


def tolerance(precision):
    """(rtol, atol) for one step: float64 round-off; or, in float32, diffusers' own round-off, which
    is largest near t = 1: there its float32 1 - ᾱ_t (≈ 1e-4) is off by 2^-24 / 1e-4 ≈ 6e-4 relative,
    and the posterior coefficients built on it move x_{t-1} by up to ~1.3e-4 (measured)."""
    return (1e-10, 1e-10) if precision == "float64" else (3e-4, 3e-4)


PRECISIONS = ["float64", "float32"]
DTYPE = {"float64": torch.float64, "float32": torch.float32}


# --- schedules and timesteps --------------------------------------------------------------


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_schedules_equal_diffusers_betas_and_alphas_cumprod(ours, name):
    scheduler = ddpm_scheduler(name)
    torch.testing.assert_close(
        ours[name].betas[1:].float(),
        scheduler.betas,
        rtol=2 * 2.0**-24,
        atol=0,
        msg=f"{name}: β_1..β_T differ from diffusers' betas beyond float32 rounding",
    )
    torch.testing.assert_close(
        ours[name].alpha_bars[1:].float(),
        scheduler.alphas_cumprod,
        rtol=CUMPROD_RTOL,
        atol=0,
        msg=f"{name}: ᾱ_1..ᾱ_T differ from diffusers' alphas_cumprod beyond float32 rounding",
    )


def test_cosine_schedule_is_diffusers_squaredcos_cap_v2(package_uses_solutions):
    schedule = mini_diffusion.cosine_schedule(T)
    scheduler = ddpm_scheduler("cosine")
    torch.testing.assert_close(schedule.betas[1:].float(), scheduler.betas, rtol=2 * 2.0**-24, atol=0)
    torch.testing.assert_close(schedule.alpha_bars[1:].float(), scheduler.alphas_cumprod, rtol=CUMPROD_RTOL, atol=0)
    assert schedule.betas[-1] == 0.999, "max_beta = 0.999 caps β_T, as in squaredcos_cap_v2"


def test_ddpm_visits_diffusers_timesteps_shifted_by_one():
    scheduler = ddpm_scheduler("linear")
    scheduler.set_timesteps(T)
    assert (scheduler.timesteps + 1).tolist() == list(range(T, 0, -1)), "DDPM runs t = T..1 = diffusers' 999..0 + 1"


@pytest.mark.parametrize(
    "num_train_timesteps, steps",
    [
        (1000, [1, 2, 4, 5, 8, 10, 20, 25, 40, 50, 100, 125, 200, 250, 500, 1000]),
        (100, [1, 2, 4, 5, 10, 20, 25, 50, 100]),
        (10, list(range(1, 11))),
        (1, [1]),
    ],
)
def test_ddim_timesteps_equal_diffusers_trailing_spacing(num_train_timesteps, steps):
    scheduler = ddim_scheduler("linear", num_train_timesteps=num_train_timesteps)
    for num_steps in steps:
        scheduler.set_timesteps(num_steps)
        assert (
            ddim.ddim_timesteps(num_train_timesteps, num_steps).tolist() == (scheduler.timesteps + 1).tolist()
        ), f"T = {num_train_timesteps}, {num_steps} steps: not diffusers' trailing timesteps + 1"


@pytest.mark.parametrize("num_train_timesteps", [1000, 100, 7])
def test_ddim_timesteps_differ_from_diffusers_only_where_its_float_arange_wobbles(num_train_timesteps):
    """diffusers computes np.round(np.arange(T, 0, -T/n)): float steps, so it sometimes appends
    a step at t_d = -1 and decides exact .5 ties by round-off. Everything else must be equal."""
    scheduler = ddim_scheduler("linear", num_train_timesteps=num_train_timesteps)
    for num_steps in range(1, num_train_timesteps + 1):
        scheduler.set_timesteps(num_steps)
        theirs = (scheduler.timesteps + 1).tolist()
        mine = ddim.ddim_timesteps(num_train_timesteps, num_steps).tolist()
        if len(theirs) == num_steps + 1:
            assert theirs[-1] == 0, f"{num_steps} steps: diffusers' extra step should be its t_d = -1"
            theirs = theirs[:-1]
        for i, (a, b) in enumerate(zip(mine, theirs)):
            exact_tie = (2 * i * num_train_timesteps) % num_steps == 0 and (i * num_train_timesteps) % num_steps != 0
            assert a == b or (
                exact_tie and abs(a - b) == 1
            ), f"T = {num_train_timesteps}, {num_steps} steps, τ_{i}: ours {a}, diffusers {b} + 1, and not a .5 tie"


# --- single steps -------------------------------------------------------------------------


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_ddpm_step_equals_diffusers_step(ours, name, variance, precision):
    dtype = DTYPE[precision]
    scheduler = ddpm_scheduler(name, variance, ours[name] if precision == "float64" else None)
    x_t = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(0), dtype=dtype)
    eps = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(1), dtype=dtype)
    for t_d in (999, 998, 500, 10, 1, 0):
        theirs = scheduler.step(eps, t_d, x_t, generator=torch.Generator().manual_seed(t_d)).prev_sample
        mine = sampling.ddpm_step(
            lambda x, t: eps, x_t, t_d + 1, ours[name], variance=variance, generator=torch.Generator().manual_seed(t_d)
        )
        rtol, atol = tolerance(precision)
        torch.testing.assert_close(
            mine,
            theirs,
            rtol=rtol,
            atol=atol,
            msg=f"{name}, variance {variance!r}, t = {t_d + 1}: differs from diffusers' DDPM step",
        )


DDIM_STEPS = {  # (our t, our t_prev, diffusers' num_inference_steps that makes it step t_d -> t_d - T // n)
    "1000->950": (1000, 950, 20),
    "50->0": (50, 0, 20),
    "1000->967": (1000, 967, 30),
    "501->468": (501, 468, 30),
    "2->1": (2, 1, 1000),
    "1->0": (1, 0, 1000),
}


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_ddim_step_equals_diffusers_step(ours, name, eta, precision):
    dtype = DTYPE[precision]
    scheduler = ddim_scheduler(name, ours[name] if precision == "float64" else None)
    x_t = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(0), dtype=dtype)
    eps = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(1), dtype=dtype)
    z = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(2), dtype=dtype)
    for case, (t, t_prev, num_steps) in DDIM_STEPS.items():
        scheduler.set_timesteps(num_steps)
        theirs = scheduler.step(eps, t - 1, x_t, eta=eta, variance_noise=z).prev_sample
        mine = ddim.ddim_step(lambda x, t: eps, x_t, t, t_prev, ours[name], eta=eta, noise=z)
        rtol, atol = tolerance(precision)
        torch.testing.assert_close(
            mine, theirs, rtol=rtol, atol=atol, msg=f"{name}, eta {eta}, {case}: differs from diffusers' DDIM step"
        )


# --- full sampling loops ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, variance, precision",
    [
        ("linear", "beta", "float64"),
        ("cosine", "beta_tilde", "float64"),
        ("linear", "beta_tilde", "float32"),
        ("cosine", "beta", "float32"),
    ],
)
def test_ddpm_sample_equals_the_diffusers_loop(ours, name, variance, precision):
    dtype = DTYPE[precision]
    scheduler = ddpm_scheduler(name, variance, ours[name] if precision == "float64" else None)
    x_T = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=dtype)
    generator = torch.Generator().manual_seed(1)
    model = toy_model(ours[name])
    x = x_T
    for t_d in range(T - 1, -1, -1):  # what set_timesteps(T) gives, without its per-step index lookup
        x = scheduler.step(for_diffusers(model)(x, t_d), t_d, x, generator=generator).prev_sample
    mine = sampling.ddpm_sample(
        model, (4, 2), ours[name], generator=torch.Generator().manual_seed(1), variance=variance, x_T=x_T
    )
    # In float32 diffusers' own last steps are the weaker side: its posterior coefficients divide
    # by 1 - ᾱ_t, which near t = 1 (≈ 4e-5 for the cosine schedule) keeps only ~3 digits in
    # float32; measured against a float64 run it ends ~5e-4 off, our float32 loop ~1e-5.
    rtol, atol = tolerance(precision) if precision == "float64" else (1e-3, 2e-3)
    torch.testing.assert_close(
        mine, x, rtol=rtol, atol=atol, msg=f"{name}, {variance}: DDPM loop differs from diffusers'"
    )


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("name, num_steps", [("linear", 20), ("cosine", 50)])
def test_ddim_sample_equals_the_diffusers_loop(ours, name, num_steps, eta, precision):
    dtype = DTYPE[precision]
    scheduler = ddim_scheduler(name, ours[name] if precision == "float64" else None)
    scheduler.set_timesteps(num_steps)
    x_T = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=dtype)
    generator = torch.Generator().manual_seed(1)
    model = toy_model(ours[name])
    x = x_T
    for t_d in scheduler.timesteps:
        x = scheduler.step(for_diffusers(model)(x, t_d), t_d, x, eta=eta, generator=generator).prev_sample
    mine = ddim.ddim_sample(
        model, (4, 2), ours[name], num_steps=num_steps, eta=eta, generator=torch.Generator().manual_seed(1), x_T=x_T
    )
    rtol, atol = tolerance(precision)
    torch.testing.assert_close(
        mine, x, rtol=rtol, atol=atol, msg=f"{name}, eta {eta}: DDIM loop differs from diffusers'"
    )
