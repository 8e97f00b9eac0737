"""Plain DSP bandwidth extension: spectral band replication (SBR) baselines for the benchmark.

Neither function uses a model. Both work in the STFT domain of the engine's low-band replacement
(:func:`audiosr_core.dsp.stft`, n_fft 2048, hop 512 at 48 kHz, 23.4375 Hz bins) and keep the
input's band exactly as the engine does: STFT bins below the cutoff bin are the input's own,
bins from it up to 24 kHz are generated.

- :func:`spectral_band_replication` (the baseline): the top octave of the input band is
  flattened (divided by its smoothed spectral envelope) and copied upwards, patch after patch,
  to 24 kHz; each frame's copy is shaped by the envelope of that octave continued upwards on
  the straight line (dB against log-frequency) fitted to it, its slope held between -24 and
  -12 dB per octave.
- :func:`oracle_band_replication` (an upper bound, for benchmarks only): the same copied fine
  structure, shaped per frame in 8 bands by the TRUE high-band envelope of the reference.

Patches are moved by a multiple of 4 bins, so with hop ``n_fft / 4`` a copied sinusoid keeps
a frame-to-frame phase advance consistent with its new frequency and overlap-adds coherently.

Examples
--------
>>> import numpy as np
>>> from audiosr_core import baseline, dsp
>>> rng = np.random.default_rng(0)
>>> full = rng.standard_normal(48000).astype(np.float32)
>>> low = dsp.lowpass(full, 8000.0)                               # band-limited to 8 kHz
>>> out = baseline.spectral_band_replication(low, 8000.0)          # [samples] float32, 48 kHz
>>> oracle = baseline.oracle_band_replication(low, 8000.0, full)   # needs the reference
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import scipy.ndimage

from . import dsp

__all__ = ["PatchLayout", "cutoff_bin", "spectral_band_replication", "oracle_band_replication"]

N_FFT, HOP = dsp.POST_N_FFT, dsp.POST_HOP
BIN_HZ = dsp.SAMPLE_RATE / N_FFT
"""Width of one STFT bin, Hz (23.4375)."""
_STEP = 4
"""Patch shifts are multiples of ``N_FFT // HOP`` bins (phase-coherent copies)."""
_TINY = 1e-20


def cutoff_bin(cutoff_hz: float) -> int:
    """STFT bin (n_fft 2048 at 48 kHz) of a cutoff: ``floor(cutoff_hz / 23.4375)``.

    The inverse of ``Cutoff.hz = bin * 23.4375`` of :func:`audiosr_core.dsp.detect_cutoff`, so
    a detected cutoff maps back to its own bin.
    """
    return int(math.floor(cutoff_hz / BIN_HZ + 1e-9))


def spectral_band_replication(wave48: np.ndarray, cutoff_hz: float | None = None, *,
                              guard: float = 0.1, smooth_hz: float = 400.0,
                              slope_range_db: tuple[float, float] = (-24.0, -12.0),
                              gain_db: float = 0.0) -> np.ndarray:
    """Extend a band-limited 48 kHz signal to 24 kHz by copying its top octave upwards.

    Per channel:

    1. STFT ``X`` (:func:`dsp.stft`); ``kc`` = :func:`cutoff_bin` of ``cutoff_hz``.
    2. Source band: the octave below ``kc - g``, where the guard ``g`` (about ``guard * kc``
       bins) skips the filter's transition band just below the cutoff.
    3. Fine structure: ``X`` divided by its envelope, the square root of the power smoothed
       over ``smooth_hz`` along frequency.
    4. Envelope continuation, per frame: a straight line (dB against log2 frequency, weighted
       uniformly in log-frequency) is fitted to the smoothed power of the source octave; its
       slope is clamped to ``slope_range_db`` (dB per octave) and the line is continued from
       its value at the top of the source octave.
    5. Output bins ``>= kc``: the source fine structure copied up in patches of the octave's
       width (shifts are multiples of 4 bins), times the continued envelope, times
       ``gain_db``. Bins ``< kc`` stay the input's own; inverse STFT (:func:`dsp.istft`).

    Parameters
    ----------
    wave48 : np.ndarray
        ``[samples]`` or ``[channels, samples]`` float at 48 kHz.
    cutoff_hz : float, optional
        Bandwidth of the input, Hz, ``0 < cutoff_hz < 24000`` (e.g. the simulated cutoff in a
        benchmark). ``None``: detected per channel with :func:`dsp.detect_cutoff`; a channel
        that is silent, full-band or below 1 kHz then passes through unchanged, as in the
        engine.
    guard : float
        Share of the cutoff frequency kept out of the source band and the envelope fit.
    smooth_hz : float
        Width of the spectral smoothing that defines the envelope, Hz.
    slope_range_db : (float, float)
        Allowed envelope slope above the cutoff, dB per octave (low, high). Per-frame fits
        are noisy and often flatter than the spectrum really continues; on the dev set,
        holding the slope at -12 dB/octave or steeper lowers the LSD by 0.1-0.4.
    gain_db : float
        Extra gain of the whole generated band, dB.

    Returns
    -------
    np.ndarray
        float32, same shape as ``wave48``. Its STFT below the cutoff bin equals the input's
        (up to the leakage of the Hann window at the cutoff and float32 rounding).

    Raises
    ------
    ValueError
        ``wave48`` is not a finite 1-D or 2-D float array, or ``cutoff_hz`` is outside
        ``(0, 24000)`` Hz or leaves no source band (below about 300 Hz), or ``guard`` is
        outside ``[0, 0.5)`` or ``smooth_hz`` is not positive.

    See Also
    --------
    oracle_band_replication : the same fine structure with the reference's true envelope.
    """
    if not slope_range_db[0] <= slope_range_db[1]:
        raise ValueError(f"slope_range_db {slope_range_db!r} must be (low, high) with low <= high")

    def make_envelope(channel: int) -> _EnvelopeFn:
        return lambda fine, power_s, layout: _continued_envelope(power_s, layout,
                                                                 slope_range_db, gain_db)

    return _per_channel(wave48, cutoff_hz, make_envelope, guard, smooth_hz)


