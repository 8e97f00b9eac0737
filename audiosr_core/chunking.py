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


def plan_windows(n: int, segment: int, context: int, crossfade: int,
                 align: int = 1) -> list[Window]:
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
    align : int
        Window starts are multiples of ``align`` (the last window grows a little to still end
        at ``n``); with ``context`` and ``crossfade`` multiples of it too, every segment starts
        on the grid, e.g. an STFT hop so that segment frames coincide with the whole signal's.
    """
    if n <= segment:
        return [Window(0, n, 0, n)]
    span = segment - 2 * context
    if span <= crossfade or crossfade < 0 or context < 0 or align < 1:
        raise ValueError(f"segment {segment} leaves no room for context {context} and "
                         f"crossfade {crossfade}")
    step = max(align, (span - crossfade) // align * align)
    last = (n - span) // align * align
    starts = list(range(0, last, step)) + [last]
    if len(starts) > 1 and starts[-2] >= starts[-1]:
        starts.pop(-2)
    stops = [s + span for s in starts[:-1]] + [n]
    return [Window(s, e, max(0, s - context), min(n, e + context))
            for s, e in zip(starts, stops, strict=True)]


def window_weight(windows: list[Window], i: int) -> np.ndarray:
    """Crossfade weight of window ``i`` over its ``[start, stop)``; weights sum to 1."""
    w = windows[i]
    weight = np.ones(w.stop - w.start, np.float32)
    if i > 0:
        overlap = windows[i - 1].stop - w.start
        weight[:overlap] *= raised_cosine(overlap)
    if i + 1 < len(windows):
        overlap = w.stop - windows[i + 1].start
        weight[-overlap:] *= 1.0 - raised_cosine(overlap)
    return weight


ProcessMany = Callable[[list[int], list[np.ndarray]], list[np.ndarray]]
"""``process_many(indices, segments)``: several windows at once, outputs in the same order."""


def one_by_one(process: Callable[[int, np.ndarray], np.ndarray]) -> ProcessMany:
    """A :data:`ProcessMany` that calls ``process(index, segment)`` for each window."""
    return lambda indices, segments: [process(i, seg)
                                      for i, seg in zip(indices, segments, strict=True)]


class WindowJoiner:
    """Joins window outputs, given in index order, into one signal written block by block.

    ``add(i, output)`` takes the output ``[channels, seg_stop - seg_start]`` of window ``i``
    (``i`` = 0, 1, ... in turn); ``write(block)`` receives the joined signal in order, each
    sample once, as soon as no later window overlaps it. Memory holds one crossfade. This is
    the one place windows are joined: in memory, streamed from disk and across workers.
    """

    def __init__(self, windows: list[Window], write: Callable[[np.ndarray], None]) -> None:
        self.windows, self.write = windows, write
        self.next = 0
        self._pending: np.ndarray | None = None   # output from ``_done`` on, open to fades
        self._done = 0

    @property
    def finished(self) -> bool:
        """Whether every window has been added (and so everything written)."""
        return self.next == len(self.windows)

    def add(self, i: int, seg: np.ndarray) -> None:
        """Add the output of window ``i`` (the next one in order)."""
        if i != self.next:
            raise ValueError(f"window {i} given while window {self.next} is expected")
        w = self.windows[i]
        if seg.ndim != 2 or seg.shape[1] != w.seg_stop - w.seg_start:
            raise ValueError(f"process returned shape {seg.shape} for a segment of "
                             f"{w.seg_stop - w.seg_start} samples")
        part = window_weight(self.windows, i) * seg[:, w.start - w.seg_start:w.stop - w.seg_start]
        pending = self._pending if self._pending is not None else np.zeros((seg.shape[0], 0),
                                                                           np.float32)
        grown = np.zeros((seg.shape[0], w.stop - self._done), np.float32)
        grown[:, :pending.shape[1]] = pending
        grown[:, w.start - self._done:] += part
        final = (self.windows[i + 1].start if i + 1 < len(self.windows) else w.stop) - self._done
        self.write(grown[:, :final])
        self._pending, self._done = grown[:, final:], self._done + final
        self.next += 1


def overlap_add_stream(read: Callable[[int, int], np.ndarray], windows: list[Window],
                       process: Callable[[int, np.ndarray], np.ndarray] | None,
                       write: Callable[[np.ndarray], None], *,
                       process_many: ProcessMany | None = None, batch_size: int = 1) -> None:
    """Window-by-window processing in bounded memory.

    ``read(a, b)`` returns ``[channels, b - a]`` input samples, ``process(index, segment)``
    returns an array of the segment's shape, and ``write(block)`` receives the joined output
    in order, each sample once (:class:`WindowJoiner`). With ``process_many``, up to
    ``batch_size`` consecutive windows are processed in one call. Memory holds
    ``batch_size`` segments and one crossfade.
    """
    if process_many is None:
        if process is None:
            raise TypeError("overlap_add_stream needs process or process_many")
        process_many = one_by_one(process)
    joiner = WindowJoiner(windows, write)
    for first in range(0, len(windows), max(1, batch_size)):
        indices = list(range(first, min(first + max(1, batch_size), len(windows))))
        outputs = process_many(indices, [read(windows[i].seg_start, windows[i].seg_stop)
                                         for i in indices])
        for i, seg in zip(indices, outputs, strict=True):
            joiner.add(i, seg)


def overlap_add(signal: np.ndarray, windows: list[Window],
                process: Callable[[int, np.ndarray], np.ndarray] | None, *,
                process_many: ProcessMany | None = None, batch_size: int = 1) -> np.ndarray:
    """Process ``[channels, samples]`` window by window and join the results.

    ``process(index, segment)`` gets ``signal[:, seg_start:seg_stop]`` and returns an array of
    the same shape; only ``[start, stop)`` of it is kept (``process_many`` and ``batch_size``
    as in :func:`overlap_add_stream`). Memory holds the batch's segments plus the output.
    """
    out = np.zeros_like(signal, dtype=np.float32)
    written = 0

    def write(block: np.ndarray) -> None:
        nonlocal written
        out[:, written:written + block.shape[1]] = block
        written += block.shape[1]

    overlap_add_stream(lambda a, b: signal[:, a:b], windows, process, write,
                       process_many=process_many, batch_size=batch_size)
    return out
