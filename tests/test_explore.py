"""The widgets of notebooks 04-06 (trajectory viewer, schedule explorer, sampler picker) and the
plain functions behind them, driven without a browser."""

import types

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

import mini_diffusion  # noqa: E402
from mini_diffusion import explore, schedule_widgets  # noqa: E402
from mini_diffusion._base.catalog import todo  # noqa: E402
from solutions import ddim as solution_ddim  # noqa: E402
from solutions import reverse as solution_reverse  # noqa: E402
from solutions import sampling as solution_sampling  # noqa: E402
from solutions import schedules as solution_schedules  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread", "package_uses_solutions")


class ShrinkDenoiser:
    """ε̂ = 0.5 x_t + t/(10T): cheap, deterministic, and different at every t."""

    def __init__(self, T):
        self.T = T

    def __call__(self, x_t, t):
        return 0.5 * x_t + (t.to(x_t.dtype) / (10 * self.T)).reshape(-1, *[1] * (x_t.dim() - 1))


@pytest.fixture
def short():
    """A linear schedule of 40 steps, so that a whole sampling run is instant."""
    return mini_diffusion.linear_schedule(40, 1e-3, 0.2)


def stub_module(*functions):
    """A stand-in exercise module whose functions raise the stub's NotImplementedError."""

    def raiser(name):
        def stub(*args, **kwargs):
            raise NotImplementedError(todo(name))

        return stub

    return types.SimpleNamespace(**{name: raiser(name) for name in functions})


# --- Trajectories ------------------------------------------------------------------------------


def test_recording_does_not_change_the_samples(short):
    model = ShrinkDenoiser(short.T)
    bare = solution_sampling.ddpm_sample(model, (5, 2), short, generator=torch.Generator().manual_seed(3))
    traj = explore.record_trajectory(model, (5, 2), short, generator=torch.Generator().manual_seed(3))
    assert torch.equal(traj.x[-1], bare), "wrapping the model to record it must not change what the sampler makes"


def test_ddpm_trajectory_has_a_frame_per_timestep_from_T_down_to_0(short):
    traj = explore.record_trajectory(ShrinkDenoiser(short.T), (3, 1, 4, 4), short,
                                     generator=torch.Generator().manual_seed(0))
    assert traj.timesteps == list(range(short.T, -1, -1)), "frames should be t = T, T-1, ..., 0"
    assert len(traj.x) == len(traj.x0_hat) == short.T + 1, "every frame needs x_t and x̂_0"
    assert torch.equal(traj.x0_hat[-1], traj.x[-1]), "at t = 0 the prediction is the sample itself"


def test_x0_hat_is_the_closed_form_prediction_from_the_recorded_noise(short):
    model = ShrinkDenoiser(short.T)
    traj = explore.record_trajectory(model, (4, 2), short, generator=torch.Generator().manual_seed(1))
    i = 7
    t = torch.full((4,), traj.timesteps[i])
    expected = solution_reverse.predict_x0(traj.x[i], t, model(traj.x[i], t), short)
    torch.testing.assert_close(traj.x0_hat[i], expected, msg="x̂_0 should be (x_t - √(1-ᾱ_t) ε̂) / √ᾱ_t")


def test_ddim_trajectory_visits_the_subsequence(short):
    traj = explore.record_trajectory(ShrinkDenoiser(short.T), (2, 2), short, sampler="ddim", num_steps=4,
                                     generator=torch.Generator().manual_seed(0))
    expected = solution_ddim.ddim_timesteps(short.T, 4).tolist() + [0]
    assert traj.timesteps == expected, "a DDIM trajectory has one frame per visited timestep, then t = 0"


def test_frame_at_picks_the_nearest_visited_timestep(short):
    traj = explore.record_trajectory(ShrinkDenoiser(short.T), (2, 2), short, sampler="ddim", num_steps=4,
                                     generator=torch.Generator().manual_seed(0))
    # visited: 40, 30, 20, 10, 0
    assert [traj.frame_at(t) for t in (40, 33, 24, 1, 0)] == [0, 1, 2, 4, 4]


def test_a_sampler_returning_the_wrong_number_of_states_is_reported(short, monkeypatch):
    def two_states(model, shape, schedule, generator=None, x_T=None, trajectory=False, **kwargs):
        x = torch.zeros(shape)
        model(x, torch.full((shape[0],), schedule.T))
        model(x, torch.full((shape[0],), schedule.T - 1))
        return [x, x]

    monkeypatch.setattr(mini_diffusion, "sampling", types.SimpleNamespace(ddpm_sample=two_states))
    with pytest.raises(ValueError, match="trajectory=True"):
        explore.record_trajectory(ShrinkDenoiser(short.T), (2, 2), short)


