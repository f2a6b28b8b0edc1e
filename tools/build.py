"""Make everything the specs (exercises/test_NN_*.py) and the solutions (solutions/) determine.

    python tools/build.py           # rewrite what is stale
    python tools/build.py --check   # exit 1, naming what is stale; change nothing

The parts, in this order:
  catalog    mini_diffusion/_base/catalog.json: notebooks and exercises (ids, functions, points,
             titles, uses, needs), read by the package (_base/catalog.py)
  stubs      mini_diffusion/<module>.py, the learner's exercise files, from solutions/ (_course/stubs.py)
  expected   exercises/expected/{cases.json, expected.safetensors}: every spec's cases with the
             solution's output and the outputs of the known wrong variants that differ from it
  readme     the table of notebooks in README.md, between <!-- notebooks:start --> and <!-- notebooks:end -->
  notebooks  notebooks/NN_*.ipynb rebuilt from their jupytext .py sources (tools/notebooks.py sync)
"""

import argparse
import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

# The solutions call each other through the package (a sampler's ddim_timesteps is looked up as
# exercise 6.1): lend them all, before mini_diffusion is imported, so that only solutions run.
os.environ["MINI_DIFFUSION_SOLUTIONS"] = "1"

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "exercises"
for path in (ROOT, EXERCISES, ROOT / "tools"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import _maker  # noqa: E402  (exercises/_maker.py: the cases and their expected values)
import _spec  # noqa: E402  (exercises/_spec.py: the specs)

CATALOG_JSON = ROOT / "mini_diffusion" / "_base" / "catalog.json"
EXPECTED_DIR = EXERCISES / "expected"
README = ROOT / "README.md"
TABLE_START, TABLE_END = "<!-- notebooks:start -->", "<!-- notebooks:end -->"
PARTS = ("catalog", "stubs", "expected", "readme", "notebooks")


# --- catalog -------------------------------------------------------------------------------


def catalog_text() -> str:
    return json.dumps(_spec.catalog(), indent=1, ensure_ascii=False) + "\n"


# --- README --------------------------------------------------------------------------------


def readme_table() -> str:
    rows = ["| notebook | idea | you implement |", "|---|---|---|"]
    for m in _spec.specs():
        done = ", ".join(f"{e.id} `{e.function}`" for e in m.EXERCISES) or "—"
        rows.append(f"| `{m.NOTEBOOK.file}` | {m.NOTEBOOK.idea} | {done} |")
    return "\n".join(rows) + "\n"


def readme_text(current: str) -> str:
    start, end = current.find(TABLE_START), current.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no {TABLE_START} ... {TABLE_END} markers around the table of notebooks")
    return current[: start + len(TABLE_START)] + "\n" + readme_table() + current[end:]


# --- expected values -------------------------------------------------------------------------


def check_mistakes(mk) -> dict:
    """The merged mistake table; every wrong variant must have its message."""
    table = _spec.mistakes()
    missing = sorted({key for found in _spec.variants().values() for key in found} - set(table))
    if missing:
        raise ValueError(f"wrong variants without a message in any spec's MISTAKES: {missing}")
    return table


def expected_table(mk) -> dict:
    messages = check_mistakes(mk)
    used = sorted({key for ex in mk.exercises.values() for case in ex["cases"].values() for key in case["mistakes"]})
    return {
        "made_by": "python tools/build.py (from exercises/test_*.py and solutions/); do not edit by hand",
        "mistakes": {key: messages[key] for key in used},
        "exercises": mk.exercises,
    }


def write_expected(mk, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(mk.tensors, str(folder / "expected.safetensors"), metadata={"made_by": "tools/build.py"})
    text = json.dumps(expected_table(mk), indent=1, ensure_ascii=False) + "\n"
    (folder / "cases.json").write_text(text, encoding="utf-8")


def _same_values(shipped: torch.Tensor, fresh: torch.Tensor) -> bool:
    """Equal up to rounding: float64 to 1e-9; float32 to a few units in the last place of the
    tensor's scale (another CPU's vector instructions round float32 differently)."""
    a, b = shipped.double(), fresh.double()
    if fresh.dtype != torch.float32 or fresh.numel() == 0:
        return torch.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True)
    scale = b.abs().nan_to_num(posinf=0).max().item()
    return torch.allclose(a, b, rtol=0, atol=max(1e-6 * scale, 1e-12), equal_nan=True)


def expected_differences(mk, folder: Path = EXPECTED_DIR) -> list[str]:
    """What differs between a fresh run and the files in folder (empty: they are current)."""
    problems = []
    try:
        shipped = load_file(str(folder / "expected.safetensors"))
        table = json.loads((folder / "cases.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return [f"cannot read {folder}: {err}"]
    fresh = json.loads(json.dumps(expected_table(mk)))
    if table.get("exercises") != fresh["exercises"]:
        problems.append("cases.json: the cases or their mistakes differ")
    if table.get("mistakes") != fresh["mistakes"]:
        problems.append("cases.json: the mistake messages differ")
    for key in sorted(set(shipped) | set(mk.tensors)):
        if key not in shipped or key not in mk.tensors:
            problems.append(f"tensor {key} is {'missing' if key not in shipped else 'no longer made'}")
        elif shipped[key].dtype != mk.tensors[key].dtype or shipped[key].shape != mk.tensors[key].shape or not _same_values(
                shipped[key], mk.tensors[key]):
            problems.append(f"tensor {key} differs")
    return problems


# --- all parts -------------------------------------------------------------------------------


def _text_part(path: Path, text: str, check: bool) -> list[str]:
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if current == text:
        return []
    if not check:
        path.write_text(text, encoding="utf-8")
    return [str(path.relative_to(ROOT))]


def build(check: bool = False, parts=PARTS) -> dict:
    """part -> what was stale (and, unless check, is now rewritten)."""
    torch.set_num_threads(1)
    stale = {}
    if "catalog" in parts:
        stale["catalog"] = _text_part(CATALOG_JSON, catalog_text(), check)
    if "stubs" in parts:
        from mini_diffusion._course.stubs import stubs  # after the catalog: the package reads it

        stale["stubs"] = [found for path, text in stubs(ROOT).items() for found in _text_part(path, text, check)]
    if "expected" in parts:
        mk = _maker.make()
        problems = expected_differences(mk, EXPECTED_DIR)
        if problems and not check:
            write_expected(mk, EXPECTED_DIR)
        stale["expected"] = problems
    if "readme" in parts:
        stale["readme"] = _text_part(README, readme_text(README.read_text(encoding="utf-8")), check)
    if "notebooks" in parts:
        import notebooks  # tools/notebooks.py, next to this file

        stale["notebooks"] = notebooks.problems()
        if stale["notebooks"] and not check:
            notebooks.sync(log=lambda line: None)
    return stale


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report what is stale; change nothing")
    parser.add_argument("--only", choices=PARTS, action="append", help="this part only (repeatable)")
    args = parser.parse_args(argv)
    stale = build(check=args.check, parts=tuple(args.only or PARTS))
    for part, found in stale.items():
        if found:
            shown = found[:20] + ([f"... and {len(found) - 20} more"] if len(found) > 20 else [])
            print(f"{part}: {'stale' if args.check else 'rewritten'}:", *shown, sep="\n  ")
        else:
            print(f"{part}: up to date")
    if args.check and any(stale.values()):
        print("run `python tools/build.py` to update them")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
