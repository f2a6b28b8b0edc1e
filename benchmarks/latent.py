"""Notebook 11's reference models, measured with the exact judge of shapes.describe.

    python benchmarks/latent.py                       # the shipped models
    python benchmarks/latent.py --models checkpoints/shapes_models --n 200

- shapes_autoencoder: how often decode(encode(x)) still shows every attribute of x (read back
  by shapes.prompt_accuracy), on the training split and on the held-out combinations, and the
  reconstruction error.
- shapes_latent: classifier-free guided DDIM in the latent space, decoded, at a few guidance
  scales: how often a sample shows all its prompt asks for ("all") and each attribute, for
  prompts of the training split and for held-out combinations (composition).

The latent sampler here is exercise 6.3's reference DDIM on the guided ε, so that the measurement
does not depend on notebook 11's exercise code.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MINI_DIFFUSION_SOLUTIONS", "1")

import torch  # noqa: E402

from mini_diffusion.toolkit import latent_recipes, reference, shapes  # noqa: E402
from mini_diffusion.toolkit.tokens import encode  # noqa: E402

SCALES = (1.0, 3.0, 5.0)
NUM_STEPS = 50


@torch.no_grad()
def measure_autoencoder(autoencoder, n: int = 1000) -> dict:
    metrics = {}
    for split, seed in (("train", 11), ("held_out", 12)):
        images, attributes, _ = shapes.sample(n, seed=seed, split=split)
        mean, _ = autoencoder.encode(images)
        reconstruction = autoencoder.decode(mean).clamp(-1, 1)
        accuracy = shapes.prompt_accuracy(reconstruction, attributes)
        metrics[f"{split}_read_back_all"] = round(accuracy["all"], 4)
        metrics[f"{split}_reconstruction_mse"] = round(float(((reconstruction - images) ** 2).mean()), 5)
    metrics["n"] = n
    return metrics


@torch.no_grad()
def latent_ddim(unet, autoencoder, schedule, latent_scale: float, captions, scale: float, seed: int,
                num_steps: int = NUM_STEPS) -> torch.Tensor:
    """CFG-DDIM (eta 0, trailing steps: the solution of exercise 6.3 on the guided ε) on the latents, then
    decode(z / latent_scale)."""
    from solutions.ddim import ddim_sample

    tokens, null = encode(captions), latent_recipes.null_tokens(len(captions))

    def guided(z, t):  # ε_∅ + scale · (ε_y − ε_∅), both halves from one call on a batch of 2B
        eps_cond, eps_null = unet(torch.cat([z, z]), torch.cat([t, t]), torch.cat([tokens, null])).chunk(2)
        return eps_null + scale * (eps_cond - eps_null)

    z_T = torch.randn(len(captions), *latent_recipes.LATENT_SHAPE, generator=torch.Generator().manual_seed(seed))
    z = ddim_sample(guided, z_T.shape, schedule, num_steps, x_T=z_T)
    return autoencoder.decode(z / latent_scale).clamp(-1, 1)


def measure_latent(unet, schedule, manifest, autoencoder, n: int = 300) -> dict:
    metrics = {"n_per_split": n, "sampler": f"CFG-DDIM-{NUM_STEPS}, eta 0, trailing"}
    for split, seed in (("train", 21), ("held_out", 22)):
        _, attributes, captions = shapes.sample(n, seed=seed, split=split)
        for scale in SCALES:
            start = time.perf_counter()
            images = latent_ddim(unet, autoencoder, schedule, manifest["latent_scale"], captions, scale, seed=seed)
            accuracy = shapes.prompt_accuracy(images, attributes)
            row = {key: round(value, 4) for key, value in accuracy.items() if key != "n"}
            row["seconds"] = round(time.perf_counter() - start, 1)
            metrics[f"{split}_scale{scale:g}"] = row
            print(f"  {split} scale {scale:g}: {row}", flush=True)
    return metrics


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=reference.MODELS_DIR)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "latent.json")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    autoencoder, _, _ = reference.load("shapes_autoencoder", device="cpu", models_dir=args.models)
    ae = measure_autoencoder(autoencoder, n=1000)
    print(f"shapes_autoencoder: {ae}", flush=True)
    unet, schedule, manifest = reference.load("shapes_latent", device="cpu", models_dir=args.models)
    latent = measure_latent(unet, schedule, manifest, autoencoder, n=args.n)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"shapes_autoencoder": ae, "shapes_latent": latent}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
