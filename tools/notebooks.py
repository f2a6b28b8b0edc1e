"""Keep the notebook pairs in step: notebooks/NN_name.py (the source of truth) and NN_name.ipynb.

    python tools/notebooks.py sync  [NAME ...]   # rebuild each .ipynb from its .py
    python tools/notebooks.py check [NAME ...]   # exit 1, saying what differs, if a pair is out of step
    python tools/notebooks.py strip [NAME ...]   # drop outputs you saved in an .ipynb (keeps checked ones)

NAME is a notebook's number ("01") or name ("01_forward_process"); none means all of them.

The .ipynb is committed without outputs, so learners start fresh and diffs stay readable. The
exception is a code cell whose first line is `# NBVAL_CHECK_OUTPUT`: nbval compares what it
prints with the stored output. So `sync` executes the notebook with the reference solutions
(MINI_DIFFUSION_SOLUTIONS=1, as CI does) up to its last such cell, and keeps those outputs only.
A notebook without checked cells is not executed at all.
"""

import argparse
import copy
import hashlib
import os
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"
CHECK_TAG = "nbval-check-output"
KEPT_OUTPUT_TYPES = ("stream", "execute_result")


def is_checked(cell) -> bool:
    """Does nbval compare this cell's output? (marker comment on its first line, or the tag)."""
    if cell.cell_type != "code":
        return False
    first_line = cell.source.lstrip().split("\n", 1)[0].strip()
    return first_line == CHECK_MARKER or CHECK_TAG in cell.metadata.get("tags", [])


def pairs(names=(), folder: Path = NOTEBOOKS) -> list[tuple[Path, Path]]:
    """(source .py, notebook .ipynb) for the named notebooks, or all numbered ones in `folder`."""
    sources = sorted(folder.glob("[0-9][0-9]_*.py"))
    if names:
        wanted = [Path(name).stem for name in names]
        chosen = [p for p in sources if any(p.stem == w or p.stem.split("_", 1)[0] == w for w in wanted)]
        found = {p.stem for p in chosen} | {p.stem.split("_", 1)[0] for p in chosen}
        missing = [w for w in wanted if w not in found]
        if missing:
            raise SystemExit(f"no notebook source {', '.join(missing)} in {folder} (have: {', '.join(p.stem for p in sources)})")
        sources = chosen
    return [(source, source.with_suffix(".ipynb")) for source in sources]


def _cell_id(cell, seen: set) -> str:
    # Derived from the content rather than random (jupytext's default), so rebuilding an
    # unchanged notebook gives a byte-identical file and an edit changes only its own cell.
    digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()
    for start in range(0, len(digest) - 7, 8):
        candidate = digest[start : start + 8]
        if candidate not in seen:
            break
    else:
        candidate = f"{digest[:8]}-{len(seen)}"
    seen.add(candidate)
    return candidate


def build(source: Path):
    """The notebook a .py source describes, with no outputs and stable cell ids."""
    nb = jupytext.read(source)
    nb.metadata.pop("jupytext", None)  # the pairing lives in notebooks/jupytext.toml
    seen = set()
    for cell in nb.cells:
        cell.id = _cell_id(cell, seen)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def _clean_outputs(outputs, execution_count: int, where: str) -> list:
    kept = []
    for output in outputs:
        if output.output_type == "error":
            raise RuntimeError(f"{where} raised {output.ename}: {output.evalue}")
        if output.output_type == "stream" and output.name == "stderr":
            raise RuntimeError(
                f"{where} wrote to stderr ({output.text.strip()[:200]!r}); a checked cell must print only "
                "deterministic values, or nbval will compare the warning too"
            )
        if output.output_type not in KEPT_OUTPUT_TYPES:
            raise RuntimeError(f"{where} displays {output.output_type}; a checked cell should only print text")
        output = copy.deepcopy(output)
        if output.output_type == "execute_result":
            output.execution_count = execution_count
            output.data = {"text/plain": output.data["text/plain"]}
            output.metadata = {}
        kept.append(output)
    return kept


