"""``LiteSR``: the ``lite`` model as a pipeline with the interface of :class:`AudioSR`.

Per channel: resample to 48 kHz, find the band edge (:func:`audiosr_core.dsp.detect_band_edge`,
bounded by the input's Nyquist frequency), predict the log-power of every STFT bin above it
(:class:`audiosr_core.models.lite.LiteModel`), give those bins the phase of the input's top
octave copied upwards, keep every bin below the edge exactly the input's (complex), inverse
STFT. Deterministic: no seed, no noise. Silent, full-band and sub-1 kHz channels pass through,
and so do channels whose band ends below 2 kHz (:data:`MIN_EDGE_HZ`, the lowest edge it was
trained for), with their status saying why.

Example
-------
>>> import audiosr_core
>>> sr = audiosr_core.load("lite")                         # packaged, offline
>>> result = sr.enhance(audio, 16000)                      # doctest: +SKIP
>>> result.audio.shape                                     # [channels, samples] at 48 kHz
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from . import chunking, dsp
from .devices import resolve_device
from .enhancer import (
    EnhanceOptions,
    Enhancer,
    EnhanceResult,
    FilePlan,
    Planner,
    WindowTask,
    blocks,
    result_statuses,
)
from .errors import WeightsError
from .models.lite import LiteModel, band_level, copy_up_index, level_from_sums, log_power
from .rates import SAMPLE_RATE, fit_length
from .status import Status

__all__ = ["LiteSR", "LitePlanner", "LiteState", "detect_band", "in_model_range",
           "input_band_level", "highpass", "MIN_EDGE_HZ"]

BLOCK_FRAMES = 4096
"""Frames predicted per network call (44 s); blocks overlap by the receptive field."""
MIN_SAMPLES = 4096
"""Shorter signals are zero-padded to this length (85 ms at 48 kHz) for analysis."""
MIN_EDGE_HZ = 2000.0
"""Lowest band edge ``lite`` was trained for (its training inputs end at 2-16 kHz); a band
that ends lower passes through with ``Status.BELOW_RANGE`` instead of being extrapolated."""


def in_model_range(cut: dsp.Cutoff) -> dsp.Cutoff:
    """``cut``, or the same edge marked ``BELOW_RANGE`` if ``lite`` would have to generate from
    below :data:`MIN_EDGE_HZ`."""
    if cut.enhance and cut.hz < MIN_EDGE_HZ:
        return dsp.Cutoff(cut.bin, cut.hz, Status.BELOW_RANGE)
    return cut


def detect_band(wave48: np.ndarray, sample_rate: int) -> dsp.Cutoff:
    """The band edge ``lite`` uses for one channel, and whether it would enhance it.

    Parameters
    ----------
    wave48 : np.ndarray
        ``[samples]`` at 48 kHz (very short signals are analysed zero-padded to
        :data:`MIN_SAMPLES`).
    sample_rate : int
        The original rate, Hz: nothing above its Nyquist frequency counts as content.
    """
    padded = fit_length(np.asarray(wave48, np.float32), max(wave48.shape[-1], MIN_SAMPLES))
    return in_model_range(dsp.detect_band_edge(padded, min(sample_rate, SAMPLE_RATE) / 2))


@dataclass
class LiteState:
    """File-level state of a planned file (picklable): per channel the band edge and the
    log10 mean power of the input band (``None`` for channels that pass through); windows
    shorter than ``min_samples`` are analysed zero-padded to it."""

    cutoffs: list[dsp.Cutoff]
    levels: list[float | None]
    min_samples: int = 0

    @property
    def active(self) -> bool:
        return any(c.enhance for c in self.cutoffs)


def input_band_level(wave48: np.ndarray, cutoff_bin: int, floor: float) -> float:
    """log10 mean power of the STFT bins below ``cutoff_bin`` of ``[samples]`` at 48 kHz,
    over all frames (the level ``lite`` generates relative to)."""
    spec = torch.from_numpy(dsp.stft(np.asarray(wave48, np.float32)))[None]
    return float(band_level(log_power(spec, floor), torch.tensor([cutoff_bin]))[0])


@dataclass
class LitePlanner(Planner):
    """Plans files for :class:`LiteSR` without its weights (only the log-power floor).

    In memory the whole signal is one window, its edge and level measured on it; a long file
    is measured in one pass (band edge and level of the whole file) and cut into windows of
    ``window_s`` seconds on the STFT hop grid, so neighbouring windows generate the same
    high band and the crossfades join equal signals.
    """

    floor: float
    window_s: float = 60.0
    stream_above_s: float = 300.0

    def plan(self, x48: np.ndarray, rate: int, opts: EnhanceOptions) -> FilePlan:
        n = x48.shape[-1]
        padded = fit_length(x48, max(n, MIN_SAMPLES))  # very short clips: analyse with zeros
        cutoffs = [detect_band(row, rate) for row in x48]
        levels = [input_band_level(padded[c], cut.bin, self.floor) if cut.enhance else None
                  for c, cut in enumerate(cutoffs)]
        state = LiteState(cutoffs, levels, MIN_SAMPLES)
        return FilePlan(n, [chunking.Window(0, n, 0, n)], state, self._result(cutoffs, opts))

    def plan_stream(self, read: Callable[[int, int], np.ndarray], length: int, rate: int,
                    opts: EnhanceOptions) -> FilePlan:
        feature = post = None
        peak, frames = 0.0, 0
        for x in blocks(read, length, int(self.window_s * SAMPLE_RATE)):
            spec = torch.from_numpy(np.stack([dsp.stft(row) for row in x]))  # [C, 1025, T]
            spec = 10.0 ** log_power(spec, self.floor).double()
            sums = np.stack([dsp.power_sum(row) for row in x])
            feature = sums if feature is None else feature + sums
            post = spec.sum(-1) if post is None else post + spec.sum(-1)     # [C, 1025]
            frames += spec.shape[-1]
            peak = max(peak, float(np.abs(x).max(initial=0.0)))
        feature /= max(dsp.feature_frames(length), 1)
        cutoffs = [in_model_range(dsp.band_edge(f, peak, min(rate / 2, SAMPLE_RATE / 2)))
                   for f in feature]
        kc = torch.tensor([c.bin for c in cutoffs])
        levels = [lv if c.enhance else None
                  for lv, c in zip(level_from_sums(post, frames, kc).tolist(), cutoffs,
                                   strict=True)]
        windows = chunking.plan_windows(length, int(self.window_s * SAMPLE_RATE),
                                        LiteSR.CONTEXT, LiteSR.CROSSFADE, align=dsp.POST_HOP)
        return FilePlan(length, windows, LiteState(cutoffs, levels),
                        self._result(cutoffs, opts))

    @staticmethod
    def _result(cutoffs: list[dsp.Cutoff], opts: EnhanceOptions) -> EnhanceResult:
        return EnhanceResult(np.zeros((len(cutoffs), 0), np.float32), SAMPLE_RATE,
                             [c.hz for c in cutoffs], result_statuses(cutoffs),
                             _seed_or_zero(opts))


class LiteSR(Enhancer):
    """The ``lite`` super-resolution pipeline (CPU, real time many times over).

    Parameters
    ----------
    model : LiteModel
        The network.
    device : str or torch.device, optional
        Default CPU (the model is small; a GPU brings little).

    Of :class:`EnhanceOptions` only ``channels`` and ``resampler`` apply; the diffusion
    settings (steps, guidance, seed, sampler, batch size) have no meaning here and are ignored.
    """

    window_s = 60.0
    """Window of a streamed file, seconds (plus context on each side)."""
    CONTEXT = 96 * dsp.POST_HOP
    """Context on each side of a streamed window (1.02 s, a whole number of STFT hops)."""
    CROSSFADE = 48 * dsp.POST_HOP

    def __init__(self, model: LiteModel, device: str | torch.device | None = None) -> None:
        self.device = resolve_device(device) if device is not None else torch.device("cpu")
        self.model = model.to(self.device).eval()

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str] = "lite",
                        device: str | torch.device | None = None) -> LiteSR:
        """Load the packaged ``"lite"`` model or a lite folder (``save_pretrained`` output).

        Raises
        ------
        WeightsError
            Not found, unreadable, or a diffusion model (load that with
            :func:`audiosr_core.load` or :meth:`AudioSR.from_pretrained`).
        """
        from .weights import REGISTRY, resolve_pretrained

        official = str(name_or_path).strip().lower() in REGISTRY
        folder = None if official else resolve_pretrained(name_or_path)
        if folder is None or not LiteModel.is_lite_folder(folder):
            raise WeightsError(f"{name_or_path}: is not a lite model folder; load diffusion "
                               f"models with audiosr_core.load({str(name_or_path)!r}) (or "
                               "AudioSR.from_pretrained)")
        return cls(LiteModel.from_pretrained(folder), device)

    def planner(self) -> LitePlanner:
        """In memory: the whole signal is one window; long files: :attr:`window_s` windows."""
        return LitePlanner(self.model.config.floor, self.window_s, self.stream_above_s)

    def run_windows(self, tasks: Sequence[WindowTask], options: EnhanceOptions, *,
                    progress: bool = False) -> list[np.ndarray]:
        """:meth:`extend` every enhanced channel of each window (:class:`LiteState`); short
        signals are analysed zero-padded to ``state.min_samples`` and cropped back."""
        outputs = []
        for task in tasks:
            seg = np.asarray(task.segment, np.float32)
            padded = fit_length(seg, max(seg.shape[-1], task.state.min_samples))
            out = seg.copy()
            for c, cut in enumerate(task.state.cutoffs):
                if cut.enhance:
                    out[c] = self.extend(padded[c], cut.bin,
                                         task.state.levels[c])[:seg.shape[-1]]
            outputs.append(out)
        return outputs

    @torch.inference_mode()
    def extend(self, wave48: np.ndarray, cutoff_bin: int, level: float | None = None
               ) -> np.ndarray:
        """Generate STFT bins ``>= cutoff_bin`` of a ``[samples]`` 48 kHz signal.

        ``level`` is the log10 mean power of the input band (:func:`band_level`); by default
        it is measured on ``wave48`` (a long file's windows pass the whole file's).

        Returns float32 ``[samples]``: the input plus a generated signal with no content below
        the cutoff frequency (FFT brick wall), so the input's band is untouched.
        """
        spec = dsp.stft(np.asarray(wave48, dtype=np.float32))
        kc = torch.tensor([cutoff_bin])
        logp = log_power(torch.from_numpy(spec)[None], self.model.config.floor)
        level = (band_level(logp, kc) if level is None else torch.tensor([level]))[:, None, None]
        pred = self._predict(logp - level, kc) + level
        magnitude = (10.0 ** (pred[0, cutoff_bin:] / 2)).numpy()
        source = spec[copy_up_index(cutoff_bin, self.model.config.guard)[cutoff_bin:]]
        phase = np.where(np.abs(source) > 0, source / np.maximum(np.abs(source), 1e-30), 1.0)
        high = np.zeros_like(spec)
        high[cutoff_bin:] = magnitude * phase
        added = highpass(dsp.istft(high, wave48.shape[-1]), cutoff_bin * SAMPLE_RATE
                         / dsp.POST_N_FFT)
        return (np.asarray(wave48, dtype=np.float32) + added).astype(np.float32)

    def _predict(self, logp: torch.Tensor, kc: torch.Tensor) -> torch.Tensor:
        """The network over ``[1, 1025, T]`` in blocks of frames (exact: the halo covers the
        receptive field)."""
        frames = logp.shape[-1]
        halo = self.model.config.receptive_field // 2 + 1
        index = torch.from_numpy(copy_up_index(int(kc[0]), self.model.config.guard))[None]
        parts = []
        for start in range(0, frames, BLOCK_FRAMES):
            stop = min(start + BLOCK_FRAMES, frames)
            lo, hi = max(0, start - halo), min(frames, stop + halo)
            y = self.model(logp[..., lo:hi].to(self.device), kc.to(self.device),
                           index.to(self.device)).float().cpu()
            parts.append(y[..., start - lo:stop - lo])
        return torch.cat(parts, dim=-1)


def _seed_or_zero(opts: EnhanceOptions) -> int:
    """lite draws nothing: the reported seed is the given one, or 0."""
    return opts.seed if opts.seed is not None else 0


def highpass(wave: np.ndarray, cutoff_hz: float) -> np.ndarray:
    """Zero every rFFT bin of ``wave`` (whole signal, 48 kHz) below ``cutoff_hz``."""
    spectrum = np.fft.rfft(wave)
    spectrum[:int(np.ceil(cutoff_hz * wave.shape[-1] / SAMPLE_RATE))] = 0
    return np.fft.irfft(spectrum, n=wave.shape[-1]).astype(np.float32)

