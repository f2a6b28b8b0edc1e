"""Interactive views for notebooks 04 and 06: a sampling trajectory and a sampler picker (05's: schedule_widgets.py).

Each widget is a thin shell. Its callbacks call the plain functions here (record a
trajectory, build a schedule, draw a figure, sample and score), which pytest runs without a
browser. Figures reach the browser as PNG images, so a redraw replaces the picture in place.

    traj = record_trajectory(model, (16, 1, 8, 8), schedule, generator=g)   # notebook 04
    trajectory_viewer(traj)
    sampler_picker(model, schedule, "digits")                                 # notebook 06
"""

import io
import time
from dataclasses import dataclass

import torch

from mini_diffusion._course import seam, viz
from mini_diffusion._course.evaluate import DATA_SHAPES, quality, sampler_function
POINT_LIMIT = 3.5  # 2-D plots show [-3.5, 3.5]^2: the normalised moons and most of N(0, I)


# --- Drawing ---------------------------------------------------------------------------------


def show_samples(ax, x: torch.Tensor, title: str = "", color="tab:blue", lim: float | None = POINT_LIMIT) -> None:
    """Draw a batch on `ax` with viz: 2-D points [N, 2] as a scatter, images [N, 1, H, W] as a grid."""
    if x.dim() == 2 and x.shape[1] == 2:
        viz.scatter_points(x, ax=ax, title=title, color=color, lim=lim)
    elif x.dim() == 4 and x.shape[1] == 1:
        viz.show_digits(x, ax=ax, title=title)
    else:
        raise ValueError(f"show_samples draws 2-D points [N, 2] or grey images [N, 1, H, W]; got {tuple(x.shape)}")


def figure_png(fig) -> bytes:
    """The figure as PNG bytes (and closed, so that it is not also shown below the cell)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def problem_html(error: Exception) -> str:
    """What a widget shows when your code fails: the stub's message, or the error your code raised."""
    import html

    text = str(error) if isinstance(error, NotImplementedError) else f"Your code raised {type(error).__name__}: {error}"
    return f'<pre style="white-space: pre-wrap; color: #b91c1c">{html.escape(text)}</pre>'


def _new_figure(nrows, ncols, size):
    # A figure that pyplot does not track: widgets draw many, and none must pop up by itself.
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


# --- Trajectories (notebook 04) ----------------------------------------------------------------


class RecordingDenoiser:
    """Wraps a denoiser and remembers every call: (t, x_t, ε̂) on the CPU.

    A sampler driven by it runs exactly as with the bare model; afterwards the record holds
    what the network saw and said at each step, from which x̂_0 follows in closed form.
    """

    def __init__(self, model):
        self.model = model
        self.calls = []

    def __call__(self, x_t, t):
        eps = self.model(x_t, t)
        self.calls.append((t.detach().cpu(), x_t.detach().cpu(), eps.detach().cpu()))
        return eps

    def parameters(self):  # so that samplers find the model's device
        params = getattr(self.model, "parameters", None)
        return params() if callable(params) else iter(())

    @property
    def device(self):
        from mini_diffusion.toolkit.common import model_device

        return model_device(self.model)


@dataclass
class Trajectory:
    """One sampling run, frame by frame from t = T down to t = 0.

    timesteps[i] is the t of frame i; x[i] is x_t and x0_hat[i] the network's guess of the
    final sample at that moment, x̂_0 = (x_t - √(1-ᾱ_t) ε̂) / √ᾱ_t (at t = 0 both are the sample).
    """

    timesteps: list
    x: list
    x0_hat: list
    sampler: str

    def __len__(self):
        return len(self.timesteps)

    def frame_at(self, t: int) -> int:
        """The index of the frame closest to timestep t (DDIM visits only some timesteps)."""
        return min(range(len(self.timesteps)), key=lambda i: (abs(self.timesteps[i] - t), i))


