"""The grade report: the table `pytest exercises/` prints and the results.json Gradescope reads."""

import sys
from pathlib import Path

_LENT_NOTE = "passed with the reference solution, which is lent (MINI_DIFFUSION_SOLUTIONS / md.lend): not your code"


def _lent() -> tuple:
    """The exercises lent in this session (see MINI_DIFFUSION_SOLUTIONS): graded, but said to be lent.
    Never in isolation (the Gradescope judge): the code graded there is the worker's, which has no
    solutions to lend, whatever this process's MINI_DIFFUSION_SOLUTIONS or md.lend say."""
    import _grading

    if _grading.isolated():
        return ()
    module = sys.modules.get("mini_diffusion._course.seam")
    return module.lent() if module is not None else ()


_COLLECT_ERRORS: list = []  # (file, message) for grader files that did not load


def _uses(exercise_id: str) -> tuple:
    try:
        import _spec

        return _spec.uses(exercise_id)
    except Exception:  # noqa: BLE001 - a spec that does not load shows as a collection error already
        return ()


def _function_name(exercise_id: str) -> str:
    try:
        from mini_diffusion._base.catalog import by_id

        return by_id(exercise_id).function
    except Exception:  # noqa: BLE001 - the table still works without the package
        return "?"


def _by_exercise(results: dict) -> list:
    rows = {}
    for entry in results.values():
        row = rows.setdefault(entry["exercise"], {"exercise": entry["exercise"], "function": entry["function"],
                                                  "score": 0, "max_score": 0, "status": "passed", "reason": ""})
        row["score"] += entry["score"]
        row["max_score"] += entry["max_score"]
        if entry["status"] != "passed" and row["status"] == "passed":
            row["status"], row["reason"] = entry["status"], entry["output"]
    return sorted(rows.values(), key=lambda r: tuple(int(p) for p in r["exercise"].split(".")))


def _table(results: dict, width: int = 100) -> str:
    rows = _by_exercise(results)
    lines = []
    for row in rows:
        status = "lent (the reference solution, not yours)" if row["exercise"] in _lent() else row["status"]
        left = f"{row['exercise']:>4}  {row['function']:<22} {row['score']:>2g}/{row['max_score']:<2g}  {status}"
        reason = " ".join(row["reason"].split()) if row["status"] != "not implemented" else ""
        if reason:
            room = max(20, width - len(left) - 3)
            left += ": " + (reason if len(reason) <= room else reason[: room - 1] + "…")
        lines.append(left)
    score, total = sum(r["score"] for r in rows), sum(r["max_score"] for r in rows)
    lent = [r["exercise"] for r in rows if r["exercise"] in _lent()]
    lines.append(f"total: {score:g}/{total:g} points" + (
        f" ({sum(r['score'] for r in rows if r['exercise'] in lent):g} of them from lent reference solutions: "
        f"{', '.join(lent)})" if lent else ""))
    for path, _ in _COLLECT_ERRORS:
        lines.append(f"(grader file {Path(path).name} could not be loaded: its exercises are missing above)")
    return "\n".join(lines)


def gradescope_results(results: dict, seconds: float) -> dict:
    tests = [{
        "name": f"{e['exercise']} {e['function']}: {e['title']}",
        "number": e["exercise"],
        "score": e["score"],
        "max_score": e["max_score"],
        "status": "passed" if e["status"] == "passed" else "failed",
        "output": e["output"] or "passed",
        "visibility": "after_due_date" if e["hidden"] else "visible",
    } for e in results.values()]
    for path, message in _COLLECT_ERRORS:
        tests.append({"name": f"grader file {Path(path).name}", "score": 0, "max_score": 0, "status": "failed",
                      "output": f"could not be loaded: {message}", "visibility": "visible"})
    return {
        "score": sum(t["score"] for t in tests),
        "max_score": sum(t["max_score"] for t in tests),
        "execution_time": round(seconds, 2),
        "output": _table({k: e for k, e in results.items() if not e["hidden"]}) + _hidden_note(results),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": _graded_package(),
    }


def _hidden_note(results: dict) -> str:
    hidden = [e for e in results.values() if e["hidden"]]
    if not hidden:
        return ""
    return (f"\n(and {len(hidden)} hidden checks, worth {sum(e['max_score'] for e in hidden):g} points, "
            "shown after the due date)")


def _graded_package() -> dict:
    """Which mini_diffusion was graded (an instructor's sanity check, and the grader's own tests')."""
    import _grading

    if _grading.isolated():  # the judge's own package is not the one graded: the worker's tree is
        tree = _grading._HOST["remote"][0]
        inside = [name for name, m in list(sys.modules.items())
                  if str(getattr(m, "__file__", None) or "").startswith(str(tree))]
        return {"package": str((tree / "mini_diffusion").resolve()), "solutions_in_use": [], "isolated": True,
                "judge_imported_from_worker_tree": inside}  # must stay empty: the judge only calls
    module = sys.modules.get("mini_diffusion")
    if module is None:
        return {}
    return {"package": str(Path(module.__file__).resolve().parent), "solutions_in_use": list(module.solutions_in_use())}
