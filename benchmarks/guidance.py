"""Notebook 08's goals, measured: guided digits with the reference models, judged by the digit classifier.

    python benchmarks/guidance.py                    # the full run: 500 samples per class, DDIM-50
    python benchmarks/guidance.py --per-class 100    # a quicker look (the numbers get noisier)
    python benchmarks/guidance.py --parts cfg        # only classifier-free guidance (cfg, classifier, inpaint)

Classifier-free guidance (`digits_cond`, exercise 8.4's guided_sample, DDIM-50, eta = 0) at the scales
0, 1, 2, 3, 5, 8: the fraction of samples the shipped digit classifier (toolkit.metrics) calls the
asked class, overall and for the worst class; the per-class Fréchet ratio (that class's samples
against its real digits, over unseen real digits of the class at the same size: 1 is as close
as real data); and the spread within a class (mean pairwise pixel distance over the real one).
Classifier guidance (`digits` + `digits_classifier_t`, 8.5 inside DDIM-50) at a few scales; and
inpainting (8.6, DDPM-1000) from the top half, the left half and the centre of real digits.
Writes benchmarks/results/guidance.json and puts the numbers into the two models' manifests
(metrics.benchmark); the goals of issue 15 are printed with each line.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ["MINI_DIFFUSION_SOLUTIONS"] = "1"  # measure the reference solutions

import torch  # noqa: E402

from mini_diffusion._course import guidance_widgets as gw  # noqa: E402
from mini_diffusion.toolkit import data, reference  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "guidance.json"
CFG_SCALES = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0)
CG_SCALES = (0.0, 1.0, 3.0, 10.0, 30.0)
STEPS = 50
BATCH = 500


def _rounded(row: dict) -> dict:
    keep = {k: v for k, v in row.items() if k not in ("samples", "labels")}
    keep["class_accuracy"] = [round(a, 4) for a in keep["class_accuracy"]]
    keep["fd_ratio"] = {str(c): round(r, 3) for c, r in keep["fd_ratio"].items()}
    for key in ("accuracy", "worst_class_accuracy", "fd_ratio_mean", "fd_ratio_max", "spread"):
        keep[key] = round(keep[key], 4)
    return keep


def _scores(samples, y, scale, seconds) -> dict:
    fd = gw.per_class_fd_ratio(samples, y)
    predicted = gw.predicted_classes(samples)
    per_class = [(predicted[y == c] == c).double().mean().item() for c in range(10)]
    return _rounded({"scale": scale, "accuracy": (predicted == y).double().mean().item(), "class_accuracy": per_class,
                     "worst_class_accuracy": min(per_class), "fd_ratio": fd, "fd_ratio_mean": sum(fd.values()) / len(fd),
                     "fd_ratio_max": max(fd.values()), "spread": gw.class_spread(samples, y),
                     "seconds": round(seconds, 1)})


def measure_cfg(model, schedule, scale: float, per_class: int = 500, seed: int = 1, num_steps: int = STEPS) -> dict:
    """Classifier-free guided DDIM at one scale, per_class samples of each digit, in batches."""
    y = torch.arange(10).repeat_interleave(per_class)
    start, parts = time.perf_counter(), []
    for i, chunk in enumerate(y.split(BATCH)):
        parts.append(gw.guided_digits(model, schedule, chunk, scale, num_steps=num_steps, seed=seed * 1000 + i).cpu())
    return _scores(torch.cat(parts), y, scale, time.perf_counter() - start)


def measure_classifier_guidance(model, classifier, schedule, scale: float, per_class: int, seed: int = 1,
                                num_steps: int = STEPS) -> dict:
    y = torch.arange(10).repeat_interleave(per_class)
    start, parts = time.perf_counter(), []
    for i, chunk in enumerate(y.split(BATCH)):
        parts.append(gw.classifier_guided_digits(model, classifier, schedule, chunk, scale, num_steps=num_steps,
                                                 seed=seed * 1000 + i).detach().cpu())
    return _scores(torch.cat(parts), y, scale, time.perf_counter() - start)


def measure_inpainting(model, schedule, n: int, num_steps=None, seed: int = 1) -> dict:
    images, labels = data.digits(return_labels=True)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    images, labels = images[order], labels[order]
    rows = {}
    for region in ("top half", "left half", "centre"):
        start = time.perf_counter()
        _, done = gw.inpaint_digits(model, schedule, images, region, seed=seed, num_steps=num_steps)
        rows[region] = {"accuracy": round(gw.class_accuracy(done, labels), 4), "n": n,
                        "seconds": round(time.perf_counter() - start, 1)}
        print(f"  inpainting from the {region}: {100 * rows[region]['accuracy']:.1f} % keep their class ({n} digits)")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=500, help="samples per class at the goal scales 1 and 3")
    parser.add_argument("--other-per-class", type=int, default=None,
                        help="samples per class at the other scales (default: --per-class)")
    parser.add_argument("--cg-per-class", type=int, default=None, help="classifier guidance (default: per-class)")
    parser.add_argument("--inpaint-n", type=int, default=300)
    parser.add_argument("--inpaint-steps", type=int, default=None, help="DDPM on this many timesteps (default all T)")
    parser.add_argument("--parts", nargs="*", default=["cfg", "classifier", "inpaint"])
    parser.add_argument("--no-manifest", action="store_true", help="do not write the numbers into the manifests")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results["machine"] = {"device": "cpu", "threads": 1, "torch": torch.__version__}
    if "cfg" in args.parts:
        model, schedule, _ = reference.load("digits_cond", device="cpu")
        rows = []
        for scale in CFG_SCALES:
            per_class = args.per_class if scale in (1.0, 3.0) else (args.other_per_class or args.per_class)
            row = {**measure_cfg(model, schedule, scale, per_class), "per_class": per_class}
            rows.append(row)
            print(f"CFG scale {scale:g}: accuracy {100 * row['accuracy']:.1f} % (worst class "
                  f"{100 * row['worst_class_accuracy']:.1f} %), Fréchet ratio per class mean {row['fd_ratio_mean']:.2f} "
                  f"max {row['fd_ratio_max']:.2f}, spread {row['spread']:.2f}  ({row['seconds']:.0f} s)")
        results["cfg"] = {"per_class": args.per_class, "sampler": f"DDIM-{STEPS}", "rows": rows}
        by_scale = {row["scale"]: row for row in rows}
        goals = {"scale3_every_class_ge_98pct": by_scale[3.0]["worst_class_accuracy"] >= 0.98,
                 "scale1_accuracy_ge_90pct": by_scale[1.0]["accuracy"] >= 0.90,
                 "scale1_fd_ratio_max_le_2": by_scale[1.0]["fd_ratio_max"] <= 2.0}
        results["cfg"]["goals_met"] = goals
        print("  goals:", goals)
    if "classifier" in args.parts:
        model, schedule, _ = reference.load("digits", device="cpu")
        classifier, _, _ = reference.load("digits_classifier_t", device="cpu")
        per_class = args.cg_per_class or args.per_class
        rows = []
        for scale in CG_SCALES:
            row = measure_classifier_guidance(model, classifier, schedule, scale, per_class)
            row["per_class"] = per_class
            rows.append(row)
            print(f"classifier guidance scale {scale:g}: accuracy {100 * row['accuracy']:.1f} % (worst class "
                  f"{100 * row['worst_class_accuracy']:.1f} %), Fréchet ratio mean {row['fd_ratio_mean']:.2f}, "
                  f"spread {row['spread']:.2f}  ({row['seconds']:.0f} s)")
        best = max(rows, key=lambda r: r["accuracy"])
        results["classifier_guidance"] = {"per_class": per_class, "sampler": f"DDIM-{STEPS}", "rows": rows,
                                          "best_scale": best["scale"], "best_accuracy": best["accuracy"],
                                          "goals_met": {"best_accuracy_ge_95pct": best["accuracy"] >= 0.95}}
        print("  best:", best["scale"], best["accuracy"])
    if "inpaint" in args.parts:
        model, schedule, _ = reference.load("digits", device="cpu")
        results["inpainting"] = {"sampler": f"DDPM-{args.inpaint_steps or schedule.T}, replacement",
                                 "regions": measure_inpainting(model, schedule, args.inpaint_n, args.inpaint_steps)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {RESULTS}")
    if not args.no_manifest:
        write_manifests(results)
    return 0


def write_manifests(results: dict) -> None:
    """The benchmark's numbers into the manifests (metrics.benchmark); the weights are untouched."""
    for name, keys in (("digits_cond", ("cfg",)), ("digits_classifier_t", ("classifier_guidance",))):
        _, manifest_path = reference.paths(name)
        manifest = json.loads(manifest_path.read_text())
        bench = manifest.setdefault("metrics", {}).setdefault("benchmark", {})
        for key in keys:
            if key in results:
                bench[key] = {k: v for k, v in results[key].items()}
        bench["machine"] = results["machine"]
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
