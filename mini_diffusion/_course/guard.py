"""The prerequisite guard in every notebook's first cell: `md.prerequisites("04")`.

A notebook's cells use exercises of earlier notebooks (notebook 04 samples with your p_mean of
notebook 02). The guard names those that are not done yet and prints the exact line that lends
just those, so a learner who starts here is never stopped by an earlier exercise. It lends
nothing unless asked (`lend=True`), never a notebook's own exercises, and reads your files
without running them (in milliseconds).

"Done" means: lent, or its function in your file no longer holds the stub's
`raise NotImplementedError(todo(...))` line. Whether it is right is what `md.check` tells.
"""

import ast

from mini_diffusion._course import seam

from mini_diffusion._base import catalog


def unfinished(exercise_ids) -> list[str]:
    """The exercises among exercise_ids that are neither lent nor written yet, in course order."""
    missing = []
    stubs_by_module: dict[str, set] = {}
    for exercise in catalog.EXERCISES:
        if exercise.id not in exercise_ids or seam.is_lent(exercise.id):
            continue
        if exercise.module not in stubs_by_module:
            stubs_by_module[exercise.module] = _stub_functions(exercise.module)
        if exercise.function in stubs_by_module[exercise.module]:
            missing.append(exercise.id)
    return missing


def _stub_functions(module: str) -> set:
    """Names of the functions in your mini_diffusion/<module>.py that still raise the stub's message
    (all of them when the file does not parse: its exercises cannot run)."""
    path = seam.PACKAGE_DIR / f"{module}.py"
    every = {e.function for e in catalog.EXERCISES if e.module == module}
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return every
    stubs = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in every and _raises_todo(node):
            stubs.add(node.name)
    return stubs | (every - {n.name for n in tree.body if isinstance(n, ast.FunctionDef)})


def _raises_todo(function: ast.FunctionDef) -> bool:
    for node in ast.walk(function):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            called = node.exc.func
            if isinstance(called, ast.Name) and called.id == "NotImplementedError":
                args = node.exc.args
                if args and isinstance(args[0], ast.Call) and getattr(args[0].func, "id", None) == "todo":
                    return True
    return False


def prerequisites(notebook: str, lend: bool = False) -> list[str]:
    """Print which earlier exercises notebook `notebook` ("04") relies on and are not done yet, with
    the line that lends just those; with lend=True, lend them now. Returns the ids not done."""
    number = str(notebook).zfill(2)
    needs = catalog.needs(number)
    own = {e.id for e in catalog.exercises_of_notebook(number)}
    needs = [i for i in needs if i not in own]  # a notebook's own exercises are never lent for it
    missing = unfinished(needs)
    print(message(number, needs, missing))
    if lend and missing:
        seam.lend(*missing)
        print(f"Lent: {', '.join(missing)}.")
    return missing


def message(number: str, needs, missing) -> str:
    lent = seam.lent()
    lent_line = f"\nLent now (reference solutions in use): {', '.join(lent)}." if lent else ""
    if not needs:
        return f"Notebook {number} needs no exercise of an earlier notebook.{lent_line}"
    if not missing:
        return f"Notebook {number} builds on exercises {', '.join(needs)}: all written or lent. ✔{lent_line}"
    names = ", ".join(f"{i} {catalog.by_id(i).function}" for i in missing)
    quoted = ", ".join(f'"{i}"' for i in missing)
    return (
        f"Notebook {number} builds on exercises {', '.join(needs)}. Not written yet: {names}.\n"
        f"To go on without them, lend the reference solutions of just those (your own work stays yours):\n"
        f"    md.lend({quoted})                      in this notebook, no restart\n"
        f"    MINI_DIFFUSION_SOLUTIONS={','.join(missing)}    in a terminal, before `jupyter lab` or `pytest exercises/`"
        f"{lent_line}"
    )


def linear_schedule_or_reference(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
    """`md.linear_schedule(T, beta_start, beta_end)` from your exercises 1.1 and 1.2; while either is
    not written yet, the same schedule from the reference solutions, said in one line. For cells
    whose lesson is about something else (a plot of the loss weights, the cosine schedule...), so
    that the notebook goes on; your code is used as soon as it exists."""
    from mini_diffusion.toolkit.diffusion_process import NoiseSchedule, linear_schedule

    try:
        return linear_schedule(T, beta_start, beta_end)
    except NotImplementedError as stub:
        missing = unfinished(("1.1", "1.2")) or ["1.1", "1.2"]
        if seam.has_solutions():
            betas = seam.solution("1.1")(T, beta_start, beta_end)
            schedule = NoiseSchedule(betas, alpha_bars=seam.solution("1.2")(betas))
        elif (T, beta_start, beta_end) == (1000, 1e-4, 0.02):
            from mini_diffusion.toolkit import reference

            schedule = reference.load("moons", device="cpu")[1]  # the shipped models' own linear schedule
        else:
            raise stub
        print(f"(exercise {' and '.join(missing)} not written yet: this cell uses the reference linear schedule)")
        return schedule
