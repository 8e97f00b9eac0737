"""``lite``: our small CPU bandwidth-extension model (STFT domain, no diffusion, no vocoder).

The model works on the STFT of the engine's low-band replacement (n_fft 2048, hop 512 at
48 kHz: 1025 bins of 23.4375 Hz, 93.75 frames/s). Inputs are the 48 kHz input's log10 power
spectrogram relative to its low-band level and the cutoff bin ``kc``; the output is the
predicted log10 power of every bin (only bins ``>= kc`` are used). A pipeline then gives the
generated bins the phase of the input's top octave copied upwards (the patches of
:class:`audiosr_core.baseline.PatchLayout`) and keeps bins below ``kc`` exactly the input's.

Network: the input band's log-power pooled into ``in_bands`` mel bands (bands at or above the
cutoff masked), a validity mask and the normalised cutoff, a 1x1 convolution to ``hidden``
channels, residual dilated convolutions over time (frames), a 1x1 output head. Two heads:

- ``"bins"``: the head predicts all 1025 log-powers directly (smooth where the signal is noisy,
  harmonic where the input's harmonics continue).
- ``"envelope"``: the head predicts ``env_bands`` mel-band levels, interpolated to bins and
  added to the input's replicated fine structure (log-power of the copied top octave minus its
  smoothed envelope) -- a learned version of spectral band replication.

Example
-------
>>> import torch
>>> from audiosr_core.models.lite import LiteConfig, LiteModel
>>> model = LiteModel(LiteConfig(hidden=32)).eval()
>>> logp = torch.randn(2, 1025, 50)                       # [B, bins, frames], log10 power
>>> model(logp, torch.tensor([170, 340])).shape           # cutoffs 4 and 8 kHz
torch.Size([2, 1025, 50])
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import atomic, dsp
from ..baseline import PatchLayout

__all__ = ["LiteConfig", "LiteModel", "N_BINS", "copy_up_index", "log_power", "band_level",
           "level_from_sums"]

N_BINS = dsp.POST_N_FFT // 2 + 1
"""STFT bins (1025) of the model's spectrogram."""
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_TYPE = "audiosr-plug-lite"
_POWER_EPS = 1e-10


@dataclass(frozen=True)
class LiteConfig:
    """Architecture of :class:`LiteModel`.

    Parameters
    ----------
    head : {"bins", "envelope"}
        Output head (see the module docstring).
    hidden : int
        Channels of the temporal convolution stack.
    dilations : tuple of int
        One residual block (GELU, conv of ``kernel_size`` with this dilation) per entry; the
        receptive field is ``1 + (kernel_size - 1) * sum(dilations)`` frames.
    kernel_size : int
        Temporal kernel, frames (odd).
    in_bands, env_bands : int
        Mel bands of the input summary and of the ``"envelope"`` head.
    guard : float
        Share of the cutoff kept out of the copied source octave (as the SBR baseline).
    smooth_bins : int
        Width (bins, odd) of the smoothing that defines the envelope of the fine structure.
    floor : float
        Lowest log10 power the model is trained to reproduce (-10: 100 dB below a unit-power
        bin, under 16-bit quantisation noise).
    """

    head: str = "bins"
    hidden: int = 256
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2)
    kernel_size: int = 3
    in_bands: int = 128
    env_bands: int = 64
    guard: float = 0.1
    smooth_bins: int = 17
    floor: float = -10.0

    def __post_init__(self) -> None:
        if self.head not in ("bins", "envelope"):
            raise ValueError(f"head must be 'bins' or 'envelope', got {self.head!r}")
        if self.kernel_size % 2 == 0 or self.smooth_bins % 2 == 0:
            raise ValueError("kernel_size and smooth_bins must be odd")

    @property
    def receptive_field(self) -> int:
        """Frames of input that one output frame depends on."""
        return 1 + (self.kernel_size - 1) * sum(self.dilations)

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": MODEL_TYPE, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LiteConfig:
        if data.get("model_type") != MODEL_TYPE:
            raise ValueError(f"not a lite model config (model_type {data.get('model_type')!r})")
        names = {f.name for f in fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v
                  for k, v in data.items() if k in names}
        return cls(**values)


def log_power(spec: Tensor, floor: float) -> Tensor:
    """``max(log10(|spec|^2 + 1e-10), floor)`` of a complex STFT (any shape)."""
    return torch.log10(spec.real.square() + spec.imag.square() + _POWER_EPS).clamp_min(floor)


def band_level(logp: Tensor, kc: Tensor) -> Tensor:
    """``[B]`` log10 of the mean power of bins ``< kc`` over all frames of ``logp [B, F, T]``."""
    return level_from_sums((10.0 ** logp).sum(2), logp.shape[2], kc)


def level_from_sums(power_sums: Tensor, frames: int, kc: Tensor) -> Tensor:
    """:func:`band_level` from per-bin power summed over ``frames`` frames (``[B, F]``), so a
    long file's level can be accumulated block by block."""
    below = torch.arange(power_sums.shape[1], device=power_sums.device)[None, :] < kc[:, None]
    mean = (power_sums * below).sum(1) / (below.sum(1) * frames).clamp_min(1)
    return torch.log10(mean + _POWER_EPS)


def copy_up_index(kc: int, guard: float) -> np.ndarray:
    """``[1025]`` source bin of every bin: itself below ``kc``, the patch source above."""
    index = np.arange(N_BINS)
    layout = PatchLayout(int(kc), guard)
    index[layout.targets] = layout.sources
    return index


