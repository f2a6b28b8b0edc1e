"""What crosses between the grader (the judge) and the process that runs learner code (the worker).

Values travel as data, never as pickles: a JSON tree for the structure and one safetensors blob
for every tensor in it. What a learner function is called with and returns: None, bools, ints,
floats, strings, tuples, lists, dicts with string keys, tensors, torch.Generators (their state),
NoiseSchedules (their three arrays) and models. A model never travels: it is a handle, and the
worker calls back to the side that holds it for every evaluation (`{"$model": id}`).

A frame is a 4-byte big-endian length, the JSON, then an 8-byte length and the blob. Frames are
capped (MAX_FRAME), so a flood cannot exhaust the reader's memory.
"""

import json
import struct

MAX_FRAME = 256 * 1024 * 1024


class WireError(Exception):
    """A frame that cannot be read (cut short, too large, not the format)."""


def encode(value, tensors: dict, models: dict | None = None):
    """The JSON-able form of value; tensors go into `tensors` (name -> tensor), models into `models`
    (id -> model) when given (else a model is an error)."""
    import torch

    from mini_diffusion.toolkit.diffusion_process import NoiseSchedule

    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, float) and value != value:
            return {"$float": "nan"}
        if isinstance(value, float) and value in (float("inf"), float("-inf")):
            return {"$float": "inf" if value > 0 else "-inf"}
        return value
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().cpu().contiguous()
        return {"$tensor": key}
    if isinstance(value, torch.Generator):
        key = f"t{len(tensors)}"
        tensors[key] = value.get_state()
        return {"$generator": key}
    if isinstance(value, NoiseSchedule):
        return {"$schedule": [encode(getattr(value, n), tensors) for n in ("betas", "alphas", "alpha_bars")]}
    if isinstance(value, tuple):
        return {"$tuple": [encode(v, tensors, models) for v in value]}
    if isinstance(value, list):
        return [encode(v, tensors, models) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"$dict": {k: encode(v, tensors, models) for k, v in value.items()}}
    if callable(value) and models is not None:
        key = str(len(models))
        models[key] = value
        return {"$model": key}
    raise TypeError(f"cannot send a {type(value).__name__} to the other process")


def decode(tree, tensors: dict, model=None):
    """The value that `encode` wrote; model(id) makes the stand-in of a model handle."""
    import torch

    from mini_diffusion.toolkit.diffusion_process import NoiseSchedule

    if isinstance(tree, list):
        return [decode(v, tensors, model) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if "$tensor" in tree:
        return tensors[tree["$tensor"]]
    if "$float" in tree:
        return float(tree["$float"])
    if "$generator" in tree:
        generator = torch.Generator()
        generator.set_state(tensors[tree["$generator"]])
        return generator
    if "$schedule" in tree:
        betas, alphas, alpha_bars = (decode(v, tensors) for v in tree["$schedule"])
        schedule = NoiseSchedule.__new__(NoiseSchedule)
        schedule.betas, schedule.alphas, schedule.alpha_bars = betas, alphas, alpha_bars
        return schedule
    if "$tuple" in tree:
        return tuple(decode(v, tensors, model) for v in tree["$tuple"])
    if "$dict" in tree:
        return {k: decode(v, tensors, model) for k, v in tree["$dict"].items()}
    if "$model" in tree:
        if model is None:
            raise WireError("a model handle arrived where none was expected")
        return model(tree["$model"])
    raise WireError(f"unknown value in a frame: {sorted(tree)[:3]}")


def pack(message: dict, tensors: dict) -> bytes:
    from safetensors.torch import save

    head = json.dumps(message).encode()
    blob = save(tensors) if tensors else b""
    return struct.pack(">I", len(head)) + head + struct.pack(">Q", len(blob)) + blob


def _read_exactly(stream, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise WireError("the other side closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def unpack(stream) -> tuple[dict, dict]:
    """(message, tensors) of the next frame on a binary stream."""
    from safetensors.torch import load

    (n,) = struct.unpack(">I", _read_exactly(stream, 4))
    if n > MAX_FRAME:
        raise WireError("a frame larger than allowed")
    message = json.loads(_read_exactly(stream, n))
    (m,) = struct.unpack(">Q", _read_exactly(stream, 8))
    if m > MAX_FRAME:
        raise WireError("a frame larger than allowed")
    tensors = load(_read_exactly(stream, m)) if m else {}
    if not isinstance(message, dict):
        raise WireError("a frame whose message is not an object")
    return message, tensors
