"""The denoising networks: eps_hat = model(x_t, t), and a classifier of noisy images.

- `MLPDenoiser` for 2-D points (the toy data sets),
- `UNet` for small images (the 8x8 digits, or MNIST's 28x28); with `num_classes` set it is
  conditional, eps_hat = model(x_t, t, y), y in 0..K-1 or the null label K ("no label"),
- `NoisyClassifier`, logits = classifier(x_t, t): which class a *noisy* image x_t comes from
  (the classifier of classifier guidance, notebook 08).

Both tell the network the timestep t through a sinusoidal embedding, and both carry a
JSON-able `config`, so `build(model.config)` makes the same architecture again: that is how
saved weights (safetensors) are loaded without pickling code.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .common import as_t_tensor


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Embed integer timesteps t [B] as [B, dim]: sin(t w_k) and cos(t w_k) for dim/2 frequencies.

    The frequencies w_k = max_period^(-k / (dim/2)) run geometrically from 1 down to
    1/max_period, so the low ones tell far-apart timesteps apart and the high ones tell
    neighbours apart (the transformer's position encoding, as in DDPM).
    """
    if not isinstance(dim, int) or dim < 2 or dim % 2:
        raise ValueError(f"dim must be an even integer >= 2 (half sines, half cosines); got {dim!r}")
    if not isinstance(t, torch.Tensor) or t.dim() != 1:
        raise ValueError(f"t must be a 1-D tensor of timesteps [B]; got {t!r}")
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def check_labels(y, batch: int, device=None) -> torch.Tensor:
    """y as a label tensor on `device`, checked to be integers of shape [batch] (a conditional model's y)."""
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.shape[0] != batch or y.is_floating_point():
        got = f"{y.dtype} {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"y must be an int64 tensor of labels with shape [{batch}]; got {got}")
    return y.to(device) if device is not None else y


# --- The MLP for 2-D points --------------------------------------------------------------


class ResidualMLPBlock(nn.Module):
    """h + W2 SiLU(W1 SiLU(LayerNorm(h)) + time(emb)): the timestep enters every block."""

    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.linear1 = nn.Linear(hidden, hidden)
        self.time = nn.Linear(hidden, hidden)
        self.linear2 = nn.Linear(hidden, hidden)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        r = self.linear1(F.silu(self.norm(h))) + self.time(emb)
        return h + self.linear2(F.silu(r))


class MLPDenoiser(nn.Module):
    """eps_hat for points x_t [B, dim]: a stack of `depth` residual blocks of width `hidden`.

    Size, measured on two moons (20k steps, batch 1024, linear T = 1000, one CPU thread):
    hidden=64 (59k parameters, ~10 ms a step, ~3.5 min) and hidden=128 (225k, ~25 ms,
    ~8.5 min) both give DDPM samples as close to the data as another real draw. The default
    128 leaves room for the harder toys (checkerboard, many-mode mixtures).
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 4, time_dim: int = 64):
        super().__init__()
        self.config = {"kind": "mlp", "dim": dim, "hidden": hidden, "depth": depth, "time_dim": time_dim}
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
        self.input = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(ResidualMLPBlock(hidden) for _ in range(depth))
        self.output = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x_t: torch.Tensor, t) -> torch.Tensor:
        dim = self.config["dim"]
        if x_t.dim() != 2 or x_t.shape[1] != dim:
            raise ValueError(f"MLPDenoiser expects points x_t of shape [B, {dim}]; got {tuple(x_t.shape)}")
        t = as_t_tensor(t, x_t.shape[0], device=x_t.device)
        emb = self.time_mlp(sinusoidal_embedding(t, self.time_dim))
        h = self.input(x_t)
        for block in self.blocks:
            h = block(h, emb)
        return self.output(h)


# --- The U-Net for images ----------------------------------------------------------------


class ResBlock(nn.Module):
    """Two 3x3 convolutions, each after GroupNorm + SiLU, with the timestep added in between
    (one value per channel) and a residual connection (a 1x1 conv when channels change)."""

    def __init__(self, in_channels: int, out_channels: int, time_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time = nn.Linear(time_dim, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """Every pixel attends to every other (one head), so far-apart parts can agree."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).transpose(2, 3).unbind(dim=1)  # each [B, HW, C]
        h = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(h.transpose(1, 2).reshape(B, C, H, W))