def _ddpm_or_ddim(sampler: str, num_steps: int, eta: float):
    """(num_steps, other keywords) for the one sampler call: DDPM takes every step (None) and has no eta."""
    if sampler == "ddpm":
        return None, {}
    if sampler == "ddim":
        return num_steps, {"eta": eta}
    raise ValueError(f"sampler must be 'ddpm' or 'ddim'; got {sampler!r}")


def record_trajectory(model, shape, schedule, sampler: str = "ddpm", num_steps: int | None = None,
                      eta: float = 0.0, generator=None, x_T=None, progress: bool = False) -> Trajectory:
    """Run your sampler (ddpm_sample, or ddim_sample with num_steps and eta) and keep every frame.

    The sampler is your exercise code (or the solution); only the model is wrapped, to
    record ε̂, and x̂_0 comes from your predict_x0 (exercise 2.1).
    """
    recorder = RecordingDenoiser(model)
    num_steps, options = _ddpm_or_ddim(sampler, num_steps or 50, eta)
    states = sampler_function(sampler)(recorder, shape, schedule, num_steps=num_steps, generator=generator, x_T=x_T,
                                       trajectory=True, progress=progress, **options)
    if len(states) != len(recorder.calls) + 1:
        raise ValueError(
            f"the sampler returned {len(states)} states for {len(recorder.calls)} network calls; with "
            "trajectory=True it should return [x_T, ..., x_0], one state more than there are steps"
        )
    schedule_cpu = schedule.to("cpu")
    timesteps, xs, x0_hats = [], [], []
    for t, x_t, eps in recorder.calls:
        timesteps.append(int(t[0]))
        xs.append(x_t)
        x0_hats.append(seam.implementation("2.1")(x_t, t, eps, schedule_cpu))
    final = states[-1].detach().cpu()
    return Trajectory(timesteps + [0], xs + [final], x0_hats + [final], sampler)


def trajectory_figure(traj: Trajectory, index: int):
    """Frame `index` of a trajectory: x_t on the left, the predicted x̂_0 on the right."""
    if not 0 <= index < len(traj):
        raise ValueError(f"index must be in 0..{len(traj) - 1}; got {index}")
    t = traj.timesteps[index]
    fig, axes = _new_figure(1, 2, (7.5, 3.8))
    show_samples(axes[0, 0], traj.x[index], f"$x_t$ at t = {t}")
    show_samples(axes[0, 1], traj.x0_hat[index], f"predicted $\\hat{{x}}_0$ at t = {t}", color="tab:orange")
    fig.suptitle(f"{traj.sampler.upper()} sampling, frame {index + 1} of {len(traj)}")
    return fig


