"""Pictures for the notebooks: digit grids, 2-D point clouds, schedule curves, loss curves.

Every function draws on a matplotlib Axes you pass (`ax=`) or on a new figure, and returns
that Axes, so the pictures compose: `fig, axes = plt.subplots(1, 3)` then one call per axes.
Tensors may live on any device; they are copied to the CPU for drawing.

    show_digits(images)                      # [N, 1, H, W] (or [N, H, W]) in [-1, 1], as a grid
    scatter_points(points)                   # [N, 2] on a fixed square frame
    snapshot_row([x_a, x_b, ...], titles)    # digits or points, one panel each (e.g. a trajectory)
    plot_schedule_curves({"linear": s})      # ᾱ_t, √ᾱ_t, √(1-ᾱ_t), SNR ... against t
    plot_loss_curve(losses)                  # raw and smoothed training loss
    print(schedule_table(s, [1, 500, 1000])) # β, α, ᾱ, σ, SNR, log-SNR at chosen t
"""

import math

import numpy as np
import torch

# Each curve is a function of (β_t, ᾱ_t) over t = 0..T, with a label for the legend.
CURVES = {
    "beta": ("β_t", lambda beta, ab: beta),
    "alpha_bar": ("ᾱ_t (signal fraction of the variance)", lambda beta, ab: ab),
    "sqrt_alpha_bar": ("√ᾱ_t (signal coefficient)", lambda beta, ab: np.sqrt(ab)),
    "sqrt_one_minus_alpha_bar": ("√(1-ᾱ_t) (noise coefficient)", lambda beta, ab: np.sqrt(1 - ab)),
    "snr": ("SNR(t) = ᾱ_t / (1-ᾱ_t)", lambda beta, ab: ab / (1 - ab)),
    "log_snr": ("log SNR(t)", lambda beta, ab: np.log(ab / (1 - ab))),
    "sigma": ("σ_t = √(1/ᾱ_t - 1)", lambda beta, ab: np.sqrt(1 / ab - 1)),
}
# Infinite at t = 0 (no noise at all), so these start at t = 1.
_UNBOUNDED_AT_ZERO = ("snr", "log_snr", "sigma")


def _axes(ax, figsize=(4, 4)):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def digit_grid(images, nrow: int | None = None, pad: int = 1, fill: float = -1.0) -> np.ndarray:
    """The images [N, 1, H, W] or [N, H, W] tiled into one 2-D array, `nrow` images per row.

    nrow defaults to a near-square grid. `pad` pixels of value `fill` separate the tiles.
    """
    images = _numpy(images)
    if images.ndim == 4:
        if images.shape[1] != 1:
            raise ValueError(f"show one channel at a time: images must be [N, 1, H, W]; got {images.shape}")
        images = images[:, 0]
    if images.ndim != 3 or images.shape[0] == 0:
        raise ValueError(f"images must be [N, 1, H, W] or [N, H, W] with N >= 1; got shape {images.shape}")
    n, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow must be a positive integer; got {nrow!r}")
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad), fill, dtype=np.float64)
    for i, image in enumerate(images):
        r, c = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[top : top + h, left : left + w] = image
    return grid


