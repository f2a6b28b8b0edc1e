"""The rooms of the package and what each may import (docs/architecture.md says why).

Every import in the package, including the ones inside functions, is read from the source with
`ast`, so a lazy import that reaches across rooms fails here as surely as one at the top.
"""

import ast
import sys
from pathlib import Path

import pytest

from mini_diffusion._base.catalog import EXERCISE_MODULES

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mini_diffusion"
STDLIB = set(sys.stdlib_module_names)


def room(module: str) -> str:
    """learner, toolkit, base (_base/: the catalog and the door), machinery, or package (the __init__ wiring)."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] == "_base":
        return "base"
    if parts[0] == "solutions" or (len(parts) == 2 and parts[1] in EXERCISE_MODULES):
        return "learner"
    if len(parts) >= 2 and parts[1] == "toolkit":
        return "toolkit"
    if len(parts) >= 2 and parts[1] == "_course":
        return "machinery"
    if module in ("mini_diffusion", "mini_diffusion.__main__"):
        return "package"
    return "outside"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, as absolute names (relative imports resolved)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from mini_diffusion.toolkit import data` imports the submodule data (and runs the
            # folder's __init__, which imports nothing)
            submodules = {f"{base}.{alias.name}" for alias in node.names} & ALL_MODULES
            found.update(submodules or {base})
    return {name for name in found if name.split(".")[0] in ("mini_diffusion", "solutions")}


SOURCES = sorted(p for p in [*PACKAGE.rglob("*.py"), *(ROOT / "solutions").glob("*.py")] if "__pycache__" not in p.parts)
ALL_MODULES = {module_name(p) for p in SOURCES}
EDGES = {module_name(p): imports_of(p) for p in SOURCES}

# room -> the rooms it may import. The seam is the one door from ready code to an exercise:
# it imports learner modules by name at run time (importlib), never with an import statement.
ALLOWED = {
    "base": {"base"},
    "toolkit": {"toolkit", "base"},
    "learner": {"learner", "toolkit", "base"},
    "machinery": {"machinery", "toolkit", "base"},
    "package": {"base", "toolkit", "machinery"},
}


def room_graph() -> dict[str, set[str]]:
    graph = {}
    for module, targets in EDGES.items():
        graph.setdefault(room(module), set()).update(room(t) for t in targets if room(t) != room(module))
    return graph


@pytest.mark.parametrize("module", sorted(EDGES))
def test_each_module_imports_only_the_rooms_it_may(module):
    source_room = room(module)
    assert source_room in ALLOWED, f"{module} is in no room: put it in toolkit/ or _course/"
    wrong = sorted(t for t in EDGES[module] if room(t) not in ALLOWED[source_room])
    assert not wrong, (f"{module} ({source_room}) imports {', '.join(wrong)}; a {source_room} module may import only "
                       f"{', '.join(sorted(ALLOWED[source_room]))}. Ready and machinery code reach an exercise "
                       "through mini_diffusion._base.door.implementation(id).")


def test_the_base_of_the_house_imports_only_the_standard_library():
    for path in sorted((PACKAGE / "_base").glob("*.py")):
        module = f"mini_diffusion._base.{path.stem}"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        outside = {(n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
                   for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                   for a in (n.names if isinstance(n, ast.Import) else [n])
                   if not (isinstance(n, ast.ImportFrom) and n.level)}
        third_party = outside - STDLIB - {"mini_diffusion"}
        assert not third_party, f"{module} imports {third_party}: the catalog and the door load before torch is needed"


def test_no_room_imports_upwards():
    order = ["base", "toolkit", "learner", "machinery", "package"]
    graph = room_graph()
    for source, targets in graph.items():
        for target in targets:
            if target == "outside":
                continue
            assert order.index(target) < order.index(source) or (source, target) == ("machinery", "toolkit"), (
                f"{source} imports {target}: the rooms import downwards only ({' <- '.join(order)})")


def test_listing_the_package_shows_the_learners_files_and_two_folders():
    shown = sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__")
    expected = sorted([f"{m}.py" for m in EXERCISE_MODULES] + ["__init__.py", "__main__.py", "toolkit", "_course", "_base"])
    assert shown == expected, f"mini_diffusion/ should hold the exercise files, toolkit/, _course/ and _base/ only: {shown}"


def test_exercise_files_hold_only_exercise_functions():
    from mini_diffusion._base.catalog import EXERCISES

    for module in EXERCISE_MODULES:
        tree = ast.parse((ROOT / "solutions" / f"{module}.py").read_text(encoding="utf-8"))
        functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")}
        exercises = {e.function for e in EXERCISES if e.module == module}
        extra = functions - exercises
        assert not extra, (f"solutions/{module}.py defines {sorted(extra)} besides its exercises: ready helpers "
                           "belong in mini_diffusion/toolkit/")


if __name__ == "__main__":  # python tests/test_architecture.py prints the room graph
    for source, targets in sorted(room_graph().items()):
        print(f"{source:10s} -> {', '.join(sorted(targets)) or '(nothing)'}")


def test_toolkit_imports_nothing_from_the_machinery():
    """The ready parts stand on the base room only (issue 25): no toolkit module names _course, even inside a function."""
    for path in sorted((PACKAGE / "toolkit").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        named = {(n.module if isinstance(n, ast.ImportFrom) else a.name) or "" for n in ast.walk(tree)
                 if isinstance(n, (ast.Import, ast.ImportFrom)) for a in (n.names if isinstance(n, ast.Import) else [n])}
        assert not [m for m in named if m.startswith("mini_diffusion._course")], f"toolkit/{path.name} imports {named}"
