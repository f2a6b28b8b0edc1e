"""The captions' words as tokens: a fixed vocabulary (no external tokenizer), padding and the null prompt.

    ids = tokens.encode(["a small red circle at the top left", tokens.NULL_PROMPT])   # int64 [2, MAX_TOKENS]
    tokens.decode(ids)          # ['a small red circle at the top left', '']
    tokens.padding_mask(ids)    # True at real tokens, False at padding
"""

import torch

from mini_diffusion.toolkit.shapes import COLOURS, SHAPES, SIZES

PAD, START = "<pad>", "<start>"
VOCAB = (PAD, START, "a", "and", "at", "the", *SIZES, *COLOURS, *SHAPES, "top", "bottom", "left", "right", "centre")
PAD_ID, START_ID = 0, 1
MAX_TOKENS = 10  # <start> + "a small red circle at the top left" (8 words) + room
NULL_PROMPT = ""  # the empty caption: only <start>, the rest padding (classifier-free guidance's "no prompt")
_WORD_ID = {word: i for i, word in enumerate(VOCAB)}


def encode(captions) -> torch.Tensor:
    """Token ids int64 [N, MAX_TOKENS] of captions (a list of str): <start>, the words, then padding.

    The words must come from VOCAB; "" (NULL_PROMPT) gives <start> and padding only, so that a
    network attending to the tokens always has one token it may attend to.
    """
    if isinstance(captions, str):
        captions = [captions]
    rows = []
    for caption in captions:
        if not isinstance(caption, str):
            raise ValueError(f"captions must be strings; got {type(caption).__name__} {caption!r}")
        words = caption.lower().split()
        unknown = [w for w in words if w not in _WORD_ID or w in (PAD, START)]
        if unknown:
            raise ValueError(f"caption {caption!r} has words outside the vocabulary: {unknown}; "
                             f"the words are: {' '.join(VOCAB[2:])}")
        if len(words) + 1 > MAX_TOKENS:
            raise ValueError(f"caption {caption!r} has {len(words)} words; at most {MAX_TOKENS - 1} fit")
        ids = [START_ID] + [_WORD_ID[w] for w in words]
        rows.append(ids + [PAD_ID] * (MAX_TOKENS - len(ids)))
    return torch.tensor(rows, dtype=torch.int64).reshape(len(rows), MAX_TOKENS)


def decode(tokens: torch.Tensor) -> list:
    """The captions of token ids [N, L] (the inverse of encode; padding and <start> dropped)."""
    tokens = torch.as_tensor(tokens)
    if tokens.dim() != 2 or tokens.is_floating_point() or bool(((tokens < 0) | (tokens >= len(VOCAB))).any()):
        raise ValueError(f"tokens must be integer ids in 0..{len(VOCAB) - 1} of shape [N, L]; got {tokens.dtype} "
                         f"{tuple(tokens.shape)}")
    return [" ".join(VOCAB[i] for i in row if i not in (PAD_ID, START_ID)) for row in tokens.tolist()]


def padding_mask(tokens: torch.Tensor) -> torch.Tensor:
    """bool [N, L]: True where a token is real (attend to it), False at padding."""
    return tokens != PAD_ID
