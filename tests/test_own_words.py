"""The notebooks say things in their own words: no run of RUN consecutive words of the source
article (the text the course was first drafted from) appears in any notebook's markdown, code or
quiz text.

Both sides are compared the same way: LaTeX maths ($...$ and $$...$$) is left out, every
whitespace-separated token is lower-cased and stripped of everything that is not a letter or a
digit, and empty tokens are dropped. The notebooks are read from their jupytext .py sources, which
hold the markdown, the code and the quiz questions of each notebook.

The article lives outside the repository (it is not ours to ship); without it the test is skipped.
"""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ARTICLE = Path(os.environ.get("MINI_DIFFUSION_ARTICLE", "/work/shared/seed/000_58428df4aa9dd2f4.txt"))
RUN = 10

_MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]*\$", re.DOTALL)
_NOT_WORD = re.compile(r"[^0-9a-z]+")


def words(text: str) -> list[str]:
    """The text's words, maths left out, lower-cased, punctuation stripped."""
    text = _MATH.sub(" ", text).lower()
    out = []
    for token in text.split():
        token = _NOT_WORD.sub("", token)
        if token:
            out.append(token)
    return out


def runs(tokens: list[str], n: int = RUN) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def shared_runs(article: str, notebook: str, n: int = RUN) -> list[str]:
    """The runs of n words that `notebook` shares with `article`, merged into maximal passages."""
    theirs = runs(words(article), n)
    ours = words(notebook)
    hits = [i for i in range(len(ours) - n + 1) if tuple(ours[i : i + n]) in theirs]
    passages, start, end = [], None, None
    for i in hits:
        if start is not None and i <= end:
            end = i + n
            continue
        if start is not None:
            passages.append(" ".join(ours[start:end]))
        start, end = i, i + n
    if start is not None:
        passages.append(" ".join(ours[start:end]))
    return passages


def test_the_comparison_itself():
    article = "The forward process (also called the $q(x)$ diffusion process) gradually destroys data by adding noise."
    copied = "# The Forward process, also called the diffusion process, gradually destroys data by adding noise!"
    assert shared_runs(article, copied) == ["the forward process also called the diffusion process gradually destroys data by adding noise"]
    assert shared_runs(article, "The forward process adds noise step by step until nothing is left of the data.") == []


@pytest.mark.skipif(not ARTICLE.exists(), reason="the source article is not on this machine")
@pytest.mark.parametrize("source", sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")), ids=lambda p: p.stem)
def test_notebook_is_in_its_own_words(source):
    found = shared_runs(ARTICLE.read_text(encoding="utf-8"), source.read_text(encoding="utf-8"))
    assert not found, f"{source.name} repeats the article word for word:\n" + "\n".join(f"  - {p}" for p in found)
