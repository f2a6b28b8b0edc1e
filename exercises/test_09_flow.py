"""Notebook 09, flow matching: exercises 9.1-9.7 (flow.py).

The linear path and the conversions are graded exactly on shipped cases; the loss with a toy
velocity network (given t and noise, and drawn from the generator) and a spy that records the t
it is asked about; Euler from t = 1 to 0 exactly with a toy velocity, with the ideal velocity of
four points (the last step must land on them), and by the quality of its moons samples with the
reference flow model. The optional 9.7 (conversions on any Gaussian path) is graded exactly on three
paths: VP, variance exploding and linear.
"""

import pytest
import torch

from _flow_models import SpyVelocity, ToyVelocityNetwork
from _grading import Feedback, call, grade_cases
from _quality import ideal_points, require_reference_samples, require_same_landing
from _spec import Exercise, Notebook, check_generator, check_seed

NOTEBOOK = Notebook(
    "09", "09_flow_matching", title="Flow matching: straight lines for each pair, a curved flow, and reflow",
    idea="the linear path, velocity models, Euler from noise to data, reflow; one family of Gaussian paths: "
         "ε, x̂₀, score, v and velocity",
    needs=("6.1", "6.3", "7.3"),
)
EXERCISES = [
    Exercise("9.1", "flow", "fm_interpolate", points=2, title="the point x_t on the straight line from data to noise"),
    Exercise("9.2", "flow", "fm_loss", points=3, title="the flow-matching loss", uses=("9.1",)),
    Exercise("9.3", "flow", "fm_sample", points=3, title="Euler from noise (t = 1) to data (t = 0)"),
    Exercise("9.4", "flow", "x0_from_velocity", points=1, title="x̂_0 from a velocity"),
    Exercise("9.5", "flow", "eps_from_velocity", points=1, title="ε̂ from a velocity"),
    Exercise("9.6", "flow", "score_from_eps", points=1, title="the score from ε̂ on the VP path"),
    Exercise("9.7", "flow", "convert_prediction", points=3,
             title="ε̂, x̂_0, score, v and velocity on any Gaussian path (optional)"),
]

exercise = pytest.mark.exercise


# Moons energy ratio of fm_sample (20 Euler steps, 400 samples) with the reference flow model: the
# solution scores 0.55-1.19 over seeds 0-3; Euler stepping forward in t (from 0 to 1) scores about 20.
FLOW_LIMIT = 4.0
IDEAL_POINTS = torch.tensor([[-1.0, 0.5], [0.0, -1.0], [1.2, 1.0], [2.0, -0.3]])
IDEAL_DISTANCE = 1e-2


@exercise("9.1", points=2)
def test_fm_interpolate_is_the_straight_line():
    """x_t = (1 - t)·x_0 + t·ε for a float t, a tensor t [B], images, and both ends t = 0 and t = 1"""
    grade_cases("9.1", "float_t", "mixed_t", "images", "ends")


@exercise("9.2", points=1)
def test_fm_loss_with_given_t_and_noise():
    """with t and noise given: mean over every element of (v_θ(x_t, t) - (ε - x_0))², differentiable"""
    grade_cases("9.2", "given_t_and_noise", "images")
    model = ToyVelocityNetwork()
    x0 = torch.randn(8, 2, generator=check_generator("9.2/gradient/x0", 1), dtype=torch.float64)
    loss = call("fm_loss", model, x0, t=torch.linspace(0, 1, 8, dtype=torch.float64),
                noise=torch.randn(8, 2, generator=check_generator("9.2/gradient/noise", 2), dtype=torch.float64))
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        raise Feedback("fm_loss returns the right number, but no gradient flows back to the model: compute it with "
                       "tensor operations only (no .item(), .detach() or torch.no_grad()), so that loss.backward() "
                       "can train the model.")
    loss.backward()
    if model.scale.grad is None or float(model.scale.grad.abs()) == 0.0:
        raise Feedback("fm_loss: loss.backward() leaves the model's parameters without a gradient; the loss must be "
                       "computed from the model's output.")


