"""The unconditional digits model (notebooks 00-07) against the goals of issue 20 §2.

    python benchmarks/digits.py                               # the shipped model, DDIM-50, 500 samples, seeds 1-3
    python benchmarks/digits.py --ddpm                        # also DDPM-1000, seed 1 (1000 U-Net calls per sample: slow)
    python benchmarks/digits.py --models-dir /tmp/digits_new  # a candidate model written by tools/train_reference.py
    python benchmarks/digits.py --n 200 --seeds 1 2 --out /tmp/digits.json

For each sampler, n samples at each fixed seed (torch.Generator().manual_seed(seed), as
evaluate.generate draws them; DDIM-50: seeds 1-3, the mean reported; DDPM-1000: seed 1), scored by:
- confidence: the shipped digit classifier's (metrics.load_digit_classifier) largest softmax
  probability, averaged over the samples; and the fraction of samples above CONFIDENT (0.9).
  The same for the real digits, as the yardstick (all 1797, and the held-out half of
  metrics._digits_halves).
- the Fréchet ratio, metrics.digits_fd_ratio: the first min(n, 898) samples against the reference
  half of the real digits (899 images), over the floor (the held-out half against the same half).
- memorisation: the pixel-space L2 distance (64 values in [-1, 1]; samples clamped to [-1, 1])
  from each image to its nearest training digit. The model is trained on all 1797 digits, so
  every real digit is a training digit and none is held out from the model. What is compared:
    samples:  distance to the nearest of the 1797 training digits;
    real:     each real digit's distance to the nearest of the other 1796 (leave-one-out),
  i.e. how far a fresh real digit would lie from a training set of about that size. A model that
  copies its training digits has sample distances far below the real ones. Reported: median and
  mean of both, their ratio (samples / real), and the fraction of "near-copies", images closer to
  their nearest training digit than the 1st percentile of the real leave-one-out distances (1 %
  for the real digits by construction). The same with the halves of metrics._digits_halves
  (distance to the 899-image reference half, samples against the 898 held-out real digits) is
  reported too.

Goals (issue 20 §2): DDIM-50 mean confidence >= 0.97; Fréchet ratio <= 1.0; no memorisation:
median nearest-training-digit distance of the samples >= 0.9x that of the real digits, and at
most 2 % near-copies. Writes benchmarks/results/digits.json and prints each goal as met or missed.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ["MINI_DIFFUSION_SOLUTIONS"] = "1"  # measure the reference solutions

import torch  # noqa: E402

from mini_diffusion._course import evaluate  # noqa: E402
from mini_diffusion.toolkit import data, metrics, reference  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "digits.json"
SHAPE = (1, 8, 8)
CONFIDENT = 0.9  # a sample is "confidently recognised" when the classifier gives one class >= 0.9
GOALS = {"ddim50_confidence": 0.97, "fd_ratio_max": 1.0, "nn_median_ratio_min": 0.9, "near_copies_max": 0.02}


def sample(model, schedule, sampler: str, n: int, seed: int, steps: int | None = None) -> torch.Tensor:
    """n digits from `sampler` ("ddim" or "ddpm") with generator seed `seed`, float32 on the CPU."""
    generator = torch.Generator().manual_seed(seed)
    run = evaluate.sampler_function(sampler)
    with torch.no_grad():
        return run(model, (n, *SHAPE), schedule, num_steps=steps or schedule.T, generator=generator).cpu().float()


def confidence(images: torch.Tensor) -> dict:
    """Mean largest softmax probability of the shipped digit classifier, and the fraction >= CONFIDENT."""
    with torch.no_grad():
        top = metrics.load_digit_classifier()(images.detach().cpu().float()).softmax(dim=-1).max(dim=-1).values
    return {"mean_confidence": top.double().mean().item(), "confident_fraction": (top >= CONFIDENT).double().mean().item()}


def nearest_distances(images: torch.Tensor, reference_set: torch.Tensor, exclude_self: bool = False) -> torch.Tensor:
    """L2 distance (float64) from each image [n, 1, 8, 8] to its nearest image in reference_set [m, 1, 8, 8].
    exclude_self: images is reference_set, and each image's own row is left out (leave-one-out)."""
    a, b = images.reshape(len(images), -1).double(), reference_set.reshape(len(reference_set), -1).double()
    d = torch.cdist(a, b)
    if exclude_self:
        if a.shape != b.shape:
            raise ValueError("exclude_self needs images to be the reference set itself")
        d.fill_diagonal_(float("inf"))
    return d.min(dim=1).values


@torch.no_grad()
def memorisation(samples: torch.Tensor) -> dict:
    """Nearest-training-digit distances of the samples against those of real digits (see the module docstring)."""
    real = data.digits()
    samples = samples.clamp(-1, 1)
    d_samples = nearest_distances(samples, real)
    d_real = nearest_distances(real, real, exclude_self=True)
    copy_threshold = torch.quantile(d_real, 0.01).item()
    order = torch.randperm(len(real), generator=torch.Generator().manual_seed(metrics.DIGITS_SPLIT_SEED))
    half = (len(real) + 1) // 2  # the split of metrics._digits_halves
    reference_half, held_out = real[order[:half]], real[order[half:]]
    h_samples, h_real = nearest_distances(samples, reference_half), nearest_distances(held_out, reference_half)
    return {
        "definition": "pixel L2 (64 values, samples clamped to [-1, 1]) to the nearest training digit; samples vs "
                      "all 1797 digits, real digits vs the other 1796 (leave-one-out)",
        "samples_median": d_samples.median().item(), "samples_mean": d_samples.mean().item(),
        "real_median": d_real.median().item(), "real_mean": d_real.mean().item(),
        "median_ratio": (d_samples.median() / d_real.median()).item(),
        "mean_ratio": (d_samples.mean() / d_real.mean()).item(),
        "near_copy_threshold": copy_threshold,
        "samples_near_copies": (d_samples < copy_threshold).double().mean().item(),
        "real_near_copies": (d_real < copy_threshold).double().mean().item(),
        "halves": {"definition": "to the 899-image reference half of metrics._digits_halves; real = the 898 held-out",
                   "samples_median": h_samples.median().item(), "real_median": h_real.median().item(),
                   "median_ratio": (h_samples.median() / h_real.median()).item()},
    }


