"""How notebook 11's reference models are made (the recipes of `recipes` for Stable Diffusion in
miniature): `shapes_autoencoder`, then `shapes_latent` on its latents.

- `shapes_autoencoder` (latent_nets.Autoencoder) learns the training split of `shapes`
  with reconstruction + a small KL term (latent_nets.autoencoder_loss). No noise schedule.
- `shapes_latent` (latent_nets.LatentUNet) learns ε-prediction (notebook 03's loss, through
  exercise 1.4's q_sample) on the autoencoder's latents of other training images, scaled to unit
  variance by `latent_scale` (kept in the manifest as "latent_scale": decode(z / latent_scale)),
  with each caption dropped to the null prompt with probability 0.1 for classifier-free guidance.

The latent model's data needs the trained autoencoder: `recipe_data("shapes_latent", models_dir)`
loads it from the folder the autoencoder was written to.
"""

import torch
import torch.nn.functional as F

from mini_diffusion._base import door
from mini_diffusion.toolkit import latent_nets, shapes
from mini_diffusion.toolkit.tokens import MAX_TOKENS, NULL_PROMPT, VOCAB, encode

SCHEDULE = {"kind": "linear", "T": 1000, "beta_start": 1e-4, "beta_end": 0.02}
LATENT_SHAPE = (4, 8, 8)
SCALE_SET = {"n": 2000, "seed": 777, "split": "train", "noise_seed": 778}  # the images latent_scale is measured on

RECIPES = {
    "shapes_autoencoder": {
        "data": {"name": "shapes", "n": 10_000, "seed": 101, "split": "train", "p_two": shapes.P_TWO,
                 "source": "mini_diffusion.toolkit.shapes.sample (32x32 RGB in [-1, 1], drawn, not downloaded)"},
        "model": lambda: latent_nets.Autoencoder(channels=(16, 32, 64), latent_channels=4, kl_weight=1e-5),
        "schedule": None,
        "loss": {"name": "latent_nets.autoencoder_loss", "reconstruction": "mean squared error",
                 "kl_weight": 1e-5, "kl": "mean KL(q(z|x) || N(0, I)) per latent element"},
        "train": {"steps": 3_000, "batch_size": 32, "lr": 2e-3, "warmup_steps": 100, "lr_decay": "cosine",
                  "ema_decay": 0.995, "seed": 0},
    },
    "shapes_latent": {
        "data": {"name": "shapes latents", "n": 20_000, "seed": 202, "split": "train", "p_two": shapes.P_TWO,
                 "autoencoder": "shapes_autoencoder", "latents": "z = latent_scale * (mean + sigma * noise), "
                 "a fresh noise each step", "scale_set": SCALE_SET},
        "model": lambda: latent_nets.LatentUNet(in_channels=4, base_channels=32, channel_mults=(1, 2),
                                                vocab_size=len(VOCAB), max_tokens=MAX_TOKENS),
        "schedule": SCHEDULE,
        "loss": {"name": "eps-prediction MSE on q_sample (exercise 1.4) of scaled latents, caption dropped",
                 "p_uncond": 0.1, "null_prompt": NULL_PROMPT},
        "train": {"steps": 8_000, "batch_size": 64, "lr": 1e-3, "warmup_steps": 200, "lr_decay": "cosine",
                  "ema_decay": 0.999, "seed": 0},
    },
}
LATENT_SIZE = LATENT_SHAPE[0] * LATENT_SHAPE[1] * LATENT_SHAPE[2]


def load_autoencoder(models_dir=None, device="cpu"):
    """The trained autoencoder (reference model shapes_autoencoder) from `models_dir` (None: the shipped one)."""
    from mini_diffusion.toolkit import reference

    kwargs = {"models_dir": models_dir} if models_dir is not None else {}
    autoencoder, _, manifest = reference.load("shapes_autoencoder", device=device, **kwargs)
    return autoencoder, manifest


