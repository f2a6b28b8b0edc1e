"""The two networks of notebook 11 (Stable Diffusion in miniature).

- `Autoencoder`: a small KL-regularised autoencoder (a VAE) for the 32x32 colour shapes.
  encode(x) gives the mean and log-variance of a Gaussian over latents [B, 4, 8, 8]
  (a factor 4 smaller on each side, 12 times fewer numbers); decode(z) gives the image back.
  Trained on ||decode(z) - x||² + kl_weight * KL(q(z | x) || N(0, I)), z ~ q(z | x).
- `LatentUNet`: eps_hat = unet(z_t, t, tokens): a U-Net on latents whose feature maps attend
  to the caption's tokens (cross-attention), the tokens given as ids from `tokens.encode`.
  Padding tokens are masked out before the softmax; the null prompt ("" = <start> only) is the
  unconditional model of classifier-free guidance.

Both carry a JSON-able `config`; `build(config)` makes these and every network of `flow_nets`
and `nets` (the reference loader builds every shipped model through it).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import flow_nets
from .common import as_t_tensor
from .nets import ResBlock, sinusoidal_embedding

PAD_ID = 0  # tokens.PAD_ID: the padding token, masked out of every attention over tokens


# --- The autoencoder -----------------------------------------------------------------------


class PlainResBlock(nn.Module):
    """Two 3x3 convolutions after GroupNorm + SiLU, with a residual connection (no timestep)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))


class Autoencoder(nn.Module):
    """x [B, 3, 32, 32] in [-1, 1]  <->  z [B, latent_channels, 8, 8].

    The encoder halves the size twice (strided convolutions) with a residual block at each
    size and ends in 2 * latent_channels maps: the mean and the log-variance of q(z | x).
    The decoder mirrors it with nearest-neighbour upsampling.
    """

    def __init__(self, in_channels: int = 3, latent_channels: int = 4, channels=(16, 32, 64), groups: int = 8,
                 kl_weight: float = 1e-5):
        super().__init__()
        channels = tuple(channels)
        if len(channels) != 3 or any(c % groups for c in channels):
            raise ValueError(f"channels must be three widths (32x32, 16x16, 8x8), each a multiple of groups={groups}; "
                             f"got {channels!r}")
        self.config = {"kind": "autoencoder", "in_channels": in_channels, "latent_channels": latent_channels,
                       "channels": list(channels), "groups": groups, "kl_weight": kl_weight}
        c0, c1, c2 = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, c0, 3, padding=1), PlainResBlock(c0, groups),
            nn.Conv2d(c0, c1, 3, stride=2, padding=1), PlainResBlock(c1, groups),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), PlainResBlock(c2, groups),
            nn.GroupNorm(groups, c2), nn.SiLU(), nn.Conv2d(c2, 2 * latent_channels, 3, padding=1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, c2, 3, padding=1), PlainResBlock(c2, groups),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c2, c1, 3, padding=1), PlainResBlock(c1, groups),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c1, c0, 3, padding=1), PlainResBlock(c0, groups),
            nn.GroupNorm(groups, c0), nn.SiLU(), nn.Conv2d(c0, in_channels, 3, padding=1),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log_variance), each [B, latent_channels, H/4, W/4], of q(z | x)."""
        c = self.config["in_channels"]
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != c or x.shape[2] % 4 or x.shape[3] % 4:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"Autoencoder.encode expects images [B, {c}, H, W] with H and W divisible by 4; got {got}")
        mean, log_variance = self.encoder(x).chunk(2, dim=1)
        return mean, log_variance.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images [B, in_channels, 4 h, 4 w] from latents z [B, latent_channels, h, w] (unscaled)."""
        c = self.config["latent_channels"]
        if not isinstance(z, torch.Tensor) or z.dim() != 4 or z.shape[1] != c:
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"Autoencoder.decode expects latents [B, {c}, h, w]; got {got}")
        return self.decoder(z)

    def forward(self, x: torch.Tensor, generator=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reconstruction, mean, log_variance): decode(z) for z = mean + exp(log_variance / 2) * noise."""
        mean, log_variance = self.encode(x)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return self.decode(mean + torch.exp(0.5 * log_variance) * noise), mean, log_variance


def kl_to_standard_normal(mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_variance)) || N(0, 1)) per element: (mean² + σ² - 1 - log σ²) / 2."""
    return 0.5 * (mean**2 + log_variance.exp() - 1.0 - log_variance)


def autoencoder_loss(model: Autoencoder, x: torch.Tensor, generator=None) -> torch.Tensor:
    """mean squared reconstruction error + kl_weight * mean KL per latent element."""
    reconstruction, mean, log_variance = model(x, generator=generator)
    return F.mse_loss(reconstruction, x) + model.config["kl_weight"] * kl_to_standard_normal(mean, log_variance).mean()