@exercise("9.2", points=1)
def test_fm_loss_draws_t_uniformly_from_0_to_1():
    """without t: one float t per sample, uniform on [0, 1]"""
    spy = SpyVelocity()
    for i in range(5):
        call("fm_loss", spy, torch.zeros(2000, 2), generator=check_generator(f"9.2/uniform/{i}", i))
    if not spy.seen:
        raise Feedback("fm_loss never called the model (with t as a float tensor of shape [B]).")
    seen = torch.cat(spy.seen).double()
    if any(bool((t == t[0]).all()) for t in spy.seen):
        raise Feedback("fm_loss uses one t for the whole batch; draw one t per sample, t ~ U(0, 1) of shape [B].")
    mean, low, high = float(seen.mean()), float(seen.min()), float(seen.max())
    below = float((seen < 0.5).double().mean())
    if abs(mean - 0.5) > 0.03 or low > 0.01 or high < 0.99 or abs(below - 0.5) > 0.03:
        raise Feedback(f"fm_loss does not draw t uniformly on [0, 1]: over {seen.numel()} draws the mean is "
                       f"{mean:.3f}, the smallest {low:.3f} and the largest {high:.3f} (U(0, 1): about 0.5, 0 and 1). "
                       "Use torch.rand(B, generator=generator, dtype=x0.dtype).")


@exercise("9.2", points=1)
def test_fm_loss_draws_t_then_noise_from_the_generator():
    """without t and noise: t ~ U(0, 1) first, then ε ~ N(0, I), both from the generator in x0's dtype (float32 and float64)"""
    grade_cases("9.2", "drawn", "drawn_images", "drawn_float64")


@exercise("9.3", points=1)
def test_fm_sample_steps_from_noise_to_data():
    """x ← x + (t_{i+1} - t_i)·v_θ(x, t_i) on t = 1, 1 - 1/N, …, 0 with a toy velocity: 10, 7, 2 and 1 steps"""
    grade_cases("9.3", "steps10", "steps7", "two_steps", "one_step", "seeded_images", "trajectory")


@exercise("9.3", points=1)
def test_fm_sample_lands_on_the_data_with_the_ideal_velocity():
    """with the ideal velocity of four points (50 steps) every sample ends on one of them"""
    from mini_diffusion.toolkit.flow import IdealVelocity

    points = ideal_points("9.3/ideal/points", IDEAL_POINTS)
    x_T = torch.randn(200, 2, generator=check_generator("9.3/ideal/x_T", 0))
    samples = call("fm_sample", IdealVelocity(points), (200, 2), 50, x_T=x_T)
    if not isinstance(samples, torch.Tensor) or samples.shape != (200, 2):
        got = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise Feedback(f"fm_sample should return samples of shape (200, 2); it returned {got}")
    if not bool(torch.isfinite(samples).all()):
        raise Feedback("fm_sample with the ideal velocity returned NaN or inf: was the model asked at t = 0?")
    distance = torch.cdist(samples.detach().double().cpu(), points.double()).min(dim=1).values.max().item()
    if distance > IDEAL_DISTANCE:
        raise Feedback(f"fm_sample driven by the ideal velocity of four points (50 steps): the flow ends exactly on "
                       f"those points, but one of your samples is {distance:.3g} away from the nearest. Check that "
                       "the last step reaches t = 0 and that each step goes from t towards 0.")
    require_same_landing("fm_sample", samples, points, (IdealVelocity(points), (200, 2), 50), {"x_T": x_T})


