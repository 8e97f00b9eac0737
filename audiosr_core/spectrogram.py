"""Spectrogram pictures with numpy only (no matplotlib): the one home of the colour map, the
PNG encoder and side-by-side panels.

Panels share one 0-24 kHz frequency axis (low frequencies at the bottom) and one dB scale, so
the band AudioSR adds shows up as new energy above the input's cutoff. Used by the ComfyUI
node's IMAGE output, the fine-tuning run's validation pictures and (colour map, PNG) the app.

Example
-------
>>> from audiosr_core.spectrogram import encode_png, panels_image, spectrogram_image, to_uint8
>>> img = spectrogram_image(x16, 16000, y48, 48000)   # doctest: +SKIP
>>> img.shape, img.dtype                              # doctest: +SKIP
((256, 772, 3), dtype('float32'))
>>> png = encode_png(to_uint8(panels_image([(ref, 48000), (low, 48000), (out, 48000)])))
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np

__all__ = ["AXIS_HZ", "HEIGHT", "PANEL_WIDTH", "GAP", "DYNAMIC_RANGE_DB", "COLOUR_STOPS",
           "spectrogram_image", "panels_image", "power_columns", "colourise", "to_uint8",
           "encode_png"]

AXIS_HZ = 24000.0
"""Top of the shared frequency axis, Hz (the Nyquist frequency of 48 kHz audio)."""
HEIGHT = 256
"""Image rows: the frequency axis, 0 Hz (bottom) to :data:`AXIS_HZ` (top)."""
PANEL_WIDTH = 384
"""Columns of each panel (the time axis of the whole signal)."""
GAP = 4
"""White columns between the before and after panels."""
DYNAMIC_RANGE_DB = 80.0
"""dB below the loudest bin (of either panel) that map to the bottom of the colour scale."""
WINDOW_SECONDS = 0.02
"""STFT window length, s, rounded up to a power of two of samples at each signal's rate."""
_FRAMES_PER_BLOCK = 2048
COLOUR_STOPS = ((0.0, (0, 0, 4)), (0.25, (81, 18, 124)), (0.5, (183, 55, 121)),
                (0.75, (252, 137, 97)), (1.0, (252, 253, 191)))
"""The colour map (magma-like: black, purple, red, orange, cream) as (position, RGB) stops."""


def _n_fft(rate: int) -> int:
    """Power-of-two window of at least :data:`WINDOW_SECONDS` at ``rate`` Hz."""
    return 1 << max(8, int(np.ceil(np.log2(rate * WINDOW_SECONDS))))


