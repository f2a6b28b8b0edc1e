"""Notebook 00, the introduction: no exercises (its set-up check is md.check() in the notebook)."""

from _spec import Notebook

NOTEBOOK = Notebook(
    "00", "00_introduction", title="Introduction: making data out of noise",
    idea="the generative modelling problem, GANs and their troubles, the two phases of diffusion; a set-up check",
    needs=(),
)
EXERCISES = []