@exercise("9.3", points=1, timeout=120)
@pytest.mark.slow
def test_fm_sample_makes_good_moons():
    """Euler (20 steps) with the reference moons flow model: samples close to real two moons"""
    from mini_diffusion.toolkit.metrics import moons_energy_ratio
    from mini_diffusion.toolkit.reference import load

    model, _, _ = load("moons_flow")
    seed = check_seed("9.3/quality", 0)
    samples = call("fm_sample", model, (400, 2), 20, generator=torch.Generator().manual_seed(seed))
    if not isinstance(samples, torch.Tensor) or samples.shape != (400, 2):
        got = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise Feedback(f"fm_sample(model, (400, 2), 20, …) should return samples of shape (400, 2); it returned {got}")
    if not bool(torch.isfinite(samples).all()):
        raise Feedback("fm_sample with the reference moons flow model returned NaN or inf samples.")
    require_reference_samples("fm_sample", samples, "the reference moons flow model", (model, (400, 2), 20), seed=seed)
    ratio = moons_energy_ratio(samples.detach().cpu())
    if ratio > FLOW_LIMIT:
        raise Feedback(f"fm_sample with the reference moons flow model: the samples are {ratio:.2f} x the metric floor "
                       f"away from real two-moons data; a correct sampler gets close to 1, and the limit is "
                       f"{FLOW_LIMIT:g}. The exact checks of this exercise show where it goes wrong.")


@exercise("9.4", points=1)
def test_x0_from_velocity():
    """x̂_0 = x_t - t·v for a float t and a tensor t [B]"""
    grade_cases("9.4", "float_t", "mixed_t", "images")


@exercise("9.5", points=1)
def test_eps_from_velocity():
    """ε̂ = x_t + (1 - t)·v for a float t and a tensor t [B]"""
    grade_cases("9.5", "float_t", "mixed_t", "images")


@exercise("9.6", points=1)
def test_score_from_eps():
    """score = -ε / √(1 - ᾱ_t) for mixed t, the linear and the cosine schedule"""
    grade_cases("9.6", "mixed_linear", "mixed_cosine", "int_t_images")


@exercise("9.7", points=1)
def test_convert_prediction_between_eps_x0_and_score():
    """ε̂ ↔ x̂_0 ↔ score on the VP, variance-exploding and linear paths, per-sample and plain-number α_t, σ_t"""
    grade_cases("9.7", "vp_eps_to_x0", "ve_score_to_x0", "linear_eps_to_score", "vp_x0_to_score", "images_x0_to_eps")


@exercise("9.7", points=1)
def test_convert_prediction_with_v_prediction():
    """v = α_t·ε - σ_t·x_0 (Salimans & Ho) to and from the others, also where α_t² + σ_t² ≠ 1"""
    grade_cases("9.7", "vp_v_to_eps", "vp_x0_to_v", "ve_v_to_x0", "linear_v_to_velocity")


@exercise("9.7", points=1)
def test_convert_prediction_with_the_velocity():
    """the velocity dx_t/dt = α'_t·x_0 + σ'_t·ε with the path's derivatives, on all three paths"""
    grade_cases("9.7", "vp_velocity_to_x0", "ve_eps_to_velocity", "linear_velocity_to_eps", "linear_score_to_velocity")


# BEGIN MAINTAINER
# Only the build (tools/build.py) reads what follows; the student copy leaves it out.
# Also named here, with an earlier notebook's message: no_final_step.

from _spec import Mutant, sched, solution, t_rows

flow = solution("flow")

