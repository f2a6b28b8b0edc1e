"""Quiz widgets: the logic is a plain function, the widget shows its verdict."""

import pytest

from mini_diffusion._course.quiz import Question, feedback, question_widget

Q = Question("Which symbol is the cumulative product?", ["$\\alpha_t$", "$\\bar\\alpha_t$", "$\\beta_t$"], 1,
             "ᾱ_t multiplies every α_s up to t.")


def test_feedback_says_right_wrong_or_pick_one():
    assert feedback(Q, 1)[0] is True
    assert feedback(Q, 0)[0] is False and "Not quite" in feedback(Q, 0)[1]
    assert feedback(Q, None) == (False, "Pick an answer first.")


def test_widget_renders_options_as_math_and_checks_the_chosen_letter():
    box = question_widget(Q, 1)
    assert "$\\bar\\alpha_t$" in box.children[0].value, "options with LaTeX are shown in the HTMLMath prompt"
    assert list(box.options_widget.options) == ["A", "B", "C"], "radio labels are plain letters (no raw LaTeX)"
    box.options_widget.value = "B"
    box.check(None)
    assert "Correct" in box.result_widget.value


def test_a_question_needs_a_valid_answer_index():
    with pytest.raises(ValueError, match="answer"):
        Question("?", ["a", "b"], 2, "")
