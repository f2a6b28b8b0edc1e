"""Notebook 08, guidance: exercises 8.1-8.6 (guidance.py)."""

import pytest

from _spec import Exercise, Notebook

NOTEBOOK = Notebook(
    "08", "08_guidance", title="Guidance: conditioning, classifier and classifier-free guidance, inpainting",
    idea="a label embedding, classifier guidance, classifier-free guidance, the diversity-fidelity trade-off, inpainting",
    needs=("1.4", "6.1", "6.2"),
)
EXERCISES = [
    Exercise("8.1", "guidance", "drop_labels", points=1, title="dropping labels to the null label"),
    Exercise("8.2", "guidance", "conditional_loss", points=2, title="the conditional loss with dropped labels"),
]

exercise = pytest.mark.exercise
