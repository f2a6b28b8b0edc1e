"""Train the shipped reference models and measure them; writes mini_diffusion/toolkit/reference_models/.

    python tools/train_reference.py                 # both, with the recipes in mini_diffusion/recipes.py
    python tools/train_reference.py moons --steps 500 --out /tmp/models   # a quick trial elsewhere
    python tools/train_reference.py digits_cond --skip-measure   # train now, measure later:
    python tools/train_reference.py digits_cond --measure-only   #   (fills in the manifest's metrics)
    python tools/train_reference.py digits_cond --resume         # continue from the last checkpoint

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
CHECKPOINTS = ROOT / "checkpoints"  # git-ignored; train() writes them atomically every 500 steps
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


GUIDED_SCALES = (0.0, 1.0, 3.0)
GUIDED_PER_CLASS = 100  # the notebook-08 benchmark (benchmarks/guidance.py) uses 500 per class
CLASSIFIER_TIMES = (1, 100, 250, 500, 750, 1000)


def measure_conditional(model, schedule, per_class: int = GUIDED_PER_CLASS) -> dict:
    """Classifier-free guided DDIM-50 (exercise 8.4) at a few scales: how often the shipped digit
    classifier recognises the asked class, and the per-class Fréchet ratio (benchmarks/guidance.py)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import guidance as bench  # benchmarks/guidance.py

    metrics = {"per_class": per_class, "sampler": "DDIM-50, eta 0"}
    for scale in GUIDED_SCALES:
        row = bench.measure_cfg(model, schedule, scale, per_class=per_class, seed=1)
        metrics[f"cfg_scale{scale:g}"] = row
        print(f"  scale {scale:g}: accuracy {row['accuracy']:.3f} (worst class {row['worst_class_accuracy']:.3f}), "
              f"Fréchet ratio per class mean {row['fd_ratio_mean']:.2f} max {row['fd_ratio_max']:.2f}  ({row['seconds']:.0f} s)")
    return metrics


def measure_classifier(model, schedule) -> dict:
    """Accuracy of the noisy classifier on all 1797 digits noised to a few t (a fixed seed).
    The training images: the digits data set has no held-out split of its own."""
    images, labels = md.data.digits(return_labels=True)
    generator = torch.Generator().manual_seed(1)
    metrics = {}
    with torch.no_grad():
        for t in CLASSIFIER_TIMES:
            noise = torch.randn(images.shape, generator=generator)
            x_t = md.forward.q_sample(images, t, schedule, noise)
            accuracy = (model(x_t, t).argmax(dim=1) == labels).double().mean().item()
            metrics[f"accuracy_t{t}"] = round(accuracy, 4)
            print(f"  t = {t}: accuracy {accuracy:.3f}")
    metrics["note"] = "on the 1797 training digits, noised with seed 1"
    return metrics


def measure_any(model, schedule, name: str, models_dir: Path = reference.MODELS_DIR) -> dict:
    if name in ("moons_flow", "digits_flow"):  # notebook 09's velocity models: benchmarks/flow.py
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import flow as flow_bench

        return flow_bench.measure_flow(model, name)
    if name in ("shapes_autoencoder", "shapes_latent"):  # notebook 11's models: benchmarks/latent.py
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import latent as latent_bench

        if name == "shapes_autoencoder":
            return latent_bench.measure_autoencoder(model)
        autoencoder, _, _ = reference.load("shapes_autoencoder", device="cpu", models_dir=models_dir)
        manifest = reference.read_manifest(name, models_dir)
        return latent_bench.measure_latent(model, schedule, manifest, autoencoder)
    if name == "digits_cond":
        return measure_conditional(model, schedule)
    if name == "digits_classifier_t":
        return measure_classifier(model, schedule)
    return measure(model, schedule, name)


def remeasure(name: str, models_dir: Path) -> None:
    """Measure a model already written (e.g. after changing the metrics) and update its manifest."""
    torch.set_num_threads(1)
    model, schedule, manifest = reference.load(name, device="cpu", models_dir=models_dir)
    start = time.perf_counter()
    manifest["metrics"] = measure_any(model, schedule, name, models_dir)
    manifest["evaluation_seconds"] = round(time.perf_counter() - start, 1)
    manifest["metrics_machine"] = describe_device(next(model.parameters()).device)
    reference.save(model, schedule, manifest, name, models_dir=models_dir)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=list(recipes.RECIPES), choices=list(recipes.RECIPES))
    parser.add_argument("--steps", type=int, help="override the recipe's step count (for trials)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", type=Path, default=reference.MODELS_DIR)
    parser.add_argument("--measure-only", action="store_true", help="re-measure the models in --out, no training")
    parser.add_argument("--skip-measure", action="store_true", help="train and write, measure later with --measure-only")
    parser.add_argument("--resume", action="store_true", help=f"continue from the checkpoint in {CHECKPOINTS.name}/")
    parser.add_argument("--threads", type=int, help="CPU threads for training (default: timed, 'auto')")
    parser.add_argument("--note", help="a remark on this run, kept in the manifest's training.note")
    args = parser.parse_args(argv)
    for name in args.names:
        if args.measure_only:
            remeasure(name, args.out)
            continue
        recipe = recipes.RECIPES[name]
        settings = dict(recipe["train"], **({"steps": args.steps} if args.steps else {}))
        print(f"== {name}: {settings}")
        model, schedule = recipe["model"](), recipes.recipe_schedule(name)
        data = recipes.recipe_data(name, models_dir=args.out)  # shapes_latent: the autoencoder written there
        result = train.train(model, data, schedule, device=args.device, loss_fn=recipes.recipe_loss(name),
                             checkpoint_path=CHECKPOINTS / f"{name}.ckpt", checkpoint_every=500, resume=args.resume,
                             threads=args.threads or "auto", **settings)
        ema = result.ema_model.eval().requires_grad_(False)
        manifest = {
            "model": model.config,
            "parameters": sum(p.numel() for p in model.parameters()),
            "schedule": recipe["schedule"],
            "data": recipe["data"],
            **({"loss": recipe["loss"]} if "loss" in recipe else {}),
            **recipes.recipe_manifest(name, models_dir=args.out),
            "training": {**result.summary(), **settings, "device": result.device_info, "weights": "EMA",
                         **({"note": args.note} if args.note else {})},
            "torch_version": torch.__version__,
            "mini_diffusion_version": md.__version__,
            "commit": git_commit(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        manifest = reference.save(ema, schedule, manifest, name, models_dir=args.out)  # kept even if measuring fails
        if args.skip_measure:
            print(f"   wrote {args.out / manifest['file']}, trained in {result.wall_time_s:.0f} s; "
                  f"measure it with: python tools/train_reference.py {name} --measure-only")
            continue
        if result.threads:  # sampling is as thread-sensitive as training on a small CPU
            torch.set_num_threads(result.threads)
        start = time.perf_counter()
        manifest["metrics"] = measure_any(ema, schedule.to(next(ema.parameters()).device) if schedule is not None else None,
                                          name, args.out)
        if name in ("moons", "digits"):
            manifest["metrics_note"] = "ratio = distance(samples, real) / mean distance(real, real); averaged over the seeds listed"
        manifest["evaluation_seconds"] = round(time.perf_counter() - start, 1)
        manifest = reference.save(ema, schedule, manifest, name, models_dir=args.out)
        print(f"   wrote {args.out / manifest['file']} ({manifest['weights_bytes'] / 1e6:.2f} MB), "
              f"trained in {result.wall_time_s:.0f} s on {result.device}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
