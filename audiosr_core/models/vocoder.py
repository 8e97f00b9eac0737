"""AudioSR's 48 kHz HiFi-GAN vocoder (official ``hifigan.models.Generator_old``).

Turns a log-mel spectrogram ``[B, 256, T]`` (100 frames/s) into a waveform ``[B, 1, 480*T + 16]``
at 48 kHz. Weight norm is already folded into the official checkpoint's weights, so the state-dict
keys are plain ``weight``/``bias`` and match ``first_stage_model.vocoder.*`` with the prefix
removed.

The layers are stored as ``Conv1d``/``ConvTranspose1d`` (official keys and shapes) but run as
2-D convolutions on ``[B, C, 1, L]`` tensors in channels-last layout: the same arithmetic, about
twice as fast on CPU for the narrow late stages (oneDNN's 1-D path is slow there).

Example
-------
>>> import torch
>>> from audiosr_core.models.vocoder import HifiGan, HifiGanConfig
>>> vocoder = HifiGan(HifiGanConfig.tiny()).eval()
>>> with torch.no_grad():
...     wave = vocoder(torch.randn(1, 256, 10))
>>> tuple(wave.shape)
(1, 1, 4816)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["HifiGanConfig", "HifiGan"]

#: LeakyReLU slope inside the residual blocks and before every upsampling layer
LRELU_SLOPE = 0.1
#: slope of the last LeakyReLU, before ``conv_post`` (the official code uses the default 0.01)
FINAL_LRELU_SLOPE = 0.01


@dataclass(frozen=True)
class HifiGanConfig:
    """Architecture of the HiFi-GAN generator (official ``get_vocoder_config_48k`` vocabulary).

    Parameters
    ----------
    num_mels
        Mel bins of the input.
    upsample_rates, upsample_kernel_sizes
        Stride and kernel of each transposed-conv stage; the hop size is the product of the
        rates (480 samples = 10 ms at 48 kHz).
    upsample_initial_channel
        Width after ``conv_pre``; each stage halves it.
    resblock_kernel_sizes, resblock_dilation_sizes
        One multi-receptive-field residual block per kernel size at every stage; the stage output
        is their average.
    sampling_rate
        Output sample rate in Hz (informational).
    """

    num_mels: int = 256
    upsample_rates: tuple[int, ...] = (6, 5, 4, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (12, 10, 8, 4, 4)
    upsample_initial_channel: int = 1536
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11, 15)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5),) * 4
    sampling_rate: int = 48000

    @classmethod
    def basic(cls) -> HifiGanConfig:
        """The official AudioSR 48 kHz vocoder (1536 -> 48 channels, 190 M parameters)."""
        return cls()

    @classmethod
    def tiny(cls) -> HifiGanConfig:
        """Widths of the ``dev`` parity fixture (64 -> 2 channels); same structure."""
        return cls(upsample_initial_channel=64)

    @classmethod
    def from_official(cls, vocoder_config: Mapping[str, Any]) -> HifiGanConfig:
        """Build from the official vocoder config dict (``resblock`` must be ``"1"``).

        STFT settings in the dict (``n_fft``, ``hop_size``, ``fmin`` ...) describe training data
        and are ignored.
        """
        resblock = str(vocoder_config.get("resblock", "1"))
        if resblock != "1":
            raise ValueError(f"HiFi-GAN resblock {resblock!r} is not supported (only '1').")
        return cls(
            num_mels=int(vocoder_config["num_mels"]),
            upsample_rates=_ints(vocoder_config["upsample_rates"]),
            upsample_kernel_sizes=_ints(vocoder_config["upsample_kernel_sizes"]),
            upsample_initial_channel=int(vocoder_config["upsample_initial_channel"]),
            resblock_kernel_sizes=_ints(vocoder_config["resblock_kernel_sizes"]),
            resblock_dilation_sizes=tuple(
                _ints(d) for d in vocoder_config["resblock_dilation_sizes"]
            ),
            sampling_rate=int(vocoder_config.get("sampling_rate", 48000)),
        )

    @property
    def hop_length(self) -> int:
        """Output samples per input frame (480)."""
        return math.prod(self.upsample_rates)


def _ints(values: Sequence[Any]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def _conv(x: Tensor, conv: nn.Conv1d) -> Tensor:
    """Apply a ``Conv1d``'s parameters to ``[B, C, 1, L]`` as a 2-D convolution."""
    return F.conv2d(x, conv.weight.unsqueeze(2), conv.bias, stride=(1, conv.stride[0]),
                    padding=(0, conv.padding[0]), dilation=(1, conv.dilation[0]))


