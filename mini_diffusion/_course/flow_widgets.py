"""Notebook 09's interactive pieces: the two paths side by side, and a loss curve with its floor.

    FlowPathExplorer(flow_model)        # a t slider: the same points on the VP path and the linear
                                        # path, and the velocity field of the flow model at that t
    curve = FlowLossCurve(floor=1.41)   # display(curve), then train(..., on_step=curve)

The work happens in plain functions (`path_views`, `velocity_grid`, `FlowPathExplorer.render`),
which the tests call without a browser; the ipywidgets only move a slider value in and a picture out.
"""


import torch

from mini_diffusion._course import seam, viz
from mini_diffusion._course.widgets import LiveLossCurve, _LazyOutput


def path_views(t: float, x0: torch.Tensor, noise: torch.Tensor, schedule) -> dict:
    """The same points x0 with the same noise at time t in [0, 1] on both paths:

    - "linear": x_t = (1 - t)·x_0 + t·ε  (YOUR fm_interpolate, exercise 9.1, when written);
    - "vp": DDPM's x_s = √ᾱ_s·x_0 + √(1 - ᾱ_s)·ε at the timestep s = round(t·T) (s = 0: x_0 itself);
    and "timestep": s, "coefficients": the weights of x_0 and ε on each path.
    """
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 1:
        raise ValueError(f"t must be a number in [0, 1] (0 = data, 1 = noise); got {t!r}")
    t = float(t)
    s = int(round(t * schedule.T))
    alpha_bar = float(schedule.alpha_bars[s])
    vp = alpha_bar**0.5 * x0 + (1 - alpha_bar) ** 0.5 * noise
    try:
        linear = seam.implementation("9.1")(x0, noise, t)
    except NotImplementedError:
        linear = (1 - t) * x0 + t * noise  # until 9.1 is written: the same formula, so the picture still shows
    return {"linear": linear, "vp": vp, "timestep": s,
            "coefficients": {"linear": (1 - t, t), "vp": (alpha_bar**0.5, (1 - alpha_bar) ** 0.5)}}


@torch.no_grad()
def velocity_grid(model, t: float, lim: float = 3.0, n: int = 15):
    """The velocity model's field at time t on an n x n grid over [-lim, lim]²: (X, Y, U, V) tensors [n, n]."""
    axis = torch.linspace(-lim, lim, n)
    Y, X = torch.meshgrid(axis, axis, indexing="ij")
    points = torch.stack([X.flatten(), Y.flatten()], dim=1)
    v = model(points, torch.full((points.shape[0],), float(t)))
    return X, Y, v[:, 0].reshape(n, n), v[:, 1].reshape(n, n)


class FlowLossCurve(LiveLossCurve):
    """LiveLossCurve with a dashed line at `floor`, the loss of the ideal velocity field (no model goes lower)."""

    def __init__(self, floor: float | None = None, **kwargs):
        kwargs.setdefault("title", "flow-matching loss")
        super().__init__(**kwargs)
        self.floor = floor

    def figure(self, step: int | None = None):
        fig = super().figure(step)
        if self.floor is not None:
            ax = fig.axes[0]
            ax.axhline(self.floor, color="black", linestyle="--", linewidth=1, label=f"ideal floor {self.floor:.3f}")
            ax.legend(loc="upper right")
        return fig


class FlowPathExplorer(_LazyOutput):
    """Drag t from 0 (data) to 1 (noise): the same two-moons points, with the same noise, on DDPM's
    path (timestep round(t·T)) and on the straight path, and the velocity field of `model` at t.

    model: a velocity model (default: the shipped moons_flow); schedule: default the moons DDPM
    model's (linear, T = 1000); n: how many points.
    """

    def __init__(self, model=None, schedule=None, n: int = 400, seed: int = 0, t: float = 0.5):
        from mini_diffusion.toolkit import data, reference

        if model is None:
            model, _, _ = reference.load("moons_flow", device="cpu")
        if schedule is None:
            _, schedule, _ = reference.load("moons", device="cpu")
        self.model, self.schedule = model, schedule.to("cpu")
        self.x0 = data.two_moons(n, seed=seed).float()
        self.noise = torch.randn(self.x0.shape, generator=torch.Generator().manual_seed(seed + 1))
        self.t, self.message, self._widget = t, None, None

    def render(self, t: float):
        """The three panels at time t; returns the Figure, or None (see .message) on a problem."""
        import matplotlib.pyplot as plt

        try:
            views = path_views(t, self.x0, self.noise, self.schedule)
            X, Y, U, V = velocity_grid(self.model, t)
        except Exception as error:  # shown next to the slider, so the notebook stays usable
            self.message = str(error) if isinstance(error, NotImplementedError) else f"{type(error).__name__}: {error}"
            return None
        self.t, self.message = t, None
        (a_lin, b_lin), (a_vp, b_vp) = views["coefficients"]["linear"], views["coefficients"]["vp"]
        fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
        for ax in axes:
            viz.scatter_points(self.x0, ax=ax, color="lightgrey")
        viz.scatter_points(views["vp"], ax=axes[0], color="tab:blue", lim=3.5,
                           title=f"VP (DDPM), s = {views['timestep']}: {a_vp:.2f}·x_0 + {b_vp:.2f}·ε")
        viz.scatter_points(views["linear"], ax=axes[1], color="tab:orange", lim=3.5,
                           title=f"linear, t = {t:.2f}: {a_lin:.2f}·x_0 + {b_lin:.2f}·ε")
        axes[2].quiver(X, Y, U, V, color="tab:green", angles="xy")
        viz.scatter_points(views["linear"], ax=axes[2], color="tab:orange", lim=3.5,
                           title=f"velocity v(x, t = {t:.2f}) of the flow model")
        fig.tight_layout()
        return fig

    def show(self, t: float) -> None:
        fig = self.render(t)
        self._display(fig, self.message)

    @property
    def widget(self):
        """The ipywidgets box: a t slider from 0 to 1 and the picture."""
        if self._widget is None:
            import ipywidgets as widgets

            slider = widgets.FloatSlider(value=self.t, min=0.0, max=1.0, step=0.05, description="t",
                                         continuous_update=False, layout={"width": "500px"})
            slider.observe(lambda change: self.show(change["new"]), names="value")
            self.slider = slider
            self._widget = widgets.VBox([slider, self.output])
            self.show(self.t)
        return self._widget

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