def _mel_pool(n_bands: int) -> np.ndarray:
    """``[n_bands, 1025]`` triangular mel bands (0 to 24 kHz), each row summing to 1."""
    fb = dsp.mel_filterbank(dsp.SAMPLE_RATE, dsp.POST_N_FFT, n_bands).astype(np.float64)
    return fb / fb.sum(axis=1, keepdims=True)


class LiteModel(nn.Module):
    """The ``lite`` network: relative log10 power ``[B, 1025, T]`` -> predicted ``[B, 1025, T]``.

    Parameters
    ----------
    config : LiteConfig
        Architecture.
    """

    def __init__(self, config: LiteConfig) -> None:
        super().__init__()
        self.config = config
        pool = _mel_pool(config.in_bands)
        self.register_buffer("pool", torch.tensor(pool, dtype=torch.float32), persistent=False)
        top = np.array([np.flatnonzero(row).max() for row in pool])
        self.register_buffer("band_top", torch.tensor(top), persistent=False)
        k = config.kernel_size
        self.proj_in = nn.Conv1d(2 * config.in_bands + 1, config.hidden, 1)
        self.convs = nn.ModuleList(
            nn.Conv1d(config.hidden, config.hidden, k, dilation=d, padding=d * (k - 1) // 2)
            for d in config.dilations
        )
        if config.head == "bins":
            self.proj_out = nn.Conv1d(config.hidden, N_BINS, 1)
            nn.init.constant_(self.proj_out.bias, -4.0)  # high bands sit well below the level
        else:
            self.proj_out = nn.Conv1d(config.hidden, config.env_bands, 1)
            fb = _mel_pool(config.env_bands).T                          # [1025, env_bands]
            interp = fb / np.maximum(fb.sum(axis=1, keepdims=True), 1e-12)
            interp[fb.sum(axis=1) == 0, 0] = 1.0                        # DC: the lowest band
            self.register_buffer("interp", torch.tensor(interp, dtype=torch.float32),
                                 persistent=False)

    def forward(self, logp: Tensor, kc: Tensor, source_index: Tensor | None = None) -> Tensor:
        """Predict the log10 power of every bin.

        Parameters
        ----------
        logp : Tensor
            ``[B, 1025, T]`` input log10 power relative to :func:`band_level`.
        kc : Tensor
            ``[B]`` cutoff bins (integers).
        source_index : Tensor, optional
            ``[B, 1025]`` :func:`copy_up_index` rows (``"envelope"`` head; computed if None).

        Returns
        -------
        Tensor
            ``[B, 1025, T]`` predicted relative log10 power; bins ``< kc`` are not meaningful.
        """
        valid = (self.band_top[None, :] < kc[:, None]).to(logp.dtype)          # [B, bands]
        pooled = torch.einsum("nf,bft->bnt", self.pool, logp) * valid[..., None]
        frames = logp.shape[-1]
        cond = torch.cat([pooled, valid[..., None].expand_as(pooled),
                          (kc.to(logp.dtype) / N_BINS)[:, None, None].expand(-1, 1, frames)], 1)
        h = self.proj_in(cond)
        for conv in self.convs:
            h = h + conv(F.gelu(h))
        y = self.proj_out(F.gelu(h))
        if self.config.head == "bins":
            return y
        if source_index is None:
            source_index = torch.stack([torch.from_numpy(copy_up_index(int(c), self.config.guard))
                                        for c in kc.tolist()]).to(logp.device)
        return self.fine_structure(logp, source_index) + torch.einsum("fn,bnt->bft",
                                                                      self.interp, y)

    def fine_structure(self, logp: Tensor, source_index: Tensor) -> Tensor:
        """Copied-up log-power minus its smoothed envelope, ``[B, 1025, T]``."""
        b, f, t = logp.shape
        power = (10.0 ** logp).transpose(1, 2).reshape(b * t, 1, f)
        k = self.config.smooth_bins
        smooth = F.avg_pool1d(power, k, 1, k // 2, count_include_pad=False)
        flat = logp - torch.log10(smooth.reshape(b, t, f).transpose(1, 2) + _POWER_EPS)
        return flat.gather(1, source_index[..., None].expand(-1, -1, t))

    # ------------------------------------------------------------------------------ save/load
    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (float32) into ``folder``."""
        from safetensors.torch import save_file

        folder = Path(folder)
        state = {k: v.detach().float().contiguous().cpu() for k, v in self.state_dict().items()}
        with atomic.atomic_path(folder / WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})
        atomic.write_text(folder / CONFIG_NAME, json.dumps(self.config.to_dict(), indent=2) + "\n")
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike[str],
                        device: str | torch.device = "cpu") -> LiteModel:
        """Load a folder written by :meth:`save_pretrained`."""
        from safetensors.torch import load_file

        folder = Path(folder)
        config = LiteConfig.from_dict(json.loads((folder / CONFIG_NAME).read_text()))
        model = cls(config)
        model.load_state_dict(load_file(str(folder / WEIGHTS_NAME)), strict=True)
        return model.to(device).eval()

    @staticmethod
    def is_lite_folder(folder: str | os.PathLike[str]) -> bool:
        """True if ``folder`` holds a lite model config."""
        path = Path(folder) / CONFIG_NAME
        try:
            return json.loads(path.read_text()).get("model_type") == MODEL_TYPE
        except (OSError, ValueError):
            return False
