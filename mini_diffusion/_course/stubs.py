"""Make the learner's exercise files from the solutions (`python tools/build.py` runs this).

    python -m mini_diffusion._course.stubs           # rewrite mini_diffusion/<module>.py from solutions/
    python -m mini_diffusion._course.stubs --check   # exit 1 (and say which) if a committed stub is stale

Each block between `# BEGIN SOLUTION` and `# END SOLUTION` becomes one line,
`raise NotImplementedError(todo("<function>"))`, at the block's indentation; everything
else (imports, signature, docstring with the formula, argument checks) is kept. A block must
be the end of its function, so the stub holds no unreachable code.
"""

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the course folder
SOLUTIONS = ROOT / "solutions"
PACKAGE = ROOT / "mini_diffusion"

BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION\s*$")
END = re.compile(r"^(\s*)# END SOLUTION\s*$")
DEF = re.compile(r"^(\s*)def (\w+)\(")

HEADER = (
    "# Your exercise file: replace each `raise NotImplementedError(...)` line with your code.\n"
    "# (Made from solutions/{name} by tools/build.py; the notebooks tell you what to write.)\n"
    "# ruff: noqa: F401, F841  (the imports and names your code will use are already here)\n"
)
TODO_IMPORT = "from mini_diffusion._base.catalog import todo\n"


def make_stub(source: str, name: str) -> str:
    lines = source.splitlines(keepends=True)
    out, function, inside, seen = [], None, False, False
    for number, line in enumerate(lines, 1):
        if (m := DEF.match(line)) and not inside:
            function, seen = (m.group(2), len(m.group(1))), False
            out.append(line)
        elif m := BEGIN.match(line):
            if inside or function is None or seen:
                raise ValueError(f"{name}:{number}: a solution block must sit alone inside one function")
            inside, seen = True, True
            out.append(f'{m.group(1)}raise NotImplementedError(todo("{function[0]}"))\n')
        elif END.match(line):
            if not inside:
                raise ValueError(f"{name}:{number}: END SOLUTION without BEGIN")
            inside = False
        elif inside:
            continue
        else:
            if seen and line.strip() and len(line) - len(line.lstrip()) > function[1]:
                raise ValueError(f"{name}:{number}: code after a solution block would be unreachable in the stub")
            out.append(line)
    if inside:
        raise ValueError(f"{name}: BEGIN SOLUTION without END")
    stub = "".join(out)
    if "NotImplementedError(todo(" not in stub:
        return stub
    stub = _add_import(stub)
    return HEADER.format(name=name) + stub


def _add_import(stub: str) -> str:
    """Put `from mini_diffusion._base.catalog import todo` after the last top-level import."""
    lines = stub.splitlines(keepends=True)
    last = max((i for i, line in enumerate(lines) if line.startswith(("import ", "from "))), default=None)
    if last is None:
        raise ValueError("a solution module needs at least one import line")
    lines.insert(last + 1, TODO_IMPORT)
    return "".join(lines)


def stubs(root: Path = ROOT) -> dict[Path, str]:
    return {
        Path(root) / "mini_diffusion" / path.name: make_stub(path.read_text(encoding="utf-8"), path.name)
        for path in sorted((Path(root) / "solutions").glob("*.py"))
        if path.name != "__init__.py"
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report stale stubs; change nothing")
    args = parser.parse_args(argv)
    stale = []
    for path, text in stubs().items():
        current = path.read_text() if path.exists() else None
        if current != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(text)
    if args.check and stale:
        print("stale stubs (run `python tools/build.py`):", *stale, sep="\n  ")
        return 1
    print(("up to date" if not stale else "wrote " + ", ".join(map(str, stale))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
