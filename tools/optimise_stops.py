"""Optimise where a few-step ODE sampler stops, for one reference model, and ship the stops in its manifest.

    python tools/optimise_stops.py --model moons --write            # optimise, and write moons.json's "stops"
    python tools/optimise_stops.py --model digits --n 128 --out benchmarks/results/stops_digits.json

For each sampler and step count, the stops t_0 = T > t_1 > … > t_(N-1) ≥ 1 (integer timesteps, where
the network was trained) are moved one at a time, by factors of t, and a move is kept when it lowers
the discretisation error: the mean distance between the sampler's output and a 1000-step solve of
the same probability-flow ODE from the same x_T (--n starting points drawn with seed 12345, none of
the benchmark's seeds). It starts from the "quadratic" spacing and sweeps until no move helps (at
most --sweeps times). The result is a table {sampler: {num_steps: [timesteps]}} that
mini_diffusion.toolkit.multistep.optimised_timesteps reads back from the manifest's "stops" key.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MINI_DIFFUSION_SOLUTIONS", "1")  # "trailing"/"quadratic" stops ask the seam (exercise 6.1)

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mini_diffusion.toolkit import multistep, ode, reference  # noqa: E402

SHAPES = {"moons": (2,), "digits": (1, 8, 8)}
# name -> the sampler with its options; "dpm" is exercise 7.3's DPM-Solver++(2M) (= UniP-2 without its corrector)
SAMPLERS = {
    "dpm": lambda: (multistep.unipc_sample, {"order": 2, "corrector": False}),
    "dpm3m": lambda: (multistep.dpm_solver_3m_sample, {}),
    "unipc2": lambda: (multistep.unipc_sample, {"order": 2}),
    "unipc3": lambda: (multistep.unipc_sample, {"order": 3}),
}
FACTORS = (0.6, 0.8, 0.9, 0.95, 1.05, 1.1, 1.25, 1.6)


def reference_solve(model, schedule, x_T):
    """The ODE's answer: UniPC-3 on all T timesteps (converged: its change from 500 steps is < 1e-3 of it)."""
    return multistep.unipc_sample(model, x_T.shape, schedule, schedule.T, order=3, x_T=x_T)


def error(model, schedule, sampler, x_T, target, timesteps) -> float:
    fn, options = SAMPLERS[sampler]()
    x0 = fn(model, x_T.shape, schedule, len(timesteps), spacing=list(timesteps), x_T=x_T, **options)
    return float((x0 - target).flatten(1).norm(dim=1).mean())


def optimise(model, schedule, sampler, num_steps, x_T, target, sweeps=6):
    timesteps = ode.quadratic_timesteps(schedule.T, num_steps).tolist()
    best = error(model, schedule, sampler, x_T, target, timesteps)
    start = best
    for _ in range(sweeps):
        improved = False
        for i in range(1, num_steps):
            above = timesteps[i - 1]
            below = timesteps[i + 1] if i + 1 < num_steps else 0
            for factor in FACTORS:
                t = int(round(timesteps[i] * factor))
                if not below < t < above or t == timesteps[i]:
                    continue
                trial = [*timesteps[:i], t, *timesteps[i + 1:]]
                score = error(model, schedule, sampler, x_T, target, trial)
                if score < best:
                    best, timesteps, improved = score, trial, True
        if not improved:
            break
    return timesteps, start, best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=list(SHAPES), default="moons")
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=list(SAMPLERS))
    parser.add_argument("--steps", nargs="+", type=int, default=[5, 8, 10, 15])
    parser.add_argument("--n", type=int, default=512, help="starting points x_T the error is averaged over")
    parser.add_argument("--sweeps", type=int, default=6)
    parser.add_argument("--out", type=Path, help="also write the table (and the errors) to this JSON file")
    parser.add_argument("--write", action="store_true", help="write the stops into the model's manifest ('stops' key)")
    parser.add_argument("--from-json", type=Path, help="optimise nothing: write the stops of this --out file")
    args = parser.parse_args(argv)
    _, manifest_path = reference.paths(args.model)
    if args.from_json:
        table = json.loads(args.from_json.read_text())["stops"]
    else:
        torch.set_num_threads(1)
        model, schedule, _ = reference.load(args.model, device="cpu")
        x_T = torch.randn((args.n, *SHAPES[args.model]), generator=torch.Generator().manual_seed(12345))
        started = time.perf_counter()
        with torch.no_grad():
            target = reference_solve(model, schedule, x_T)
            table, errors = {}, {}
            for sampler in args.samplers:
                for steps in args.steps:
                    timesteps, start, best = optimise(model, schedule, sampler, steps, x_T, target, args.sweeps)
                    table.setdefault(sampler, {})[str(steps)] = timesteps
                    errors.setdefault(sampler, {})[str(steps)] = {"quadratic": round(start, 5), "optimised": round(best, 5)}
                    print(f"{args.model} {sampler:7s} {steps:3d} steps: error {start:.4f} (quadratic) -> {best:.4f}  "
                          f"{timesteps}  [{time.perf_counter() - started:.0f} s]", flush=True)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"model": args.model, "n": args.n, "seed": 12345, "stops": table,
                                            "errors": errors}, indent=1) + "\n")
    if args.write:
        manifest = json.loads(manifest_path.read_text())
        manifest["stops"] = table
        manifest["stops_note"] = ("timesteps per sampler and step count, optimised by tools/optimise_stops.py against a "
                                  "1000-step solve of the same ODE; read by multistep.optimised_timesteps")
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"wrote the stops into {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
