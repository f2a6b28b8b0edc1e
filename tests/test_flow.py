"""Flow matching (notebook 09): the solutions against diffusers, the ideal velocity field and its
loss floor, the velocity networks, the ε-model seen as a flow (= DDIM), and the shipped flow models."""

import math

import numpy as np
import pytest
import torch

from mini_diffusion.toolkit import flow as flow_kit
from mini_diffusion.toolkit import flow_nets
from solutions import flow

pytestmark = [
    pytest.mark.usefixtures("one_thread", "package_uses_solutions"),
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]


class SmoothVelocity:
    """A fixed, smooth velocity field of sensible size."""

    def __init__(self, dim=2):
        g = torch.Generator().manual_seed(0)
        self.weight = torch.randn(dim, dim, generator=g) / dim**0.5
        self.bias = torch.randn(dim, generator=g)

    def __call__(self, x, t):
        return 0.8 * x - 0.6 + 0.5 * torch.tanh(x @ self.weight + self.bias * t[:, None])


@pytest.mark.parametrize("num_steps", [1, 2, 7, 20])
def test_fm_sample_matches_diffusers_flow_match_euler_on_the_same_sigma_grid(num_steps):
    diffusers = pytest.importorskip("diffusers")
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    scheduler.set_timesteps(sigmas=np.linspace(1.0, 0.0, num_steps + 1)[:-1].tolist())
    model = SmoothVelocity()
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(1))
    x = x_T.clone()
    for t in scheduler.timesteps:
        v = model(x, torch.full((x.shape[0],), float(t) / 1000))
        x = scheduler.step(v, t, x).prev_sample
    ours = flow.fm_sample(model, (64, 2), num_steps, x_T=x_T)
    assert scheduler.sigmas.tolist() == pytest.approx(flow_kit.euler_grid(num_steps), abs=1e-7)
    torch.testing.assert_close(ours, x, rtol=1e-5, atol=1e-5)


def test_interpolate_and_conversions_are_consistent():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([0.0, 0.2, 0.5, 0.8, 1.0], dtype=torch.float64)
    x_t = flow.fm_interpolate(x0, eps, t)
    v = eps - x0  # the conditional velocity: the exact one for this pair
    torch.testing.assert_close(flow.x0_from_velocity(x_t, t, v), x0)
    torch.testing.assert_close(flow.eps_from_velocity(x_t, t, v), eps)
    torch.testing.assert_close(flow.fm_interpolate(x0, eps, 0.25), 0.75 * x0 + 0.25 * eps)


def test_score_from_eps_is_the_score_of_the_gaussian_path():
    from mini_diffusion.toolkit.diffusion_process import linear_schedule

    schedule = linear_schedule(1000)
    # data = one point at 0: x_t ~ N(0, (1 - ᾱ_t) I), score = -x_t / (1 - ᾱ_t), ε = x_t / √(1 - ᾱ_t)
    x_t = torch.randn(4, 2, dtype=torch.float64)
    t = torch.tensor([1, 10, 500, 1000])
    ab = schedule.alpha_bars[t].reshape(-1, 1)
    score = flow.score_from_eps(x_t / (1 - ab).sqrt(), t, schedule)
    torch.testing.assert_close(score, -x_t / (1 - ab))