MISTAKES = {
    "path_reversed": "the path runs the wrong way: t = 0 is data and t = 1 is noise, x_t = (1 - t)·x_0 + t·ε.",
    "target_reversed": "the target is x_0 - ε; the velocity of x_t = (1 - t)·x_0 + t·ε is dx_t/dt = ε - x_0.",
    "noise_before_t": "the noise was drawn before t; draw t first (torch.rand), then the noise (torch.randn).",
    "euler_forward": "the steps go forward in t (towards noise); sampling runs from t = 1 down to t = 0, "
                     "x ← x + (t_{i+1} - t_i)·v with t_{i+1} < t_i.",
    "velocity_sign": "the velocity is added with the wrong sign: going down in t, x ← x - (1/N)·v.",
    "model_at_next_t": "the model was asked at the time the step lands on; Euler asks it where the step starts, t_i.",
    "x0_sign": "x̂_0 = x_t - t·v: from t back to 0 the point moves against the velocity.",
    "x0_one_minus_t": "the factor is t, the time left back to the data: x̂_0 = x_t - t·v.",
    "eps_sign": "ε̂ = x_t + (1 - t)·v: from t on to 1 the point moves with the velocity.",
    "eps_t": "the factor is 1 - t, the time left to the noise: ε̂ = x_t + (1 - t)·v.",
    "score_variance": "the score divides by the standard deviation √(1 - ᾱ_t), not by the variance 1 - ᾱ_t.",
    "score_sign": "the score points towards the data, against the noise: score = -ε / √(1 - ᾱ_t).",
    "score_alpha_bar_prev": "ᾱ_{t-1} was used; the noise at timestep t has standard deviation √(1 - ᾱ_t).",
    "t_float32": "t was drawn in float32 and then cast; for float64 x0 the same generator gives other numbers: draw "
                 "t = torch.rand(B, generator=generator, dtype=x0.dtype).",
    "v_is_eps_minus_x0": "v-prediction is v = α_t·ε - σ_t·x_0 (Salimans & Ho), not the linear path's velocity ε - x_0.",
    "v_sign": "v = α_t·ε - σ_t·x_0: the noise gets the plus sign, the data the minus sign.",
    "v_unit_norm": "from v, divide by α_t² + σ_t²: x̂_0 = (α_t·x_t - σ_t·v) / (α_t² + σ_t²); it is 1 only on the VP path.",
    "velocity_unit_det": "from the velocity, divide by D = α_t·σ'_t - σ_t·α'_t; D = 1 only on the linear path "
                         "(α = 1 - t, σ = t).",
    "velocity_no_derivatives": "the velocity is the time derivative of x_t = α_t·x_0 + σ_t·ε: u = α'_t·x̂_0 + σ'_t·ε̂ "
                               "(with d_alpha and d_sigma), not α_t·x̂_0 + σ_t·ε̂.",
    "score_sigma_squared": "the score is -ε̂/σ_t (one σ_t, the standard deviation of the noise in x_t), and ε̂ = -σ_t·score.",
    "x0_no_alpha": "x_t = α_t·x̂_0 + σ_t·ε̂, so x̂_0 = (x_t - σ_t·ε̂) / α_t: divide by α_t.",
}


def _bt(t, x):
    return t if isinstance(t, float) else t.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)


def loss_with(model, x0, t=None, noise=None, generator=None, *, reverse=False, target_sign=1, integer_t=False,
              noise_first=False, t_float32=False):
    device = x0.device
    if noise_first and noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=device, dtype=x0.dtype)
    if t is None:
        if integer_t:
            t = torch.randint(0, 1001, (x0.shape[0],), generator=generator).to(x0.dtype)
        elif t_float32:
            t = torch.rand(x0.shape[0], generator=generator, device=device).to(x0.dtype)
        else:
            t = torch.rand(x0.shape[0], generator=generator, device=device, dtype=x0.dtype)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=device, dtype=x0.dtype)
    tb = _bt(t, x0)
    x_t = tb * x0 + (1 - tb) * noise if reverse else (1 - tb) * x0 + tb * noise
    return ((model(x_t, t) - target_sign * (noise - x0)) ** 2).mean()


def sample_with(model, shape, num_steps, generator=None, x_T=None, trajectory=False, *, forward=False, sign=1,
                at_next=False, last=True):
    from mini_diffusion.toolkit.plumbing import starting_noise

    x = starting_noise(model, shape, generator, x_T)
    ts = [(num_steps - i) / num_steps for i in range(num_steps + 1)]
    if forward:
        ts = ts[::-1]
    pairs = list(zip(ts, ts[1:]))
    states = [x]
    for t, t_next in pairs if last else pairs[:-1]:
        at = t_next if at_next else t
        v = model(x, torch.full((x.shape[0],), at, dtype=x.dtype))
        x = x + sign * (t_next - t) * v
        states.append(x)
    return states if trajectory else x