def trajectory_viewer(traj: Trajectory):
    """A t slider (with a play button) over a recorded trajectory; shows x_t and x̂_0 side by side."""
    import ipywidgets as widgets

    T = traj.timesteps[0]
    slider = widgets.IntSlider(value=T, min=0, max=T, step=1, description="t", continuous_update=False,
                               layout={"width": "480px"})
    # Play counts up while the reverse process counts down, so the play button drives T - t.
    play = widgets.Play(value=0, min=0, max=T, step=max(1, T // 50), interval=150, description="play")
    image = widgets.Image(format="png")

    def redraw(change=None):
        image.value = figure_png(trajectory_figure(traj, traj.frame_at(slider.value)))

    def on_play(change):
        slider.value = T - change["new"]

    slider.observe(redraw, names="value")
    play.observe(on_play, names="value")
    redraw()
    box = widgets.VBox([widgets.HBox([play, slider]), image])
    box.slider, box.image, box.redraw = slider, image, redraw
    return box


# --- Sampling and scoring (notebook 06) --------------------------------------------------------


@dataclass
class SampleRun:
    """Samples from one sampler setting, their quality (ratio to the floor) and the time taken.
    eta is DDIM's (None for DDPM, whose step noise is fixed by its variance choice)."""

    sampler: str
    steps: int
    eta: float | None
    seed: int
    samples: torch.Tensor
    ratio: float
    seconds: float

    @property
    def label(self) -> str:
        if self.sampler == "ddpm":
            return f"DDPM-{self.steps}"
        return f"DDIM-{self.steps}" + (f" (eta = {self.eta:g})" if self.eta else "")


def sample_and_score(model, schedule, data: str, sampler: str = "ddim", steps: int = 50, eta: float = 0.0,
                     n: int = 1000, seed: int = 0, progress: bool = False) -> SampleRun:
    """n samples with your ddpm_sample (all T steps; `steps` and `eta` ignored) or ddim_sample,
    scored with evaluate.quality (moons: energy distance, digits: Fréchet distance; about 1 = as close as
    fresh real data). `seed` draws the samples and, for moons, the real points they are
    compared with, so different seeds give independent repeats of the measurement."""
    from mini_diffusion.toolkit.common import model_device

    if data not in DATA_SHAPES:
        raise ValueError(f"data must be one of {', '.join(DATA_SHAPES)}; got {data!r}")
    shape = (n, *DATA_SHAPES[data])
    generator = torch.Generator(device=model_device(model)).manual_seed(seed)
    num_steps, options = _ddpm_or_ddim(sampler, steps, eta)
    run = sampler_function(sampler)
    start = time.perf_counter()
    x0 = run(model, shape, schedule, num_steps=num_steps, generator=generator, progress=progress, **options)
    seconds = time.perf_counter() - start
    if sampler == "ddpm":
        steps, eta = schedule.T, None
    x0 = x0.detach().cpu().float()
    ratio = quality(x0, data, seed=seed)["ratio"]
    return SampleRun(sampler, steps, eta, seed, x0, ratio, seconds)


def sample_run_figure(run: SampleRun, shown: int = 64):
    fig, axes = _new_figure(1, 1, (4.2, 4.2))
    x = run.samples if run.samples.dim() == 2 else run.samples[:shown]
    show_samples(axes[0, 0], x, f"{run.label}: ratio to floor {run.ratio:.2f}, {run.seconds:.2f} s")
    return fig


def sampler_picker(model, schedule, data: str, n: int | None = None):
    """Pick DDPM or DDIM, the number of steps and eta; "Sample" draws, scores and times a batch.

    It samples once when created (DDIM-20), so the picture is never empty."""
    import ipywidgets as widgets

    n = n or (2000 if data == "moons" else 256)
    sampler = widgets.ToggleButtons(options=[("DDPM (T steps)", "ddpm"), ("DDIM", "ddim")], value="ddim",
                                    description="sampler")
    steps = widgets.SelectionSlider(options=[5, 10, 20, 50, 100, 200, 500, 1000], value=20, description="steps")
    eta = widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.1, description="eta")
    seed = widgets.IntText(value=0, description="seed", layout={"width": "160px"})
    button = widgets.Button(description="Sample", button_style="primary")
    message = widgets.HTML()
    image = widgets.Image(format="png")

    def on_sampler(change=None):
        steps.disabled = eta.disabled = sampler.value == "ddpm"

    def run(_=None):
        message.value = "sampling…"
        try:
            result = sample_and_score(model, schedule, data, sampler.value, steps.value, eta.value, n, seed.value)
        except Exception as error:  # shown next to the controls: a callback's exception would go unseen
            message.value = problem_html(error)
            return None
        image.value = figure_png(sample_run_figure(result))
        message.value = f"{result.label}: {n} samples in {result.seconds:.2f} s, ratio to the floor {result.ratio:.2f}"
        return result

    sampler.observe(on_sampler, names="value")
    button.on_click(run)
    on_sampler()
    run()
    box = widgets.VBox([widgets.HBox([sampler, steps]), widgets.HBox([eta, seed, button]), message, image])
    box.controls = dict(sampler=sampler, steps=steps, eta=eta, seed=seed)
    box.image, box.message, box.run = image, message, run
    return box