def _conv_transpose(x: Tensor, conv: nn.ConvTranspose1d) -> Tensor:
    """Apply a ``ConvTranspose1d``'s parameters to ``[B, C, 1, L]`` as a 2-D convolution."""
    return F.conv_transpose2d(x, conv.weight.unsqueeze(2), conv.bias,
                              stride=(1, conv.stride[0]), padding=(0, conv.padding[0]))


class ResBlock1(nn.Module):
    """HiFi-GAN residual block type 1: for each dilation ``d``,
    ``x = x + conv2(lrelu(conv1_d(lrelu(x))))`` with "same" padding. ``[B, C, 1, L]`` in and out.
    """

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(
                channels, channels, kernel_size, dilation=d, padding=d * (kernel_size - 1) // 2
            )
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2)
            for _ in dilations
        )

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, 1, L] -> [B, C, 1, L]``."""
        # In-place ops only touch fresh conv outputs (autograd-safe); the input is never modified.
        for conv1, conv2 in zip(self.convs1, self.convs2, strict=True):
            h = F.leaky_relu(_conv(F.leaky_relu(x, LRELU_SLOPE), conv1), LRELU_SLOPE, inplace=True)
            x = _conv(h, conv2).add_(x)
        return x


class HifiGan(nn.Module):
    """HiFi-GAN generator: log-mel spectrogram to 48 kHz waveform.

    Keys: ``conv_pre``, ``ups.{i}``, ``resblocks.{i * num_kernels + j}``, ``conv_post`` (plain
    ``weight``/``bias``, no weight norm).

    Parameters
    ----------
    config
        Architecture; :meth:`HifiGanConfig.basic` for the official weights.
    """

    def __init__(self, config: HifiGanConfig) -> None:
        super().__init__()
        self.config = config
        self.num_kernels = len(config.resblock_kernel_sizes)
        width = config.upsample_initial_channel
        self.conv_pre = nn.Conv1d(config.num_mels, width, 7, padding=3)
        ups, resblocks = [], []
        for rate, kernel in zip(config.upsample_rates, config.upsample_kernel_sizes, strict=True):
            ups.append(
                nn.ConvTranspose1d(
                    width, width // 2, kernel, stride=rate, padding=(kernel - rate) // 2
                )
            )
            width //= 2
            resblocks.extend(
                ResBlock1(width, k, d)
                for k, d in zip(
                    config.resblock_kernel_sizes, config.resblock_dilation_sizes, strict=True
                )
            )
        self.ups = nn.ModuleList(ups)
        self.resblocks = nn.ModuleList(resblocks)
        self.conv_post = nn.Conv1d(width, 1, 7, padding=3)

    def forward(self, mel: Tensor) -> Tensor:
        """Vocode a log-mel spectrogram.

        Parameters
        ----------
        mel
            ``[B, num_mels, T]`` natural-log mel spectrogram (frames on the last axis).

        Returns
        -------
        Tensor
            ``[B, 1, 480 * T + 16]`` waveform in ``[-1, 1]`` at 48 kHz.
        """
        x = _conv(mel.unsqueeze(2).contiguous(memory_format=torch.channels_last), self.conv_pre)
        for i, up in enumerate(self.ups):
            x = _conv_transpose(F.leaky_relu(x, LRELU_SLOPE), up)
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            acc = blocks[0](x)  # a fresh tensor: accumulate in place, in the official order
            for block in blocks[1:]:
                acc += block(x)
            x = acc.div_(self.num_kernels)
        x = _conv(F.leaky_relu(x, FINAL_LRELU_SLOPE, inplace=True), self.conv_post)
        return x.tanh_().squeeze(2).contiguous()
