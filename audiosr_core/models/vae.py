"""AudioSR's mel-spectrogram VAE (the official ``AutoencoderKL``), split into encoder and decoder.

AudioSR encodes a log-mel spectrogram ``[B, 1, T, 256]`` into a latent ``[B, 16, T/8, 32]`` with
the conditioning VAE's encoder, runs latent diffusion, and decodes with the first-stage VAE's
decoder. Inference never needs both halves of the same VAE, so they are two modules here, each with
the exact state-dict keys of its part of the official checkpoint:

* :class:`VAEEncoder` -- ``encoder.*`` and ``quant_conv.*``
  (official ``cond_stage_models.0.vae.{encoder,quant_conv}.*``);
* :class:`VAEDecoder` -- ``post_quant_conv.*`` and ``decoder.*``
  (official ``first_stage_model.{post_quant_conv,decoder}.*``).

Example
-------
>>> import torch
>>> from audiosr_core.models.vae import VAEConfig, VAEDecoder, VAEEncoder
>>> config = VAEConfig.tiny()
>>> encoder, decoder = VAEEncoder(config).eval(), VAEDecoder(config).eval()
>>> with torch.no_grad():
...     mean, logvar = encoder(torch.randn(1, 1, 64, 256))
...     mel = decoder(mean)
>>> tuple(mean.shape), tuple(mel.shape)
((1, 16, 8, 32), (1, 1, 64, 256))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiosr_core.models.layers import GroupNorm

__all__ = [
    "VAEConfig",
    "VAEEncoder",
    "VAEDecoder",
    "sample_posterior",
]

#: official clamp of the posterior log-variance (``DiagonalGaussianDistribution``)
LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0


@dataclass(frozen=True)
class VAEConfig:
    """Architecture of the AudioSR VAE (official ``ddconfig`` plus ``embed_dim``).

    Parameters
    ----------
    in_channels, out_channels
        Channels of the spectrogram "image" (1: one log-mel plane).
    ch
        Base width; level ``i`` has ``ch * ch_mult[i]`` channels.
    ch_mult
        Width multipliers, one per resolution level. Every level but the last halves time and
        frequency, so the latent is ``2 ** (len(ch_mult) - 1)`` times smaller on both axes.
    num_res_blocks
        Residual blocks per level in the encoder (the decoder uses ``num_res_blocks + 1``).
    z_channels
        Latent channels at the encoder output / decoder input.
    embed_dim
        Latent channels after ``quant_conv`` (what the diffusion model sees).
    double_z
        Encoder outputs mean and log-variance (always true for AudioSR).
    norm_groups, norm_eps
        GroupNorm groups and epsilon (official: 32 and 1e-6).
    dropout
        Dropout inside residual blocks. The official training used 0.1; inference has none,
        so it defaults to 0 (and :meth:`from_official` leaves it at 0).
    """

    in_channels: int = 1
    out_channels: int = 1
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 8)
    num_res_blocks: int = 2
    z_channels: int = 16
    embed_dim: int = 16
    double_z: bool = True
    norm_groups: int = 32
    norm_eps: float = 1e-6
    dropout: float = 0.0

    @classmethod
    def basic(cls) -> VAEConfig:
        """The official AudioSR ``basic``/``speech`` VAE (128/256/512/1024 channels)."""
        return cls()

    @classmethod
    def tiny(cls) -> VAEConfig:
        """Widths of the ``dev`` parity fixture (32/32/32/64 channels); same structure."""
        return cls(ch=32, ch_mult=(1, 1, 1, 2))

    @classmethod
    def from_official(cls, ddconfig: Mapping[str, Any], embed_dim: int) -> VAEConfig:
        """Build from the official ``AutoencoderKL`` arguments (``ddconfig`` dict, ``embed_dim``).

        Keys that do not change the inference graph (``resolution``, ``mel_bins``,
        ``downsample_time``, ``dropout``) are ignored. Options AudioSR never uses (attention
        outside the middle block, linear attention, stride-4 time downsampling, ``tanh_out``,
        ``double_z`` false) raise ``ValueError``.
        """
        unsupported = {
            "attn_resolutions": [],
            "use_linear_attn": False,
            "attn_type": "vanilla",
            "downsample_time_stride4_levels": [],
            "tanh_out": False,
            "give_pre_end": False,
            "resamp_with_conv": True,
            "double_z": True,
        }
        for key, allowed in unsupported.items():
            value = ddconfig.get(key, allowed)
            if (list(value) if isinstance(value, (list, tuple)) else value) != allowed:
                raise ValueError(
                    f"VAE ddconfig {key}={value!r} is not supported (only {allowed!r})."
                )
        return cls(
            in_channels=int(ddconfig["in_channels"]),
            out_channels=int(ddconfig["out_ch"]),
            ch=int(ddconfig["ch"]),
            ch_mult=tuple(int(m) for m in ddconfig["ch_mult"]),
            num_res_blocks=int(ddconfig["num_res_blocks"]),
            z_channels=int(ddconfig["z_channels"]),
            embed_dim=int(embed_dim),
            double_z=True,
        )

    @property
    def downsample_factor(self) -> int:
        """Time and frequency reduction between spectrogram and latent (8 for AudioSR)."""
        return 2 ** (len(self.ch_mult) - 1)


# --------------------------------------------------------------------------- building blocks


def _norm(config: VAEConfig, channels: int) -> GroupNorm:
    return GroupNorm(config.norm_groups, channels, eps=config.norm_eps, affine=True)


class ResnetBlock(nn.Module):
    """GroupNorm-swish-conv3x3 twice plus a skip (1x1 ``nin_shortcut`` when channels change).

    ``[B, in_ch, H, W] -> [B, out_ch, H, W]``.
    """

    def __init__(self, config: VAEConfig, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = _norm(config, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _norm(config, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.dropout = config.dropout
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)
        else:
            self.nin_shortcut = None

    def forward(self, x: Tensor) -> Tensor:
        """``[B, in_ch, H, W] -> [B, out_ch, H, W]``."""
        # In-place ops only touch fresh intermediates (autograd-safe), saving large allocations.
        h = self.conv1(F.silu(self.norm1(x), inplace=True))
        h = F.silu(self.norm2(h), inplace=True)
        if self.dropout > 0.0:
            h = F.dropout(h, self.dropout, self.training)
        h = self.conv2(h)
        skip = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return h.add_(skip)


class AttnBlock(nn.Module):
    """Single-head self-attention over all ``H*W`` positions (1x1-conv q/k/v/proj_out), residual.

    Computed with :func:`torch.nn.functional.scaled_dot_product_attention`; scale ``1/sqrt(C)``
    as in the official bmm version. ``[B, C, H, W] -> [B, C, H, W]``.
    """

    def __init__(self, config: VAEConfig, channels: int) -> None:
        super().__init__()
        self.norm = _norm(config, channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, H, W] -> [B, C, H, W]``."""
        b, c, height, width = x.shape
        h = self.norm(x)

        def heads(t: Tensor) -> Tensor:  # [B, C, H, W] -> [B, 1, H*W, C] (a view)
            return t.reshape(b, 1, c, height * width).transpose(-1, -2)

        out = F.scaled_dot_product_attention(heads(self.q(h)), heads(self.k(h)), heads(self.v(h)))
        out = out.transpose(-1, -2).reshape(b, c, height, width)
        return self.proj_out(out).add_(x)