class DownLevel(nn.Module):
    """Residual blocks at one resolution; returns the features for the skip connection and,
    unless this is the coarsest level, the features halved in size for the next level."""

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int, time_dim: int, groups: int, downsample: bool):
        super().__init__()
        channels = [in_channels] + [out_channels] * num_blocks
        self.blocks = nn.ModuleList(ResBlock(a, b, time_dim, groups) for a, b in zip(channels, channels[1:]))
        self.downsample = nn.Conv2d(out_channels, out_channels, 3, stride=2, padding=1) if downsample else nn.Identity()

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for block in self.blocks:
            h = block(h, emb)
        return self.downsample(h), h


class UpLevel(nn.Module):
    """Joins the skip connection of its resolution, runs residual blocks, and (unless this is
    the finest level) doubles the size for the next level."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, num_blocks: int, time_dim: int, groups: int, upsample: bool):
        super().__init__()
        channels = [in_channels + skip_channels] + [out_channels] * num_blocks
        self.blocks = nn.ModuleList(ResBlock(a, b, time_dim, groups) for a, b in zip(channels, channels[1:]))
        self.upsample = (
            nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(out_channels, out_channels, 3, padding=1))
            if upsample
            else nn.Identity()
        )

    def forward(self, h: torch.Tensor, skip: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = torch.cat([h, skip], dim=1)
        for block in self.blocks:
            h = block(h, emb)
        return self.upsample(h)


class UNet(nn.Module):
    """eps_hat for images x_t [B, in_channels, H, W], H and W divisible by 2^(levels - 1).

    Level i works at 1/2^i of the input size with base_channels * channel_mults[i] channels.
    The encoder's features at each level are passed (skip connections) to the decoder's
    level of the same size, so fine detail need not squeeze through the coarsest level.
    """

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 32,
        channel_mults=(1, 2),
        num_res_blocks: int = 1,
        time_dim: int = 128,
        groups: int = 8,
        attention: bool = False,
        num_classes: int | None = None,
    ):
        super().__init__()
        channel_mults = tuple(channel_mults)
        if base_channels % groups:
            raise ValueError(f"base_channels ({base_channels}) must be a multiple of groups ({groups}) for GroupNorm")
        if not channel_mults or num_res_blocks < 1:
            raise ValueError("channel_mults needs at least one level and num_res_blocks must be >= 1")
        self.config = {
            "kind": "unet",
            "in_channels": in_channels,
            "base_channels": base_channels,
            "channel_mults": list(channel_mults),
            "num_res_blocks": num_res_blocks,
            "time_dim": time_dim,
            "groups": groups,
            "attention": attention,
        }
        if num_classes is not None:
            if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
                raise ValueError(f"num_classes must be a positive integer or None; got {num_classes!r}")
            self.config["num_classes"] = num_classes  # only when set: unconditional configs stay as they were
        self.num_classes = num_classes
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim), nn.SiLU())
        widths = [base_channels * m for m in channel_mults]
        coarsest = len(widths) - 1
        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList(
            DownLevel(a, b, num_res_blocks, time_dim, groups, downsample=i < coarsest)
            for i, (a, b) in enumerate(zip(widths[:1] + widths, widths))
        )
        self.middle1 = ResBlock(widths[-1], widths[-1], time_dim, groups)
        self.attention = SelfAttention(widths[-1], groups) if attention else nn.Identity()
        self.middle2 = ResBlock(widths[-1], widths[-1], time_dim, groups)
        self.up = nn.ModuleList(
            UpLevel(widths[min(i + 1, coarsest)], widths[i], widths[i], num_res_blocks, time_dim, groups, upsample=i > 0)
            for i in reversed(range(len(widths)))
        )
        self.head = nn.Sequential(nn.GroupNorm(groups, widths[0]), nn.SiLU(), nn.Conv2d(widths[0], in_channels, 3, padding=1))
        # Made last, so an unconditional U-Net draws the same initial weights as before.
        # Row K (= num_classes) is the null label: "no label", the unconditional model.
        self.label_embedding = nn.Embedding(num_classes + 1, time_dim) if num_classes is not None else None

    def embed(self, t: torch.Tensor, y=None) -> torch.Tensor:
        """The embedding every residual block sees: time_mlp(sinusoidal(t)), plus the label's
        embedding for a conditional U-Net."""
        emb = self.time_mlp(sinusoidal_embedding(t, self.time_dim))
        if self.num_classes is None:
            if y is not None:
                raise ValueError("this UNet is unconditional (num_classes=None): call it as model(x_t, t), without y")
            return emb
        if y is None:
            raise ValueError(
                f"this UNet is conditional: call it as model(x_t, t, y) with y an int64 tensor [B] in "
                f"0..{self.num_classes} ({self.num_classes} is the null label, no class)"
            )
        y = torch.as_tensor(y, device=t.device)
        if y.dim() == 0:
            y = y.expand(t.shape[0])
        if y.shape != t.shape or y.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"y must be an integer tensor of shape [{t.shape[0]}]; got {y.dtype} {tuple(y.shape)}")
        if bool(((y < 0) | (y > self.num_classes)).any()):
            raise ValueError(f"labels y must lie in 0..{self.num_classes} ({self.num_classes} = the null label)")
        return emb + self.label_embedding(y.long())

    def forward(self, x_t: torch.Tensor, t, y=None) -> torch.Tensor:
        in_channels, factor = self.config["in_channels"], 2 ** (len(self.down) - 1)
        if x_t.dim() != 4 or x_t.shape[1] != in_channels or x_t.shape[2] % factor or x_t.shape[3] % factor:
            raise ValueError(
                f"UNet expects images x_t of shape [B, {in_channels}, H, W] with H and W divisible by {factor}; "
                f"got {tuple(x_t.shape)}"
            )
        t = as_t_tensor(t, x_t.shape[0], device=x_t.device)
        emb = self.embed(t, y)
        h = self.stem(x_t)
        skips = []
        for level in self.down:
            h, skip = level(h, emb)
            skips.append(skip)
        h = self.middle2(self.attention(self.middle1(h, emb)), emb)
        for level in self.up:
            h = level(h, skips.pop(), emb)
        return self.head(h)


# --- A classifier of noisy images ------------------------------------------------------


class NoisyClassifier(nn.Module):
    """logits [B, num_classes] = classifier(x_t, t) for noisy images x_t [B, in_channels, H, W].

    Classifier guidance needs the gradient of log p(y | x_t) at every noise level, so the
    classifier is trained on x_t = q_sample(x0, t) and, like the denoiser, told t through the
    same sinusoidal embedding. A small CNN: a stem, residual blocks at full and half size (each
    given t), global average pooling and a linear head.
    """

    def __init__(self, in_channels: int = 1, base_channels: int = 32, num_classes: int = 10,
                 time_dim: int = 64, groups: int = 8):
        super().__init__()
        if base_channels % groups:
            raise ValueError(f"base_channels ({base_channels}) must be a multiple of groups ({groups}) for GroupNorm")
        self.config = {"kind": "classifier", "in_channels": in_channels, "base_channels": base_channels,
                       "num_classes": num_classes, "time_dim": time_dim, "groups": groups}
        self.time_dim = time_dim
        wide = 2 * base_channels
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim), nn.SiLU())
        self.stem = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        self.block1 = ResBlock(base_channels, base_channels, time_dim, groups)
        self.down = nn.Conv2d(base_channels, wide, 3, stride=2, padding=1)
        self.block2 = ResBlock(wide, wide, time_dim, groups)
        self.head = nn.Sequential(nn.GroupNorm(groups, wide), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(wide, num_classes))

    def forward(self, x_t: torch.Tensor, t) -> torch.Tensor:
        in_channels = self.config["in_channels"]
        if x_t.dim() != 4 or x_t.shape[1] != in_channels or x_t.shape[2] % 2 or x_t.shape[3] % 2:
            raise ValueError(f"NoisyClassifier expects images x_t of shape [B, {in_channels}, H, W] with even H and W; "
                             f"got {tuple(x_t.shape)}")
        t = as_t_tensor(t, x_t.shape[0], device=x_t.device)
        emb = self.time_mlp(sinusoidal_embedding(t, self.time_dim))
        h = self.block1(self.stem(x_t), emb)
        h = self.block2(self.down(h), emb)
        return self.head(h)


NETS = {"mlp": MLPDenoiser, "unet": UNet, "classifier": NoisyClassifier}


def build(config: dict) -> nn.Module:
    """A fresh network of the architecture `config` describes (a model's `.config`)."""
    if not isinstance(config, dict) or config.get("kind") not in NETS:
        raise ValueError(f"config must be a dict whose 'kind' is one of {sorted(NETS)}; got {config!r}")
    arguments = {key: value for key, value in config.items() if key != "kind"}
    try:
        return NETS[config["kind"]](**arguments)
    except TypeError as error:
        raise ValueError(f"config {config!r} does not fit {NETS[config['kind']].__name__}: {error}") from None