VARIANTS = {
    "9.1": {"path_reversed": lambda x0, noise, t: _bt(t, x0) * x0 + (1 - _bt(t, x0)) * noise},
    "9.2": {
        "path_reversed": lambda *a, **k: loss_with(*a, **k, reverse=True),
        "target_reversed": lambda *a, **k: loss_with(*a, **k, target_sign=-1),
        "noise_before_t": lambda *a, **k: loss_with(*a, **k, noise_first=True),
        "t_float32": lambda *a, **k: loss_with(*a, **k, t_float32=True),
    },
    "9.3": {
        "euler_forward": lambda *a, **k: sample_with(*a, **k, forward=True),
        "velocity_sign": lambda *a, **k: sample_with(*a, **k, sign=-1),
        "model_at_next_t": lambda *a, **k: sample_with(*a, **k, at_next=True),
        "no_final_step": lambda *a, **k: sample_with(*a, **k, last=False),
    },
    "9.4": {
        "x0_sign": lambda x_t, t, v: x_t + _bt(t, x_t) * v,
        "x0_one_minus_t": lambda x_t, t, v: x_t - (1 - _bt(t, x_t)) * v,
    },
    "9.5": {
        "eps_sign": lambda x_t, t, v: x_t - (1 - _bt(t, x_t)) * v,
        "eps_t": lambda x_t, t, v: x_t + _bt(t, x_t) * v,
    },
    "9.6": {
        "score_variance": lambda eps, t, s: -eps / (1 - _ab(s, t, eps)),
        "score_sign": lambda eps, t, s: eps / (1 - _ab(s, t, eps)).sqrt(),
        "score_alpha_bar_prev": lambda eps, t, s: -eps / (1 - _ab(s, t, eps, shift=1)).sqrt(),
    },
    "9.7": {key: (lambda key: lambda *a, **k: convert_with(*a, **k, mistake=key))(key) for key in (
        "v_is_eps_minus_x0", "v_sign", "v_unit_norm", "velocity_unit_det", "velocity_no_derivatives",
        "score_sigma_squared", "x0_no_alpha")},
}


def convert_with(x_t, prediction, alpha, sigma, *, source, target, d_alpha=None, d_sigma=None, mistake=None):
    """convert_prediction written out once more, with one named mistake."""
    a, s, da, ds = (_bt(c, x_t) if c is not None else None for c in (alpha, sigma, d_alpha, d_sigma))
    if mistake == "velocity_no_derivatives":
        da, ds = a, s
    x0_over = 1 if mistake == "x0_no_alpha" else a
    if source == "eps":
        eps = prediction
        x0 = (x_t - s * eps) / x0_over
    elif source == "x0":
        x0, eps = prediction, (x_t - a * prediction) / s
    elif source == "score":
        eps = -(s**2 if mistake == "score_sigma_squared" else s) * prediction
        x0 = (x_t - s * eps) / x0_over
    elif source == "v":
        if mistake == "v_is_eps_minus_x0":  # x_t = a x0 + s eps and v = eps - x0
            x0, eps = (x_t - s * prediction) / (a + s), (x_t + a * prediction) / (a + s)
        else:
            v = -prediction if mistake == "v_sign" else prediction
            norm = 1 if mistake == "v_unit_norm" else a**2 + s**2
            x0, eps = (a * x_t - s * v) / norm, (s * x_t + a * v) / norm
    else:
        det = 1 if mistake == "velocity_unit_det" else a * ds - s * da
        x0, eps = (ds * x_t - s * prediction) / det, (a * prediction - da * x_t) / det
    if target == "eps":
        return eps
    if target == "x0":
        return x0
    if target == "score":
        return -eps / (s**2 if mistake == "score_sigma_squared" else s)
    if target == "v":
        if mistake == "v_is_eps_minus_x0":
            return eps - x0
        return (s * x0 - a * eps) if mistake == "v_sign" else a * eps - s * x0
    return da * x0 + ds * eps


def _ab(s, t, x, shift=0):
    t = torch.as_tensor(t).reshape(-1).expand(x.shape[0]) - shift
    return s.alpha_bars.to(x.dtype)[t].reshape(-1, *([1] * (x.dim() - 1)))


