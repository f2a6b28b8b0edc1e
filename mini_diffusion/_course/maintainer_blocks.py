"""Maintainer blocks: a spec without the lines from `# BEGIN MAINTAINER` to `# END MAINTAINER`.

A spec (exercises/test_NN_*.py) keeps its maintainer block (the mistakes, wrong variants, cases
and mutants the build uses, close to the answers) between those markers. The student copy leaves
the blocks out (student_release.py calls `strip_maintainer_blocks` on its exercises/), and
exercises/_spec.py's strip_maintainer shows a spec as shipped (`strip_maintainer`).
"""

import re
from pathlib import Path

MAINTAINER_BEGIN = re.compile(r"^\s*# BEGIN MAINTAINER\s*$")
MAINTAINER_END = re.compile(r"^\s*# END MAINTAINER\s*$")


def strip_maintainer(source: str, name: str) -> str:
    """A spec (exercises/test_NN_*.py) without its maintainer block: the lines from `# BEGIN
    MAINTAINER` to `# END MAINTAINER` (the mistakes, wrong variants, cases and mutants the build
    uses, close to the answers). The markers must pair up, as the solution blocks' do (_course/stubs.py)."""
    out, inside = [], False
    for number, line in enumerate(source.splitlines(keepends=True), 1):
        if MAINTAINER_BEGIN.match(line):
            if inside:
                raise ValueError(f"{name}:{number}: BEGIN MAINTAINER inside a maintainer block")
            inside = True
        elif MAINTAINER_END.match(line):
            if not inside:
                raise ValueError(f"{name}:{number}: END MAINTAINER without BEGIN")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{name}: BEGIN MAINTAINER without END")
    return "".join(out).rstrip("\n") + "\n"


def strip_maintainer_blocks(folder: Path) -> None:
    """Strip the maintainer block of every spec in a copied exercises/ folder (hidden/ included)."""
    for path in sorted(Path(folder).rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if any(MAINTAINER_BEGIN.match(line) or MAINTAINER_END.match(line) for line in text.splitlines()):
            path.write_text(strip_maintainer(text, path.name), encoding="utf-8")
