"""Notebook 05's schedule explorer: build a schedule, see x_t along it and its log-SNR, in one widget.

    schedule_explorer(digit)

The widget is a thin shell; its callbacks call the plain functions here (make_schedule,
noised_examples, schedule_figure, describe_schedule), which pytest runs without a browser.
"""

import math

import torch

from mini_diffusion._course import seam
from mini_diffusion._course.explore import figure_png, problem_html, show_samples
from mini_diffusion.toolkit.diffusion_process import NoiseSchedule

EXAMPLE_FRACTIONS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)  # where the explorer shows x_t, as t/T


def make_schedule(kind: str = "linear", T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                  s: float = 0.008) -> NoiseSchedule:
    """A linear schedule (β from beta_start to beta_end) or a cosine one (offset s), built with
    your schedules exercises (1.1, 1.2 and 5.1, 5.2)."""
    from mini_diffusion.toolkit.diffusion_process import cosine_schedule, linear_schedule

    if kind == "linear":
        if not 0 < beta_start <= beta_end < 1:
            raise ValueError(f"need 0 < beta_start <= beta_end < 1; got {beta_start} and {beta_end}")
        return linear_schedule(T, beta_start, beta_end)
    if kind == "cosine":
        if not s >= 0:
            raise ValueError(f"the offset s must be >= 0; got {s}")
        return cosine_schedule(T, s)
    raise ValueError(f"kind must be 'linear' or 'cosine'; got {kind!r}")


def log_snr(alpha_bars: torch.Tensor) -> torch.Tensor:
    """log SNR(t) = log(ᾱ_t / (1 - ᾱ_t)), computed through your snr (exercise 5.3)."""
    return torch.log(seam.implementation("5.3")(alpha_bars))


def noised_examples(x0: torch.Tensor, schedule, fractions=EXAMPLE_FRACTIONS, seed: int = 0):
    """x0 [N, ...] noised with your q_sample at t = fraction · T (t = 0: x0 itself), always with
    the same noise, so that two schedules differ only in how much of it they mix in.
    Returns (ts, batches)."""
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed), dtype=x0.dtype)
    ts = [round(f * schedule.T) for f in fractions]
    return ts, [x0 if t == 0 else seam.implementation("1.4")(x0, t, schedule, noise=noise) for t in ts]


def schedule_figure(schedule, x0: torch.Tensor, label: str, fractions=EXAMPLE_FRACTIONS):
    """ᾱ_t and log SNR against t/T (the DDPM linear schedule in grey for comparison) and x0
    noised at a few t. x0: a few digits [N, 1, H, W] or a 2-D cloud [N, 2]."""
    from mini_diffusion.toolkit.diffusion_process import linear_schedule

    reference = linear_schedule(1000).alpha_bars
    fig = _figure_for_explorer(len(fractions))
    ax_bar, ax_snr = fig.axes[0], fig.axes[1]
    for alpha_bars, name, style in [(reference, "linear, T = 1000 (DDPM)", dict(color="0.7", lw=3)),
                                    (schedule.alpha_bars.cpu(), label, dict(color="tab:blue", lw=1.5))]:
        frac = torch.arange(len(alpha_bars)) / (len(alpha_bars) - 1)
        ax_bar.plot(frac, alpha_bars, label=name, **style)
        ax_snr.plot(frac[1:], log_snr(alpha_bars[1:]), label=name, **style)
    ax_bar.set(xlabel="t / T", ylabel=r"$\bar\alpha_t$", title=r"$\bar\alpha_t$: share of signal variance", ylim=(-0.02, 1.02))
    ax_snr.set(xlabel="t / T", ylabel="log SNR", title=r"log SNR = log($\bar\alpha_t / (1-\bar\alpha_t)$)")
    ax_bar.legend(fontsize=8)
    ts, noisy = noised_examples(x0, schedule, fractions)
    for ax, t, x_t in zip(fig.axes[2:], ts, noisy):
        alpha_bar = float(schedule.alpha_bars[t])
        show_samples(ax, x_t, f"t = {t}\n" + r"$\sqrt{\bar\alpha_t}$" + f" = {math.sqrt(alpha_bar):.2f}")
        if x_t.dim() == 2:
            ax.set(xlabel="", ylabel="", xticks=[], yticks=[])
    return fig


def _figure_for_explorer(n_examples):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(9, 1.8 * n_examples), 6.5), layout="constrained")
    curves, examples = fig.subfigures(2, 1, height_ratios=[1.2, 1])
    curves.subplots(1, 2)
    examples.subplots(1, n_examples)
    return fig


def describe_schedule(schedule) -> str:
    """One line of numbers: where ᾱ_t falls below 0.5 and 0.1, and ᾱ at T/2."""
    alpha_bars = schedule.alpha_bars.cpu()
    below = {level: int(torch.nonzero(alpha_bars < level)[0]) if bool((alpha_bars < level).any()) else None
             for level in (0.5, 0.1)}
    half = schedule.T // 2
    parts = [f"ᾱ < {level} from t = {t}" if t is not None else f"ᾱ never falls below {level}" for level, t in below.items()]
    return (f"T = {schedule.T}: " + "; ".join(parts)
            + f"; ᾱ at t = {half}: {float(alpha_bars[half]):.4f} ({100 * math.sqrt(alpha_bars[half]):.1f} % signal); "
            + f"ᾱ_T = {float(alpha_bars[-1]):.2e}")


def schedule_explorer(x0: torch.Tensor):
    """Pick linear or cosine, T, the β range or s; redraws ᾱ, log SNR and x0 noised at a few t.

    x0: a few digits [N, 1, H, W] (four show well) or a 2-D cloud [N, 2]."""
    import ipywidgets as widgets

    kind = widgets.ToggleButtons(options=["linear", "cosine"], value="linear", description="schedule")
    T = widgets.IntSlider(value=1000, min=10, max=2000, step=10, description="T", continuous_update=False)
    betas = widgets.FloatLogSlider(value=0.02, base=10, min=-3, max=-0.5, step=0.05, description="β_T",
                                   readout_format=".4f", continuous_update=False)
    beta_start = widgets.FloatLogSlider(value=1e-4, base=10, min=-5, max=-2, step=0.1, description="β_1",
                                        readout_format=".5f", continuous_update=False)
    s = widgets.FloatLogSlider(value=0.008, base=10, min=-4, max=0, step=0.1, description="s",
                               readout_format=".4f", continuous_update=False)
    image = widgets.Image(format="png")
    message = widgets.HTML()

    def redraw(change=None):
        linear = kind.value == "linear"
        betas.layout.display = beta_start.layout.display = None if linear else "none"
        s.layout.display = "none" if linear else None
        try:
            schedule = make_schedule(kind.value, T.value, min(beta_start.value, betas.value), betas.value, s.value)
            label = (f"linear, T = {T.value}, β from {min(beta_start.value, betas.value):.1e} to {betas.value:.3g}"
                     if linear else f"cosine, T = {T.value}, s = {s.value:.3g}")
            image.value = figure_png(schedule_figure(schedule, x0, label))
            message.value = describe_schedule(schedule)
        except Exception as error:  # shown next to the controls: a callback's exception would go unseen
            message.value = problem_html(error)

    for control in (kind, T, betas, beta_start, s):
        control.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([kind, widgets.HBox([T, beta_start, betas, s]), message, image])
    box.controls = dict(kind=kind, T=T, beta_start=beta_start, beta_end=betas, s=s)
    box.image, box.message, box.redraw = image, message, redraw
    return box