def make_cases(mk) -> None:
    """The graded cases of 9.1-9.7, with inputs from mk's seeded generator."""
    mixed_t = torch.tensor([0.0, 0.1, 0.25, 0.5, 0.9, 1.0], dtype=torch.float64)
    rows = {"kind": "t", "values": mixed_t.tolist()}
    for exercise_id, function_args in (("9.1", ("x0", "noise")), ("9.4", ("x_t", "v")), ("9.5", ("x_t", "v"))):
        first, second = function_args

        def arguments(a, b, t):
            return [(first, a), (second, b), ("t", t)] if exercise_id == "9.1" else [(first, a), ("t", t), (second, b)]

        mk.case(exercise_id, "float_t", arguments(mk.randn(4, 2), mk.randn(4, 2), 0.3),
                label=f"{first}, {second} [4, 2] float64, t = 0.3 (a float)")
        mk.case(exercise_id, "mixed_t", arguments(mk.randn(6, 2), mk.randn(6, 2), mixed_t.clone()),
                label=f"{first}, {second} [6, 2] float64, t = {mixed_t.tolist()} (a float64 tensor [6])", rows=rows)
        t_images = torch.tensor([0.2, 0.5, 0.7, 0.95, 0.05], dtype=torch.float32)
        mk.case(exercise_id, "images",
                arguments(mk.randn(5, 1, 3, 3, dtype=torch.float32), mk.randn(5, 1, 3, 3, dtype=torch.float32), t_images),
                label=f"images [5, 1, 3, 3] float32, t = {t_images.tolist()} (float32 [5])",
                rows={"kind": "t", "values": t_images.tolist()})
        if exercise_id == "9.1":
            ends = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
            mk.case("9.1", "ends", arguments(mk.randn(4, 2), mk.randn(4, 2), ends),
                    label="x0, noise [4, 2] float64, t = [0, 1, 0, 1]: x_0 itself at t = 0, the noise at t = 1",
                    rows={"kind": "t", "values": ends.tolist()})

    net = {"model": "toy_velocity_network"}
    mk.case("9.2", "given_t_and_noise", [("model", net), ("x0", mk.randn(6, 2))],
            {"t": mixed_t.clone(), "noise": mk.randn(6, 2)}, output="tensor",
            label=f"a toy velocity model, x0 [6, 2] float64, t = {mixed_t.tolist()} and noise given")
    mk.case("9.2", "images", [("model", net), ("x0", mk.randn(5, 1, 3, 3, dtype=torch.float32))],
            {"t": torch.tensor([0.2, 0.5, 0.7, 0.95, 0.05]), "noise": mk.randn(5, 1, 3, 3, dtype=torch.float32)},
            label="a toy velocity model, images [5, 1, 3, 3] float32, t and noise given")
    mk.case("9.2", "drawn", [("model", net), ("x0", mk.randn(6, 2, dtype=torch.float32))], {"generator": {"generator": 7}},
            label="a toy velocity model, x0 [6, 2] float32, no t or noise: drawn from a generator seeded 7 "
                  "(t = torch.rand(6, generator=g) first, then the noise torch.randn(x0.shape, generator=g))")
    mk.case("9.2", "drawn_images", [("model", net), ("x0", mk.randn(3, 1, 2, 2, dtype=torch.float32))],
            {"generator": {"generator": 11}},
            label="a toy velocity model, images [3, 1, 2, 2] float32, t and noise drawn from a generator seeded 11")

    toy = {"model": "toy_velocity"}
    for name, shape, kwargs, label, output in [
        ("steps10", [4, 2], {"num_steps": 10, "x_T": mk.randn(4, 2)}, "num_steps = 10, x_T [4, 2] given", "tensor"),
        ("steps7", [4, 2], {"num_steps": 7, "x_T": mk.randn(4, 2)}, "num_steps = 7, x_T given", "tensor"),
        ("two_steps", [4, 2], {"num_steps": 2, "x_T": mk.randn(4, 2)}, "num_steps = 2 (t = 1, 0.5, 0)", "tensor"),
        ("one_step", [4, 2], {"num_steps": 1, "x_T": mk.randn(4, 2)}, "num_steps = 1 (from t = 1 to 0 at once)",
         "tensor"),
        ("seeded_images", [3, 1, 2, 2], {"num_steps": 5, "generator": {"generator": 7}},
         "shape (3, 1, 2, 2), num_steps = 5, no x_T (drawn in float32 from the seeded generator)", "tensor"),
        ("trajectory", [4, 2], {"num_steps": 4, "x_T": mk.randn(4, 2), "trajectory": True},
         "num_steps = 4, x_T given, trajectory=True (the list [x_1, x_0.75, x_0.5, x_0.25, x_0])", "states"),
    ]:
        mk.case("9.3", name, [("model", toy), ("shape", {"shape": shape})], kwargs,
                label=f"a fixed toy velocity model, {label}", rows={"kind": "sample"}, output=output, dtype_from="x")

    t_mixed = mk.mixed
    for name, sname in (("mixed_linear", "linear1000"), ("mixed_cosine", "cosine1000")):
        mk.case("9.6", name, [("eps", mk.randn(6, 2)), ("t", t_mixed.clone()), ("schedule", sched(sname))],
                label=f"eps [6, 2] float64, t = {t_mixed.tolist()}, the {sname[:-4]} schedule (T = 1000)",
                rows=t_rows(t_mixed, 6))
    mk.case("9.6", "int_t_images", [("eps", mk.randn(3, 1, 2, 2, dtype=torch.float32)), ("t", 10),
                                    ("schedule", sched("linear10"))],
            label="eps [3, 1, 2, 2] float32, t = 10 (an int), a short linear schedule (T = 10)", rows=t_rows(10, 3))

    mk.case("9.2", "drawn_float64", [("model", net), ("x0", mk.randn(6, 2))], {"generator": {"generator": 13}},
            label="a toy velocity model, x0 [6, 2] float64, no t or noise: drawn from a generator seeded 13 in x0's "
                  "dtype (t = torch.rand(6, generator=g, dtype=torch.float64) first, then the noise)")

    # 9.7 convert_prediction on three paths, at the times t (continuous, in [0, 1]) of each row
    t7 = torch.tensor([0.05, 0.2, 0.4, 0.6, 0.8, 0.95], dtype=torch.float64)
    half_pi = torch.pi / 2
    ve_min, ve_max = 0.02, 80.0
    ve_sigma = ve_min * (ve_max / ve_min) ** t7
    paths = {  # name -> (alpha, sigma, d_alpha, d_sigma, description)
        "vp": (torch.cos(half_pi * t7), torch.sin(half_pi * t7), -half_pi * torch.sin(half_pi * t7),
               half_pi * torch.cos(half_pi * t7), "the VP (cosine) path α_t = cos(πt/2), σ_t = sin(πt/2)"),
        "ve": (torch.ones(6, dtype=torch.float64), ve_sigma, torch.zeros(6, dtype=torch.float64),
               ve_sigma * torch.log(torch.tensor(ve_max / ve_min, dtype=torch.float64)),
               f"the variance-exploding path α_t = 1, σ_t = {ve_min:g}·({ve_max:g}/{ve_min:g})^t"),
        "linear": (1 - t7, t7.clone(), -torch.ones(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64),
                   "the linear path α_t = 1 - t, σ_t = t"),
    }
    for name, path, source, target in (
        ("vp_eps_to_x0", "vp", "eps", "x0"), ("ve_score_to_x0", "ve", "score", "x0"),
        ("linear_eps_to_score", "linear", "eps", "score"), ("vp_x0_to_score", "vp", "x0", "score"),
        ("vp_v_to_eps", "vp", "v", "eps"), ("vp_x0_to_v", "vp", "x0", "v"), ("ve_v_to_x0", "ve", "v", "x0"),
        ("linear_v_to_velocity", "linear", "v", "velocity"), ("vp_velocity_to_x0", "vp", "velocity", "x0"),
        ("ve_eps_to_velocity", "ve", "eps", "velocity"), ("linear_velocity_to_eps", "linear", "velocity", "eps"),
        ("linear_score_to_velocity", "linear", "score", "velocity"),
    ):
        alpha, sigma, d_alpha, d_sigma, description = paths[path]
        derivatives = {"d_alpha": d_alpha.clone(), "d_sigma": d_sigma.clone()} if "velocity" in (source, target) else {}
        mk.case("9.7", name, [("x_t", mk.randn(6, 2)), ("prediction", mk.randn(6, 2)), ("alpha", alpha.clone()),
                              ("sigma", sigma.clone())], {"source": source, "target": target, **derivatives},
                label=f"x_t and a {source} prediction [6, 2] float64 to {target}, on {description} at t = "
                      f"{t7.tolist()} (α_t, σ_t{', α′_t, σ′_t' if derivatives else ''} as float64 tensors [6])",
                rows={"kind": "t", "values": t7.tolist()})
    mk.case("9.7", "images_x0_to_eps", [("x_t", mk.randn(3, 1, 2, 2, dtype=torch.float32)),
                                        ("prediction", mk.randn(3, 1, 2, 2, dtype=torch.float32)), ("alpha", 0.6),
                                        ("sigma", 0.8)], {"source": "x0", "target": "eps"},
            label="images [3, 1, 2, 2] float32, an x0 prediction to eps, α_t = 0.6 and σ_t = 0.8 (plain numbers)")