def oracle_band_replication(wave48: np.ndarray, cutoff_hz: float | None,
                            reference48: np.ndarray, *, n_bands: int = 8,
                            guard: float = 0.1, smooth_hz: float = 400.0) -> np.ndarray:
    """Band replication shaped by the TRUE high-band envelope of the reference (an oracle).

    The fine structure is that of :func:`spectral_band_replication` (same source octave, same
    patches). The band from the cutoff bin to 24 kHz is split into ``n_bands`` bands of equal
    width, and in every frame each band is scaled so that its power equals the reference's
    (same STFT). It needs the answer, so it only bounds what a better envelope estimate could
    reach; it is for benchmarks.

    Parameters
    ----------
    wave48 : np.ndarray
        ``[samples]`` or ``[channels, samples]`` band-limited input at 48 kHz.
    cutoff_hz : float or None
        As in :func:`spectral_band_replication`.
    reference48 : np.ndarray
        The full-band original, same shape as ``wave48``.
    n_bands : int
        Number of equal-width bands of the true envelope (8: 2.5 kHz wide above a 4 kHz
        cutoff, 1 kHz above 16 kHz).
    guard, smooth_hz : float
        As in :func:`spectral_band_replication`.

    Returns
    -------
    np.ndarray
        float32, same shape as ``wave48``; bins below the cutoff bin are the input's own.

    Raises
    ------
    ValueError
        As :func:`spectral_band_replication`, or ``reference48`` has another shape.
    """
    ref = _as_float_array(reference48, "reference48")
    if ref.shape != np.shape(wave48):
        raise ValueError(f"reference48 has shape {ref.shape} but wave48 has "
                         f"{np.shape(wave48)}; they must match")
    if isinstance(n_bands, bool) or not isinstance(n_bands, (int, np.integer)) or n_bands < 1:
        raise ValueError(f"n_bands must be a positive integer, got {n_bands!r}")
    ref_rows = ref.reshape(-1, ref.shape[-1])

    def make_envelope(channel: int) -> _EnvelopeFn:
        ref_spec = dsp.stft(ref_rows[channel].astype(np.float64))
        return lambda fine, power_s, layout: _true_envelope(fine, ref_spec, layout.kc,
                                                            int(n_bands))

    return _per_channel(wave48, cutoff_hz, make_envelope, guard, smooth_hz)


