"""Notebook 08's goals, measured: guided digits with the reference models, judged by the digit classifier.

    python benchmarks/guidance.py                    # the full run: 500 samples per class, DDIM-50
    python benchmarks/guidance.py --per-class 100    # a quicker look (the numbers get noisier)
    python benchmarks/guidance.py --parts cfg        # some parts: cfg, remedy, cost, pushes, classifier, inpaint

Classifier-free guidance (`digits_cond`, exercise 8.4's guided_sample, DDIM-50, eta = 0) at the scales
0, 1, 2, 3, 5, 8: the fraction of samples the shipped digit classifier (toolkit.metrics) calls the
asked class, overall and for the worst class; the per-class Fréchet ratio (that class's samples
against one half of its real digits, over the other half at the same size: 1 is as close as real
digits are; both halves are training data of the model, so well below 1 hints at copying); the spread within a class (mean pairwise pixel distance over the real one), also
after clamping the samples to [-1, 1]; and the overshoot, the share of pixels beyond ±1.05 (real
digits lie in [-1, 1]). Three remedies for the overshoot at the scales 5 and 8, on the same starting
noise (guidance_widgets.remedied_guided_digits: x̂_0 clipping, dynamic thresholding, CFG rescale).
What a guided step costs: one call of the network on B inputs, two such calls, one call on 2B.
Along classifier-guided DDIM at scale 1: the classifier's push against the conditional model's.
Classifier guidance (`digits` + `digits_classifier_t`, 8.5 inside DDIM-50) at a few scales; and
inpainting (8.6, DDPM-1000) from the top half, the left half and the centre of real digits, by
replacement and by RePaint (resample 3, jump length 1), with the standard error over the digits.
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
REMEDY_SCALES = (5.0, 8.0)
STEPS = 50
BATCH = 500


def _rounded(row: dict) -> dict:
    keep = {k: v for k, v in row.items() if k not in ("samples", "labels")}
    keep["class_accuracy"] = [round(a, 4) for a in keep["class_accuracy"]]
    keep["fd_ratio"] = {str(c): round(r, 3) for c, r in keep["fd_ratio"].items()}
    for key in ("accuracy", "worst_class_accuracy", "fd_ratio_mean", "fd_ratio_max", "spread", "spread_clamped",
                "outside"):
        if key in keep:
            keep[key] = round(keep[key], 4)
    return keep


def _scores(samples, y, scale, seconds) -> dict:
    fd = gw.per_class_fd_ratio(samples, y)
    predicted = gw.predicted_classes(samples)
    per_class = [(predicted[y == c] == c).double().mean().item() for c in range(10)]
    return _rounded({"scale": scale, "accuracy": (predicted == y).double().mean().item(), "class_accuracy": per_class,
                     "worst_class_accuracy": min(per_class), "fd_ratio": fd, "fd_ratio_mean": sum(fd.values()) / len(fd),
                     "fd_ratio_max": max(fd.values()), "spread": gw.class_spread(samples, y),
                     "spread_clamped": gw.class_spread(samples, y, clamp=True),
                     "outside": gw.saturated_fraction(samples), "seconds": round(seconds, 1)})


def measure_cfg(model, schedule, scale: float, per_class: int = 500, seed: int = 1, num_steps: int = STEPS,
                remedy: str | None = None) -> dict:
    """Classifier-free guided DDIM at one scale, per_class samples of each digit, in batches; with a remedy
    for the overshoot, the same starting noise (the same seeds and batches)."""
    y = torch.arange(10).repeat_interleave(per_class)
    start, parts = time.perf_counter(), []
    for i, chunk in enumerate(y.split(BATCH)):
        if remedy is None:
            x = gw.guided_digits(model, schedule, chunk, scale, num_steps=num_steps, seed=seed * 1000 + i)
        else:
            x = gw.remedied_guided_digits(model, schedule, chunk, scale, remedy, num_steps=num_steps, seed=seed * 1000 + i)
        parts.append(x.cpu())
    return _scores(torch.cat(parts), y, scale, time.perf_counter() - start)


def standard_error(p: float, n: int) -> float:
    """The standard error of a fraction p measured on n independent trials."""
    return (p * (1 - p) / n) ** 0.5


def measure_classifier_guidance(model, classifier, schedule, scale: float, per_class: int, seed: int = 1,
                                num_steps: int = STEPS) -> dict:
    y = torch.arange(10).repeat_interleave(per_class)
    start, parts = time.perf_counter(), []
    for i, chunk in enumerate(y.split(BATCH)):
        parts.append(gw.classifier_guided_digits(model, classifier, schedule, chunk, scale, num_steps=num_steps,
                                                 seed=seed * 1000 + i).detach().cpu())
    return _scores(torch.cat(parts), y, scale, time.perf_counter() - start)


def measure_inpainting(model, schedule, n: int, num_steps=None, seed: int = 1, resample: int = 1) -> dict:
    images, labels = data.digits(return_labels=True)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    images, labels = images[order], labels[order]
    rows = {}
    for region in ("top half", "left half", "centre"):
        start = time.perf_counter()
        _, done = gw.inpaint_digits(model, schedule, images, region, seed=seed, num_steps=num_steps, resample=resample)
        kept = gw.predicted_classes(done) == labels
        accuracy = kept.double().mean().item()
        rows[region] = {"accuracy": round(accuracy, 4), "se": round(standard_error(accuracy, n), 4), "n": n,
                        "kept": "".join(str(int(k)) for k in kept), "seconds": round(time.perf_counter() - start, 1)}
        print(f"  inpainting from the {region}, resample {resample}: {100 * accuracy:.1f} ± "
              f"{100 * rows[region]['se']:.1f} % keep their class ({n} digits)")
    return rows


def compare_resampling(plain: dict, repaint: dict) -> dict:
    """Per region: RePaint's gain in class kept over replacement, with the standard error of a paired difference
    (the same digits, so the difference's error comes from the digits where the two disagree)."""
    rows = {}
    for region in plain:
        a, b = (torch.tensor([int(k) for k in rows_[region]["kept"]]).double() for rows_ in (plain, repaint))
        diff = b - a
        rows[region] = {"gain": round(diff.mean().item(), 4),
                        "se": round((diff.var(unbiased=True) / len(diff)).sqrt().item(), 4),
                        "only_replacement": int(((a == 1) & (b == 0)).sum()), "only_repaint": int(((a == 0) & (b == 1)).sum())}
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=500, help="samples per class at the goal scales 1 and 3")
    parser.add_argument("--other-per-class", type=int, default=None,
                        help="samples per class at the other scales (default: --per-class)")
    parser.add_argument("--cg-per-class", type=int, default=None, help="classifier guidance (default: per-class)")
    parser.add_argument("--inpaint-n", type=int, default=300)
    parser.add_argument("--inpaint-steps", type=int, default=None, help="DDPM on this many timesteps (default all T)")
    parser.add_argument("--inpaint-resample", type=int, default=3, help="RePaint's passes per step (jump length 1)")
    parser.add_argument("--remedy-per-class", type=int, default=100, help="samples per class for the overshoot remedies")
    parser.add_argument("--parts", nargs="*", default=["cfg", "remedy", "cost", "pushes", "classifier", "inpaint"])
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
                  f"max {row['fd_ratio_max']:.2f}, spread {row['spread']:.2f} (clamped {row['spread_clamped']:.2f}), "
                  f"beyond ±1.05 {100 * row['outside']:.2f} % ({per_class} per class, {row['seconds']:.0f} s)")
        results["cfg"] = {"per_class": args.per_class, "sampler": f"DDIM-{STEPS}", "rows": rows}
        by_scale = {row["scale"]: row for row in rows}
        goals = {"scale3_every_class_ge_98pct": by_scale[3.0]["worst_class_accuracy"] >= 0.98,
                 "scale1_accuracy_ge_90pct": by_scale[1.0]["accuracy"] >= 0.90,
                 "scale1_fd_ratio_max_le_2": by_scale[1.0]["fd_ratio_max"] <= 2.0}
        results["cfg"]["goals_met"] = goals
        print("  goals:", goals)
    if "remedy" in args.parts:
        model, schedule, _ = reference.load("digits_cond", device="cpu")
        rows = []
        for scale in REMEDY_SCALES:
            for remedy in gw.REMEDIES:
                row = {**measure_cfg(model, schedule, scale, args.remedy_per_class, remedy=remedy),
                       "remedy": remedy, "per_class": args.remedy_per_class}
                rows.append(row)
                print(f"CFG scale {scale:g}, remedy {remedy}: accuracy {100 * row['accuracy']:.1f} %, Fréchet ratio "
                      f"mean {row['fd_ratio_mean']:.2f} max {row['fd_ratio_max']:.2f}, beyond ±1.05 "
                      f"{100 * row['outside']:.2f} %, spread {row['spread']:.2f}  ({row['seconds']:.0f} s)")
        results["remedy"] = {"per_class": args.remedy_per_class, "sampler": f"DDIM-{STEPS}", "rows": rows,
                             "settings": {"dynamic_percentile": 0.995, "rescale": 0.7}}
    if "cost" in args.parts:
        model, _, _ = reference.load("digits_cond", device="cpu")
        rows = [gw.network_call_times(model, batch, repeats=15) for batch in (10, 100, 500)]
        for row in rows:
            print(f"B = {row['batch']}: one call on B {1e3 * row['one_call_B']:.1f} ms, two calls on B "
                  f"{1e3 * row['two_calls_B']:.1f} ms, one call on 2B {1e3 * row['one_call_2B']:.1f} ms "
                  f"({row['one_call_2B'] / row['one_call_B']:.2f} × one call on B)")
        results["cost"] = {"rows": [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()}
                                    for row in rows], "note": "median of 15 timed calls, CPU, 1 thread"}
    if "pushes" in args.parts:
        model, schedule, _ = reference.load("digits", device="cpu")
        cond_model, _, _ = reference.load("digits_cond", device="cpu")
        classifier, _, _ = reference.load("digits_classifier_t", device="cpu")
        y = torch.arange(10).repeat_interleave(10)
        rows, samples = gw.pushes_along_classifier_guidance(model, cond_model, classifier, schedule, y, 1.0,
                                                            num_steps=STEPS, seed=2)
        rows = [{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()} for row in rows]
        results["pushes"] = {"sampler": f"classifier-guided DDIM-{STEPS}, scale 1", "n": len(y), "rows": rows,
                             "accuracy": round(gw.class_accuracy(samples, y), 4)}
        for row in rows[::5]:
            print(f"t = {row['t']:4d}: classifier's push {row['classifier']:.3f}, the conditional model's "
                  f"{row['cfg']:.3f}, cosine {row['cosine']:.2f}, p_phi(asked) {row['p_asked']:.2f}")
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
        plain = measure_inpainting(model, schedule, args.inpaint_n, args.inpaint_steps)
        repaint = measure_inpainting(model, schedule, args.inpaint_n, args.inpaint_steps, resample=args.inpaint_resample)
        gains = compare_resampling(plain, repaint)
        for region, row in gains.items():
            print(f"  RePaint - replacement, {region}: {100 * row['gain']:+.1f} ± {100 * row['se']:.1f} points")
        results["inpainting"] = {"sampler": f"DDPM-{args.inpaint_steps or schedule.T}, replacement",
                                 "regions": plain,
                                 "repaint": {"sampler": f"DDPM-{args.inpaint_steps or schedule.T}, RePaint with jump "
                                                        f"length 1, resample {args.inpaint_resample}",
                                             "resample": args.inpaint_resample, "regions": repaint, "gain": gains}}
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
