"""Flow matching (notebook 09) against the DDPM reference models, with the goals of issue 16.

    python benchmarks/flow.py                        # everything: moons, digits, straightness, reflow, notebook
    python benchmarks/flow.py --parts moons reflow   # some of it (parts: moons digits straightness reflow ideal ot notebook)
    python benchmarks/flow.py --write-manifests      # also put the numbers into the flow models' manifests

Measured, with the reference solutions:
- moons: Euler on moons_flow at 1, 2, 5, 10, 20, 50 steps against DDIM and DPM-Solver++ on the
  DDPM moons model at the same number of network evaluations (NFE), energy ratio to the floor,
  4000 samples, the mean over seeds 1-3 (the protocol of the moons manifest's DDPM-1000 number);
- digits: the same on digits_flow and the digits DDPM model, Fréchet ratio, 500 samples, seed 1;
- straightness of the 2-D paths (path length / end-to-end distance, 1 = straight) of moons_flow
  and of the DDPM moons model seen as a flow on the linear path (toolkit.flow.VelocityFromEps), 100 steps;
- reflow: (noise, sample) pairs from moons_flow, a copy of moons_flow trained on them, then
  1-step and 2-step quality before and after;
- the ideal velocity of 5000 moons points with Euler: what a perfect straight-path flow reaches;
- minibatch optimal transport: the same small velocity MLP trained briefly twice over, with random
  (independent) pairs and with each batch re-paired by an exact assignment (flow_recipes.ot_fm_loss_fn),
  two training seeds each: straightness and Euler-5/10/20 quality;
- the notebook's live model: its final loss against the ideal velocity's loss floor.
Writes benchmarks/results/flow.json and prints the goals with PASS or MISS.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ["MINI_DIFFUSION_SOLUTIONS"] = "1"  # measure the reference solutions

import torch  # noqa: E402

from mini_diffusion._course import evaluate, seam  # noqa: E402
from mini_diffusion.toolkit import flow as flow_kit  # noqa: E402
from mini_diffusion.toolkit import flow_recipes, reference, train  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "flow.json"
MOONS_SEEDS, MOONS_N = (1, 2, 3), 4000
DIGITS_SEEDS, DIGITS_N = (1,), 500
SHAPES = {"moons": (2,), "digits": (1, 8, 8)}
OT = {"data": {"n": 50_000, "seed": 12345, "noise": 0.1}, "model": {"hidden": 128, "depth": 3},
      "train": {"steps": 3000, "batch_size": 256, "lr": 2e-3, "warmup_steps": 100, "lr_decay": "cosine",
                "ema_decay": 0.995}, "train_seeds": (0, 1)}
REFLOW = {"pairs": 20_000, "pair_steps": 100, "steps": 2000, "batch_size": 512, "lr": 1e-3, "warmup_steps": 100,
          "lr_decay": "cosine", "ema_decay": 0.995, "seed": 0}


def flow_samples(model, data: str, n: int, num_steps: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return seam.implementation("9.3")(model, (n, *SHAPES[data]), num_steps, generator=generator).float()


def flow_quality(model, data: str, num_steps: int, n=None, seeds=None) -> dict:
    n = n or (MOONS_N if data == "moons" else DIGITS_N)
    seeds = seeds or (MOONS_SEEDS if data == "moons" else DIGITS_SEEDS)
    ratios, seconds = [], []
    for seed in seeds:
        start = time.perf_counter()
        samples = flow_samples(model, data, n, num_steps, seed)
        seconds.append(time.perf_counter() - start)
        ratios.append(round(evaluate.quality(samples, data, seed=seed)["ratio"], 4))
    return {"ratio": round(sum(ratios) / len(ratios), 4), "per_seed": ratios, "seconds": round(min(seconds), 2)}


def ddpm_quality(model, schedule, data: str, sampler: str, nfe: int) -> dict:
    n = MOONS_N if data == "moons" else DIGITS_N
    seeds = MOONS_SEEDS if data == "moons" else DIGITS_SEEDS
    ratios = []
    for seed in seeds:
        samples, _ = evaluate.generate(model, schedule, sampler, n, data, nfe, seed=seed)
        ratios.append(round(evaluate.quality(samples, data, seed=seed)["ratio"], 4))
    return {"ratio": round(sum(ratios) / len(ratios), 4), "per_seed": ratios}


def measure_flow(model, name: str) -> dict:
    """The metrics of a flow reference model (tools/train_reference.py calls this after training)."""
    data = "moons" if name == "moons_flow" else "digits"
    metrics = {}
    for steps in ((1, 2, 5, 10, 20, 50) if data == "moons" else (5, 10, 20, 50)):
        row = flow_quality(model, data, steps)
        metrics[f"euler{steps}_ratio"] = row["ratio"]
        metrics[f"euler{steps}_ratio_per_seed"] = row["per_seed"]
        print(f"  {name} Euler-{steps}: {row['ratio']:.3f} x floor {row['per_seed']}")
    metrics["protocol"] = (f"Euler (fm_sample) from t = 1 to 0; {MOONS_N if data == 'moons' else DIGITS_N} samples, "
                           f"ratio to the floor ({'energy' if data == 'moons' else 'Fréchet'} distance), mean over "
                           f"seeds {list(MOONS_SEEDS if data == 'moons' else DIGITS_SEEDS)}")
    return metrics


def compare(data: str, nfes) -> dict:
    flow_model, _, _ = reference.load(f"{data}_flow", device="cpu")
    ddpm_model, schedule, manifest = reference.load(data, device="cpu")
    rows = {"ddpm1000_reference": manifest["metrics"].get("ddpm1000_ratio")}
    for nfe in nfes:
        rows[f"nfe{nfe}"] = {
            "flow_euler": flow_quality(flow_model, data, nfe)["ratio"],
            "ddim": ddpm_quality(ddpm_model, schedule, data, "ddim", nfe)["ratio"],
            "dpm_solver++": ddpm_quality(ddpm_model, schedule, data, "dpm", nfe)["ratio"],
        }
        print(f"  {data} NFE {nfe}: {rows[f'nfe{nfe}']}")
    return rows


def straightness(num_steps: int = 100, n: int = 1000) -> dict:
    flow_model, _, _ = reference.load("moons_flow", device="cpu")
    ddpm_model, schedule, _ = reference.load("moons", device="cpu")
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    flow_paths = flow_kit.euler_on_grid(flow_model, x_T, flow_kit.euler_grid(num_steps), trajectory=True)
    as_flow = flow_kit.VelocityFromEps(ddpm_model, schedule)
    timesteps = seam.implementation("6.1")(schedule.T, num_steps).tolist() + [0]
    ddpm_paths = flow_kit.euler_on_grid(as_flow, as_flow.start(x_T), [float(as_flow.taus[t]) for t in timesteps],
                                        trajectory=True)
    out = {}
    for name, paths in (("moons_flow", flow_paths), ("moons_ddpm_as_flow", ddpm_paths)):
        s = flow_kit.path_straightness(paths)
        out[name] = {"mean": round(float(s.mean()), 4), "median": round(float(s.median()), 4),
                     "p90": round(float(s.quantile(0.9)), 4)}
        print(f"  straightness {name}: {out[name]}")
    out["note"] = (f"path length / end-to-end distance of {n} paths, Euler with {num_steps} steps, in the linear "
                   "path's coordinates (the DDPM model through VelocityFromEps on DDIM's timesteps)")
    return out


def reflow() -> dict:
    base, _, _ = reference.load("moons_flow", device="cpu")
    before = {steps: flow_quality(base, "moons", steps) for steps in (1, 2)}
    start = time.perf_counter()
    pairs = flow_recipes.reflow_pairs(base, REFLOW["pairs"], num_steps=REFLOW["pair_steps"], seed=100)
    model = flow_kit_copy(base)
    settings = {k: v for k, v in REFLOW.items() if k not in ("pairs", "pair_steps")}
    result = train.train(model, pairs, None, loss_fn=flow_recipes.reflow_loss_fn, progress=False, threads=1, **settings)
    trained = result.ema_model.eval().requires_grad_(False)
    seconds = time.perf_counter() - start
    after = {steps: flow_quality(trained, "moons", steps) for steps in (1, 2, 20)}
    straight_before = float(flow_kit.path_straightness(flow_kit.euler_on_grid(
        base, pairs[:1000, 0], flow_kit.euler_grid(50), trajectory=True)).mean())
    straight_after = float(flow_kit.path_straightness(flow_kit.euler_on_grid(
        trained, pairs[:1000, 0], flow_kit.euler_grid(50), trajectory=True)).mean())
    out = {"settings": REFLOW, "train_seconds": round(seconds, 1),
           "straightness_before": round(straight_before, 4), "straightness_after": round(straight_after, 4)}
    out["euler20_after"] = after[20]
    print(f"  reflowed model, Euler-20: {after[20]['ratio']:.3f}")
    for steps in (1, 2):
        out[f"euler{steps}_before"], out[f"euler{steps}_after"] = before[steps], after[steps]
        out[f"euler{steps}_improvement"] = round(before[steps]["ratio"] / after[steps]["ratio"], 2)
        print(f"  reflow Euler-{steps}: {before[steps]['ratio']:.2f} -> {after[steps]['ratio']:.2f} "
              f"({out[f'euler{steps}_improvement']:.1f}x)")
    return out


def ideal(n_points: int = 5000) -> dict:
    """Euler with the ideal velocity of n_points fresh moons points: what a perfectly trained flow on
    the straight path (independent pairs) reaches at each step count, under the same protocol."""
    from mini_diffusion.toolkit import data

    field = flow_kit.IdealVelocity(data.two_moons(n_points, seed=777), chunk_size=1000)
    out = {"points": n_points}
    for steps in (10, 20, 50):
        ratios = []
        for seed in MOONS_SEEDS:
            x_T = torch.randn(MOONS_N, 2, generator=torch.Generator().manual_seed(seed)).double()
            samples = flow_kit.euler_on_grid(field, x_T, flow_kit.euler_grid(steps)).float()
            ratios.append(round(evaluate.quality(samples, "moons", seed=seed)["ratio"], 4))
        out[f"euler{steps}"] = {"ratio": round(sum(ratios) / len(ratios), 4), "per_seed": ratios}
        print(f"  ideal velocity ({n_points} points), Euler-{steps}: {out[f'euler{steps}']}")
    return out


def mean_and_se(values) -> tuple:
    values = torch.tensor(values, dtype=torch.float64)
    se = float(values.std() / len(values) ** 0.5) if len(values) > 1 else float("nan")
    return round(float(values.mean()), 4), round(se, 4)


def transport_cost(x0, noise) -> float:
    """The mean squared length ‖ε - x_0‖² of the straight lines of a pairing."""
    return float(((noise - x0) ** 2).flatten(1).sum(1).mean())


def minibatch_ot() -> dict:
    """Independent pairs against minibatch-OT pairs: the same network, data, steps and seeds."""
    from mini_diffusion.toolkit import data, flow_nets

    points = data.two_moons(**OT["data"])
    g = torch.Generator().manual_seed(5)
    batch = points[torch.randint(len(points), (OT["train"]["batch_size"],), generator=g)]
    noise = torch.randn(batch.shape, generator=g)
    out = {"settings": OT, "batch_cost": {
        "independent": round(transport_cost(batch, noise), 4),
        "minibatch_ot": round(transport_cost(batch, flow_kit.minibatch_ot_noise(batch, noise)), 4),
        "note": f"mean ‖ε - x_0‖² over one batch of {len(batch)}: random pairing vs the optimal assignment"}}
    x_T = torch.randn(1000, 2, generator=torch.Generator().manual_seed(0))
    for name, loss_fn in (("independent", flow_recipes.fm_loss_fn), ("minibatch_ot", flow_recipes.ot_fm_loss_fn)):
        runs = []
        for seed in OT["train_seeds"]:
            torch.manual_seed(seed)
            model = flow_nets.FlowMLP(dim=2, **OT["model"])
            start = time.perf_counter()
            result = train.train(model, points, None, loss_fn=loss_fn, progress=False, threads=1, seed=seed,
                                 **OT["train"])
            seconds = time.perf_counter() - start
            trained = result.ema_model.eval().requires_grad_(False)
            paths = flow_kit.euler_on_grid(trained, x_T, flow_kit.euler_grid(100), trajectory=True)
            run = {"seed": seed, "train_seconds": round(seconds, 1),
                   "straightness": round(float(flow_kit.path_straightness(paths).mean()), 4)}
            for steps in (5, 10, 20):
                run[f"euler{steps}"] = flow_quality(trained, "moons", steps)["ratio"]
            runs.append(run)
            print(f"  {name}, training seed {seed}: {run}")
        summary = {"runs": runs}
        for key in ("straightness", "euler5", "euler10", "euler20"):
            summary[key], summary[f"{key}_se"] = mean_and_se([run[key] for run in runs])
        out[name] = summary
    out["note"] = (f"FlowMLP(hidden {OT['model']['hidden']}, depth {OT['model']['depth']}) trained "
                   f"{OT['train']['steps']} steps (batch {OT['train']['batch_size']}) from scratch per training "
                   f"seed; quality: energy ratio of {MOONS_N} samples, mean over seeds {list(MOONS_SEEDS)}; "
                   "straightness of 1000 paths, Euler-100; _se: standard error over the training seeds")
    return out


def flow_kit_copy(model):
    import copy

    return copy.deepcopy(model).train().requires_grad_(True)


def notebook() -> dict:
    start = time.perf_counter()
    result, data = flow_recipes.train_notebook_moons()
    seconds = time.perf_counter() - start
    final = flow_recipes.final_loss(result.losses)
    floor = flow_kit.ideal_velocity_loss_floor(data, n=20_000, chunk_size=512)
    out = {"final_loss": round(final, 4), "ideal_floor": round(floor, 4), "gap_pct": round(100 * (final / floor - 1), 2),
           "train_seconds": round(seconds, 1), "settings": flow_recipes.NOTEBOOK_MOONS}
    print(f"  notebook model: final loss {final:.4f}, ideal floor {floor:.4f} ({out['gap_pct']:+.1f} %)")
    return out


def goals(results: dict) -> list[str]:
    lines = []

    def goal(text, ok):
        lines.append(f"{'PASS' if ok else 'MISS'}  {text}")

    if "moons" in results:
        ddpm = results["moons"]["ddpm1000_reference"]
        euler20 = results["moons"]["nfe20"]["flow_euler"]
        goal(f"moons_flow Euler-20 {euler20:.3f} within 10 % of DDPM-1000 {ddpm:.3f}", euler20 <= 1.1 * ddpm)
    if "digits" in results:
        euler20 = results["digits"]["nfe20"]["flow_euler"]
        goal(f"digits_flow Euler-20 Fréchet ratio {euler20:.3f} <= 1.5", euler20 <= 1.5)
    if "reflow" in results:
        r = results["reflow"]
        goal(f"reflow 1-step {r['euler1_improvement']:.1f}x better (2-step {r['euler2_improvement']:.1f}x)",
             r["euler1_improvement"] >= 5)
    if "notebook" in results:
        n = results["notebook"]
        goal(f"notebook model final loss {n['final_loss']:.4f} within 10 % of the floor {n['ideal_floor']:.4f}",
             n["gap_pct"] <= 10)
    return lines


def write_manifests(results: dict) -> None:
    for name, data in (("moons_flow", "moons"), ("digits_flow", "digits")):
        if data not in results:
            continue
        _, manifest_path = reference.paths(name)
        manifest = json.loads(manifest_path.read_text())
        manifest.setdefault("metrics", {})["vs_ddpm"] = results[data]
        if data == "moons":
            for key in ("straightness", "reflow", "ideal_velocity"):
                if key in results:
                    manifest["metrics"][key] = results[key]
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="*", default=["moons", "digits", "straightness", "reflow", "ideal", "ot", "notebook"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--write-manifests", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for part in args.parts:
        print(f"== {part}")
        started = time.perf_counter()
        if part == "moons":
            results["moons"] = compare("moons", (1, 2, 5, 10, 20))
        elif part == "digits":
            results["digits"] = compare("digits", (5, 10, 20))
        elif part == "straightness":
            results["straightness"] = straightness()
        elif part == "reflow":
            results["reflow"] = reflow()
        elif part == "ot":
            results["minibatch_ot"] = minibatch_ot()
        elif part == "ideal":
            results["ideal_velocity"] = ideal()
        elif part == "notebook":
            results["notebook"] = notebook()
        else:
            raise SystemExit(f"unknown part {part!r}")
        results.setdefault("seconds", {})[part] = round(time.perf_counter() - started, 1)
    results["goals"] = goals(results)
    results["machine"] = {"device": "cpu", "torch": torch.__version__, "note": "a shared, heavily loaded 2-core CPU"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(results["goals"]))
    if args.write_manifests:
        write_manifests(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
