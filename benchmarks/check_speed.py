"""How long `md.check` makes a learner wait: the first call (which starts the warm worker) and the
median of the next ones.

    python benchmarks/check_speed.py [--calls 20] [--exercise 1.3]

The checks run exactly as in a notebook (`mini_diffusion._course.check.run_checks`), once with
the learner's stubs and once with the exercise lent; times are wall-clock seconds.
"""

import argparse
import statistics
import time


def measure(exercise: str, calls: int, lend: bool) -> tuple[float, float]:
    from mini_diffusion._course import check

    check._WORKERS.clear()
    solutions = (exercise,) if lend else ()
    start = time.perf_counter()
    check.run_checks([exercise], solutions=solutions)
    first = time.perf_counter() - start
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        check.run_checks([exercise], solutions=solutions)
        times.append(time.perf_counter() - start)
    for worker in check._WORKERS.values():
        worker.close()
    return first, statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--exercise", default="1.3")
    args = parser.parse_args(argv)
    print(f"md.check({args.exercise!r}), {args.calls} calls after the first")
    print(f"{'code':<22}{'first call (s)':>16}{'median (s)':>12}")
    for label, lend in (("the learner's stub", False), ("lent solution", True)):
        first, median = measure(args.exercise, args.calls, lend)
        print(f"{label:<22}{first:>16.2f}{median:>12.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
