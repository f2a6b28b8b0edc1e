"""The graded cases: the shipped table and tensors of exercises/expected/ (or a grading's fresh ones), and
turning a case's argument descriptions into fresh Python objects for a call."""

import json
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file

from _models import ToyDenoiser, ToyNetwork

HERE = Path(__file__).resolve().parent
EXPECTED_DIR = HERE / "expected"
CASES_FILE = EXPECTED_DIR / "cases.json"
TENSORS_FILE = EXPECTED_DIR / "expected.safetensors"

_FRESH: dict = {}  # the cases drawn at grading time (use_fresh_cases), when they replace the shipped ones


def cases_table() -> dict:
    return _FRESH["table"] if _FRESH else _shipped_table()


def _tensors() -> dict:
    return _FRESH["tensors"] if _FRESH else _shipped_tensors()


@lru_cache(maxsize=1)
def _shipped_table() -> dict:
    return json.loads(CASES_FILE.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _shipped_tensors() -> dict:
    return load_file(str(TENSORS_FILE))


def shipped(key: str) -> torch.Tensor:
    """A fresh copy of a shipped tensor (the cached original is never handed out)."""
    return _tensors()[key].clone()


def schedule(name: str):
    """A fresh NoiseSchedule from the shipped arrays: it never runs your schedule code."""
    return decode({"schedule": name})


def decode(spec, tensors=None):
    """Turn a case's argument description (cases.json) into a fresh Python object.

    tensors: where tensor keys are looked up (default: the shipped file; the build's Maker passes its own).
    """
    if not isinstance(spec, dict):
        return spec
    if "tensor" in spec:
        return tensors[spec["tensor"]].clone() if tensors is not None else shipped(spec["tensor"])
    if "schedule" in spec:
        from mini_diffusion.toolkit.diffusion_process import NoiseSchedule

        key = f"schedule/{spec['schedule']}"
        return NoiseSchedule(*(decode({"tensor": f"{key}/{a}"}, tensors) for a in ("betas", "alpha_bars")))
    if "model" in spec:
        from _flow_models import VELOCITY_MODELS  # notebook 09's velocity models (t in [0, 1], no T)

        if spec["model"] in VELOCITY_MODELS:
            return VELOCITY_MODELS[spec["model"]]()
        return {"toy": ToyDenoiser, "toy_network": ToyNetwork}[spec["model"]](spec["T"])
    if "generator" in spec:
        return torch.Generator().manual_seed(spec["generator"])
    if "shape" in spec:
        return tuple(spec["shape"])
    raise ValueError(f"cases.json: unknown argument kind {spec!r}")


def build_call(case: dict, tensors=None):
    """(args, kwargs) of a case, every object fresh."""
    return [decode(a, tensors) for a in case["args"]], {k: decode(v, tensors) for k, v in case["kwargs"].items()}


def use_table(table: dict, tensors: dict) -> None:
    """Grade with these cases instead of the shipped ones (a grading's, drawn from its seed)."""
    _FRESH.update(table=table, tensors=tensors)


def grading_seed() -> int | None:
    """The grading seed of this run (the Gradescope judge's --grading-seed), or None for the shipped cases
    (local `pytest exercises/`, md.check)."""
    return cases_table().get("seed")
