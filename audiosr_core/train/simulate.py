"""Training-data simulation: low-resolution inputs made from 48 kHz clips, as in the AudioSR paper.

A :class:`Degradation` describes one simulated input path: a low-pass filter (Chebyshev type I,
elliptic, Butterworth or an FFT brick wall) at a cutoff between 2 and 16 kHz, optionally
followed by a trip through a lower standard sample rate and back (what a 16 or 22.05 kHz
file goes through before it reaches the model). :func:`draw_degradation` draws one from a
``numpy.random.Generator``, :func:`apply_degradation` applies it, :func:`simulate_pair` does
both. Everything is deterministic given the generator's state.

Examples
--------
>>> import numpy as np
>>> from audiosr_core.train import simulate
>>> rng = np.random.default_rng(0)
>>> clip = rng.standard_normal((2, 48000)).astype(np.float32)     # [channels, samples], 48 kHz
>>> low, target, d = simulate.simulate_pair(clip, rng)
>>> low.shape, low.dtype, target is clip
((2, 48000), dtype('float32'), True)
>>> d = simulate.Degradation(cutoff_hz=7000.0, kind="ellip", order=8, zero_phase=True,
...                          resample_rate=16000)
>>> simulate.apply_degradation(clip, d).shape
(2, 48000)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.signal

from .. import audio, dsp
from ..rates import fit_length

__all__ = [
    "KINDS",
    "STANDARD_RATES",
    "Degradation",
    "draw_degradation",
    "apply_degradation",
    "simulate_pair",
]

KINDS: tuple[str, ...] = ("cheby1", "ellip", "butter", "boxcar")
"""Filter kinds: the three IIR designs of :func:`audiosr_core.dsp.design_lowpass` (cheby1
0.1 dB ripple; ellip 0.1 dB ripple, 60 dB stop band; butter) and an FFT brick wall."""
STANDARD_RATES: tuple[int, ...] = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100)
"""Intermediate sample rates (Hz) a simulated input may be resampled through, ascending."""
_DRAWS_PER_CALL = 6


@dataclass(frozen=True)
class Degradation:
    """One simulated low-resolution input path.

    Attributes
    ----------
    cutoff_hz : float
        Low-pass edge, Hz: where the 0.1 dB ripple band of cheby1/ellip ends and where
        Butterworth is 3 dB down (IIR designs use ``int(cutoff_hz)``, as
        :func:`~audiosr_core.dsp.design_lowpass` does); the first frequency the brick wall
        removes. Gentle filters (low order, causal) leave audible content above it.
    kind : str
        One of :data:`KINDS`.
    order : int
        IIR filter order (>= 1; drawn in 2..10). Ignored by ``"boxcar"``.
    zero_phase : bool
        Filter forwards and backwards (``sosfiltfilt``: no phase shift, magnitude response
        squared, so twice the stop-band attenuation) instead of once (``sosfilt``: causal,
        like an analogue or streaming filter). Ignored by ``"boxcar"``, which has zero phase.
    resample_rate : int or None
        Intermediate rate, Hz: after filtering the signal is resampled down to it and back up
        (soxr, :func:`audiosr_core.audio.resample`). Must exceed ``2 * cutoff_hz``. ``None``:
        no resampling.

    Raises
    ------
    ValueError
        Unknown kind, non-positive cutoff or order, or a cutoff at or above the Nyquist
        frequency of ``resample_rate``. The 48 kHz Nyquist check is done by
        :func:`apply_degradation`, which knows the sample rate.
    """

    cutoff_hz: float
    kind: str
    order: int
    zero_phase: bool
    resample_rate: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown degradation kind {self.kind!r}; choose one of "
                             f"{', '.join(KINDS)}")
        if not (math.isfinite(self.cutoff_hz) and self.cutoff_hz > 0):
            raise ValueError(f"degradation cutoff {self.cutoff_hz!r} Hz must be a positive "
                             "number of Hz")
        if not _is_int(self.order) or self.order < 1:
            raise ValueError(f"degradation filter order {self.order!r} must be an integer >= 1")
        rate = self.resample_rate
        if rate is not None:
            if not _is_int(rate) or rate <= 0:
                raise ValueError(f"degradation resample rate {rate!r} must be a positive whole "
                                 "number of Hz, or None")
            if self.cutoff_hz >= rate / 2:
                raise ValueError(f"degradation cutoff {self.cutoff_hz:g} Hz must lie below the "
                                 f"Nyquist frequency {rate / 2:g} Hz of the resample rate "
                                 f"{rate} Hz")


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def draw_degradation(
    rng: np.random.Generator,
    cutoff_range: tuple[float, float] = (2000.0, 16000.0),
    kinds: Sequence[str] = KINDS,
    order_range: tuple[int, int] = (2, 10),
    p_resample: float = 0.5,
    max_cutoff_hz: float | None = None,
    p_zero_phase: float = 0.5,
) -> Degradation:
    """Draw a random :class:`Degradation`.

    Each call consumes exactly six uniform variates of ``rng`` (whatever the arguments), so
    the stream stays aligned when one setting changes.

    Parameters
    ----------
    rng : np.random.Generator
        Source of randomness.
    cutoff_range : (float, float)
        Cutoff drawn uniformly in ``[low, high)``, Hz; ``0 < low <= high < 24000``.
    kinds : sequence of str
        Filter kinds to draw from uniformly (subset of :data:`KINDS`).
    order_range : (int, int)
        Filter order drawn uniformly among the integers ``low..high`` inclusive.
    p_resample : float
        Probability of an intermediate resample rate. The rate is drawn among the
        :data:`STANDARD_RATES` strictly above ``2 * cutoff`` with a smallest-first bias:
        the i-th eligible rate (ascending) has weight ``2**-i``, so the smallest eligible
        rate (the one a file with this bandwidth most plausibly had) is picked about half of
        the time. When no standard rate is eligible the rate is ``None``.
    max_cutoff_hz : float, optional
        Real bandwidth of the clip, Hz: the cutoff is drawn in ``[low, min(high,
        max_cutoff_hz))``, so the simulated input never claims content the target lacks.
    p_zero_phase : float
        Probability of zero-phase (forward-backward) filtering.

    Returns
    -------
    Degradation

    Raises
    ------
    ValueError
        Invalid ranges, kinds or probabilities, or ``max_cutoff_hz`` below the lowest cutoff
        (the clip is too narrow-band to simulate from; skip it).
    """
    lo, hi = (float(v) for v in cutoff_range)
    nyquist = dsp.SAMPLE_RATE / 2
    if not 0 < lo <= hi < nyquist:
        raise ValueError(f"cutoff_range {cutoff_range!r} must satisfy 0 < low <= high < "
                         f"{nyquist:g} Hz")
    if max_cutoff_hz is not None:
        if not max_cutoff_hz >= lo:
            raise ValueError(f"max_cutoff_hz {max_cutoff_hz!r} Hz is below the lowest cutoff "
                             f"{lo:g} Hz: the clip is too narrow-band to simulate from")
        hi = min(hi, float(max_cutoff_hz))
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if not kinds or unknown:
        raise ValueError(f"kinds {kinds!r} must be a non-empty subset of {', '.join(KINDS)}")
    olo, ohi = order_range
    if not 1 <= olo <= ohi or int(olo) != olo or int(ohi) != ohi:
        raise ValueError(f"order_range {order_range!r} must be integers with 1 <= low <= high")
    for name, p in (("p_resample", p_resample), ("p_zero_phase", p_zero_phase)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} {p!r} must be a probability in [0, 1]")

    u = rng.random(_DRAWS_PER_CALL)
    cutoff = lo + (hi - lo) * u[0]
    kind = kinds[min(int(u[1] * len(kinds)), len(kinds) - 1)]
    n_orders = int(ohi) - int(olo) + 1
    order = int(olo) + min(int(u[2] * n_orders), n_orders - 1)
    zero_phase = bool(u[3] < p_zero_phase)
    rate = _pick_rate(cutoff, u[5]) if u[4] < p_resample else None
    return Degradation(float(cutoff), kind, order, zero_phase, rate)


def _pick_rate(cutoff_hz: float, u: float) -> int | None:
    """Standard rate above ``2 * cutoff_hz`` for the uniform variate ``u``, weights 2**-i."""
    eligible = [r for r in STANDARD_RATES if r > 2 * cutoff_hz]
    if not eligible:
        return None
    cdf = np.cumsum(0.5 ** np.arange(len(eligible)))
    idx = int(np.searchsorted(cdf / cdf[-1], u, side="right"))
    return eligible[min(idx, len(eligible) - 1)]


def apply_degradation(wave48: np.ndarray, d: Degradation,
                      sample_rate: int = dsp.SAMPLE_RATE) -> np.ndarray:
    """Make the low-resolution version of a clip.

    1. Low-pass at ``d.cutoff_hz``: IIR kinds with the second-order sections of
       :func:`audiosr_core.dsp.design_lowpass` (``sosfiltfilt`` with mirrored edges if
       ``d.zero_phase``, else ``sosfilt`` from a zero state); ``"boxcar"`` zeroes every
       ``rfft`` bin of the whole clip at or above the cutoff.
    2. If ``d.resample_rate``: soxr down to it and back up to ``sample_rate``
       (:func:`audiosr_core.audio.resample`), trimmed to the input length. soxr's own
       anti-alias filter is flat to 91 % and -3 dB at 95 % of the intermediate Nyquist
       frequency, so a cutoff just below that frequency is rounded off a little further.

    Filtering is done in float64, resampling in float32.

    Parameters
    ----------
    wave48 : np.ndarray
        ``[samples]`` or ``[channels, samples]`` float (normally float32) at ``sample_rate``.
    d : Degradation
        What to apply.
    sample_rate : int
        Rate of ``wave48``, Hz (48000 for training).

    Returns
    -------
    np.ndarray
        Same shape and dtype as ``wave48``.

    Raises
    ------
    ValueError
        ``wave48`` is not a 1-D or 2-D float array, or ``d.cutoff_hz`` is at or above the
        Nyquist frequency of ``sample_rate``.
    """
    x = np.asarray(wave48)
    if x.ndim not in (1, 2) or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"wave48 has shape {x.shape} and dtype {x.dtype}; expected a float "
                         "array [samples] or [channels, samples]")
    if d.cutoff_hz >= sample_rate / 2:
        raise ValueError(f"degradation cutoff {d.cutoff_hz:g} Hz must lie below the Nyquist "
                         f"frequency {sample_rate / 2:g} Hz of the {sample_rate} Hz input")
    n = x.shape[-1]
    if n == 0:
        return x.copy()
    y = x.astype(np.float64)
    if d.kind == "boxcar":
        spec = np.fft.rfft(y, axis=-1)
        spec[..., np.fft.rfftfreq(n, 1.0 / sample_rate) >= d.cutoff_hz] = 0.0
        y = np.fft.irfft(spec, n=n, axis=-1)
    else:
        sos = dsp.design_lowpass(d.cutoff_hz, d.kind, d.order, sample_rate)
        if d.zero_phase:
            # even (mirror) edge extension: the default odd one pins the first and last output
            # samples to the input's, which on broadband input leaves a bump of about twice
            # the error at each end
            padlen = min(3 * (2 * len(sos) + 1), n - 1)
            y = scipy.signal.sosfiltfilt(sos, y, axis=-1, padtype="even", padlen=padlen)
        else:
            y = scipy.signal.sosfilt(sos, y, axis=-1)
    if d.resample_rate is not None:
        low = audio.resample(y, sample_rate, d.resample_rate)
        # each way rounds to the nearest sample: the round trip is n within a sample
        y = fit_length(audio.resample(low, d.resample_rate, sample_rate), n)
    return y.astype(x.dtype, copy=False)


def simulate_pair(wave48: np.ndarray, rng: np.random.Generator,
                  **draw_kwargs: Any) -> tuple[np.ndarray, np.ndarray, Degradation]:
    """Draw a degradation and apply it: one (input, target) training pair.

    Parameters
    ----------
    wave48 : np.ndarray
        ``[samples]`` or ``[channels, samples]`` float at 48 kHz.
    rng : np.random.Generator
        Source of randomness.
    **draw_kwargs
        Passed to :func:`draw_degradation` (e.g. ``max_cutoff_hz`` = the clip's bandwidth).

    Returns
    -------
    low : np.ndarray
        The simulated low-resolution input at 48 kHz, shape and dtype of ``wave48``.
    target : np.ndarray
        ``wave48`` itself, unchanged (band-capping the target is the corpus builder's job).
    degradation : Degradation
        What was applied.
    """
    d = draw_degradation(rng, **draw_kwargs)
    return apply_degradation(wave48, d), wave48, d