# --------------------------------------------------------------------------------------------
# internals
# --------------------------------------------------------------------------------------------
class PatchLayout:
    """Source octave and patch geometry for the cutoff bin ``kc``.

    The source octave ``[src_lo, src_hi)`` ends a guard below ``kc``; target bin ``k >= kc``
    copies source bin ``src_lo + (k - kc) % width``, so every shift is a multiple of 4 bins.
    """

    def __init__(self, kc: int, guard: float) -> None:
        self.kc = kc
        gap = _STEP * max(1, math.ceil(guard * kc / _STEP))
        self.src_hi = kc - gap
        self.width = _STEP * ((self.src_hi // 2) // _STEP)
        if self.width < _STEP:
            raise ValueError(f"cutoff bin {kc} ({kc * BIN_HZ:.0f} Hz) leaves no source band "
                             "to replicate; the cutoff must be at least about 300 Hz")
        self.src_lo = self.src_hi - self.width
        self.targets = np.arange(kc, N_FFT // 2 + 1)
        self.sources = self.src_lo + (self.targets - kc) % self.width


_EnvelopeFn = Callable[[np.ndarray, np.ndarray, PatchLayout], np.ndarray]
"""``(fine [bins >= kc, frames], smoothed power [1025, frames], layout) -> magnitude
envelope [bins >= kc, frames]``."""


def _as_float_array(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim not in (1, 2) or not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name} has shape {arr.shape} and dtype {arr.dtype}; expected a float "
                         "array [samples] or [channels, samples] at 48 kHz")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite samples")
    return arr


def _per_channel(wave48: np.ndarray, cutoff_hz: float | None,
                 make_envelope: Callable[[int], _EnvelopeFn], guard: float,
                 smooth_hz: float) -> np.ndarray:
    x = _as_float_array(wave48, "wave48")
    if not 0.0 <= guard < 0.5:
        raise ValueError(f"guard must lie in [0, 0.5), got {guard!r}")
    if not smooth_hz > 0:
        raise ValueError(f"smooth_hz must be positive, got {smooth_hz!r}")
    if cutoff_hz is not None and not 0 < cutoff_hz < dsp.SAMPLE_RATE / 2:
        raise ValueError(f"cutoff_hz {cutoff_hz!r} must lie strictly between 0 and "
                         f"{dsp.SAMPLE_RATE // 2} Hz")
    rows = x.reshape(-1, x.shape[-1]).astype(np.float32)
    out = rows.copy()
    for i, row in enumerate(rows):
        if cutoff_hz is None:
            cut = dsp.detect_cutoff(row)
            if not cut.enhance:
                continue
            kc = cut.bin
        else:
            kc = cutoff_bin(cutoff_hz)
        if row.size == 0 or kc >= N_FFT // 2:
            continue
        out[i] = _replicate(row, PatchLayout(kc, guard), make_envelope(i), smooth_hz)
    return out.reshape(x.shape)


def _replicate(x: np.ndarray, layout: PatchLayout, envelope: _EnvelopeFn,
               smooth_hz: float) -> np.ndarray:
    """One channel: input bins below ``kc``, flattened copies times ``envelope`` above."""
    spec = dsp.stft(x.astype(np.float64))
    power_s = scipy.ndimage.uniform_filter1d(np.abs(spec) ** 2,
                                             max(1, int(round(smooth_hz / BIN_HZ))),
                                             axis=0, mode="nearest")
    floor = _TINY + 1e-18 * float(power_s.max(initial=0.0))
    fine = spec[layout.sources] / np.sqrt(np.maximum(power_s[layout.sources], floor))
    out = spec.copy()
    out[layout.kc:] = fine * envelope(fine, power_s, layout)
    return dsp.istft(out, x.shape[-1]).astype(np.float32)


def _continued_envelope(power_s: np.ndarray, layout: PatchLayout,
                        slope_range_db: tuple[float, float], gain_db: float) -> np.ndarray:
    """``[bins >= kc, frames]`` magnitude envelope continued from the source octave."""
    bins = np.arange(layout.src_lo, layout.src_hi)
    x = np.log2(bins * BIN_HZ)
    w = 1.0 / bins                                                   # uniform in log-frequency
    w /= w.sum()
    y = 10 * np.log10(power_s[bins] + _TINY)                        # [bins, frames] dB
    xm, ym = w @ x, w @ y
    slope = (w * (x - xm)) @ (y - ym) / (w @ (x - xm) ** 2)          # dB per octave
    top = np.log2(layout.src_hi * BIN_HZ)
    edge = ym + slope * (top - xm)                                   # fitted level at src_hi
    slope = np.clip(slope, *slope_range_db)
    octaves = np.log2(layout.targets * BIN_HZ)[:, None] - top
    return 10 ** ((edge[None] + slope[None] * octaves + gain_db) / 20)


def _true_envelope(fine: np.ndarray, ref_spec: np.ndarray, kc: int, n_bands: int) -> np.ndarray:
    """``[bins >= kc, frames]`` gains giving ``fine`` the reference's power in each band."""
    top = N_FFT // 2 + 1
    edges = np.unique(np.round(np.linspace(kc, top, n_bands + 1)).astype(int))
    frames = min(fine.shape[1], ref_spec.shape[1])
    gains = np.zeros((top - kc, fine.shape[1]))
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        ref_p = np.mean(np.abs(ref_spec[lo:hi, :frames]) ** 2, axis=0)
        fine_p = np.mean(np.abs(fine[lo - kc:hi - kc, :frames]) ** 2, axis=0)
        gains[lo - kc:hi - kc, :frames] = np.sqrt(ref_p / np.maximum(fine_p, _TINY))
    return gains