def real_confidence() -> dict:
    real = data.digits()
    _, held_out_idx = torch.randperm(len(real), generator=torch.Generator().manual_seed(metrics.DIGITS_SPLIT_SEED)
                                     ).split([(len(real) + 1) // 2, len(real) // 2])
    return {"all_1797": confidence(real), "held_out_898": confidence(real[held_out_idx])}


def measure(model, schedule, sampler: str, n: int, seeds, steps: int | None = None) -> dict:
    """Confidence, Fréchet ratio and memorisation of n samples per seed, each averaged over the seeds."""
    per_seed = []
    for seed in seeds:
        start = time.perf_counter()
        x = sample(model, schedule, sampler, n, seed, steps)
        seconds = time.perf_counter() - start
        per_seed.append({"seed": seed, "seconds": seconds, **confidence(x), "fd_ratio": metrics.digits_fd_ratio(x),
                         "memorisation": memorisation(x)})
    mean = lambda key, sub=None: sum((r[sub][key] if sub else r[key]) for r in per_seed) / len(per_seed)  # noqa: E731
    return _rounded({
        "sampler": f"{sampler.upper()}-{steps or schedule.T}", "n": n, "seeds": list(seeds),
        "mean_confidence": mean("mean_confidence"), "confident_fraction": mean("confident_fraction"),
        "fd_ratio": mean("fd_ratio"), "seconds_per_seed": mean("seconds"),
        "nn_median_ratio": mean("median_ratio", "memorisation"), "near_copies": mean("samples_near_copies", "memorisation"),
        "per_seed": per_seed,
    })


def goals(row: dict, confidence_goal: bool) -> dict:
    out = {"fd_ratio_le_1.0": row["fd_ratio"] <= GOALS["fd_ratio_max"],
           "no_memorisation": row["nn_median_ratio"] >= GOALS["nn_median_ratio_min"]
           and row["near_copies"] <= GOALS["near_copies_max"]}
    if confidence_goal:
        out = {"mean_confidence_ge_0.97": row["mean_confidence"] >= GOALS["ddim50_confidence"], **out}
    return out


def _rounded(value):
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=reference.MODELS_DIR, help="where digits.json/.safetensors lie")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--ddpm", action="store_true", help="also DDPM-1000 (slow on a CPU)")
    parser.add_argument("--ddpm-n", type=int, help="samples per seed for DDPM-1000 (default: --n)")
    parser.add_argument("--ddpm-seeds", type=int, nargs="*", default=[1], help="seeds for DDPM-1000 (default: 1)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, schedule, manifest = reference.load("digits", device="cpu", models_dir=args.models_dir)
    weights = (args.models_dir / manifest["file"]).resolve()
    results = {"model": str(weights.relative_to(ROOT) if weights.is_relative_to(ROOT) else weights), "sha256": manifest["sha256"],
               "config": manifest["model"], "parameters": manifest.get("parameters"),
               "threads": args.threads, "confident_threshold": CONFIDENT, "goals": GOALS,
               "real": _rounded(real_confidence())}
    print(f"digits model {results['model']} ({results['parameters']} parameters)")
    print(f"real digits: mean confidence {results['real']['all_1797']['mean_confidence']:.4f} (all 1797), "
          f"{results['real']['held_out_898']['mean_confidence']:.4f} (held-out half)")
    runs = [("ddim", 50, args.n, args.seeds)] + ([("ddpm", None, args.ddpm_n or args.n, args.ddpm_seeds)] if args.ddpm else [])
    for sampler, steps, n, seeds in runs:
        row = measure(model, schedule, sampler, n, seeds, steps)
        row["goals_met"] = goals(row, confidence_goal=sampler == "ddim")
        results[row["sampler"].lower().replace("-", "")] = row
        m = row["per_seed"][0]["memorisation"]
        print(f"{row['sampler']}, n = {n}, seeds {seeds}: mean confidence {row['mean_confidence']:.4f}, "
              f"confident (>= {CONFIDENT}) {100 * row['confident_fraction']:.1f} %, Fréchet ratio {row['fd_ratio']:.3f}, "
              f"{row['seconds_per_seed']:.1f} s per seed")
        print(f"  nearest training digit: samples median {m['samples_median']:.3f} / mean {m['samples_mean']:.3f}, "
              f"real (leave-one-out) median {m['real_median']:.3f} / mean {m['real_mean']:.3f}; ratio "
              f"{row['nn_median_ratio']:.3f}; near-copies {100 * row['near_copies']:.1f} % (real 1 %); halves: "
              f"samples {m['halves']['samples_median']:.3f} vs held-out {m['halves']['real_median']:.3f}")
        for goal, met in row["goals_met"].items():
            print(f"  {goal}: {'met' if met else 'missed'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