class Downsample(nn.Module):
    """Zero-pad one row and column at the end, then conv3x3 stride 2: ``H, W -> H/2, W/2``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, H, W] -> [B, C, H/2, W/2]`` (H, W even)."""
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour x2 then conv3x3: ``H, W -> 2H, 2W``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, H, W] -> [B, C, 2H, 2W]``."""
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class MidBlock(nn.Module):
    """ResnetBlock, AttnBlock, ResnetBlock at the lowest resolution (keys ``block_1``,
    ``attn_1``, ``block_2``). ``[B, C, H, W] -> [B, C, H, W]``."""

    def __init__(self, config: VAEConfig, channels: int) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(config, channels, channels)
        self.attn_1 = AttnBlock(config, channels)
        self.block_2 = ResnetBlock(config, channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, H, W] -> [B, C, H, W]``."""
        return self.block_2(self.attn_1(self.block_1(x)))


def _res_blocks(config: VAEConfig, cin: int, cout: int, count: int) -> nn.ModuleList:
    return nn.ModuleList(ResnetBlock(config, cin if i == 0 else cout, cout) for i in range(count))


class EncoderLevel(nn.Module):
    """One encoder resolution level: ``num_res_blocks`` residual blocks (key ``block``), then
    ``downsample`` unless it is the last level. ``[B, cin, H, W] -> [B, cout, H/2, W/2]``."""

    def __init__(self, config: VAEConfig, cin: int, cout: int, last: bool) -> None:
        super().__init__()
        self.block = _res_blocks(config, cin, cout, config.num_res_blocks)
        self.downsample = None if last else Downsample(cout)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, cin, H, W] -> [B, cout, H/2, W/2]`` (``H, W`` unchanged at the last level)."""
        for block in self.block:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class DecoderLevel(nn.Module):
    """One decoder resolution level: ``num_res_blocks + 1`` residual blocks (key ``block``),
    then ``upsample`` unless it is level 0. ``[B, cin, H, W] -> [B, cout, 2H, 2W]``."""

    def __init__(self, config: VAEConfig, cin: int, cout: int, first: bool) -> None:
        super().__init__()
        self.block = _res_blocks(config, cin, cout, config.num_res_blocks + 1)
        self.upsample = None if first else Upsample(cout)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, cin, H, W] -> [B, cout, 2H, 2W]`` (``H, W`` unchanged at level 0)."""
        for block in self.block:
            x = block(x)
        return x if self.upsample is None else self.upsample(x)


