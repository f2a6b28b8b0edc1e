"""Multiple-choice quizzes for the end of each notebook, as ipywidgets.

    q = Question("What does the network predict?", ["x_0", "the noise ε", "β_t"], answer=1,
                 explanation="It predicts ε; the mean follows from it in closed form.")
    quiz([q, ...])          # shows the questions in JupyterLab

The logic (`feedback`) is a plain function, so it is tested without a browser.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    prompt: str
    options: tuple
    answer: int  # index into options
    explanation: str

    def __post_init__(self):
        object.__setattr__(self, "options", tuple(self.options))
        if len(self.options) < 2:
            raise ValueError("a question needs at least two options")
        if not 0 <= self.answer < len(self.options):
            raise ValueError(f"answer must index one of the {len(self.options)} options; got {self.answer}")


def feedback(question: Question, choice) -> tuple[bool, str]:
    """(is it right?, the text to show) for the option index `choice` (None: nothing picked)."""
    if choice is None:
        return False, "Pick an answer first."
    if question.options[choice] == question.options[question.answer]:
        return True, f"✅ Correct. {question.explanation}"
    return False, f"❌ Not quite: “{question.options[choice]}” is not it. {question.explanation}"


def question_widget(question: Question, number: int | None = None):
    """One question: the prompt, radio buttons, a Check button and a feedback line."""
    import ipywidgets as widgets

    title = f"<b>Q{number}.</b> " if number is not None else ""
    letters = [chr(ord("A") + i) for i in range(len(question.options))]
    # Radio-button labels are plain text, so the options (which may hold LaTeX) are shown as
    # rendered math above them and the buttons carry only their letters.
    listing = "<br>".join(f"<b>{letter}.</b> {text}" for letter, text in zip(letters, question.options))
    prompt = widgets.HTMLMath(f"{title}{question.prompt}<br>{listing}")
    options = widgets.RadioButtons(options=letters, value=None, orientation="horizontal",
                                   layout={"width": "max-content"})
    check = widgets.Button(description="Check", button_style="primary")
    result = widgets.HTMLMath("")
    result.add_class("quiz-feedback")

    def on_check(_):
        index = None if options.value is None else letters.index(options.value)
        correct, text = feedback(question, index)
        colour = "#15803d" if correct else "#b91c1c"
        result.value = f'<span style="color:{colour}">{text}</span>'

    check.on_click(on_check)
    box = widgets.VBox([prompt, options, check, result], layout={"margin": "0 0 1em 0"})
    box.check = on_check  # lets tests and notebooks trigger a check without a browser
    box.options_widget = options
    box.result_widget = result
    return box


def quiz(questions):
    """All questions of a notebook's quiz, stacked (displayed when returned from a cell)."""
    import ipywidgets as widgets

    return widgets.VBox([question_widget(q, i) for i, q in enumerate(questions, 1)])