def test_unknown_sampler_is_a_clear_error(short):
    with pytest.raises(ValueError, match="'ddpm' or 'ddim'"):
        explore.record_trajectory(ShrinkDenoiser(short.T), (2, 2), short, sampler="euler")


def test_trajectory_viewer_redraws_when_t_moves(short):
    traj = explore.record_trajectory(ShrinkDenoiser(short.T), (4, 1, 4, 4), short,
                                     generator=torch.Generator().manual_seed(0))
    viewer = explore.trajectory_viewer(traj)
    at_T = viewer.image.value
    assert at_T[:4] == b"\x89PNG", "the viewer should show a PNG picture"
    viewer.slider.value = 0
    assert viewer.image.value != at_T, "moving the t slider should redraw the picture"


def test_trajectory_figure_rejects_a_frame_out_of_range(short):
    traj = explore.record_trajectory(ShrinkDenoiser(short.T), (2, 2), short, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="index must be in 0..40"):
        explore.trajectory_figure(traj, 41)


# --- The schedule explorer ---------------------------------------------------------------------


def test_make_schedule_builds_both_kinds():
    linear = schedule_widgets.make_schedule("linear", 100, 1e-3, 0.2)
    cosine = schedule_widgets.make_schedule("cosine", 100, s=0.008)
    assert linear.T == cosine.T == 100
    assert abs(float(linear.betas[-1]) - 0.2) < 1e-12, "the linear schedule should end at beta_end"
    assert float(cosine.alpha_bars[50]) > float(linear.alpha_bars[50]), "cosine keeps more signal half-way"


@pytest.mark.parametrize("kwargs, match", [
    (dict(kind="quadratic"), "'linear' or 'cosine'"),
    (dict(kind="linear", beta_start=0.1, beta_end=0.01), "beta_start <= beta_end"),
    (dict(kind="cosine", s=-0.1), "s must be >= 0"),
])
def test_make_schedule_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        schedule_widgets.make_schedule(**kwargs)


def test_noised_examples_share_their_noise_across_schedules():
    x0 = torch.zeros(2, 1, 4, 4)
    linear = schedule_widgets.make_schedule("linear", 100)
    cosine = schedule_widgets.make_schedule("cosine", 100)
    ts, lin = schedule_widgets.noised_examples(x0, linear)
    _, cos = schedule_widgets.noised_examples(x0, cosine)
    assert ts[0] == 0 and torch.equal(lin[0], x0), "t = 0 shows the clean data"
    # With x0 = 0, x_t = √(1-ᾱ_t) ε: the same ε up to scale in both schedules.
    ratio = lin[-2] / cos[-2]
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio)), "both schedules should use the same noise"


def test_describe_schedule_gives_the_crossing_and_half_way_numbers():
    text = schedule_widgets.describe_schedule(schedule_widgets.make_schedule("linear", 1000))
    assert "ᾱ < 0.1 from t = 476" in text and "28.0 % signal" in text, text


def test_schedule_explorer_redraws_for_the_cosine_schedule():
    box = schedule_widgets.schedule_explorer(torch.zeros(4, 1, 8, 8))
    linear_picture = box.image.value
    box.controls["kind"].value = "cosine"
    assert box.image.value != linear_picture, "switching to cosine should redraw the curves"
    assert "794" in box.message.value, "the message should give where the cosine ᾱ falls below 0.1"
    assert box.controls["s"].layout.display is None and box.controls["beta_end"].layout.display == "none", (
        "only the cosine schedule's setting (s) should be visible"
    )


def test_schedule_explorer_shows_the_stub_message_instead_of_crashing(monkeypatch):
    box = schedule_widgets.schedule_explorer(torch.zeros(4, 1, 8, 8))
    monkeypatch.setattr(mini_diffusion, "schedules",
                        stub_module("cosine_alpha_bars", "betas_from_alpha_bars", "snr", "linear_betas",
                                    "alpha_bars_from_betas"))
    box.controls["kind"].value = "cosine"
    assert "Exercise 5.1" in box.message.value, "a learner without exercise 5.1 should see its friendly message"


# --- Sampling and scoring ----------------------------------------------------------------------


def test_sample_and_score_ddim_returns_samples_a_ratio_and_a_time(short):
    run = explore.sample_and_score(ShrinkDenoiser(short.T), short, "moons", "ddim", steps=5, n=64)
    assert run.samples.shape == (64, 2) and run.samples.device.type == "cpu"
    assert run.ratio > 0 and run.seconds >= 0
    assert run.label == "DDIM-5"


