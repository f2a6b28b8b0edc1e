"""Velocity networks for flow matching (notebook 09): v_hat = model(x_t, t), t in [0, 1].

They are the denoising networks of `nets` (the same blocks, the same sinusoidal embedding)
with one change: the networks accept a continuous t in [0, 1] (a float tensor [B], or a float),
embedded as sinusoidal(1000 · t) so that the embedding's frequencies cover the same range as
DDPM's integer timesteps do.

- `FlowMLP`: for 2-D points (two moons), an `nets.MLPDenoiser` with continuous t;
- `FlowUNet`: for small images (the digits), an unconditional `nets.UNet` with continuous t.

`build(config)` makes either, or any network of `nets` (the reference models load through it).
"""

import torch

from . import nets
from .flow import as_flow_t

TIME_SCALE = 1000.0  # t in [0, 1] -> the embedding sees 1000 t, the range of DDPM's timesteps


class FlowMLP(nets.MLPDenoiser):
    """v_hat for points x_t [B, dim], t a float tensor [B] in [0, 1]."""

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, time_dim: int = 64):
        super().__init__(dim=dim, hidden=hidden, depth=depth, time_dim=time_dim)
        self.config["kind"] = "flow_mlp"

    def forward(self, x_t: torch.Tensor, t) -> torch.Tensor:
        dim = self.config["dim"]
        if x_t.dim() != 2 or x_t.shape[1] != dim:
            raise ValueError(f"FlowMLP expects points x_t of shape [B, {dim}]; got {tuple(x_t.shape)}")
        t = as_flow_t(t, x_t.shape[0], x_t)
        emb = self.time_mlp(nets.sinusoidal_embedding(TIME_SCALE * t, self.time_dim))
        h = self.input(x_t)
        for block in self.blocks:
            h = block(h, emb)
        return self.output(h)


class FlowUNet(nets.UNet):
    """v_hat for images x_t [B, in_channels, H, W], t a float tensor [B] in [0, 1] (unconditional)."""

    def __init__(self, in_channels: int = 1, base_channels: int = 32, channel_mults=(1, 2), num_res_blocks: int = 1,
                 time_dim: int = 128, groups: int = 8, attention: bool = False):
        super().__init__(in_channels=in_channels, base_channels=base_channels, channel_mults=channel_mults,
                         num_res_blocks=num_res_blocks, time_dim=time_dim, groups=groups, attention=attention)
        self.config["kind"] = "flow_unet"

    def forward(self, x_t: torch.Tensor, t) -> torch.Tensor:
        in_channels, factor = self.config["in_channels"], 2 ** (len(self.down) - 1)
        if x_t.dim() != 4 or x_t.shape[1] != in_channels or x_t.shape[2] % factor or x_t.shape[3] % factor:
            raise ValueError(f"FlowUNet expects images x_t of shape [B, {in_channels}, H, W] with H and W divisible "
                             f"by {factor}; got {tuple(x_t.shape)}")
        t = as_flow_t(t, x_t.shape[0], x_t)
        emb = self.time_mlp(nets.sinusoidal_embedding(TIME_SCALE * t, self.time_dim))
        h = self.stem(x_t)
        skips = []
        for level in self.down:
            h, skip = level(h, emb)
            skips.append(skip)
        h = self.middle2(self.attention(self.middle1(h, emb)), emb)
        for level in self.up:
            h = level(h, skips.pop(), emb)
        return self.head(h)


NETS = {"flow_mlp": FlowMLP, "flow_unet": FlowUNet}


def build(config: dict) -> torch.nn.Module:
    """A fresh network for `config`: a velocity network of this module, or any of `nets`."""
    if isinstance(config, dict) and config.get("kind") in NETS:
        arguments = {key: value for key, value in config.items() if key != "kind"}
        try:
            return NETS[config["kind"]](**arguments)
        except TypeError as error:
            raise ValueError(f"config {config!r} does not fit {NETS[config['kind']].__name__}: {error}") from None
    return nets.build(config)
