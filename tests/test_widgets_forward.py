"""The forward-process explorer and the live loss curve, driven without a browser."""

import types

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import mini_diffusion  # noqa: E402
from mini_diffusion import viz  # noqa: E402
from mini_diffusion._base.catalog import todo  # noqa: E402
from mini_diffusion._course.widgets import ForwardExplorer, LiveLossCurve, forward_views  # noqa: E402
from solutions import forward as solution_forward  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def explorer(linear, package_uses_solutions):
    digits = torch.linspace(-1, 1, 4 * 64).reshape(4, 1, 8, 8)
    cloud = torch.randn(50, 2, generator=torch.Generator().manual_seed(1))
    return ForwardExplorer(schedule=linear, digits=digits, cloud=cloud, seed=0)


def with_q_sample(monkeypatch, q_sample):
    """Make `mini_diffusion.forward.q_sample` (what a learner edits) the given function."""
    monkeypatch.setattr(mini_diffusion, "forward", types.SimpleNamespace(q_sample=q_sample), raising=False)


def test_t_zero_shows_the_clean_data(explorer):
    digits, cloud = forward_views(0, explorer.schedule, explorer.digits, explorer.cloud,
                                  explorer.digit_noise, explorer.cloud_noise)
    assert torch.equal(digits, explorer.digits) and torch.equal(cloud, explorer.cloud), "t = 0 is x_0 itself"


@pytest.mark.parametrize("t", [1, 250, 1000])
def test_views_are_q_sample_with_the_explorers_fixed_noise(explorer, t):
    digits, cloud = forward_views(t, explorer.schedule, explorer.digits, explorer.cloud,
                                  explorer.digit_noise, explorer.cloud_noise)
    expected = solution_forward.q_sample(explorer.digits, t, explorer.schedule, noise=explorer.digit_noise)
    torch.testing.assert_close(digits, expected, msg="the digits panel should show q_sample(x_0, t, noise)")
    expected = solution_forward.q_sample(explorer.cloud, t, explorer.schedule, noise=explorer.cloud_noise)
    torch.testing.assert_close(cloud, expected, msg="the cloud panel should show q_sample(x_0, t, noise)")


def test_at_t_equal_T_the_digits_have_become_their_noise(explorer):
    digits, _ = forward_views(1000, explorer.schedule, explorer.digits, explorer.cloud,
                              explorer.digit_noise, explorer.cloud_noise)
    assert (digits - explorer.digit_noise).abs().max() < 0.01, "√ᾱ_1000 ≈ 0.006: almost nothing of x_0 remains"


def test_the_same_noise_is_reused_so_moving_t_fades_one_sample(explorer):
    first = forward_views(500, explorer.schedule, explorer.digits, explorer.cloud,
                          explorer.digit_noise, explorer.cloud_noise)
    again = forward_views(500, explorer.schedule, explorer.digits, explorer.cloud,
                          explorer.digit_noise, explorer.cloud_noise)
    assert torch.equal(first[0], again[0]), "revisiting a t should show the same picture"


def test_render_draws_the_noised_digits_and_cloud(explorer):
    fig = explorer.render(300)
    assert explorer.message is None
    ax_digits, ax_cloud, ax_curve = fig.axes
    digits, cloud = forward_views(300, explorer.schedule, explorer.digits, explorer.cloud,
                                  explorer.digit_noise, explorer.cloud_noise)
    np.testing.assert_allclose(ax_digits.get_images()[0].get_array(), viz.digit_grid(digits, nrow=4), rtol=1e-6)
    np.testing.assert_allclose(ax_cloud.collections[1].get_offsets(), cloud.numpy(), rtol=1e-6)
    assert [line.get_xdata()[0] for line in ax_curve.get_lines() if line.get_linestyle() == "--"] == [300], (
        "the schedule panel should mark the current t"
    )
    assert "300" in ax_digits.get_title()


def test_a_stub_q_sample_shows_its_friendly_message_instead_of_crashing(explorer, monkeypatch):
    def stub(*args, **kwargs):
        raise NotImplementedError(todo("q_sample"))

    with_q_sample(monkeypatch, stub)
    assert explorer.render(100) is None
    assert explorer.message == todo("q_sample"), "the learner should see which exercise to do, and where"
    assert explorer.render(0) is not None, "t = 0 needs no q_sample and should still draw"


def test_a_broken_q_sample_is_reported_by_name(explorer, monkeypatch):
    def broken(x0, t, schedule, noise=None, generator=None):
        raise ValueError("shapes do not match")

    with_q_sample(monkeypatch, broken)
    assert explorer.render(10) is None
    assert explorer.message == "Your q_sample raised ValueError: shapes do not match"


@pytest.mark.parametrize("t", [-1, 1001, 2.5, True])
def test_render_refuses_a_t_outside_0_to_T(explorer, t):
    with pytest.raises(ValueError, match="0..T"):
        explorer.render(t)


def test_moving_the_slider_redraws_at_the_new_t(explorer):
    box = explorer.widget
    assert box.children, "the widget should hold the controls and the picture"
    explorer.slider.value = 640
    assert explorer.t == 640 and explorer.message is None


def test_live_loss_curve_keeps_every_loss_and_redraws_every_n_steps_and_at_the_end():
    curve = LiveLossCurve(every=10, total_steps=35, min_interval=0.0)
    for step in range(1, 36):
        curve(step, 1.0 / step)
    assert curve.losses == [1.0 / step for step in range(1, 36)]
    assert curve.redraws == 4, "redraws at steps 10, 20, 30 and the last step 35"
    ax = curve.figure().axes[0]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), curve.losses)


def test_live_loss_curve_does_not_redraw_more_often_than_min_interval():
    curve = LiveLossCurve(every=1, total_steps=50, min_interval=1e9)
    for step in range(1, 51):
        curve(step, 0.5)
    assert curve.redraws == 2, "the first due step draws, then only the last step may"


def test_live_loss_curve_refuses_a_bad_every():
    with pytest.raises(ValueError, match="every"):
        LiveLossCurve(every=0)


def test_live_loss_curve_follows_a_training_run(linear, package_uses_solutions):
    from mini_diffusion.toolkit.train import train

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(3, 2)

        def forward(self, x_t, t):
            return self.net(torch.cat([x_t, t[:, None].float() / 1000], dim=1))

    curve = LiveLossCurve(every=5, total_steps=12, min_interval=0.0)
    result = train(Tiny(), torch.randn(64, 2), linear, steps=12, batch_size=16, progress=False, threads=1,
                   on_step=curve)
    assert curve.losses == pytest.approx(result.losses), "on_step should receive every step's loss"
    assert curve.redraws == 3