def test_sample_and_score_ddpm_uses_all_steps(short):
    run = explore.sample_and_score(ShrinkDenoiser(short.T), short, "moons", "ddpm", steps=5, n=16)
    assert run.steps == short.T and run.label == f"DDPM-{short.T}", "DDPM always runs all T steps"


def test_sample_and_score_is_reproducible_from_its_seed(short):
    first = explore.sample_and_score(ShrinkDenoiser(short.T), short, "moons", "ddim", 5, eta=1.0, n=16, seed=4)
    again = explore.sample_and_score(ShrinkDenoiser(short.T), short, "moons", "ddim", 5, eta=1.0, n=16, seed=4)
    assert torch.equal(first.samples, again.samples), "the same seed should give the same samples"


@pytest.mark.parametrize("kwargs, match", [
    (dict(data="faces"), "moons, digits"),
    (dict(sampler="heun"), "'ddpm' or 'ddim'"),
])
def test_sample_and_score_rejects_unknown_names(short, kwargs, match):
    with pytest.raises(ValueError, match=match):
        explore.sample_and_score(ShrinkDenoiser(short.T), short, **{"data": "moons", **kwargs})


def test_evaluate_names_each_sampler_by_its_exercise_and_calls_them_all_alike(short):
    from mini_diffusion._course import evaluate, seam
    from mini_diffusion._base import catalog

    functions = {name: catalog.by_id(exercise).function for name, exercise in evaluate.SAMPLERS.items()}
    assert functions == {"ddpm": "ddpm_sample", "ddim": "ddim_sample", "euler": "euler_sample",
                         "heun": "heun_sample", "dpm": "dpm_solver_sample", "flow": "fm_sample"}
    model = ShrinkDenoiser(short.T)
    for name, exercise in evaluate.SAMPLERS.items():
        sampler = evaluate.sampler_function(name)
        assert sampler is seam.implementation(exercise), f"{name}: looked up through the seam"
        if name in evaluate.FLOW_SAMPLERS:  # a velocity model's sampler: (model, shape, num_steps), no schedule
            x0 = sampler(lambda x, t: 0.5 * x, (8, 2), num_steps=4, generator=torch.Generator().manual_seed(0))
        else:  # every diffusion sampler alike: (model, shape, schedule, num_steps=…, generator=…)
            steps = short.T if name == "ddpm" else 4
            x0 = sampler(model, (8, 2), short, num_steps=steps, generator=torch.Generator().manual_seed(0))
        assert x0.shape == (8, 2), name
    with pytest.raises(ValueError, match="unknown sampler"):
        evaluate.sampler_function("nope")


def test_sampler_picker_samples_on_click(short):
    picker = explore.sampler_picker(ShrinkDenoiser(short.T), short, "moons", n=32)
    picker.controls["steps"].value = 10
    result = picker.run()
    assert result.label == "DDIM-10" and picker.image.value[:4] == b"\x89PNG"
    assert "DDIM-10" in picker.message.value and "ratio" in picker.message.value


def test_sampler_picker_disables_steps_and_eta_for_ddpm(short):
    picker = explore.sampler_picker(ShrinkDenoiser(short.T), short, "moons", n=8)
    picker.controls["sampler"].value = "ddpm"
    assert picker.controls["steps"].disabled and picker.controls["eta"].disabled, "DDPM has no steps or eta to pick"


def test_sampler_picker_shows_the_stub_message_instead_of_crashing(short, monkeypatch):
    picker = explore.sampler_picker(ShrinkDenoiser(short.T), short, "moons", n=8)
    monkeypatch.setattr(mini_diffusion, "ddim", stub_module("ddim_sample", "ddim_step", "ddim_timesteps"))
    assert picker.run() is None
    assert "Exercise 6.3" in picker.message.value, "a learner without exercise 6.3 should see its friendly message"


def test_a_bug_in_the_learners_code_is_shown_not_raised(monkeypatch):
    def broken(T=1000, s=0.008):
        return torch.ones(3) @ torch.ones(4)

    box = schedule_widgets.schedule_explorer(torch.zeros(4, 1, 8, 8))
    monkeypatch.setattr(mini_diffusion, "schedules", types.SimpleNamespace(
        cosine_alpha_bars=broken, betas_from_alpha_bars=solution_schedules.betas_from_alpha_bars))
    box.controls["kind"].value = "cosine"
    assert "Your code raised RuntimeError" in box.message.value, box.message.value
