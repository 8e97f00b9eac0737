"""Sample rates and the lengths they give: the one home of these basics.

- :data:`SAMPLE_RATE`: the rate of the models and of every output, 48000 Hz.
- :data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`: the input rates accepted, Hz.
- :func:`check_rate`: the one rate check (whole numbers only, ``22050.0`` is fine).
- :func:`output_length`: the one formula for the length of a resampled signal.
- :func:`fit_length`: the one pad-with-zeros-or-crop.

Example
-------
>>> from audiosr_core.rates import SAMPLE_RATE, output_length
>>> output_length(96001, 96000)          # 48000.5 samples at 48 kHz, halves round up
48001
>>> output_length(1000, 44100)           # 1088.4 -> 1088
1088
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import AudioInputError

__all__ = ["SAMPLE_RATE", "MIN_SAMPLE_RATE", "MAX_SAMPLE_RATE", "check_rate", "output_length",
           "fit_length"]

SAMPLE_RATE = 48000
"""The rate of the models and of everything they produce, Hz."""
MIN_SAMPLE_RATE = 4000
"""Lowest input rate accepted, Hz."""
MAX_SAMPLE_RATE = 384000
"""Highest input rate accepted, Hz."""


def check_rate(rate: Any, name: str = "input", *, low: int | None = MIN_SAMPLE_RATE,
               high: int | None = MAX_SAMPLE_RATE) -> int:
    """``rate`` as an ``int`` number of Hz, or an :class:`AudioInputError` that says why not.

    Python and numpy integers and whole-number floats (``22050.0``, ``np.float64(16000)``)
    are accepted; booleans, fractions, NaN, infinities and anything that is not a number are
    not.

    Parameters
    ----------
    rate : int or float
        Sample rate, Hz.
    name : str
        What the message names (a file, ``"input"``, ``"sample_rate"``).
    low, high : int or None
        Accepted range, Hz (inclusive; None: unbounded). Default: the input range
        [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`].

    Returns
    -------
    int

    Raises
    ------
    AudioInputError
        ``"<name>: sample rate R is not a whole number of Hz; pass ..."`` or out of range.
    """
    number = isinstance(rate, (int, float, np.integer, np.floating)) and not isinstance(
        rate, (bool, np.bool_))
    if not number or not math.isfinite(float(rate)) or float(rate) != int(rate):
        raise AudioInputError(f"{name}: sample rate {rate!r} is not a whole number of Hz; "
                              "pass it as an int, e.g. 16000")
    value = int(rate)
    if value <= 0:
        raise AudioInputError(f"{name}: sample rate {value} Hz is not positive; pass the rate "
                              "the audio was recorded at, e.g. 16000")
    if low is not None and value < low:
        raise AudioInputError(
            f"{name}: sample rate {value} Hz is below the {low} Hz minimum; resample it to at "
            f"least {low} Hz first (e.g. `sox IN -r 8000 OUT.wav`)")
    if high is not None and value > high:
        raise AudioInputError(
            f"{name}: sample rate {value} Hz is above the {high} Hz maximum; it already "
            f"exceeds {SAMPLE_RATE} Hz: resample it to {SAMPLE_RATE} Hz instead "
            f"(e.g. `sox IN -r {SAMPLE_RATE} OUT.wav`)")
    return value


def output_length(num_samples: int, sample_rate: int, target_rate: int = SAMPLE_RATE) -> int:
    """Samples of a signal of ``num_samples`` at ``sample_rate`` once at ``target_rate``.

    ``num_samples * target_rate / sample_rate`` rounded to the nearest integer, halves up,
    in exact integer arithmetic, and at least 1 for a non-empty input (one sample at
    192 kHz is still one sample at 48 kHz): the output has the input's duration to within
    half a sample. Every path uses this formula: in memory, streamed, batched, ``lite``, the
    diffusion models, the resampler and the adapters.

    Parameters
    ----------
    num_samples : int
        Input length, samples (>= 0).
    sample_rate, target_rate : int
        Hz (positive).

    Returns
    -------
    int
    """
    n = int(num_samples)
    nearest = (2 * n * int(target_rate) + int(sample_rate)) // (2 * int(sample_rate))
    return max(nearest, 1) if n > 0 else 0


def fit_length(x: np.ndarray, n: int, axis: int = -1) -> np.ndarray:
    """``x`` cropped or zero-padded to ``n`` samples along ``axis``.

    Parameters
    ----------
    x : np.ndarray
        Any shape.
    n : int
        Target length along ``axis`` (>= 0).

    Returns
    -------
    np.ndarray
        C-contiguous; a new array unless ``x`` already has the length and layout.
    """
    length = x.shape[axis]
    if length >= n:
        index = [slice(None)] * x.ndim
        index[axis] = slice(0, n)
        return np.ascontiguousarray(x[tuple(index)])
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, n - length)
    return np.pad(x, pad)
