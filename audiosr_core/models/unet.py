"""The AudioSR latent-diffusion UNet (official ``UNetModel`` layout, SDPA attention).

A faithful re-implementation of the official ``openaimodel.UNetModel`` as configured by AudioSR:
ResBlocks with an additive time embedding, two self-attention ``SpatialTransformer`` blocks after
every ResBlock at the attention levels, conv down/up-sampling and skip connections. Parameter
names are the official ones without the ``model.diffusion_model.`` prefix, so an official state
dict loads with ``strict=True``.

Example
-------
>>> import torch
>>> from audiosr_core.models.unet import UNet, UNetConfig
>>> unet = UNet(UNetConfig.tiny()).eval()
>>> x = torch.randn(1, 32, 64, 32)          # cat[x_t, scale_factor * cond], [B, 32, T/8, 32]
>>> v = unet(x, torch.tensor([501]))        # v-prediction, [B, 16, T/8, 32]
>>> tuple(v.shape)
(1, 16, 64, 32)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from audiosr_core.models.layers import GroupNorm

__all__ = ["UNet", "UNetConfig", "timestep_embedding"]

#: GroupNorm groups hard-coded by the official code (all widths must be multiples of it).
NORM_GROUPS = 32


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the AudioSR UNet (official ``unet_config.params`` vocabulary).

    Attributes
    ----------
    in_channels : int
        Input channels: 16 latent channels of ``x_t`` + 16 conditioning channels.
    out_channels : int
        Output channels (the v-prediction of the 16-channel latent).
    model_channels : int
        Width of level 0; also the sinusoidal time-embedding size (the MLP is 4x wider).
    channel_mult : tuple of int
        Width multiplier per level; there are ``len(channel_mult) - 1`` down-samplings.
    num_res_blocks : int
        ResBlocks per level on the way down (one more per level on the way up).
    attention_resolutions : tuple of int
        Down-sampling factors (1, 2, 4, ...) whose levels get attention; the middle block always
        has it.
    num_head_channels : int
        Channels per attention head (heads = width // num_head_channels); -1 to use ``num_heads``.
    num_heads : int
        Number of heads when ``num_head_channels`` is -1.
    transformer_depth : int
        ``BasicTransformerBlock`` per ``SpatialTransformer``.
    extra_sa_layer : bool
        Two ``SpatialTransformer`` per attention block instead of one (official AudioSR: True).
    """

    in_channels: int = 32
    out_channels: int = 16
    model_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 2, 3, 5)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (8, 4, 2)
    num_head_channels: int = 32
    num_heads: int = -1
    transformer_depth: int = 1
    extra_sa_layer: bool = True

    def __post_init__(self) -> None:
        widths = [self.model_channels * m for m in self.channel_mult]
        if any(w <= 0 or w % NORM_GROUPS for w in widths):
            raise ValueError(
                f"UNet widths {widths} must be positive multiples of {NORM_GROUPS} "
                "(GroupNorm with 32 groups)."
            )
        if self.num_head_channels == -1 and self.num_heads <= 0:
            raise ValueError("set num_head_channels or num_heads (both are -1).")
        if self.num_res_blocks < 1 or self.transformer_depth < 1:
            raise ValueError("num_res_blocks and transformer_depth must be >= 1.")

    @classmethod
    def basic(cls) -> UNetConfig:
        """The official 'basic' / 'speech' UNet (258,195,088 parameters)."""
        return cls()

    @classmethod
    def tiny(cls) -> UNetConfig:
        """The scaled-down UNet of the parity fixture (widths 32/32/32/64), for tests."""
        return cls(model_channels=32, channel_mult=(1, 1, 1, 2))

    @classmethod
    def from_official(cls, params: Mapping[str, Any]) -> UNetConfig:
        """Build from the official ``unet_config["params"]`` dict (``get_basic_config()`` style).

        Options that change the architecture in ways AudioSR never uses (cross-attention context,
        scale-shift norm, ResBlock up/down-sampling, class/FiLM conditioning, 1-D/3-D, non-legacy
        heads, plain AttentionBlocks) raise ``ValueError``; training-only options (dropout,
        checkpointing, fp16, image_size) are ignored.
        """
        unsupported = {
            "use_spatial_transformer": True,
            "context_dim": None,
            "use_scale_shift_norm": False,
            "resblock_updown": False,
            "num_classes": None,
            "extra_film_condition_dim": None,
            "dims": 2,
            "conv_resample": True,
            "legacy": True,
            "n_embed": None,
        }
        for key, supported in unsupported.items():
            if key in params and params[key] != supported:
                raise ValueError(
                    f"official UNet option {key}={params[key]!r} is not supported "
                    f"(AudioSR uses {supported!r})."
                )
        return cls(
            in_channels=int(params["in_channels"]),
            out_channels=int(params["out_channels"]),
            model_channels=int(params["model_channels"]),
            channel_mult=tuple(int(m) for m in params.get("channel_mult", (1, 2, 4, 8))),
            num_res_blocks=int(params["num_res_blocks"]),
            attention_resolutions=tuple(int(r) for r in params["attention_resolutions"]),
            num_head_channels=int(params.get("num_head_channels", -1)),
            num_heads=int(params.get("num_heads", -1)),
            transformer_depth=int(params.get("transformer_depth", 1)),
            extra_sa_layer=bool(params.get("extra_sa_layer", True)),
        )

    def heads(self, channels: int) -> tuple[int, int]:
        """``(num_heads, head_dim)`` at a given width, with the official legacy rule."""
        if self.num_head_channels == -1:
            heads = self.num_heads
        else:
            heads = channels // self.num_head_channels
        return heads, channels // heads


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal timestep embedding in the official ``[cos, sin]`` order.

    Parameters
    ----------
    t : torch.Tensor
        ``[B]`` timesteps (integer or fractional diffusion steps, 0..999).
    dim : int
        Embedding size.
    max_period : float
        Longest period, in steps.

    Returns
    -------
    torch.Tensor
        ``[B, dim]`` float32.
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, + time embedding, GroupNorm-SiLU-conv, residual (1x1 conv if needed)."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(
            GroupNorm(NORM_GROUPS, channels),
            nn.SiLU(),
            nn.Conv2d(channels, out_channels, 3, padding=1),
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            GroupNorm(NORM_GROUPS, out_channels),
            nn.SiLU(),
            nn.Identity(),  # official Dropout slot (p = 0 at inference); keeps index 3 for the conv
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip_connection = (
            nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        h = h + self.emb_layers(emb)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class Attention(nn.Module):
    """Multi-head self-attention (official ``CrossAttention`` without context), via SDPA."""

    def __init__(self, dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = (
            lin(x).view(b, n, self.heads, -1).transpose(1, 2)
            for lin in (self.to_q, self.to_k, self.to_v)
        )
        out = F.scaled_dot_product_attention(q, k, v)  # scale = head_dim ** -0.5, as official
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class GEGLU(nn.Module):
    """Linear projection to 2x width, then ``x * gelu(gate)`` (exact GELU)."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward, width multiplier 4 (keys ``net.0.proj``, ``net.2``)."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Identity(), nn.Linear(dim * mult, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Pre-norm self-attention, a second self-attention (no context in AudioSR), feed-forward."""

    def __init__(self, dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        # Registration order = official state-dict order.
        self.attn1 = Attention(dim, heads, head_dim)
        self.ff = FeedForward(dim)
        self.attn2 = Attention(dim, heads, head_dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x)) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """GroupNorm (eps 1e-6), 1x1 conv in, transformer blocks over the T*F tokens, 1x1 conv out."""

    def __init__(self, channels: int, heads: int, head_dim: int, depth: int = 1) -> None:
        super().__init__()
        inner = heads * head_dim
        self.norm = GroupNorm(NORM_GROUPS, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, heads, head_dim) for _ in range(depth)
        )
        self.proj_out = nn.Conv2d(inner, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        y = self.proj_in(self.norm(x))
        c = y.shape[1]
        y = y.permute(0, 2, 3, 1).reshape(b, h * w, c)
        for block in self.transformer_blocks:
            y = block(y)
        y = y.transpose(1, 2).reshape(b, c, h, w)
        return self.proj_out(y) + x


class Downsample(nn.Module):
    """3x3 conv with stride 2 and padding 1 (a size n becomes ceil(n / 2))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class TimestepSequential(nn.Sequential):
    """Sequential that hands the time embedding to its ResBlocks."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class UNet(nn.Module):
    """AudioSR UNet: ``v = UNet(cat[x_t, cond], t)``.

    Parameters
    ----------
    config : UNetConfig
        Architecture; ``UNetConfig.basic()`` for the official checkpoints.

    Notes
    -----
    The time axis T and frequency axis F of the input must be divisible by
    ``2 ** (len(channel_mult) - 1)`` (8 for AudioSR): like the official model there is no padding
    or cropping of skip connections (the official code fails in ``torch.cat`` otherwise; this one
    raises ``ValueError`` up front). AudioSR inputs always satisfy this (5.12 s -> 64 frames).
    """

    #: Recompute each block's activations in the backward pass instead of storing them
    #: (training only; same numbers, less memory, about 30 % more compute).
    gradient_checkpointing: bool = False

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = cfg = config
        emb_dim = 4 * cfg.model_channels
        self.time_embed = nn.Sequential(
            nn.Linear(cfg.model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )

        def attention(ch: int) -> list[nn.Module]:
            heads, head_dim = cfg.heads(ch)
            n = 2 if cfg.extra_sa_layer else 1
            depth = cfg.transformer_depth
            return [SpatialTransformer(ch, heads, head_dim, depth) for _ in range(n)]

        ch = cfg.model_channels
        skip_channels = [ch]
        ds = 1
        self.input_blocks = nn.ModuleList(
            [TimestepSequential(nn.Conv2d(cfg.in_channels, ch, 3, padding=1))]
        )
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, emb_dim, mult * cfg.model_channels)]
                ch = mult * cfg.model_channels
                if ds in cfg.attention_resolutions:
                    layers += attention(ch)
                self.input_blocks.append(TimestepSequential(*layers))
                skip_channels.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(TimestepSequential(Downsample(ch)))
                skip_channels.append(ch)
                ds *= 2

        self.middle_block = TimestepSequential(
            ResBlock(ch, emb_dim, ch), *attention(ch), ResBlock(ch, emb_dim, ch)
        )

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [ResBlock(ch + skip_channels.pop(), emb_dim, mult * cfg.model_channels)]
                ch = mult * cfg.model_channels
                if ds in cfg.attention_resolutions:
                    layers += attention(ch)
                if level and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(TimestepSequential(*layers))

        self.out = nn.Sequential(
            GroupNorm(NORM_GROUPS, ch),
            nn.SiLU(),
            nn.Conv2d(cfg.model_channels, cfg.out_channels, 3, padding=1),
        )

    @property
    def downsampling_factor(self) -> int:
        """Factor by which T and F of the input must be divisible."""
        return 2 ** (len(self.config.channel_mult) - 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """Predict v for a batch of noisy latents.

        Parameters
        ----------
        x : torch.Tensor
            ``[B, in_channels, T, F]``: ``cat[x_t, scale_factor * cond]`` along channels.
        t : torch.Tensor or float
            ``[B]`` diffusion timesteps (0..999, int or float), or one value for the whole batch.

        Returns
        -------
        torch.Tensor
            ``[B, out_channels, T, F]`` v-prediction, dtype of ``x``.
        """
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"UNet input must be [B, {self.config.in_channels}, T, F], got {tuple(x.shape)}."
            )
        f = self.downsampling_factor
        if x.shape[2] % f or x.shape[3] % f:
            raise ValueError(
                f"UNet input T x F = {x.shape[2]} x {x.shape[3]} must be divisible by {f} "
                "(pad the latent)."
            )
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.time_embed(timestep_embedding(t, self.config.model_channels).to(x.dtype))

        run = self._checkpointed if (self.gradient_checkpointing and self.training
                                     and torch.is_grad_enabled()) else _call
        skips = []
        h = x
        for block in self.input_blocks:
            h = run(block, h, emb)
            skips.append(h)
        h = run(self.middle_block, h, emb)
        for block in self.output_blocks:
            h = run(block, torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)

    @staticmethod
    def _checkpointed(block: nn.Module, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return torch.utils.checkpoint.checkpoint(block, h, emb, use_reentrant=False)


def _call(block: nn.Module, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    return block(h, emb)
