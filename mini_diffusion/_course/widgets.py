"""Interactive pieces for the notebooks: the forward-process explorer and a live loss curve.

    ForwardExplorer()            # a t slider: a few digits and the two-moons cloud, noised live
    curve = LiveLossCurve()      # display(curve), then train(..., on_step=curve)

The work happens in plain functions and methods (`forward_views`, `ForwardExplorer.render`,
`LiveLossCurve.__call__`), which the tests call without a browser; the ipywidgets only
move a slider value in and a picture out.
"""

import html
import time

import torch

from mini_diffusion._course import seam, viz


def forward_views(t: int, schedule, digits: torch.Tensor, cloud: torch.Tensor, digit_noise, cloud_noise):
    """(digits at step t, cloud at step t), noised with YOUR `forward.q_sample`.

    The noise is fixed (passed in), so moving t shows one sample fading into its own noise
    rather than a fresh draw each time. t = 0 means clean data and returns the inputs.
    """
    _check_t(t, schedule.T)
    if t == 0:
        return digits, cloud
    q_sample = seam.implementation("1.4")  # looked up on each call: your latest edit (autoreload) is used
    return q_sample(digits, t, schedule, noise=digit_noise), q_sample(cloud, t, schedule, noise=cloud_noise)


def _check_t(t, T: int) -> None:
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= T:
        raise ValueError(f"t must be an integer in 0..T = 0..{T} (0 = clean data); got {t!r}")


def _problem_message(error: Exception) -> str:
    if isinstance(error, NotImplementedError):
        return str(error)
    return f"Your q_sample raised {type(error).__name__}: {error}"


class _LazyOutput:
    """An ipywidgets Output made on first use, so that the classes below work (and are tested) without a front end."""

    _output = None

    @property
    def output(self):
        if self._output is None:
            import ipywidgets as widgets

            self._output = widgets.Output()
        return self._output

    def _display(self, fig, message: str | None) -> None:
        """Replace what the output area shows by fig, or by the message in red when there is no figure."""
        import matplotlib.pyplot as plt
        from IPython.display import HTML, clear_output, display

        with self.output:
            clear_output(wait=True)
            if fig is None:
                display(HTML(f'<pre style="white-space: pre-wrap; color: #b91c1c">{html.escape(message or "")}</pre>'))
            else:
                display(fig)
                plt.close(fig)


