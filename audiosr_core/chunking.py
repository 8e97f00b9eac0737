"""Long audio: overlapping windows with context on both sides, joined by complementary crossfades.

The model sees ``segment`` samples at a time: a window's own span plus ``context`` samples on
each side (outputs near a segment edge are unreliable and are thrown away). Adjacent windows
overlap by at least ``crossfade`` samples and are joined with raised-cosine fades whose weights
sum to exactly 1, so anything the windows agree on (the input's own band) passes through
unchanged, and no per-window gain is ever applied.

Example
-------
>>> import numpy as np
>>> from audiosr_core.chunking import overlap_add, plan_windows
>>> x = np.random.default_rng(0).standard_normal((1, 48000 * 30)).astype(np.float32)
>>> windows = plan_windows(x.shape[-1], segment=491520, context=30720, crossfade=15360)
>>> y = overlap_add(x, windows, lambda i, seg: seg)      # identity process: y == x
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .dsp import raised_cosine


@dataclass(frozen=True)
class Window:
    """One window of a long signal, in samples.

    Attributes
    ----------
    start, stop : int
        Span of the output this window contributes to (crossfade zones included).
    seg_start, seg_stop : int
        Span fed to the model: ``[start - context, stop + context]`` clipped to the signal.
    """

    start: int
    stop: int
    seg_start: int
    seg_stop: int


def plan_windows(n: int, segment: int, context: int, crossfade: int) -> list[Window]:
    """Cover ``n`` samples with windows of ``segment - 2 * context`` samples.

    Windows step by ``span - crossfade``; the last one is moved back to end at ``n`` so that no
    window is short (its overlap with the previous one is then longer). A signal of at most
    ``segment`` samples is one window with no context.

    Parameters
    ----------
    n : int
        Signal length, samples.
    segment : int
        Samples the model processes at once (e.g. 10.24 s at 48 kHz = 491520).
    context : int
        Samples of context on each side of a window.
    crossfade : int
        Minimum overlap of adjacent windows.
    """
    if n <= segment:
        return [Window(0, n, 0, n)]
    span = segment - 2 * context
    if span <= crossfade or crossfade < 0 or context < 0:
        raise ValueError(f"segment {segment} leaves no room for context {context} and "
                         f"crossfade {crossfade}")
    starts = list(range(0, n - span, span - crossfade)) + [n - span]
    if len(starts) > 1 and starts[-2] >= starts[-1]:
        starts.pop(-2)
    return [Window(s, s + span, max(0, s - context), min(n, s + span + context)) for s in starts]


def window_weights(windows: list[Window]) -> list[np.ndarray]:
    """Crossfade weights of each window over its ``[start, stop)``; they sum to 1 everywhere."""
    weights = [np.ones(w.stop - w.start, np.float32) for w in windows]
    for i in range(1, len(windows)):
        overlap = windows[i - 1].stop - windows[i].start
        fade = raised_cosine(overlap)
        weights[i][:overlap] *= fade
        weights[i - 1][-overlap:] *= 1.0 - fade
    return weights


def overlap_add(signal: np.ndarray, windows: list[Window],
                process: Callable[[int, np.ndarray], np.ndarray]) -> np.ndarray:
    """Process ``[channels, samples]`` window by window and join the results.

    ``process(index, segment)`` gets ``signal[:, seg_start:seg_stop]`` and returns an array of
    the same shape; only ``[start, stop)`` of it is kept. Memory holds one segment plus the
    output.
    """
    out = np.zeros_like(signal, dtype=np.float32)
    for i, (w, weight) in enumerate(zip(windows, window_weights(windows), strict=True)):
        seg = process(i, signal[:, w.seg_start:w.seg_stop])
        if seg.shape != (signal.shape[0], w.seg_stop - w.seg_start):
            raise ValueError(f"process returned shape {seg.shape} for a segment of "
                             f"{w.seg_stop - w.seg_start} samples")
        out[:, w.start:w.stop] += weight * seg[:, w.start - w.seg_start:w.stop - w.seg_start]
    return out