MUTANTS = [  # (name, module, old text, new text, exercise that must lose points, what its message says)
    Mutant("flow path reversed", "flow",
           "return (1 - t) * x0 + t * noise", "return t * x0 + (1 - t) * noise", "9.1", "path_reversed"),
    Mutant("flow target x0 - noise", "flow",
           "target = noise - x0", "target = x0 - noise", "9.2", "target_reversed"),
    Mutant("flow t from the timesteps", "flow",
           "t = torch.rand(batch, generator=generator, device=device, dtype=x0.dtype).to(x0.device)",
           "t = torch.randint(0, 1001, (batch,), generator=generator, device=device).to(x0.device, x0.dtype)",
           "9.2", "[0, 1]"),
    Mutant("flow Euler forward in t", "flow",
           "for t, t_next in zip(ts, ts[1:]):", "for t, t_next in zip(ts[::-1], ts[::-1][1:]):",
           "9.3", "euler_forward"),
    Mutant("flow Euler without its last step", "flow",
           "for t, t_next in zip(ts, ts[1:]):", "for t, t_next in zip(ts[:-1], ts[1:-1]):",
           "9.3", "no_final_step"),
    Mutant("flow x0 with 1 - t", "flow",
           "return x_t - broadcast_t(t, x_t) * v", "return x_t - (1 - broadcast_t(t, x_t)) * v", "9.4", "x0_one_minus_t"),
    Mutant("flow eps with t", "flow",
           "return x_t + (1 - broadcast_t(t, x_t)) * v", "return x_t + broadcast_t(t, x_t) * v", "9.5", "eps_t"),
    Mutant("score with the variance", "flow",
           "return -eps / torch.sqrt(1 - extract(schedule.alpha_bars, t, eps))",
           "return -eps / (1 - extract(schedule.alpha_bars, t, eps))", "9.6", "score_variance"),
    Mutant("flow t drawn in float32", "flow",
           "t = torch.rand(batch, generator=generator, device=device, dtype=x0.dtype).to(x0.device)",
           "t = torch.rand(batch, generator=generator, device=device).to(x0.device, x0.dtype)", "9.2", "t_float32"),
    Mutant("v-prediction as eps - x0", "flow",
           "        return a * eps - s * x0", "        return eps - x0", "9.7", "v_is_eps_minus_x0"),
    Mutant("from v without dividing by alpha² + sigma²", "flow",
           "norm = a**2 + s**2", "norm = 1.0", "9.7", "v_unit_norm"),
    Mutant("from the velocity with D = 1", "flow",
           "det = a * ds - s * da", "det = 1.0", "9.7", "velocity_unit_det"),
    Mutant("score with sigma squared", "flow",
           "eps = -s * prediction", "eps = -s**2 * prediction", "9.7", "score_sigma_squared"),
]
# END MAINTAINER
