"""The `mini-diffusion` command line (also `python -m mini_diffusion`).

    mini-diffusion info
    mini-diffusion sample --model digits --sampler ddim --steps 50 --n 64 --out grid.png
    mini-diffusion evaluate --model moons --sampler ddpm --n 4000
    mini-diffusion train --data moons --steps 2000 --out my_models/
    mini-diffusion release student OUTDIR      (instructors; also: release gradescope OUT.zip)

By default the samplers and losses come from solutions/ when the course folder has it, so the
commands show what a finished course produces; `--code mine` uses your own exercise code.
"""

import argparse
import sys
from pathlib import Path

from mini_diffusion._course import seam
from mini_diffusion._base.catalog import EXERCISE_MODULES


class UserError(Exception):
    """A mistake in the command's arguments or inputs: printed without a traceback."""


def _choose_code(choice: str) -> str:
    has_solutions = seam.has_solutions()
    if choice == "auto":
        choice = "solutions" if has_solutions else "mine"
    if choice == "solutions":
        if not has_solutions:
            raise UserError("--code solutions: this copy of the course has no solutions/ folder; use --code mine")
        seam.use_whole_modules(EXERCISE_MODULES)
    return choice


def _samplers() -> dict:
    """Sampler name -> the exercise that implements it (from evaluate's table)."""
    from mini_diffusion._course.evaluate import SAMPLERS

    return dict(SAMPLERS)


def _ready_samplers() -> list:
    from mini_diffusion._course.evaluate import READY_SAMPLERS

    return [f"{name} ({function})" for name, function in READY_SAMPLERS.items()]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mini-diffusion")
    except PackageNotFoundError:  # run from a folder that was never installed
        return "(not installed)"


def cmd_info(args) -> int:
    import platform

    import torch

    from mini_diffusion.toolkit import reference
    from mini_diffusion.toolkit.device import pick_device

    print(f"mini_diffusion {_version()}  python {platform.python_version()}  torch {torch.__version__}")
    print(f"device: {pick_device()}  (CUDA available: {torch.cuda.is_available()})")
    print(f"solutions folder: {'present' if seam.has_solutions() else 'absent'}; "
          f"in use: {', '.join(seam.lent()) or 'none (your own code)'}")
    print("reference models:")
    for name in reference.NAMES:
        try:
            m = reference.read_manifest(name)
            metrics = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in m.get("metrics", {}).items())
            print(f"  {name:7s} {m['model'].get('kind', '?')}, trained {m['training']['steps']} steps on "
                  f"{m['training']['device'].get('device', '?')}; {metrics}")
        except Exception as err:  # info must report, not crash
            print(f"  {name:7s} unavailable: {err}")
    return 0


def _load(name, device):
    from mini_diffusion.toolkit import reference

    return reference.load(name, device=device)


def _model_name(args) -> str:
    """The reference model a sampler needs: the flow sampler runs the velocity model (moons_flow, digits_flow)."""
    from mini_diffusion._course.evaluate import FLOW_SAMPLERS

    return f"{args.model}_flow" if args.sampler in FLOW_SAMPLERS else args.model