class ForwardExplorer(_LazyOutput):
    """Drag t from 0 (clean) to T (pure noise) and watch q(x_t | x_0) act on digits and points.

    schedule: default the DDPM linear schedule (T = 1000). digits: [N, 1, H, W] in [-1, 1]
    (default: the first 8 of data.digits()); cloud: [M, 2] (default: 1000 two-moons points).
    The third panel marks t on the curves √ᾱ_t and √(1-ᾱ_t).
    """

    def __init__(self, schedule=None, digits=None, cloud=None, seed: int = 0, t: int = 0):
        from mini_diffusion.toolkit import data
        from mini_diffusion.toolkit.diffusion_process import NoiseSchedule, linear_schedule

        if schedule is None:
            schedule = linear_schedule(1000)
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule; got {type(schedule).__name__}")
        self.schedule = schedule.to("cpu")
        self.digits = (data.digits()[:8] if digits is None else digits).detach().cpu().float()
        self.cloud = (data.two_moons(1000, seed=seed) if cloud is None else cloud).detach().cpu().float()
        generator = torch.Generator().manual_seed(seed)
        self.digit_noise = torch.randn(self.digits.shape, generator=generator)
        self.cloud_noise = torch.randn(self.cloud.shape, generator=generator)
        self.message = None  # the learner-facing problem of the last render, if any
        self.t = t
        self._widget = None

    def render(self, t: int):
        """Draw the three panels for step t; returns the Figure, or None (see .message) when
        q_sample is not ready: a stub, or an error in your code."""
        import matplotlib.pyplot as plt

        _check_t(t, self.schedule.T)
        self.t = t
        try:
            digits_t, cloud_t = forward_views(t, self.schedule, self.digits, self.cloud,
                                              self.digit_noise, self.cloud_noise)
        except Exception as error:  # shown next to the slider, so the notebook stays usable
            self.message = _problem_message(error)
            return None
        self.message = None
        alpha_bar = float(self.schedule.alpha_bars[t])
        fig, (ax_digits, ax_cloud, ax_curve) = plt.subplots(1, 3, figsize=(12, 3.8))
        viz.show_digits(digits_t, nrow=4, ax=ax_digits, title=f"digits, x_t at t = {t}")
        viz.scatter_points(self.cloud, ax=ax_cloud, color="lightgrey", label="x_0 (clean)")
        viz.scatter_points(cloud_t, ax=ax_cloud, color="tab:blue", label=f"x_{t}", lim=4.0,
                           title=f"two moons at t = {t}")
        viz.plot_schedule_curves(self.schedule, curves=("sqrt_alpha_bar", "sqrt_one_minus_alpha_bar"), ax=ax_curve,
                                 title=f"ᾱ_t = {alpha_bar:.4f}")
        ax_curve.axvline(t, color="black", linestyle="--", linewidth=1)
        fig.suptitle(f"x_t = {alpha_bar ** 0.5:.3f}·x_0 + {(1 - alpha_bar) ** 0.5:.3f}·ε")
        fig.tight_layout()
        return fig

    def show(self, t: int) -> None:
        """Render step t into the widget's output area (replacing the previous picture)."""
        fig = self.render(t)
        self._display(fig, self.message)

    @property
    def widget(self):
        """The ipywidgets box: a play button, the t slider and the picture."""
        if self._widget is None:
            import ipywidgets as widgets

            slider = widgets.IntSlider(value=self.t, min=0, max=self.schedule.T, step=1, description="t",
                                       continuous_update=False, layout={"width": "500px"})
            play = widgets.Play(value=self.t, min=0, max=self.schedule.T, step=25, interval=300, description="play")
            widgets.jslink((play, "value"), (slider, "value"))
            slider.observe(lambda change: self.show(change["new"]), names="value")
            self.slider = slider
            self._widget = widgets.VBox([widgets.HBox([play, slider]), self.output])
            self.show(self.t)
        return self._widget

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


class LiveLossCurve(_LazyOutput):
    """A loss curve that redraws itself while train() runs: pass it as `on_step`.

        curve = LiveLossCurve(every=100)
        display(curve)
        result = train(model, data, schedule, steps=2000, on_step=curve)

    It keeps every loss (`.losses`) and redraws every `every` steps, but never more often than
    once per `min_interval` seconds (drawing costs more than a small training step), and at
    the last step of a run when `total_steps` is given.
    """

    def __init__(self, every: int = 100, total_steps: int | None = None, window: int = 50, min_interval: float = 0.5,
                 title: str = "training loss"):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer (steps between redraws); got {every!r}")
        self.every, self.total_steps, self.window = every, total_steps, window
        self.min_interval, self.title = min_interval, title
        self.losses = []
        self.redraws = 0
        self._last_draw = float("-inf")

    def __call__(self, step: int, loss: float) -> None:
        self.losses.append(float(loss))
        last = self.total_steps is not None and step >= self.total_steps
        due = step % self.every == 0 and time.perf_counter() - self._last_draw >= self.min_interval
        if last or due:
            self.draw(step)

    def figure(self, step: int | None = None):
        """The current curve as a new Figure."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        step = len(self.losses) if step is None else step
        recent = self.losses[-self.window:]
        title = self.title
        if recent:
            title += f" (step {step}: mean of last {len(recent)} = {sum(recent) / len(recent):.4f})"
        viz.plot_loss_curve(self.losses, ax=ax, window=self.window, title=title)
        fig.tight_layout()
        return fig

    def draw(self, step: int | None = None) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import clear_output, display

        fig = self.figure(step)
        self.redraws += 1
        self._last_draw = time.perf_counter()
        with self.output:
            clear_output(wait=True)
            display(fig)
        plt.close(fig)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.output)