def _frames(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``[samples]`` -> a view ``[frames, n_fft]`` of windows ``hop`` apart (zero-padded to
    at least one window)."""
    if x.shape[-1] < n_fft:
        x = np.pad(x, (0, n_fft - x.shape[-1]))
    return np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]


def power_columns(audio: np.ndarray, rate: int, columns: int = PANEL_WIDTH) -> np.ndarray:
    """Mean STFT power of ``audio`` in ``columns`` equal stretches of time.

    Parameters
    ----------
    audio : np.ndarray
        ``[channels, samples]`` or ``[samples]``, float, full scale +-1.
    rate : int
        Sample rate, Hz.
    columns : int
        Time columns of the result.

    Returns
    -------
    np.ndarray
        float64 ``[columns, n_fft // 2 + 1]``: power per frequency bin (bin ``k`` is
        ``k * rate / n_fft`` Hz), averaged over channels and over the frames of each column,
        scaled so that a full-scale sine peaks at 0.25 whatever the window length. A signal
        with fewer frames than ``columns`` repeats its frames.
    """
    x = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    n_fft = _n_fft(rate)
    hop = n_fft // 4
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    scale = 1.0 / float(window.sum()) ** 2
    groups = min(len(_frames(x[0], n_fft, hop)), columns)
    spectra = [_grouped_power(_frames(channel, n_fft, hop), window, groups) for channel in x]
    total = np.mean(spectra, axis=0) * scale
    return total[np.arange(columns) * groups // columns]


def _grouped_power(frames: np.ndarray, window: np.ndarray, groups: int) -> np.ndarray:
    """Mean power spectrum of ``frames [F, n_fft]`` in ``groups`` runs of consecutive frames,
    computed in blocks so memory stays bounded for long signals."""
    count = len(frames)
    group = np.arange(count) * groups // count
    acc = np.zeros((groups, frames.shape[-1] // 2 + 1))
    per_group = np.bincount(group, minlength=groups).astype(np.float64)
    for start in range(0, count, _FRAMES_PER_BLOCK):
        block = frames[start:start + _FRAMES_PER_BLOCK] * window
        power = np.abs(np.fft.rfft(block, axis=-1)) ** 2
        g = group[start:start + _FRAMES_PER_BLOCK]
        firsts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        acc[g[firsts]] += np.add.reduceat(power, firsts, axis=0)
    return acc / per_group[:, None]


def _on_axis(power: np.ndarray, rate: int, height: int) -> np.ndarray:
    """``[columns, bins]`` power at ``rate`` -> ``[height, columns]`` rows of the shared axis,
    top row highest; rows above the signal's Nyquist frequency hold zero power."""
    bins = power.shape[-1]
    n_fft = 2 * (bins - 1)
    hz = (np.arange(height) + 0.5) * AXIS_HZ / height
    position = hz * n_fft / rate
    lo = np.minimum(np.floor(position).astype(int), bins - 1)
    hi = np.minimum(lo + 1, bins - 1)
    weight = np.clip(position - lo, 0.0, 1.0)
    rows = power[:, lo] * (1.0 - weight) + power[:, hi] * weight
    rows[:, hz > rate / 2] = 0.0
    return rows.T[::-1]


def colourise(level: np.ndarray) -> np.ndarray:
    """Levels in [0, 1] ``[...]`` -> RGB float32 ``[..., 3]`` in [0, 1] through
    :data:`COLOUR_STOPS` (dark = quiet)."""
    level = np.clip(level, 0.0, 1.0)
    where = [p for p, _ in COLOUR_STOPS]
    channels = [np.interp(level, where, [c[k] / 255.0 for _, c in COLOUR_STOPS])
                for k in range(3)]
    return np.stack(channels, axis=-1).astype(np.float32)


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] -> uint8 0-255."""
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def _chunk(tag: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(tag + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


def encode_png(rgb: np.ndarray) -> bytes:
    """A ``[H, W, 3]`` uint8 image as PNG bytes (8-bit RGB, no filtering, zlib level 6)."""
    image = np.ascontiguousarray(rgb, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ValueError(f"expected a non-empty [H, W, 3] image, got shape {image.shape}")
    height, width = image.shape[:2]
    rows = np.concatenate([np.zeros((height, 1), np.uint8), image.reshape(height, -1)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + _chunk(b"IEND", b""))


def spectrogram_image(before: np.ndarray, before_rate: int, after: np.ndarray,
                      after_rate: int, *, height: int = HEIGHT, width: int = PANEL_WIDTH,
                      dynamic_range_db: float = DYNAMIC_RANGE_DB) -> np.ndarray:
    """Input and output spectrograms side by side on one 0-24 kHz axis and dB scale.

    Parameters
    ----------
    before, after : np.ndarray
        ``[channels, samples]`` (or ``[samples]``) float audio: the input and the enhanced
        output. Channels are shown as their mean power.
    before_rate, after_rate : int
        Their sample rates, Hz.
    height, width : int
        Rows of the frequency axis and columns of each panel.
    dynamic_range_db : float
        dB shown below the loudest bin of the two panels.

    Returns
    -------
    np.ndarray
        float32 ``[height, 2 * width + GAP, 3]`` in [0, 1] (ComfyUI IMAGE layout without the
        batch axis): before on the left, after on the right, a white gap between.
    """
    return panels_image([(before, before_rate), (after, after_rate)], height=height,
                        width=width, dynamic_range_db=dynamic_range_db)


def panels_image(signals: Sequence[tuple[np.ndarray, int]], *, height: int = HEIGHT,
                 width: int = PANEL_WIDTH, dynamic_range_db: float = DYNAMIC_RANGE_DB
                 ) -> np.ndarray:
    """Spectrograms of several ``(audio [channels, samples], rate)`` signals side by side, left
    to right, on one 0-24 kHz axis and one dB scale (the loudest bin of all panels at the top).

    Returns
    -------
    np.ndarray
        float32 ``[height, n * width + (n - 1) * GAP, 3]`` in [0, 1], white gaps between.
    """
    if not signals:
        raise ValueError("no signal to draw")
    panels = [_on_axis(power_columns(x, rate, width), rate, height) for x, rate in signals]
    db = [10.0 * np.log10(p + 1e-20) for p in panels]
    top = max(float(d.max()) for d in db)
    images = [colourise((d - (top - dynamic_range_db)) / dynamic_range_db) for d in db]
    gap = np.ones((height, GAP, 3), dtype=np.float32)
    parts = [images[0]]
    for image in images[1:]:
        parts += [gap, image]
    return np.concatenate(parts, axis=1)
