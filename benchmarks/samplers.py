"""Sample quality against network evaluations for every sampler in the course, on the reference models.

    python benchmarks/samplers.py                          # moons and digits, the full grid
    python benchmarks/samplers.py --data moons --seeds 3   # a quicker look
    python benchmarks/samplers.py --data digits --n 500 --nfe 5 10 15 20 30 50 100   # digits on a small CPU
    python benchmarks/samplers.py --merge a.csv b.csv      # join runs (e.g. one per data set) and replot

For each data set, sampler and budget of network evaluations (NFE) it draws `--n` samples from
`--seeds` seeds and scores them with the course's metric, as a ratio to its floor (1 = as close
to the data as a fresh real sample; see mini_diffusion/metrics.py). The seeds are shared by
all samplers, so they start from the same noise and face the same real reference draws. Prints
the table and writes benchmarks/results/samplers.csv and samplers.png.

Samplers (the reference solutions of the exercises):
  ddpm       DDPM, all T = 1000 steps, σ_t² = β_t (notebook 04): the reference quality
  ancestral  DDPM's stochastic update on a strided subsequence (DDIM with eta = 1)
  ddim       DDIM, eta = 0 (notebook 06)
  euler      Euler on the probability-flow ODE (notebook 07; the same steps as DDIM)
  heun       Heun, 2 network calls per step but the last: NFE = 2 · steps - 1
  dpm        DPM-Solver++(2M): NFE = steps
and each ODE sampler again with the other spacings of sigmas_for (mini_diffusion/toolkit/ode.py):
  euler_quadratic, heun_quadratic, dpm_quadratic   spacing="quadratic": t_i = T((N-i)/N)²
  euler_karras, heun_karras, dpm_karras            spacing="karras": Karras et al.'s ρ = 7 σ's, σ_T to σ_1
  euler_logsnr, heun_logsnr, dpm_logsnr            spacing="logsnr": evenly spaced in log σ, σ_T to σ_1
The others take DDIM's evenly spaced ("trailing") timesteps. (DDIM with eta = 0 is Euler with the
trailing spacing, so Euler's rows with another spacing are DDIM's along those timesteps.)
The wall time is the median over seeds of one call, on this machine, with the thread count
that ran the model fastest (PyTorch's threads slow small networks down on a small CPU).
"""

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

os.environ["MINI_DIFFUSION_SOLUTIONS"] = "1"  # measure the reference solutions

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mini_diffusion import evaluate, reference  # noqa: E402
from mini_diffusion.toolkit.device import best_num_threads, describe_device  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NFE_GRID = (5, 10, 15, 20, 30, 50, 100, 1000)
FEW = (5, 8, 10, 15)  # --few: the budgets of issue 20, for the samplers below
SAMPLE_SIZES = {"moons": 2000, "digits": 898}  # digits: all the held-out half the metric compares with
SEEDS = {"moons": 8, "digits": 2}
GOAL = 1.10  # "within 10 % of DDPM-1000": ratio <= 1.1 x DDPM-1000's