def test_fm_loss_draws_t_then_noise_and_is_the_velocity_error():
    model = SmoothVelocity()
    x0 = torch.randn(16, 2, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(7)
    t = torch.rand(16, generator=g)
    noise = torch.randn(16, 2, generator=g)
    expected = ((model((1 - t[:, None]) * x0 + t[:, None] * noise, t) - (noise - x0)) ** 2).mean()
    assert float(flow.fm_loss(model, x0, generator=torch.Generator().manual_seed(7))) == pytest.approx(float(expected))


def test_ideal_velocity_is_the_posterior_average_and_ends_on_the_points():
    points = torch.tensor([[-1.0, 0.5], [0.0, -1.0], [1.2, 1.0]])
    ideal = flow_kit.IdealVelocity(points)
    # one point: v* = (x_t - x0) / t exactly
    single = flow_kit.IdealVelocity(points[:1])
    x_t, t = torch.randn(6, 2, dtype=torch.float64), torch.full((6,), 0.4, dtype=torch.float64)
    torch.testing.assert_close(single(x_t, t), (x_t - points[:1].double()) / 0.4)
    samples = flow.fm_sample(ideal, (300, 2), 30, generator=torch.Generator().manual_seed(0))
    assert torch.cdist(samples.double(), points.double()).min(dim=1).values.max() < 1e-3


def test_ideal_velocity_loss_floor_is_below_any_model_and_matches_a_brute_force_estimate():
    points = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    floor = flow_kit.ideal_velocity_loss_floor(points, n=20_000, seed=0)
    # a worse field (the ideal one at a shifted t) has a higher loss on the same draws
    g = torch.Generator().manual_seed(1)
    x0 = points[torch.randint(50, (20_000,), generator=g)]
    t = torch.rand(20_000, generator=g, dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    x_t = (1 - t[:, None]) * x0 + t[:, None] * eps
    ideal = flow_kit.IdealVelocity(points)
    loss_ideal = float(((ideal(x_t, t) - (eps - x0)) ** 2).mean())
    loss_zero = float(((eps - x0) ** 2).mean())
    assert loss_ideal == pytest.approx(floor, rel=0.05)
    assert floor < 0.9 * loss_zero


def test_an_eps_model_seen_as_a_flow_sampled_with_euler_is_ddim():
    from mini_diffusion.toolkit.diffusion_process import linear_schedule
    from mini_diffusion.toolkit.ideal import IdealDenoiser
    from solutions import ddim

    schedule = linear_schedule(1000)
    points = torch.tensor([[-1.0, 0.5], [0.0, -1.0], [1.2, 1.0]])
    eps_model = IdealDenoiser(points, schedule)
    x_T = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    reference = ddim.ddim_sample(eps_model, (50, 2), schedule, num_steps=10, x_T=x_T)
    as_flow = flow_kit.VelocityFromEps(eps_model, schedule)
    timesteps = ddim.ddim_timesteps(1000, 10).tolist() + [0]
    taus = [float(as_flow.taus[t]) for t in timesteps]
    ours = flow_kit.euler_on_grid(as_flow, as_flow.start(x_T), taus)
    torch.testing.assert_close(ours, reference, rtol=1e-6, atol=1e-6)


def test_flow_networks_take_a_continuous_t_and_rebuild_from_their_config():
    mlp = flow_nets.FlowMLP(hidden=32, depth=2)
    x = torch.randn(5, 2)
    assert mlp(x, torch.rand(5)).shape == (5, 2)
    assert mlp(x, 0.5).shape == (5, 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mlp(x, torch.full((5,), 3.0))
    with pytest.raises(TypeError, match="float"):
        mlp(x, torch.full((5,), 3))
    unet = flow_nets.FlowUNet(base_channels=8, channel_mults=(1, 2), time_dim=16)
    assert unet(torch.randn(2, 1, 8, 8), torch.rand(2)).shape == (2, 1, 8, 8)
    rebuilt = flow_nets.build(unet.config)
    assert type(rebuilt) is flow_nets.FlowUNet and rebuilt.config == unet.config
    assert type(flow_nets.build({"kind": "mlp", "dim": 2, "hidden": 8, "depth": 1})).__name__ == "MLPDenoiser"


def test_fm_sample_follows_the_sampler_contract():
    model = SmoothVelocity()
    x_T = torch.randn(8, 2)
    seen = []
    states = flow.fm_sample(model, (8, 2), 4, x_T=x_T, trajectory=True, callback=lambda i, t, x: seen.append((i, t)))
    assert len(states) == 5 and torch.equal(states[0], x_T)
    assert seen == [(0, 1.0), (1, 0.75), (2, 0.5), (3, 0.25)]
    torch.testing.assert_close(states[-1], flow.fm_sample(model, (8, 2), 4, x_T=x_T))


def test_path_straightness_is_one_for_a_line_and_more_for_a_bend():
    line = [torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0, 2.0]])]
    bend = [torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])]
    assert float(flow_kit.path_straightness(line)) == pytest.approx(1.0)
    assert float(flow_kit.path_straightness(bend)) == pytest.approx(2 / math.sqrt(2))


@pytest.mark.parametrize("name, shape", [("moons_flow", (7, 2)), ("digits_flow", (3, 1, 8, 8))])
def test_shipped_flow_models_load_and_predict_a_velocity(name, shape):
    from mini_diffusion.toolkit import reference

    try:
        model, schedule, manifest = reference.load(name, device="cpu")
    except reference.ReferenceModelError:
        pytest.skip(f"{name} not trained yet")
    assert schedule is None and manifest["model"]["kind"].startswith("flow_")
    assert manifest["training"]["device"]["device"] == "cpu" or "cuda" in manifest["training"]["device"]["device"]
    assert model(torch.randn(shape), torch.rand(shape[0])).shape == shape


