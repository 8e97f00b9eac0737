"""``LiteSR``: the ``lite`` model as a pipeline with the interface of :class:`AudioSR`.

Per channel: resample to 48 kHz, find the band edge (:func:`audiosr_core.dsp.detect_band_edge`,
bounded by the input's Nyquist frequency), predict the log-power of every STFT bin above it
(:class:`audiosr_core.models.lite.LiteModel`), give those bins the phase of the input's top
octave copied upwards, keep every bin below the edge exactly the input's (complex), inverse
STFT. Deterministic: no seed, no noise. Silent, full-band or sub-1 kHz channels pass through.

Example
-------
>>> from audiosr_core import AudioSR
>>> sr = AudioSR.from_pretrained("lite")                   # packaged, offline
>>> result = sr.enhance(audio, 16000)                      # doctest: +SKIP
>>> result.audio.shape                                     # [channels, samples] at 48 kHz
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import audio as audio_io
from . import chunking, dsp
from .models.lite import LiteModel, band_level, copy_up_index, log_power
from .pipeline import (
    HEADROOM_PEAK,
    OUTPUT_RATE,
    EnhanceOptions,
    Enhancer,
    EnhanceResult,
    _fit,
    _options,
    output_length,
    select_channels,
)

__all__ = ["LiteSR", "highpass"]

BLOCK_FRAMES = 4096
"""Frames predicted per network call (44 s); blocks overlap by the receptive field."""
MIN_SAMPLES = 4096
"""Shorter signals are zero-padded to this length (85 ms at 48 kHz) for analysis."""


class LiteSR(Enhancer):
    """The ``lite`` super-resolution pipeline (CPU, real time many times over).

    Parameters
    ----------
    model : LiteModel
        The network.
    device : str or torch.device, optional
        Default CPU (the model is small; a GPU brings little).
    """

    stream_above_s = 300.0
    """Files longer than this (seconds) stream from disk to disk."""
    window_s = 60.0
    """Window of a streamed file, seconds (plus context on each side)."""
    CONTEXT = 96 * dsp.POST_HOP
    """Context on each side of a streamed window (1.02 s, a whole number of STFT hops)."""
    CROSSFADE = 48 * dsp.POST_HOP

    def __init__(self, model: LiteModel, device: str | torch.device | None = None) -> None:
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.model = model.to(self.device).eval()

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str] = "lite",
                        device: str | torch.device | None = None) -> LiteSR:
        """Load the packaged ``"lite"`` model or a lite folder (``save_pretrained`` output)."""
        from .weights import resolve_pretrained

        return cls(LiteModel.from_pretrained(resolve_pretrained(name_or_path)), device)

    def enhance(self, audio: np.ndarray | torch.Tensor, sample_rate: int,
                options: EnhanceOptions | None = None, *, progress: bool = False,
                **kwargs: Any) -> EnhanceResult:
        """Super-resolve audio to 48 kHz (same contract as :meth:`AudioSR.enhance`).

        Of ``options`` only ``channels`` and ``resampler`` apply; the diffusion settings
        (steps, guidance, seed, sampler) have no meaning here and are ignored.
        """
        opts = _options(options, kwargs)
        x = select_channels(audio_io.validate_array(audio, sample_rate), opts.channels)
        n_out = output_length(x.shape[-1], sample_rate)
        x48 = _fit(audio_io.resample(x, sample_rate, OUTPUT_RATE, method=opts.resampler), n_out)
        max_hz = min(sample_rate / 2, OUTPUT_RATE / 2)
        padded = _fit(x48, max(n_out, MIN_SAMPLES))     # very short clips: analyse with zeros
        cutoffs = [dsp.detect_band_edge(row, max_hz) for row in padded]
        out = x48.copy()
        for i, cut in enumerate(cutoffs):
            if cut.enhance:
                out[i] = self.extend(padded[i], cut.bin)[:n_out]
        status = ["enhanced" if c.enhance else c.status for c in cutoffs]
        seed = opts.seed if opts.seed is not None else 0
        return EnhanceResult(out, OUTPUT_RATE, [c.hz for c in cutoffs], status, seed)

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
        added = highpass(dsp.istft(high, wave48.shape[-1]), cutoff_bin * dsp.SAMPLE_RATE
                         / dsp.POST_N_FFT)
        return (np.asarray(wave48, dtype=np.float32) + added).astype(np.float32)

    def enhance_file(self, input_path: str | os.PathLike[str],
                     output_path: str | os.PathLike[str],
                     options: EnhanceOptions | None = None, *, overwrite: bool = False,
                     subtype: str | None = None, progress: bool = False,
                     **kwargs: Any) -> EnhanceResult:
        """Enhance one file (see :meth:`Enhancer.enhance_file`).

        Files longer than :attr:`stream_above_s` stream from disk to disk in windows of
        :attr:`window_s` (memory does not grow with the duration); their result's ``audio``
        is empty (``[channels, 0]``) and ``streamed`` is True.
        """
        meta = audio_io.info(input_path)
        if meta.duration_s <= self.stream_above_s:
            return super().enhance_file(input_path, output_path, options, overwrite=overwrite,
                                        subtype=subtype, progress=progress, **kwargs)
        output_path = Path(output_path)
        if output_path.exists() and not overwrite:
            raise FileExistsError(f"{output_path} exists; pass overwrite=True to replace it")
        opts = _options(options, kwargs)
        with audio_io.Reader48(input_path) as reader:
            read = lambda a, b: select_channels(reader.read(a, b), opts.channels)  # noqa: E731
            cutoffs, levels = self._measure(read, reader.length,
                                            min(reader.rate / 2, OUTPUT_RATE / 2))
            # Windows on the STFT hop grid: their frames are the whole file's, so neighbouring
            # windows generate the same high band and the crossfades join equal signals.
            windows = chunking.plan_windows(reader.length, int(self.window_s * OUTPUT_RATE),
                                            self.CONTEXT, self.CROSSFADE, align=dsp.POST_HOP)

            def process(i: int, segment: np.ndarray) -> np.ndarray:
                out = segment.copy()
                for c, cut in enumerate(cutoffs):
                    if cut.enhance:
                        out[c] = self.extend(segment[c], cut.bin, levels[c])
                return out

            gain_db = _write_streamed(output_path, read, windows, process, len(cutoffs),
                                      subtype, input_path, progress)
        status = ["enhanced" if c.enhance else c.status for c in cutoffs]
        seed = opts.seed if opts.seed is not None else 0
        return EnhanceResult(np.zeros((len(cutoffs), 0), np.float32), OUTPUT_RATE,
                             [c.hz for c in cutoffs], status, seed, output_gain_db=gain_db,
                             streamed=True)

    def _measure(self, read, length: int, max_hz: float
                 ) -> tuple[list[dsp.Cutoff], list[float]]:
        """Band edge and input-band level of every channel, block by block."""
        block = int(self.window_s * OUTPUT_RATE)
        feature = post = None
        peak, frames = 0.0, 0
        for start in range(0, length, block):
            x = read(start, min(start + block, length))
            spec = np.stack([np.abs(dsp.stft(row)) ** 2 for row in x])      # [C, 1025, T]
            sums = np.stack([dsp.power_sum(row) for row in x])
            feature = sums if feature is None else feature + sums
            post = spec.sum(-1) if post is None else post + spec.sum(-1)
            frames += spec.shape[-1]
            peak = max(peak, float(np.abs(x).max(initial=0.0)))
        feature /= max(dsp.feature_frames(length), 1)
        cutoffs = [dsp.band_edge(f, peak, max_hz) for f in feature]
        levels = [float(np.log10(p[:c.bin].mean() / frames + 2e-10)) if c.bin else 0.0
                  for p, c in zip(post, cutoffs, strict=True)]
        return cutoffs, levels

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


def highpass(wave: np.ndarray, cutoff_hz: float) -> np.ndarray:
    """Zero every rFFT bin of ``wave`` (whole signal, 48 kHz) below ``cutoff_hz``."""
    spectrum = np.fft.rfft(wave)
    spectrum[:int(np.ceil(cutoff_hz * wave.shape[-1] / dsp.SAMPLE_RATE))] = 0
    return np.fft.irfft(spectrum, n=wave.shape[-1]).astype(np.float32)


def _write_streamed(output_path: Path, read, windows: list, process, channels: int,
                    subtype: str | None, input_path, progress: bool) -> float:
    """Run the windows into a hidden float32 file, then write ``output_path`` atomically with
    one gain for the whole file if the integer ``subtype`` would clip. Returns the gain, dB."""
    import tempfile

    from tqdm.auto import tqdm

    output_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{output_path.name}.", suffix=".f32.wav",
                                    dir=output_path.parent)
    os.close(fd)
    peak = 0.0
    bar = tqdm(total=len(windows), desc="windows", unit="win", leave=False,
               disable=not progress)
    try:
        with audio_io.atomic_writer(tmp_name, OUTPUT_RATE, channels, "FLOAT") as write_tmp:
            def write(block: np.ndarray) -> None:
                nonlocal peak
                peak = max(peak, float(np.abs(block).max(initial=0.0)))
                write_tmp(block)

            def counted(i: int, segment: np.ndarray) -> np.ndarray:
                out = process(i, segment)
                bar.update(1)
                return out

            chunking.overlap_add_stream(read, windows, counted, write)
        gain = 1.0
        if audio_io.would_clip(np.array([[peak]], np.float32),
                               subtype or audio_io.DEFAULT_SUBTYPE):
            gain = HEADROOM_PEAK / peak
        block = OUTPUT_RATE * 30
        with audio_io.Reader48(tmp_name) as tmp, audio_io.atomic_writer(
                output_path, OUTPUT_RATE, channels, subtype, [input_path]) as write_out:
            for start in range(0, tmp.length, block):
                write_out(tmp.read(start, min(start + block, tmp.length)) * np.float32(gain))
    finally:
        bar.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
    return float(20 * np.log10(gain))