def cmd_sample(args) -> int:
    from mini_diffusion._course import evaluate

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--out must name a .png file; got {args.out}")
    code = _choose_code(args.code)
    model, schedule, _ = _load(_model_name(args), args.device)
    samples, seconds = evaluate.generate(model, schedule, args.sampler, args.n, args.model, args.steps, args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    title = f"{args.model}: {args.sampler}" + (f" {args.steps} steps" if args.steps else "") + f", seed {args.seed}"
    save_samples(samples, out, title=title)
    print(f"wrote {out} ({args.n} samples, {seconds:.1f} s, {code} code)")
    return 0


def save_samples(samples, path: Path, title: str = "") -> None:
    """A PNG of the samples: a grid of images for [N, C, H, W], a scatter plot for [N, 2]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if samples.dim() == 4:
        n = samples.shape[0]
        cols = min(n, 8)
        rows = -(-n // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(cols, rows + 0.4), squeeze=False)
        for ax, i in zip(axes.flat, range(rows * cols)):
            ax.axis("off")
            if i < n:
                ax.imshow(samples[i, 0].clamp(-1, 1).numpy(), cmap="gray_r", vmin=-1, vmax=1)
    else:
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.scatter(samples[:, 0], samples[:, 1], s=3, alpha=0.6)
        ax.set_aspect("equal")
        ax.set_xlabel("x₁")
        ax.set_ylabel("x₂")
    fig.suptitle(title)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def cmd_evaluate(args) -> int:
    from mini_diffusion._course import evaluate

    code = _choose_code(args.code)
    model, schedule, manifest = _load(_model_name(args), args.device)
    samples, seconds = evaluate.generate(model, schedule, args.sampler, args.n, args.model, args.steps, args.seed)
    result = evaluate.quality(samples, args.model, seed=args.seed)
    steps = args.steps or (schedule.T if schedule is not None else evaluate.FLOW_DEFAULT_STEPS)
    print(f"{args.model} {args.sampler}-{steps}, {args.n} samples ({code} code): {result['metric']} = "
          f"{result['ratio']:.3f}  [{seconds:.1f} s sampling]")
    return 0


def cmd_train(args) -> int:
    from mini_diffusion.toolkit import recipes, reference, train

    code = _choose_code(args.code)
    recipe = recipes.RECIPES[args.data]
    settings = {**recipe["train"]}
    for key in ("steps", "batch_size", "lr", "seed"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data, schedule, model = recipes.recipe_data(args.data), recipes.recipe_schedule(args.data), recipe["model"]()
    result = train.train(model, data, schedule, device=args.device, checkpoint_path=out / f"{args.data}.ckpt",
                         resume=args.resume, **settings)
    manifest = {
        "model": model.config, "schedule": recipe["schedule"], "data": recipe["data"],
        "training": {**result.summary(), **{k: settings[k] for k in ("batch_size", "seed")},
                     "device": result.device_info, "code": code},
    }
    manifest = reference.save(result.ema_model, schedule, manifest, args.data, models_dir=out)
    print(f"wrote {out / manifest['file']} (EMA weights) and {args.data}.json; final loss "
          f"{manifest['training']['final_loss']:.4f}, {result.wall_time_s:.0f} s on {result.device}")
    return 0


def cmd_release(args) -> int:
    if args.kind == "student":
        from mini_diffusion._course.student_release import make_student_release

        lines = make_student_release(args.outdir, force=args.force)
    else:
        from mini_diffusion._course.gradescope_bundle import make_gradescope_bundle

        lines = make_gradescope_bundle(args.zip, force=args.force)
    print("\n".join(lines))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mini-diffusion", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, func, help):
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    add("info", cmd_info, "versions, device and the reference models")
    for name, func, help in (("sample", cmd_sample, "draw samples from a reference model and save a PNG"),
                             ("evaluate", cmd_evaluate, "sample a reference model and print its quality metric")):
        p = add(name, func, help)
        p.add_argument("--model", choices=("moons", "digits"), required=True)
        p.add_argument("--sampler", default="ddim",
                       help="which sampler: " + ", ".join(f"{name} (exercise {ex})" for name, ex in _samplers().items())
                       + "; ready (toolkit/multistep.py): " + ", ".join(_ready_samplers()))
        p.add_argument("--steps", type=int, default=None, help="sampling steps (DDPM always takes all T)")
        p.add_argument("--n", type=int, default=64 if name == "sample" else 4000, help="number of samples")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
        p.add_argument("--code", choices=("auto", "solutions", "mine"), default="auto",
                       help="whose samplers: the solutions (default when present) or your own")
        if name == "sample":
            p.add_argument("--out", default="samples.png", help="the PNG to write")
    p = add("train", cmd_train, "train a denoiser with the reference recipe (or your own settings)")
    p.add_argument("--data", choices=("moons", "digits"), required=True)
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", default=None)
    p.add_argument("--out", default="models", help="folder for <data>.safetensors, <data>.json and the checkpoint")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--code", choices=("auto", "solutions", "mine"), default="auto",
                   help="whose loss and schedule: the solutions (default when present) or your own")
    p = add("release", cmd_release, "for instructors: a student copy of the course, or a Gradescope autograder")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    k = kinds.add_parser("student", help="the course without solutions/ or hidden checks, for students")
    k.add_argument("outdir", metavar="OUTDIR", help="a new or empty folder")
    k.add_argument("--force", action="store_true", help="empty OUTDIR first if it is not empty")
    k = kinds.add_parser("gradescope", help="the autograder zip to upload to Gradescope")
    k.add_argument("zip", metavar="OUT.zip")
    k.add_argument("--force", action="store_true", help="replace OUT.zip if it exists")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (UserError, ValueError, FileNotFoundError, NotImplementedError, ImportError, RuntimeError) as err:
        print(f"mini-diffusion {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
