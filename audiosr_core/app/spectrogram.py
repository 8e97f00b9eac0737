"""Spectrogram pictures for the app: numpy only, written as PNG by a tiny encoder.

Both pictures of a job (the upload and the result) share one frequency axis (0 Hz to the
output's Nyquist frequency, 24 kHz for 48 kHz output) and one fixed dB scale
(:data:`DB_RANGE`, dBFS: a full-scale sine reaches 0 dB), so they can be compared pixel for
pixel: the input's empty band above its own Nyquist frequency is drawn at the floor.

Files are read frame by frame (seek + read of one FFT window per column), so a long upload
never has to fit in memory to be drawn.

Example
-------
>>> from audiosr_core.app.spectrogram import render_spectrogram
>>> render_spectrogram("in.wav", "in.png", top_hz=24000, columns=600)   # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from .. import atomic
from ..spectrogram import colourise, encode_png, to_uint8

__all__ = ["DB_RANGE", "columns_for", "spectrogram_db", "colourise_db", "render_spectrogram"]

DB_RANGE = (-110.0, 0.0)
"""Bottom and top of the colour scale, dBFS."""
ROWS = 320
"""Frequency rows of a picture."""
MAX_COLUMNS = 900
"""Time columns of a long file's picture."""
def columns_for(duration_s: float) -> int:
    """Time columns for a file of ``duration_s`` seconds: about 100 per second, at least 8,
    at most :data:`MAX_COLUMNS`."""
    return int(min(MAX_COLUMNS, max(8, round(duration_s * 100))))


def _fft_size(rate: int) -> int:
    """A power of two giving about 23 Hz per bin (2048 at 48 kHz), at least 256."""
    return max(256, 1 << round(np.log2(rate * 2048 / 48000)))


def _frame_power(frame: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Power spectrum of ``[n_fft, channels]`` samples averaged over channels, scaled so that
    a full-scale sine peaks at 1 (0 dBFS)."""
    spec = np.fft.rfft(frame * window[:, None], axis=0)
    scale = 2.0 / window.sum()
    return np.mean(np.abs(spec) ** 2, axis=1) * scale**2


def spectrogram_db(path: str | os.PathLike[str], top_hz: float, columns: int,
                   rows: int = ROWS) -> np.ndarray:
    """Levels of an audio file on a ``[rows, columns]`` grid, dBFS, high frequencies first.

    Row ``r`` (counted from the bottom) is ``r / (rows - 1) * top_hz`` Hz; frequencies above
    the file's Nyquist frequency get the bottom of :data:`DB_RANGE`. Column ``k`` is centred
    at ``k / (columns - 1)`` of the file's duration.
    """
    with sf.SoundFile(os.fspath(path)) as f:
        rate, frames, channels = int(f.samplerate), int(f.frames), int(f.channels)
        n_fft = _fft_size(rate)
        window = np.hanning(n_fft).astype(np.float64)
        freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
        grid = np.linspace(0.0, top_hz, rows)
        centres = np.linspace(0, max(frames - 1, 0), columns)
        out = np.full((rows, columns), DB_RANGE[0])
        for k, centre in enumerate(centres):
            start = int(min(max(centre - n_fft // 2, 0), max(frames - n_fft, 0)))
            f.seek(start)
            block = f.read(n_fft, dtype="float64", always_2d=True)
            frame = np.zeros((n_fft, channels))
            frame[:len(block)] = block
            power = np.interp(grid, freqs, _frame_power(frame, window), right=0.0)
            out[:, k] = 10.0 * np.log10(np.maximum(power, 1e-30))
    return np.clip(out, *DB_RANGE)[::-1]


def colourise_db(levels_db: np.ndarray) -> np.ndarray:
    """``[H, W]`` dBFS -> ``[H, W, 3]`` uint8 RGB: :data:`DB_RANGE` through the shared colour
    map (:data:`audiosr_core.spectrogram.COLOUR_STOPS`)."""
    low, high = DB_RANGE
    return to_uint8(colourise((levels_db - low) / (high - low)))


def render_spectrogram(path: str | os.PathLike[str], png_path: str | os.PathLike[str],
                       top_hz: float, columns: int) -> Path:
    """Draw :func:`spectrogram_db` of ``path`` into ``png_path`` (written atomically)."""
    return atomic.write_bytes(png_path, encode_png(colourise_db(spectrogram_db(path, top_hz,
                                                                              columns))))