def execute_checked(nb, folder: Path, timeout: int = 600) -> None:
    """Run `nb` up to its last checked cell (solutions switched on) and store those cells' outputs."""
    from nbclient import NotebookClient

    checked = [i for i, cell in enumerate(nb.cells) if is_checked(cell)]
    if not checked:
        return
    head = copy.deepcopy(nb)
    head.cells = head.cells[: checked[-1] + 1]
    previous = os.environ.get("MINI_DIFFUSION_SOLUTIONS")
    os.environ["MINI_DIFFUSION_SOLUTIONS"] = "1"
    try:
        client = NotebookClient(
            head, timeout=timeout, kernel_name="python3", record_timing=False, resources={"metadata": {"path": str(folder)}}
        )
        client.execute()
    finally:
        if previous is None:
            del os.environ["MINI_DIFFUSION_SOLUTIONS"]
        else:
            os.environ["MINI_DIFFUSION_SOLUTIONS"] = previous
    for i in checked:
        where = f"checked cell {i} ({nb.cells[i].source.splitlines()[1:2]})"
        # nbval ignores stored outputs of a cell without an execution count ("unrun"), so the
        # checked cells keep theirs; it is deterministic, as the notebook runs top to bottom.
        count = head.cells[i].execution_count
        outputs = _clean_outputs(head.cells[i].outputs, count, where)
        if not outputs:
            raise RuntimeError(f"{where} printed nothing; there is nothing for nbval to compare")
        nb.cells[i].outputs = outputs
        nb.cells[i].execution_count = count


def write(nb, path: Path) -> bool:
    """Write `nb` to `path` unless the file already holds exactly that; True when it changed."""
    text = nbformat.writes(nb) + "\n"
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def sync(names=(), folder: Path = NOTEBOOKS, log=print) -> None:
    for source, target in pairs(names, folder):
        nb = build(source)
        execute_checked(nb, folder)
        changed = write(nb, target)
        log(f"{target.name}: {'rebuilt' if changed else 'up to date'}")


def strip_outputs(nb) -> None:
    """Remove every output and execution count except those of checked cells."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        if not is_checked(cell):
            cell.outputs = []
            cell.execution_count = None


def strip(names=(), folder: Path = NOTEBOOKS, log=print) -> None:
    for _, target in pairs(names, folder):
        nb = nbformat.read(target, as_version=4)
        strip_outputs(nb)
        if write(nb, target):
            log(f"{target.name}: outputs stripped")


def _comparable(cell) -> tuple:
    metadata = {k: v for k, v in cell.metadata.items() if k not in ("execution", "collapsed", "scrolled", "trusted")}
    return cell.cell_type, cell.source, metadata


def problems(names=(), folder: Path = NOTEBOOKS) -> list[str]:
    """Every way in which the pairs in `folder` are out of step (empty when all is well)."""
    found = []
    sources = {p.stem for p in folder.glob("[0-9][0-9]_*.py")}
    for orphan in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        if orphan.stem not in sources and (not names or orphan.stem in names or orphan.stem[:2] in names):
            found.append(f"{orphan.name} has no {orphan.stem}.py source next to it")
    for source, target in pairs(names, folder):
        if not target.exists():
            found.append(f"{target.name} is missing: run `python tools/notebooks.py sync {source.stem}`")
            continue
        expected, stored = build(source), nbformat.read(target, as_version=4)
        fix = f"run `python tools/notebooks.py sync {source.stem}`"
        want, have = [_comparable(c) for c in expected.cells], [_comparable(c) for c in stored.cells]
        if want != have:
            first = next((i for i, (a, b) in enumerate(zip(want, have)) if a != b), min(len(want), len(have)))
            found.append(
                f"{target.name} differs from {source.name} at cell {first} "
                f"({len(want)} cells in the source, {len(have)} in the notebook): {fix}"
            )
            continue
        for i, cell in enumerate(stored.cells):
            if cell.cell_type != "code":
                continue
            if is_checked(cell) and not cell.outputs:
                found.append(f"{target.name} cell {i} is NBVAL_CHECK_OUTPUT but has no stored output: {fix}")
            elif not is_checked(cell) and (cell.outputs or cell.execution_count is not None):
                found.append(f"{target.name} cell {i} has saved outputs: run `python tools/notebooks.py strip {source.stem}`")
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["sync", "check", "strip"])
    parser.add_argument("names", nargs="*", help="notebook numbers or names (default: all)")
    args = parser.parse_args(argv)
    if args.command == "sync":
        sync(args.names)
    elif args.command == "strip":
        strip(args.names)
    else:
        found = problems(args.names)
        for problem in found:
            print(problem, file=sys.stderr)
        if found:
            return 1
        print(f"{len(pairs(args.names))} notebook pair(s) in step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