# --- The latent U-Net with cross-attention -------------------------------------------------


def attention_mask(tokens: torch.Tensor) -> torch.Tensor:
    """bool [B, 1, 1, L]: True where a token may be attended to (not padding), for every query."""
    return (tokens != PAD_ID)[:, None, None, :]


class MultiHeadAttention(nn.Module):
    """softmax(Q Kᵀ / √d) V from queries [B, N, query_dim] to keys/values [B, L, context_dim],
    with `heads` heads of query_dim / heads each; masked keys get -inf before the softmax."""

    def __init__(self, query_dim: int, context_dim: int, heads: int):
        super().__init__()
        if query_dim % heads:
            raise ValueError(f"query_dim ({query_dim}) must be a multiple of heads ({heads})")
        self.heads = heads
        self.to_q = nn.Linear(query_dim, query_dim, bias=False)
        self.to_k = nn.Linear(context_dim, query_dim, bias=False)
        self.to_v = nn.Linear(context_dim, query_dim, bias=False)
        self.to_out = nn.Linear(query_dim, query_dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None,
                return_weights: bool = False):
        B, N, D = x.shape
        L = context.shape[1]
        q = self.to_q(x).reshape(B, N, self.heads, -1).transpose(1, 2)  # [B, heads, N, d]
        k = self.to_k(context).reshape(B, L, self.heads, -1).transpose(1, 2)  # [B, heads, L, d]
        v = self.to_v(context).reshape(B, L, self.heads, -1).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # [B, heads, N, L]
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=-1)
        out = self.to_out((weights @ v).transpose(1, 2).reshape(B, N, D))
        return (out, weights) if return_weights else out