def show_digits(images, nrow: int | None = None, ax=None, title: str | None = None, vmin=-1.0, vmax=1.0):
    """Draw images in [-1, 1] (as the models see them) as one grey grid; returns the Axes.

    Values outside [vmin, vmax] are clipped by the colour map, so a noisy x_t shows as static.
    """
    ax = _axes(ax)
    ax.imshow(digit_grid(images, nrow), cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def scatter_points(points, ax=None, title: str | None = None, label: str | None = None, lim: float | None = 3.0,
                   s: float = 4.0, alpha: float = 0.6, color=None):
    """Scatter 2-D points [N, 2] on a square frame [-lim, lim]² (lim=None: autoscale); returns the Axes.

    A fixed frame makes panels comparable: noise spreads the cloud, it does not just rescale it.
    """
    points = _numpy(points)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be a [N, 2] array of 2-D points; got shape {points.shape}")
    ax = _axes(ax)
    ax.scatter(points[:, 0], points[:, 1], s=s, alpha=alpha, label=label, color=color, linewidths=0)
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title:
        ax.set_title(title)
    if label:
        ax.legend(loc="upper right", markerscale=4)
    return ax


def snapshot_row(snapshots, titles=None, kind: str = "auto", size: float = 2.4, suptitle: str | None = None,
                 **kwargs):
    """One panel per snapshot, side by side: digits ([N, 1, H, W]) or points ([N, 2]).

    kind: "digits", "points" or "auto" (points when each snapshot is [N, 2]). kwargs go to
    show_digits or scatter_points. Returns the Figure.
    """
    import matplotlib.pyplot as plt

    snapshots = list(snapshots)
    if not snapshots:
        raise ValueError("snapshots must hold at least one batch to draw")
    titles = list(titles) if titles is not None else [None] * len(snapshots)
    if len(titles) != len(snapshots):
        raise ValueError(f"got {len(titles)} titles for {len(snapshots)} snapshots")
    if kind == "auto":
        first = _numpy(snapshots[0])
        kind = "points" if first.ndim == 2 and first.shape[1] == 2 else "digits"
    if kind not in ("digits", "points"):
        raise ValueError(f"kind must be 'digits', 'points' or 'auto'; got {kind!r}")
    fig, axes = plt.subplots(1, len(snapshots), figsize=(size * len(snapshots), size + 0.4), squeeze=False)
    for ax, snapshot, title in zip(axes[0], snapshots, titles):
        if kind == "digits":
            show_digits(snapshot, ax=ax, title=title, **kwargs)
        else:
            scatter_points(snapshot, ax=ax, title=title, **kwargs)
            ax.set_xlabel("")
            ax.set_ylabel("")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def _schedule_arrays(schedule):
    """(β_0..β_T, ᾱ_0..ᾱ_T) as float64 numpy arrays from a NoiseSchedule or an ᾱ array."""
    if hasattr(schedule, "alpha_bars"):
        return _numpy(schedule.betas), _numpy(schedule.alpha_bars)
    alpha_bars = _numpy(schedule)
    if alpha_bars.ndim != 1 or alpha_bars.size < 2:
        raise ValueError("a schedule must be a NoiseSchedule or a 1-D array ᾱ_0..ᾱ_T")
    betas = np.concatenate([[0.0], 1 - alpha_bars[1:] / alpha_bars[:-1]])
    return betas, alpha_bars


def plot_schedule_curves(schedules, curves=("alpha_bar", "sqrt_alpha_bar", "sqrt_one_minus_alpha_bar"), ax=None,
                         title: str | None = None, log_y: bool = False):
    """Plot quantities of one or more schedules against t; returns the Axes.

    schedules: a NoiseSchedule (or ᾱ_0..ᾱ_T array), or a dict {name: schedule} to compare.
    curves: names from CURVES: "beta", "alpha_bar", "sqrt_alpha_bar", "sqrt_one_minus_alpha_bar",
        "snr", "log_snr", "sigma". SNR, log-SNR and σ start at t = 1 (infinite at t = 0).
    """
    if not isinstance(schedules, dict):
        schedules = {None: schedules}
    if isinstance(curves, str):
        curves = (curves,)
    unknown = [c for c in curves if c not in CURVES]
    if unknown:
        raise ValueError(f"unknown curve(s) {unknown}; choose from {list(CURVES)}")
    ax = _axes(ax, figsize=(7, 4))
    for name, schedule in schedules.items():
        betas, alpha_bars = _schedule_arrays(schedule)
        t = np.arange(len(alpha_bars))
        for curve in curves:
            label, fn = CURVES[curve]
            start = 1 if curve in _UNBOUNDED_AT_ZERO else 0
            with np.errstate(divide="ignore"):
                values = fn(betas[start:], alpha_bars[start:])
            ax.plot(t[start:], values, label=label if name is None else f"{name}: {label}")
    ax.set_xlabel("timestep t")
    ax.set_ylabel("value" if len(curves) > 1 else CURVES[curves[0]][0])
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def smooth(values, window: int = 50) -> np.ndarray:
    """Running mean over the last `window` values (shorter at the start), same length as values."""
    values = _numpy(values)
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive integer; got {window!r}")
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(0, ends - window)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


def plot_loss_curve(losses, ax=None, window: int = 50, title: str = "training loss", log_y: bool = True):
    """The loss of every step (faint) and its running mean (solid) against the step; returns the Axes."""
    losses = _numpy(losses)
    ax = _axes(ax, figsize=(6, 3.5))
    steps = np.arange(1, len(losses) + 1)
    if len(losses):
        ax.plot(steps, losses, color="tab:blue", alpha=0.25, linewidth=0.8, label="loss per step")
        ax.plot(steps, smooth(losses, window), color="tab:blue", label=f"mean of last {window} steps")
        ax.legend()
    ax.set_xlabel("training step")
    ax.set_ylabel("MSE between ε and ε_θ")
    if log_y and len(losses) and (losses > 0).all():
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.set_title(title)
    return ax


def schedule_table(schedule, timesteps) -> str:
    """A text table of β_t, α_t, ᾱ_t, √ᾱ_t, √(1-ᾱ_t), σ_t = √(1/ᾱ_t - 1), SNR and log-SNR at `timesteps`.

    The same numbers in every convention the literature uses, so you can translate between them.
    """
    betas, alpha_bars = _schedule_arrays(schedule)
    T = len(alpha_bars) - 1
    header = f"{'t':>5} {'β_t':>9} {'α_t':>9} {'ᾱ_t':>9} {'√ᾱ_t':>9} {'√(1-ᾱ_t)':>9} {'σ_t':>10} {'SNR':>10} {'log-SNR':>8}"
    rows = [header]
    for t in timesteps:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t <= T:
            raise ValueError(f"timesteps must be integers in 0..T = 0..{T}; got {t!r}")
        beta, ab = betas[t], alpha_bars[t]
        if ab < 1:
            snr = ab / (1 - ab)
            sigma, snr_text, log_text = f"{math.sqrt(1 / ab - 1):10.4g}", f"{snr:10.4g}", f"{math.log(snr):8.3f}"
        else:
            sigma, snr_text, log_text = f"{0:10.4g}", f"{'inf':>10}", f"{'inf':>8}"
        rows.append(
            f"{t:>5} {beta:9.6f} {1 - beta:9.6f} {ab:9.6f} {math.sqrt(ab):9.6f} {math.sqrt(1 - ab):9.6f} "
            f"{sigma} {snr_text} {log_text}"
        )
    return "\n".join(rows)
