"""The status vocabulary: what happened to a channel, and to a file.

:class:`Status` is what the bandwidth detectors say of a channel (``Cutoff.status``) and what
an enhancer did with it (``EnhanceResult.status``); :class:`Outcome` is what a command did
with a file. Both are ``str`` enums: they compare equal to, print as and serialise to JSON as
their plain values (``Status.SILENT == "silent"``).

Example
-------
>>> from audiosr_core.status import Status
>>> Status("full-band").describe()
'already full-band: passed through unchanged'
>>> Status.ENHANCED.passes_through
False
"""

from __future__ import annotations

from enum import Enum

__all__ = ["Status", "Outcome"]


class _Vocabulary(str, Enum):
    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class Status(_Vocabulary):
    """What is, or was, done with one channel."""

    BAND_LIMITED = "band-limited"
    """Detector: the band ends below 23 kHz; an enhancer would add the rest."""
    ENHANCED = "enhanced"
    """Result: a high band was generated above the detected edge."""
    SILENT = "silent"
    """Peak below -80 dBFS: passed through (resampled only)."""
    FULL_BAND = "full-band"
    """Content reaches 23 kHz already: passed through."""
    LOW = "low"
    """Content below 1 kHz only (or DC): passed through."""
    BELOW_RANGE = "below-range"
    """The band ends below the lowest edge the model was trained for: passed through."""

    @property
    def passes_through(self) -> bool:
        """Whether an enhancer leaves such a channel as it is (resampled only)."""
        return self not in (Status.BAND_LIMITED, Status.ENHANCED)

    def describe(self) -> str:
        """A short phrase for people, e.g. ``"near-silent: passed through unchanged"``."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Status.BAND_LIMITED: "would be enhanced",
    Status.ENHANCED: "enhanced",
    Status.SILENT: "near-silent: passed through unchanged",
    Status.FULL_BAND: "already full-band: passed through unchanged",
    Status.LOW: "content below 1 kHz only: passed through unchanged",
    Status.BELOW_RANGE: "band edge below the model's range: passed through unchanged",
}


class Outcome(_Vocabulary):
    """What a command did with one input file."""

    PROCESSED = "processed"
    SKIPPED = "skipped"
    """Its output exists already (an earlier run made it)."""
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    """The run stopped (Ctrl-C, SIGTERM) before the file was done."""