class TextEncoder(nn.Module):
    """Token ids [B, L] -> context [B, L, dim]: learned word and position embeddings, then one
    pre-norm transformer layer (self-attention over the real tokens, an MLP), so that a word can
    carry what its neighbours say ("blue" next to "triangle")."""

    def __init__(self, vocab_size: int, max_tokens: int, dim: int, heads: int):
        super().__init__()
        self.word = nn.Embedding(vocab_size, dim)
        self.position = nn.Parameter(torch.randn(max_tokens, dim) * 0.02)
        self.norm1 = nn.LayerNorm(dim)
        self.attention = MultiHeadAttention(dim, dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm_out = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.word(tokens) + self.position[: tokens.shape[1]]
        h = h + self.attention(self.norm1(h), self.norm1(h), attention_mask(tokens))
        h = h + self.mlp(self.norm2(h))
        return self.norm_out(h)


class CrossAttention(nn.Module):
    """Feature maps [B, C, H, W] attend to the context [B, L, context_dim]: every position is a
    query, every real token a key and a value; the result is added back (a residual)."""

    def __init__(self, channels: int, context_dim: int, heads: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.attention = MultiHeadAttention(channels, context_dim, heads)
        self.last_weights = None  # [B, heads, H*W, L] when keep_weights is set (attention maps for the notebook)
        self.keep_weights = False

    def forward(self, h: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, C, H, W = h.shape
        x = self.norm(h).reshape(B, C, H * W).transpose(1, 2)  # [B, HW, C]
        out, weights = self.attention(x, context, mask, return_weights=True)
        if self.keep_weights:
            self.last_weights = weights.detach()
        return h + out.transpose(1, 2).reshape(B, C, H, W)


class LatentUNet(nn.Module):
    """eps_hat = unet(z_t, t, tokens) for latents z_t [B, in_channels, H, W] (H, W divisible by
    2^(levels - 1)) and caption tokens int64 [B, max_tokens] (tokens.encode).

    Each level: a residual block (told t) and a cross-attention to the caption; the skip
    connections join the decoder's level of the same size, as in `nets.UNet`. The coarsest
    level also lets its positions attend to each other (self-attention).
    """

    def __init__(self, in_channels: int = 4, base_channels: int = 48, channel_mults=(1, 2), time_dim: int = 128,
                 context_dim: int = 64, heads: int = 4, groups: int = 8, vocab_size: int = 21, max_tokens: int = 10):
        super().__init__()
        channel_mults = tuple(channel_mults)
        widths = [base_channels * m for m in channel_mults]
        if not channel_mults or any(w % groups or w % heads for w in widths):
            raise ValueError(f"every width base_channels * mult ({widths}) must be a multiple of groups ({groups}) "
                             f"and heads ({heads})")
        self.config = {"kind": "latent_unet", "in_channels": in_channels, "base_channels": base_channels,
                       "channel_mults": list(channel_mults), "time_dim": time_dim, "context_dim": context_dim,
                       "heads": heads, "groups": groups, "vocab_size": vocab_size, "max_tokens": max_tokens}
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim), nn.SiLU())
        self.text = TextEncoder(vocab_size, max_tokens, context_dim, heads)
        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        coarsest = len(widths) - 1
        self.down_blocks = nn.ModuleList(ResBlock(a, b, time_dim, groups) for a, b in zip(widths[:1] + widths, widths))
        self.down_attention = nn.ModuleList(CrossAttention(w, context_dim, heads, groups) for w in widths)
        self.downsample = nn.ModuleList(nn.Conv2d(w, w, 3, stride=2, padding=1) for w in widths[:-1])
        self.middle_norm = nn.GroupNorm(groups, widths[-1])
        self.middle_attention = MultiHeadAttention(widths[-1], widths[-1], heads)
        self.up_blocks = nn.ModuleList(
            ResBlock(widths[min(i + 1, coarsest)] + widths[i], widths[i], time_dim, groups) for i in reversed(range(len(widths)))
        )
        self.up_attention = nn.ModuleList(CrossAttention(widths[i], context_dim, heads, groups)
                                          for i in reversed(range(len(widths))))
        self.head = nn.Sequential(nn.GroupNorm(groups, widths[0]), nn.SiLU(), nn.Conv2d(widths[0], in_channels, 3, padding=1))

    def cross_attentions(self) -> list:
        """The cross-attention layers, from the first down level to the last up level."""
        return list(self.down_attention) + list(self.up_attention)

    def _check(self, z_t, tokens):
        c, factor, L = self.config["in_channels"], 2 ** (len(self.config["channel_mults"]) - 1), self.config["max_tokens"]
        if not isinstance(z_t, torch.Tensor) or z_t.dim() != 4 or z_t.shape[1] != c or z_t.shape[2] % factor \
                or z_t.shape[3] % factor:
            got = tuple(z_t.shape) if isinstance(z_t, torch.Tensor) else type(z_t).__name__
            raise ValueError(f"LatentUNet expects latents z_t [B, {c}, H, W] with H and W divisible by {factor}; got {got}")
        if not isinstance(tokens, torch.Tensor) or tokens.is_floating_point() or tokens.dim() != 2 \
                or tokens.shape[0] != z_t.shape[0] or tokens.shape[1] > L:
            got = f"{tokens.dtype} {tuple(tokens.shape)}" if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise ValueError(f"LatentUNet needs the caption tokens: an int64 tensor [{z_t.shape[0]}, <= {L}] from "
                             f"tokens.encode (the null prompt tokens.encode(['']) for no caption); got {got}")
        if bool(((tokens < 0) | (tokens >= self.config["vocab_size"])).any()):
            raise ValueError(f"token ids must lie in 0..{self.config['vocab_size'] - 1}")
        if not bool((tokens != PAD_ID).any(dim=1).all()):
            raise ValueError("every caption needs at least one real token (tokens.encode starts each with <start>)")

    def forward(self, z_t: torch.Tensor, t, tokens: torch.Tensor) -> torch.Tensor:
        self._check(z_t, tokens)
        tokens = tokens.to(z_t.device)
        t = as_t_tensor(t, z_t.shape[0], device=z_t.device)
        emb = self.time_mlp(sinusoidal_embedding(t, self.time_dim))
        context, mask = self.text(tokens), attention_mask(tokens)
        h = self.stem(z_t)
        skips = []
        for i, (block, attention) in enumerate(zip(self.down_blocks, self.down_attention)):
            h = attention(block(h, emb), context, mask)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        B, C, H, W = h.shape
        x = self.middle_norm(h).reshape(B, C, H * W).transpose(1, 2)
        h = h + self.middle_attention(x, x).transpose(1, 2).reshape(B, C, H, W)
        for i, (block, attention) in enumerate(zip(self.up_blocks, self.up_attention)):
            h = attention(block(torch.cat([h, skips.pop()], dim=1), emb), context, mask)
            if i < len(self.up_blocks) - 1:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
        return self.head(h)


NETS = {"autoencoder": Autoencoder, "latent_unet": LatentUNet}


def build(config: dict) -> nn.Module:
    """A fresh network for `config`: one of this module, or of `flow_nets` / `nets`."""
    if isinstance(config, dict) and config.get("kind") in NETS:
        arguments = {key: value for key, value in config.items() if key != "kind"}
        try:
            return NETS[config["kind"]](**arguments)
        except TypeError as error:
            raise ValueError(f"config {config!r} does not fit {NETS[config['kind']].__name__}: {error}") from None
    return flow_nets.build(config)
