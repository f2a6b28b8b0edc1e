"""The one kind of failed check: Feedback, the paragraph a learner reads, and its length cap."""

MAX_MESSAGE = 1500


class Feedback(Exception):
    """A failed check, with the message for the learner. status: a word or two for the table."""

    def __init__(self, message: str, status: str = "failed"):
        super().__init__(message)
        self.message = message
        self.status = status


def cap(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 20].rstrip() + " … (cut short)"