@torch.no_grad()
def encode_images(autoencoder, images: torch.Tensor, chunk: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, sigma) of q(z | x) for images [N, 3, 32, 32], unscaled, [N, 4, 8, 8] each."""
    means, sigmas = [], []
    for start in range(0, len(images), chunk):
        mean, log_variance = autoencoder.encode(images[start:start + chunk])
        means.append(mean)
        sigmas.append(torch.exp(0.5 * log_variance))
    return torch.cat(means), torch.cat(sigmas)


def latent_scale(autoencoder) -> float:
    """1 / the standard deviation of latents z = mean + sigma * noise over SCALE_SET's images: the
    factor that gives the diffusion model latents of unit variance (Stable Diffusion's 0.18215)."""
    images, _, _ = shapes.sample(SCALE_SET["n"], seed=SCALE_SET["seed"], split=SCALE_SET["split"])
    mean, sigma = encode_images(autoencoder, images)
    noise = torch.randn(mean.shape, generator=torch.Generator().manual_seed(SCALE_SET["noise_seed"]))
    return float(1.0 / (mean + sigma * noise).std())


def recipe_data(name: str, models_dir=None) -> torch.Tensor:
    """The training data of a recipe as one tensor (train() draws rows of one tensor):
    shapes_autoencoder: the images [n, 3, 32, 32];
    shapes_latent: rows [scaled mean (256), scaled sigma (256), caption tokens (10, as floats)]."""
    spec = RECIPES[name]["data"]
    images, _, captions = shapes.sample(spec["n"], seed=spec["seed"], split=spec["split"], p_two=spec["p_two"])
    if name == "shapes_autoencoder":
        return images
    autoencoder, _ = load_autoencoder(models_dir)
    scale = latent_scale(autoencoder)
    mean, sigma = encode_images(autoencoder, images)
    tokens = encode(captions).float()
    return torch.cat([(scale * mean).flatten(1), (scale * sigma).flatten(1), tokens], dim=1)


def manifest_extra(name: str, models_dir=None) -> dict:
    """What a latent model's manifest adds: the latent scale and the autoencoder it belongs to."""
    if name != "shapes_latent":
        return {}
    autoencoder, manifest = load_autoencoder(models_dir)
    return {"latent_scale": round(latent_scale(autoencoder), 6), "latent_shape": list(LATENT_SHAPE),
            "autoencoder": {"name": "shapes_autoencoder", "sha256": manifest["sha256"]}}


def split_latent_batch(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scaled mean [B, 4, 8, 8], scaled sigma [B, 4, 8, 8], tokens int64 [B, 10]) of a shapes_latent batch."""
    mean = batch[:, :LATENT_SIZE].reshape(-1, *LATENT_SHAPE)
    sigma = batch[:, LATENT_SIZE:2 * LATENT_SIZE].reshape(-1, *LATENT_SHAPE)
    return mean, sigma, batch[:, 2 * LATENT_SIZE:].round().long()


def autoencoder_loss_fn(model, x0, schedule=None, generator=None):
    """latent_nets.autoencoder_loss in train()'s loss_fn form."""
    return latent_nets.autoencoder_loss(model, x0, generator=generator)


def null_tokens(n: int, device=None) -> torch.Tensor:
    """The null prompt's tokens [n, MAX_TOKENS]."""
    return encode([NULL_PROMPT]).expand(n, -1).to(device)


def latent_loss_fn(model, batch, schedule, generator=None):
    """||eps - unet(z_t, t, tokens)||² with z_0 = mean + sigma * noise (scaled), z_t = q_sample(z_0, t, eps),
    t ~ U{1..T}, and each caption replaced by the null prompt with probability p_uncond."""
    p_uncond = RECIPES["shapes_latent"]["loss"]["p_uncond"]
    mean, sigma, tokens = split_latent_batch(batch)
    device = generator.device if generator is not None else batch.device
    B = mean.shape[0]

    def normal(shape):
        return torch.randn(shape, generator=generator, device=device, dtype=mean.dtype).to(batch.device)

    z0 = mean + sigma * normal(mean.shape)
    drop = (torch.rand(B, generator=generator, device=device) < p_uncond).to(batch.device)
    tokens = torch.where(drop[:, None], null_tokens(B, batch.device), tokens)
    t = torch.randint(1, schedule.T + 1, (B,), generator=generator, device=device).to(batch.device)
    eps = normal(mean.shape)
    z_t = door.implementation("1.4")(z0, t, schedule, eps)
    return F.mse_loss(model(z_t, t, tokens), eps)


def recipe_loss(name: str):
    return {"shapes_autoencoder": autoencoder_loss_fn, "shapes_latent": latent_loss_fn}[name]