# name -> (label, evaluate's sampler, its other keywords, steps for a budget of nfe network evaluations,
# the NFE those steps cost). Every sampler is called as `mini-diffusion evaluate` calls it:
# sampler(model, shape, schedule, num_steps=steps, generator=g, **keywords).
SAMPLERS = {
    "ddpm": ("DDPM (T steps)", "ddpm", {}, lambda nfe, T: T, lambda steps: steps),
    "ancestral": ("DDPM strided (eta = 1)", "ddim", {"eta": 1.0}, lambda nfe, T: nfe, lambda steps: steps),
    "ddim": ("DDIM (eta = 0)", "ddim", {}, lambda nfe, T: nfe, lambda steps: steps),
    "euler": ("Euler", "euler", {}, lambda nfe, T: nfe, lambda steps: steps),
    "heun": ("Heun", "heun", {}, lambda nfe, T: (nfe + 1) // 2, lambda steps: 2 * steps - 1),
    "dpm": ("DPM-Solver++(2M)", "dpm", {}, lambda nfe, T: nfe, lambda steps: steps),
}
SPACINGS = ("trailing", "quadratic", "karras", "logsnr")
ODE_SAMPLERS = ("euler", "heun", "dpm")
for _base in ODE_SAMPLERS:
    for _spacing in SPACINGS[1:]:
        _label, _name, _keywords, _steps_for, _nfe_of = SAMPLERS[_base]
        SAMPLERS[f"{_base}_{_spacing}"] = (f"{_label}, {_spacing}", _name, {**_keywords, "spacing": _spacing},
                                           _steps_for, _nfe_of)


# The ready higher-order solvers (mini_diffusion/toolkit/multistep.py), each with the spacings that
# measured best, and with "optimised": the stops tools/optimise_stops.py ships in the model's manifest.
NEW_BASES = {
    "dpm3m": ("DPM-Solver++(3M)", "dpm3m", {}),
    "dpm3mhalf": ("DPM-Solver++(3M), diffusers' curvature", "dpm3m", {"curvature": "half"}),
    "unipc2": ("UniPC-2 (bh2)", "unipc", {"order": 2}),
    "unipc3": ("UniPC-3 (bh2)", "unipc", {"order": 3}),
}
for _base, (_label, _name, _keywords) in NEW_BASES.items():
    for _spacing in ("trailing", "quadratic", "logsnr"):
        SAMPLERS[f"{_base}_{_spacing}"] = (f"{_label}, {_spacing}", _name, {**_keywords, "spacing": _spacing},
                                           lambda nfe, T: nfe, lambda steps: steps)
    SAMPLERS[f"{_base}_sigmamin"] = (f"{_label}, quadratic to σ_1", _name,
                                     {**_keywords, "spacing": "quadratic", "final_sigma": "sigma_min"},
                                     lambda nfe, T: nfe, lambda steps: steps)
OPTIMISED = {"dpm": ("DPM-Solver++(2M)", "dpm", {}), **{b: NEW_BASES[b] for b in ("dpm3m", "unipc2", "unipc3")}}
for _base, (_label, _name, _keywords) in OPTIMISED.items():
    SAMPLERS[f"{_base}_optimised"] = (f"{_label}, optimised", "unipc" if _base == "dpm" else _name,
                                      {**_keywords, **({"order": 2, "corrector": False} if _base == "dpm" else {}),
                                       "spacing": ("optimised", _base)},
                                      lambda nfe, T: nfe, lambda steps: steps)
BASES = (*ODE_SAMPLERS, *NEW_BASES)


def resolve(keywords: dict, data: str, schedule, steps: int) -> dict:
    """The sampler's keywords for this model and budget: spacing ("optimised", s) becomes the stops the
    model's manifest ships for sampler s, final_sigma "sigma_min" the σ of t = 1."""
    from mini_diffusion.toolkit import multistep, ode

    keywords = dict(keywords)
    if isinstance(keywords.get("spacing"), tuple):
        keywords["spacing"] = multistep.optimised_timesteps(data, keywords["spacing"][1], steps)
    if keywords.get("final_sigma") == "sigma_min":
        keywords["final_sigma"] = float(ode.sigmas_of(schedule)[1])
    return keywords


def spacing_of(sampler: str) -> tuple[str, str]:
    """("dpm", "karras") for "dpm_karras"; ("dpm", "trailing") for "dpm"; (name, "") for the others."""
    base, _, spacing = sampler.partition("_")
    if base in BASES or base in OPTIMISED:
        return base, spacing or "trailing"
    return sampler, ""
FIELDS = ["data", "sampler", "steps", "nfe", "ratio", "ratio_sem", "ratio_min", "ratio_max", "ratio_vs_ddpm", "seconds",
          "n", "seeds", "metric", "device", "threads"]


def run_one(model, schedule, data, sampler, steps, n, seeds):
    """Mean, standard error, min and max of the quality ratio over the seeds, the median seconds per
    call, and the metric's name."""
    _, name, keywords, _, _ = SAMPLERS[sampler]
    keywords = resolve(keywords, data, schedule, steps)
    fn = evaluate.sampler_function(name)
    shape = (n, *evaluate.DATA_SHAPES[data])
    device = next(model.parameters()).device
    ratios, seconds = [], []
    for seed in range(seeds):
        generator = torch.Generator(device=device).manual_seed(seed)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            x0 = fn(model, shape, schedule, num_steps=steps, generator=generator, **keywords)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        score = evaluate.quality(x0.cpu().float(), data, seed=seed)
        ratios.append(score["ratio"])
    sem = statistics.stdev(ratios) / len(ratios) ** 0.5 if len(ratios) > 1 else float("nan")
    return statistics.fmean(ratios), sem, min(ratios), max(ratios), statistics.median(seconds), score["metric"]


def fastest_threads(model, schedule, data, n) -> int:
    if next(model.parameters()).device.type != "cpu":
        return torch.get_num_threads()
    shape = (n, *evaluate.DATA_SHAPES[data])
    ddim = evaluate.sampler_function("ddim")
    return best_num_threads(lambda: ddim(model, shape, schedule, num_steps=3, generator=torch.Generator().manual_seed(0)))


def benchmark(data, nfe_grid, n, seeds, samplers, device=None, models_dir=reference.MODELS_DIR):
    model, schedule, _ = reference.load(data, device=device, models_dir=models_dir)
    threads = fastest_threads(model, schedule, data, n)
    torch.set_num_threads(threads)
    where = describe_device(next(model.parameters()).device)
    rows, reference_ratio = [], None
    plan = [("ddpm", None)] if "ddpm" in samplers else []
    plan += [(s, nfe) for s in samplers if s != "ddpm" for nfe in nfe_grid]
    for sampler, nfe in plan:
        label, _, _, steps_for, nfe_of = SAMPLERS[sampler]
        steps = steps_for(nfe, schedule.T)
        ratio, sem, low, high, seconds, metric = run_one(model, schedule, data, sampler, steps, n, seeds)
        if sampler == "ddpm":
            reference_ratio = ratio
        row = {
            "data": data, "sampler": sampler, "steps": steps, "nfe": nfe_of(steps), "ratio": round(ratio, 4),
            "ratio_sem": round(sem, 4), "ratio_min": round(low, 4), "ratio_max": round(high, 4),
            "ratio_vs_ddpm": round(ratio / reference_ratio, 3) if reference_ratio else "",
            "seconds": round(seconds, 3), "n": n, "seeds": seeds, "metric": metric, "device": where["name"],
            "threads": threads,
        }
        rows.append(row)
        print(f"{data:7s} {label:24s} steps {steps:5d}  NFE {row['nfe']:5d}  ratio {ratio:8.3f} ± {sem:5.3f} "
              f"[{low:.2f}, {high:.2f}]  {row['ratio_vs_ddpm'] or '':>6}  {seconds:8.2f} s", flush=True)
    return rows


def goals(rows) -> list[str]:
    """For each data set and sampler, the fewest NFE within 10 % of DDPM-1000's quality, and within
    10 % of the converged ODE (DPM-Solver++ at the largest NFE measured): the second separates the
    solver's error from the gap between the ODE's and DDPM's distributions with this network."""
    lines = []
    for data in dict.fromkeys(r["data"] for r in rows):
        table = [r for r in rows if r["data"] == data]
        references = {}
        ddpm = [r for r in table if r["sampler"] == "ddpm"]
        if ddpm:
            references["DDPM-1000"] = ddpm[0]["ratio"]
        ode = [r for r in table if r["sampler"] == "dpm"]
        if ode:
            best = max(ode, key=lambda r: r["nfe"])
            references[f"the ODE (DPM-Solver++ at {best['nfe']} NFE)"] = best["ratio"]
        for sampler in dict.fromkeys(r["sampler"] for r in table if r["sampler"] != "ddpm"):
            mine = sorted((r["nfe"], r["ratio"]) for r in table if r["sampler"] == sampler)
            for name, level in references.items():
                good = [nfe for nfe, ratio in mine if ratio <= GOAL * level]
                reached = f"from NFE {min(good)}" if good else "not within the grid"
                lines.append(f"{data}: {SAMPLERS[sampler][0]} within 10 % of {name} ({level:.2f}): {reached}")
        if ddpm:  # issue 20's goal: within 10 % of DDPM-1000 at 10 network evaluations or fewer
            few = [r for r in table if r["sampler"] != "ddpm" and r["nfe"] <= 10]
            if few:
                best = min(few, key=lambda r: (r["ratio"], r["nfe"]))
                verdict = "met" if best["ratio"] <= GOAL * ddpm[0]["ratio"] else "missed"
                lines.append(f"{data}: GOAL within 10 % of DDPM-1000 ({GOAL * ddpm[0]['ratio']:.2f}) at <= 10 NFE: "
                             f"{verdict} (best: {SAMPLERS[best['sampler']][0]} at {best['nfe']} NFE, {best['ratio']:.2f})")
    return lines


def write_csv(rows, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: Path) -> list[dict]:
    """The rows of a results file, numbers as numbers (for --merge)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key in ("steps", "nfe", "n", "seeds", "threads"):
            row[key] = int(row[key])
        for key in ("ratio", "ratio_sem", "ratio_min", "ratio_max", "seconds"):
            row[key] = float(row[key])
        row["ratio_vs_ddpm"] = float(row["ratio_vs_ddpm"]) if row["ratio_vs_ddpm"] else ""
    return rows


def plot(rows, path: Path | None = None, axes=None):
    """Quality ratio against NFE; DDPM-1000 as a line with a ±10 % band. One row of panels per data
    set: the samplers at the trailing spacing, then (where other spacings were measured) one panel
    per ODE sampler with its spacings."""
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["data"] for r in rows))
    measured = {spacing_of(r["sampler"]) for r in rows}
    bases = [b for b in BASES if any(base == b and sp not in ("", "trailing") for base, sp in measured)]
    panels = [None, *bases]  # None: every sampler at the trailing spacing
    if axes is None:
        fig, axes = plt.subplots(len(datasets), len(panels), figsize=(5.2 * len(panels), 4.4 * len(datasets)),
                                 squeeze=False)
    else:
        axes = [[ax] for ax in axes]
        panels = [None]
    for row_axes, data in zip(axes, datasets):
        for ax, base in zip(row_axes, panels):
            table = [r for r in rows if r["data"] == data]
            if base is None:
                keep = [r for r in table if spacing_of(r["sampler"])[1] in ("", "trailing")]
                title = f"{data}: samplers, trailing stops"
            else:
                keep = [r for r in table if r["sampler"] == "ddpm" or spacing_of(r["sampler"])[0] == base]
                title = f"{data}: {(NEW_BASES.get(base) or SAMPLERS[base])[0]}, by spacing"
            _plot_panel(ax, keep, title, by_spacing=base is not None)
    if path is not None:
        fig = axes[0][0].figure
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    return axes


def _plot_panel(ax, table, title, by_spacing=False):
    from matplotlib.ticker import FuncFormatter, NullFormatter

    if table:
        for sampler in dict.fromkeys(r["sampler"] for r in table):
            points = sorted((r["nfe"], r["ratio"], r["ratio_sem"]) for r in table if r["sampler"] == sampler)
            if sampler == "ddpm":
                level = points[0][1]
                ax.axhline(level, color="black", lw=1, ls="--", label=f"DDPM, {points[0][0]} steps")
                ax.axhspan(level / GOAL, level * GOAL, color="black", alpha=0.08, label="within 10 % of it")
            else:
                nfe, ratio, sem = zip(*points)
                style = dict(ls="--", mfc="none", ms=7) if sampler == "ddim" else dict(ms=4)  # DDIM lies under Euler
                label = f'spacing="{spacing_of(sampler)[1]}"' if by_spacing else SAMPLERS[sampler][0]
                ax.errorbar(nfe, ratio, yerr=sem, marker="o", capsize=2, label=label, **style)
        ax.set(ylabel=f"{table[0]['metric']}")
    ax.axhline(1.0, color="grey", lw=0.8, ls=":", label="floor (real vs real)")
    ax.set(xscale="log", yscale="log", xlabel="network evaluations (NFE)", title=title)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=["moons", "digits"], choices=list(SAMPLE_SIZES))
    parser.add_argument("--samplers", nargs="+", default=None, choices=list(SAMPLERS),
                        help="default: all; with --few: DDPM and the few-step rows (the new solvers and the best 2M)")
    parser.add_argument("--few", action="store_true", help=f"the few-step subset: NFE {FEW} unless --nfe is given")
    parser.add_argument("--nfe", nargs="+", type=int, default=None, help="budgets of network evaluations")
    parser.add_argument("--n", type=int, help="samples per seed (default: moons 2000, digits 898)")
    parser.add_argument("--seeds", type=int, help="seeds per setting (default: moons 8, digits 2)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: the best one present)")
    parser.add_argument("--models-dir", type=Path, default=reference.MODELS_DIR)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for samplers.csv and samplers.png")
    parser.add_argument("--merge", type=Path, nargs="+", default=[], metavar="CSV",
                        help="measure nothing: join these results files into --out (table, goals and plot)")
    args = parser.parse_args(argv)
    if args.samplers is None:
        few = ["ddpm", "dpm_quadratic", "dpm_optimised", *[s for s in SAMPLERS if s.split("_")[0] in NEW_BASES]]
        args.samplers = list(dict.fromkeys(few)) if args.few else list(SAMPLERS)
    if args.nfe is None:
        args.nfe = list(FEW if args.few else NFE_GRID)
    if args.merge:
        rows = [row for path in args.merge for row in read_csv(path)]
        ddpm = {r["data"]: r["ratio"] for r in rows if r["sampler"] == "ddpm"}
        for row in rows:  # runs without their own DDPM row are compared with the merged one
            row["ratio_vs_ddpm"] = round(row["ratio"] / ddpm[row["data"]], 3) if row["data"] in ddpm else ""
        print("\n".join(goals(rows)))
        write_csv(rows, args.out / "samplers.csv")
        plot(rows, args.out / "samplers.png")
        return 0
    if any(nfe < 1 or nfe > 1000 for nfe in args.nfe):
        parser.error("every --nfe must lie in 1..1000")
    started = time.perf_counter()
    rows = []
    for data in args.data:
        n, seeds = args.n or SAMPLE_SIZES[data], args.seeds or SEEDS[data]
        print(f"== {data}: {n} samples x {seeds} seeds per setting; ratio [min, max over seeds]; ratio / DDPM-1000; "
              "median seconds per call")
        rows += benchmark(data, sorted(set(args.nfe)), n, seeds, args.samplers, args.device, args.models_dir)
    print("\n".join(["", *goals(rows)]))
    write_csv(rows, args.out / "samplers.csv")
    plot(rows, args.out / "samplers.png")
    print(f"wrote {args.out / 'samplers.csv'} and samplers.png in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
