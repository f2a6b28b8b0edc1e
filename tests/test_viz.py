"""The plot helpers draw what they claim: the right data, on labelled axes, and refuse bad input."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from mini_diffusion import viz  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_digit_grid_places_each_image_in_its_own_tile():
    images = torch.stack([torch.full((1, 2, 3), float(i)) for i in range(5)])  # 5 images, 2x3 pixels
    grid = viz.digit_grid(images, nrow=3, pad=1, fill=-1.0)
    assert grid.shape == (2 * 3 + 1, 3 * 4 + 1), "2 rows of 3 tiles, each 2x3 plus 1-pixel padding"
    for i in range(5):
        r, c = divmod(i, 3)
        tile = grid[1 + r * 3 : 1 + r * 3 + 2, 1 + c * 4 : 1 + c * 4 + 3]
        assert (tile == i).all(), f"image {i} is not in row {r}, column {c}"
    assert (grid[4:6, 9:12] == -1).all(), "the unused sixth tile should stay blank"


def test_show_digits_draws_the_grid_in_the_model_range():
    images = torch.rand(4, 1, 8, 8) * 2 - 1
    ax = viz.show_digits(images, title="four digits")
    (image,) = ax.get_images()
    assert image.get_clim() == (-1.0, 1.0), "pixels in [-1, 1] should map to black..white"
    np.testing.assert_allclose(image.get_array(), viz.digit_grid(images))
    assert ax.get_title() == "four digits"


@pytest.mark.parametrize("bad", [torch.zeros(4, 3, 8, 8), torch.zeros(8, 8), torch.zeros(0, 8, 8)])
def test_show_digits_refuses_what_is_not_a_batch_of_grey_images(bad):
    with pytest.raises(ValueError, match="images must be|one channel"):
        viz.show_digits(bad)


def test_scatter_points_draws_every_point_on_a_fixed_frame():
    points = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
    ax = viz.scatter_points(points, title="cloud", lim=3.0)
    np.testing.assert_allclose(ax.collections[0].get_offsets(), points.numpy(), rtol=1e-6)
    assert ax.get_xlim() == (-3.0, 3.0) and ax.get_ylim() == (-3.0, 3.0), "the frame must not follow the data"
    assert ax.get_xlabel() and ax.get_ylabel()


def test_scatter_points_refuses_points_that_are_not_2d():
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        viz.scatter_points(torch.zeros(10, 3))


def test_snapshot_row_makes_one_panel_per_snapshot_of_either_kind():
    fig = viz.snapshot_row([torch.zeros(10, 2), torch.ones(10, 2)], titles=["t = 0", "t = 10"])
    assert [ax.get_title() for ax in fig.axes] == ["t = 0", "t = 10"]
    fig = viz.snapshot_row([torch.zeros(4, 1, 8, 8)] * 3)
    assert len(fig.axes) == 3 and all(ax.get_images() for ax in fig.axes), "digit snapshots should be images"
    with pytest.raises(ValueError, match="titles"):
        viz.snapshot_row([torch.zeros(4, 2)], titles=["a", "b"])


def test_schedule_curves_plot_the_closed_form_coefficients(linear):
    ax = viz.plot_schedule_curves(linear)
    lines = {line.get_label(): line for line in ax.get_lines()}
    alpha_bars = linear.alpha_bars.numpy()
    signal = lines["√ᾱ_t (signal coefficient)"]
    noise = lines["√(1-ᾱ_t) (noise coefficient)"]
    np.testing.assert_allclose(signal.get_ydata(), np.sqrt(alpha_bars))
    np.testing.assert_allclose(noise.get_ydata(), np.sqrt(1 - alpha_bars))
    np.testing.assert_array_equal(signal.get_xdata(), np.arange(1001), err_msg="x should be t = 0..T")
    assert ax.get_xlabel() == "timestep t" and ax.get_legend() is not None


def test_schedule_curves_compare_schedules_and_skip_the_infinite_snr_at_t0(linear, cosine):
    ax = viz.plot_schedule_curves({"linear": linear, "cosine": cosine.alpha_bars}, curves="log_snr")
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["linear: log SNR(t)", "cosine: log SNR(t)"]
    line = ax.get_lines()[1]
    assert line.get_xdata()[0] == 1, "log-SNR is infinite at t = 0 and should start at t = 1"
    ab = cosine.alpha_bars.numpy()[500]
    assert math.isclose(line.get_ydata()[499], math.log(ab / (1 - ab)), rel_tol=1e-9)
    with pytest.raises(ValueError, match="unknown curve"):
        viz.plot_schedule_curves(linear, curves=("alpha",))


def test_smooth_is_a_running_mean_over_the_last_window_values():
    np.testing.assert_allclose(viz.smooth([1, 2, 3, 4, 5], window=2), [1, 1.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(viz.smooth([4.0] * 7, window=50), [4.0] * 7)


def test_loss_curve_shows_raw_and_smoothed_losses():
    losses = [1.0 / step for step in range(1, 201)]
    ax = viz.plot_loss_curve(losses, window=10)
    raw, mean = ax.get_lines()
    np.testing.assert_allclose(raw.get_ydata(), losses)
    np.testing.assert_allclose(mean.get_ydata(), viz.smooth(losses, 10))
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "training step"


def test_schedule_table_prints_every_convention_for_the_chosen_steps(linear):
    lines = viz.schedule_table(linear, [0, 500, 1000]).splitlines()
    assert len(lines) == 4 and "ᾱ_t" in lines[0] and "log-SNR" in lines[0]
    t, beta, alpha, alpha_bar, *_ = lines[2].split()
    ab = float(linear.alpha_bars[500])
    assert (int(t), float(beta), float(alpha)) == (500, round(float(linear.betas[500]), 6), round(1 - float(linear.betas[500]), 6))
    assert math.isclose(float(alpha_bar), ab, abs_tol=1e-6)
    sigma, snr, log_snr = map(float, lines[2].split()[-3:])
    assert math.isclose(sigma, math.sqrt(1 / ab - 1), rel_tol=1e-3) and math.isclose(snr, ab / (1 - ab), rel_tol=1e-3)
    assert lines[1].split()[-2:] == ["inf", "inf"], "at t = 0 there is no noise: SNR is infinite"
    with pytest.raises(ValueError, match="0..T"):
        viz.schedule_table(linear, [1001])
