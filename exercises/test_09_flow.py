"""Notebook 09, flow matching: exercises 9.1-9.6 (flow.py)."""

import pytest

from _spec import Exercise, Notebook

NOTEBOOK = Notebook(
    "09", "09_flow_matching", title="Flow matching: a straight road from noise to data",
    idea="the linear path, velocity models, Euler from noise to data, reflow; ε, x̂₀, score and velocity",
    needs=("6.3", "7.3"),
)
EXERCISES = [
    Exercise("9.1", "flow", "fm_interpolate", points=2, title="the point x_t on the straight line from data to noise"),
    Exercise("9.2", "flow", "fm_loss", points=3, title="the flow-matching loss", uses=("9.1",)),
    Exercise("9.3", "flow", "fm_sample", points=3, title="Euler from noise (t = 1) to data (t = 0)"),
    Exercise("9.4", "flow", "x0_from_velocity", points=1, title="x̂_0 from a velocity"),
    Exercise("9.5", "flow", "eps_from_velocity", points=1, title="ε̂ from a velocity"),
    Exercise("9.6", "flow", "score_from_eps", points=1, title="the score from ε̂ on the VP path"),
]

exercise = pytest.mark.exercise