def test_flow_widgets_callbacks_are_plain_functions():
    import matplotlib

    matplotlib.use("Agg")
    from mini_diffusion._course import flow_widgets
    from mini_diffusion.toolkit.diffusion_process import linear_schedule

    schedule = linear_schedule(1000)
    x0, noise = torch.randn(10, 2), torch.randn(10, 2)
    views = flow_widgets.path_views(0.3, x0, noise, schedule)
    torch.testing.assert_close(views["linear"], 0.7 * x0 + 0.3 * noise)
    ab = float(schedule.alpha_bars[300])
    torch.testing.assert_close(views["vp"], ab**0.5 * x0 + (1 - ab) ** 0.5 * noise)
    assert views["timestep"] == 300
    torch.testing.assert_close(flow_widgets.path_views(0.0, x0, noise, schedule)["vp"], x0)
    with pytest.raises(ValueError):
        flow_widgets.path_views(1.5, x0, noise, schedule)
    X, Y, U, V = flow_widgets.velocity_grid(SmoothVelocity(), 0.5, n=5)
    assert X.shape == U.shape == (5, 5)
    explorer = flow_widgets.FlowPathExplorer(SmoothVelocity(), schedule, n=50)
    fig = explorer.render(0.4)
    assert fig is not None and len(fig.axes) == 3 and explorer.message is None
    curve = flow_widgets.FlowLossCurve(floor=1.2, every=5)
    for step in range(1, 11):
        curve.losses.append(2.0 / step)
    fig = curve.figure()
    assert any(abs(line.get_ydata()[0] - 1.2) < 1e-9 for line in fig.axes[0].get_lines() if len(line.get_ydata()) == 2)


def test_the_flow_benchmark_measures_and_judges_the_goals():
    import importlib.util
    from pathlib import Path

    from mini_diffusion.toolkit import reference

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "flow.py"
    spec = importlib.util.spec_from_file_location("benchmark_flow", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    try:
        model, _, _ = reference.load("moons_flow", device="cpu")
    except reference.ReferenceModelError:
        pytest.skip("moons_flow not trained yet")
    row = bench.flow_quality(model, "moons", 2, n=200, seeds=(1,))
    assert row["ratio"] > 0 and len(row["per_seed"]) == 1
    lines = bench.goals({"moons": {"ddpm1000_reference": 1.0, "nfe20": {"flow_euler": 1.05}},
                         "reflow": {"euler1_improvement": 4.0, "euler2_improvement": 3.0}})
    assert lines[0].startswith("PASS") and lines[1].startswith("MISS")


def _exact_predictions(x0, eps, a, s, da, ds):
    return {"eps": eps, "x0": x0, "score": -eps / s, "v": a * eps - s * x0, "velocity": da * x0 + ds * eps}


@pytest.mark.parametrize("path", ["vp", "ve", "linear"])
def test_convert_prediction_turns_every_exact_prediction_into_every_other(path):
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9], dtype=torch.float64)
    a, s, da, ds = {
        "vp": (torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2), -math.pi / 2 * torch.sin(t * math.pi / 2),
               math.pi / 2 * torch.cos(t * math.pi / 2)),
        "ve": (torch.ones(5, dtype=torch.float64), 0.02 * 4000**t, torch.zeros(5, dtype=torch.float64),
               0.02 * 4000**t * math.log(4000)),
        "linear": (1 - t, t, -torch.ones(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)),
    }[path]
    col = [c[:, None] for c in (a, s, da, ds)]
    x_t = col[0] * x0 + col[1] * eps
    exact = _exact_predictions(x0, eps, *col)
    for source in exact:
        for target in exact:
            got = flow.convert_prediction(x_t, exact[source], a, s, source=source, target=target, d_alpha=da, d_sigma=ds)
            torch.testing.assert_close(got, exact[target], msg=f"{path}: {source} -> {target}")


def test_convert_prediction_on_the_linear_path_agrees_with_9_4_and_9_5():
    g = torch.Generator().manual_seed(1)
    x_t, v = torch.randn(4, 2, generator=g), torch.randn(4, 2, generator=g)
    t = torch.tensor([0.2, 0.4, 0.6, 0.8])
    common = {"d_alpha": -1.0, "d_sigma": 1.0}
    torch.testing.assert_close(flow.convert_prediction(x_t, v, 1 - t, t, source="velocity", target="x0", **common),
                               flow.x0_from_velocity(x_t, t, v))
    torch.testing.assert_close(flow.convert_prediction(x_t, v, 1 - t, t, source="velocity", target="eps", **common),
                               flow.eps_from_velocity(x_t, t, v))