class Encoder(nn.Module):
    """Official ``Encoder`` (keys ``conv_in``, ``down.{i}``, ``mid``, ``norm_out``, ``conv_out``).

    ``[B, in_ch, T, F] -> [B, 2*z_channels, T/8, F/8]``.
    """

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        widths = [config.ch * m for m in config.ch_mult]
        self.conv_in = nn.Conv2d(config.in_channels, config.ch, 3, padding=1)
        cin = config.ch
        levels = []
        for i, cout in enumerate(widths):
            levels.append(EncoderLevel(config, cin, cout, last=i == len(widths) - 1))
            cin = cout
        self.down = nn.ModuleList(levels)
        self.mid = MidBlock(config, cin)
        self.norm_out = _norm(config, cin)
        z_out = 2 * config.z_channels if config.double_z else config.z_channels
        self.conv_out = nn.Conv2d(cin, z_out, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, in_ch, T, F] -> [B, 2*z_channels, T/8, F/8]``."""
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h), inplace=True))


class Decoder(nn.Module):
    """Official ``Decoder`` (keys ``conv_in``, ``mid``, ``up.{i}``, ``norm_out``, ``conv_out``).

    ``up.{i}`` is resolution level ``i`` (``up.0`` is the finest), visited from the last level
    down. ``[B, z_channels, T/8, F/8] -> [B, out_ch, T, F]``.
    """

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        widths = [config.ch * m for m in config.ch_mult]
        cin = widths[-1]
        self.conv_in = nn.Conv2d(config.z_channels, cin, 3, padding=1)
        self.mid = MidBlock(config, cin)
        levels: list[DecoderLevel] = []
        for i in reversed(range(len(widths))):
            levels.insert(0, DecoderLevel(config, cin, widths[i], first=i == 0))
            cin = widths[i]
        self.up = nn.ModuleList(levels)
        self.norm_out = _norm(config, cin)
        self.conv_out = nn.Conv2d(cin, config.out_channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        """``[B, z_channels, T/8, F/8] -> [B, out_ch, T, F]``."""
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h), inplace=True))


# --------------------------------------------------------------------------- public modules


def sample_posterior(
    mean: Tensor, logvar: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Draw ``mean + exp(0.5 * logvar) * noise`` from the diagonal Gaussian posterior.

    Parameters
    ----------
    mean, logvar
        ``[B, embed_dim, T/8, F/8]`` posterior parameters (``logvar`` already clamped).
    generator
        Source of the standard-normal noise. The noise is drawn on the generator's device and
        moved to ``mean.device``, as the official code draws on the CPU even for GPU models.

    Returns
    -------
    Tensor
        ``[B, embed_dim, T/8, F/8]`` sample, same dtype and device as ``mean``.
    """
    device = generator.device if generator is not None else mean.device
    noise = torch.randn(mean.shape, generator=generator, device=device, dtype=mean.dtype)
    return mean + torch.exp(0.5 * logvar) * noise.to(mean.device)


class VAEEncoder(nn.Module):
    """Log-mel spectrogram to latent posterior (official ``AutoencoderKL.encode``).

    State-dict keys: ``encoder.*`` and ``quant_conv.*``, as under the official
    ``cond_stage_models.0.vae.`` prefix.

    Parameters
    ----------
    config
        Architecture; :meth:`VAEConfig.basic` for the official weights.
    """

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.quant_conv = nn.Conv2d(2 * config.z_channels, 2 * config.embed_dim, 1)

    def forward(self, log_mel: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and log-variance of a log-mel spectrogram.

        Parameters
        ----------
        log_mel
            ``[B, 1, T, 256]`` natural-log mel spectrogram; ``T`` a multiple of 8.

        Returns
        -------
        mean, logvar
            ``[B, 16, T/8, 32]`` each; ``logvar`` clamped to ``[-30, 20]`` as official.
        """
        moments = self.quant_conv(self.encoder(log_mel))
        mean, logvar = moments.chunk(2, dim=1)
        return mean, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)

    def sample(self, log_mel: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Encode and draw one posterior sample (official ``encode(x).sample()``).

        Parameters
        ----------
        log_mel
            ``[B, 1, T, 256]`` log-mel spectrogram.
        generator
            Noise source (see :func:`sample_posterior`).

        Returns
        -------
        Tensor
            ``[B, 16, T/8, 32]`` latent (unscaled: multiply by ``scale_factor`` for diffusion).
        """
        mean, logvar = self(log_mel)
        return sample_posterior(mean, logvar, generator)


class VAEDecoder(nn.Module):
    """Latent to log-mel spectrogram (official ``AutoencoderKL.decode``).

    State-dict keys: ``post_quant_conv.*`` and ``decoder.*``, as under the official
    ``first_stage_model.`` prefix.

    Parameters
    ----------
    config
        Architecture; :meth:`VAEConfig.basic` for the official weights.
    """

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        self.post_quant_conv = nn.Conv2d(config.embed_dim, config.z_channels, 1)
        self.decoder = Decoder(config)

    def forward(self, z: Tensor) -> Tensor:
        """Decode an (unscaled) latent.

        Parameters
        ----------
        z
            ``[B, 16, T/8, 32]`` latent, already divided by ``scale_factor``.

        Returns
        -------
        Tensor
            ``[B, 1, T, 256]`` log-mel spectrogram.
        """
        return self.decoder(self.post_quant_conv(z))
