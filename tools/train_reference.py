"""Train the shipped reference models and measure them; writes mini_diffusion/toolkit/reference_models/.

    python tools/train_reference.py                 # both, with the recipes in mini_diffusion/recipes.py
    python tools/train_reference.py moons --steps 500 --out /tmp/models   # a quick trial elsewhere

Training uses the solutions (set here), the package's own training loop, and CUDA when present.
The manifest records the recipe, the machine, the wall time, the git commit, and the quality
measured right after training (DDPM-1000 and DDIM-50 as ratios to the metric floor).
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ["MINI_DIFFUSION_SOLUTIONS"] = "1"

import torch  # noqa: E402

import mini_diffusion as md  # noqa: E402
from mini_diffusion import evaluate, recipes, reference, train  # noqa: E402
from mini_diffusion.toolkit.device import describe_device  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EVAL_SIZES = {"moons": 4000, "digits": 500}  # digits: DDPM-1000 costs 1000 U-Net calls per sample on a CPU
EVAL_SEEDS = {"moons": (1, 2, 3), "digits": (1,)}


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "mini_diffusion", "solutions"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("+uncommitted-changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def measure(model, schedule, name: str) -> dict:
    """Quality right after training, averaged over a few sampling seeds (near the floor, one
    draw of the metric is noisy), and the wall time of each sampler on this machine."""
    metrics = {}
    n = EVAL_SIZES[name]
    for sampler, steps in (("ddpm", None), ("ddim", 50)):
        label = f"{sampler}{steps or schedule.T}"
        ratios, seconds = [], []
        for seed in EVAL_SEEDS[name]:
            samples, s = evaluate.generate(model, schedule, sampler, n, name, steps, seed=seed)
            ratios.append(round(evaluate.quality(samples, name, seed=seed)["ratio"], 4))
            seconds.append(s)
        metrics[f"{label}_ratio"] = round(sum(ratios) / len(ratios), 4)
        metrics[f"{label}_ratio_per_seed"] = ratios
        metrics[f"{label}_seconds_{n}"] = round(sum(seconds) / len(seconds), 2)
        print(f"  {label}: {metrics[f'{label}_ratio']:.3f} x floor {ratios}  ({seconds[0]:.1f} s for {n} samples)")
    metrics["ddim50_within_pct_of_ddpm"] = round(100 * (metrics["ddim50_ratio"] / metrics["ddpm1000_ratio"] - 1), 1)
    if name == "digits":
        _, seconds = evaluate.generate(model, schedule, "ddim", 64, name, 50, seed=2)
        metrics["ddim50_seconds_64"] = round(seconds, 2)
    return metrics


def remeasure(name: str, models_dir: Path) -> None:
    """Measure a model already written (e.g. after changing the metrics) and update its manifest."""
    torch.set_num_threads(1)
    model, schedule, manifest = reference.load(name, models_dir=models_dir)
    manifest["metrics"] = measure(model, schedule, name)
    manifest["metrics_machine"] = describe_device(next(model.parameters()).device)
    reference.save(model, schedule, manifest, name, models_dir=models_dir)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=list(recipes.RECIPES), choices=list(recipes.RECIPES))
    parser.add_argument("--steps", type=int, help="override the recipe's step count (for trials)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", type=Path, default=reference.MODELS_DIR)
    parser.add_argument("--measure-only", action="store_true", help="re-measure the models in --out, no training")
    args = parser.parse_args(argv)
    for name in args.names:
        if args.measure_only:
            remeasure(name, args.out)
            continue
        recipe = recipes.RECIPES[name]
        settings = dict(recipe["train"], **({"steps": args.steps} if args.steps else {}))
        print(f"== {name}: {settings}")
        model, data, schedule = recipe["model"](), recipes.recipe_data(name), recipes.recipe_schedule(name)
        result = train.train(model, data, schedule, device=args.device, **settings)
        ema = result.ema_model.eval().requires_grad_(False)
        manifest = {
            "model": model.config,
            "parameters": sum(p.numel() for p in model.parameters()),
            "schedule": recipe["schedule"],
            "data": recipe["data"],
            "training": {**result.summary(), **settings, "device": result.device_info, "weights": "EMA"},
            "torch_version": torch.__version__,
            "mini_diffusion_version": md.__version__,
            "commit": git_commit(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        manifest = reference.save(ema, schedule, manifest, name, models_dir=args.out)  # kept even if measuring fails
        if result.threads:  # sampling is as thread-sensitive as training on a small CPU
            torch.set_num_threads(result.threads)
        start = time.perf_counter()
        manifest["metrics"] = measure(ema, schedule.to(next(ema.parameters()).device), name)
        manifest["metrics_note"] = "ratio = distance(samples, real) / mean distance(real, real); averaged over the seeds listed"
        manifest["evaluation_seconds"] = round(time.perf_counter() - start, 1)
        manifest = reference.save(ema, schedule, manifest, name, models_dir=args.out)
        print(f"   wrote {args.out / manifest['file']} ({manifest['weights_bytes'] / 1e6:.2f} MB), "
              f"trained in {result.wall_time_s:.0f} s on {result.device}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