def test_convert_prediction_v_is_diffusers_v_prediction(linear):
    diffusers = pytest.importorskip("diffusers")
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=1000, prediction_type="v_prediction")
    g = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(4, 2, generator=g, dtype=torch.float64), torch.randn(4, 2, generator=g, dtype=torch.float64)
    t = torch.tensor([1, 100, 500, 1000])
    ab = linear.alpha_bars[t]
    a, s = ab.sqrt(), (1 - ab).sqrt()
    x_t = a[:, None] * x0 + s[:, None] * eps
    v = scheduler.get_velocity(x0, eps, t - 1)  # diffusers' timesteps start at 0; it keeps ᾱ in float32
    torch.testing.assert_close(flow.convert_prediction(x_t, eps, a, s, source="eps", target="v"), v, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(flow.convert_prediction(x_t, v, a, s, source="v", target="x0"), x0, rtol=1e-5, atol=1e-5)


def test_convert_prediction_says_what_it_needs():
    x = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="source must be one of"):
        flow.convert_prediction(x, x, 0.5, 0.5, source="epsilon", target="x0")
    with pytest.raises(ValueError, match="d_alpha and d_sigma"):
        flow.convert_prediction(x, x, 0.5, 0.5, source="eps", target="velocity")
    with pytest.raises(ValueError, match=r"shape \[2\]"):
        flow.convert_prediction(x, x, torch.ones(3), 0.5, source="eps", target="x0")


def test_fm_loss_draws_t_in_the_dtype_of_x0():
    model = SmoothVelocity()
    x0 = torch.randn(16, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    g = torch.Generator().manual_seed(7)
    t = torch.rand(16, generator=g, dtype=torch.float64)
    noise = torch.randn(16, 2, generator=g, dtype=torch.float64)
    x_t = (1 - t[:, None]) * x0 + t[:, None] * noise
    expected = ((model(x_t.float(), t.float()).double() - (noise - x0)) ** 2).mean()

    def model64(x, t):
        assert x.dtype == t.dtype == torch.float64
        return model(x.float(), t.float()).double()

    loss = flow.fm_loss(model64, x0, generator=torch.Generator().manual_seed(7))
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)


def test_minibatch_ot_noise_is_the_cheapest_permutation_of_the_noise():
    import itertools

    g = torch.Generator().manual_seed(4)
    x0, noise = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g)
    paired = flow_kit.minibatch_ot_noise(x0, noise)
    assert sorted(map(tuple, paired.tolist())) == sorted(map(tuple, noise.tolist())), "only the order may change"
    best = min(float(((noise[list(p)] - x0) ** 2).sum()) for p in itertools.permutations(range(6)))
    assert float(((paired - x0) ** 2).sum()) == pytest.approx(best, rel=1e-6)
    with pytest.raises(ValueError, match="shape"):
        flow_kit.minibatch_ot_noise(x0, noise[:5])


def test_ot_loss_fn_trains_on_re_paired_noise():
    from mini_diffusion.toolkit import flow_recipes

    mlp = flow_nets.FlowMLP(hidden=16, depth=1)
    x0 = torch.randn(32, 2, generator=torch.Generator().manual_seed(5))
    loss = flow_recipes.ot_fm_loss_fn(mlp, x0, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert loss.shape == () and any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in mlp.parameters())


def test_ideal_eps_loss_floor_matches_a_direct_estimate_and_beats_predicting_zero():
    from mini_diffusion.toolkit.diffusion_process import linear_schedule
    from mini_diffusion.toolkit.ideal import IdealDenoiser, ideal_eps_loss_floor

    schedule = linear_schedule(1000)
    points = torch.randn(40, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    floor = ideal_eps_loss_floor(points, schedule, n=20_000, seed=0)
    g = torch.Generator().manual_seed(1)
    x0 = points[torch.randint(40, (20_000,), generator=g)]
    t = torch.randint(1, 1001, (20_000,), generator=g)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    ab = schedule.alpha_bars[t][:, None]
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    direct = float(((IdealDenoiser(points, schedule)(x_t, t) - eps) ** 2).mean())
    assert floor == pytest.approx(direct, rel=0.05)
    assert floor < 0.5 * float((eps**2).mean()), "the ideal denoiser must beat predicting ε = 0 by far"
