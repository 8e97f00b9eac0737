"""What every super-resolution model offers: options, results, files, streaming, overwrites.

:class:`Enhancer` is the base of :class:`audiosr_core.pipeline.AudioSR` (the diffusion
models) and :class:`audiosr_core.lite_pipeline.LiteSR` (the packaged CPU model). A subclass
implements :meth:`Enhancer.enhance` (arrays in, :class:`EnhanceResult` out) and, for files
too long to hold in memory, :meth:`Enhancer._stream_plan`; saving, the never-clip gain, the
overwrite policy and disk-to-disk streaming live here once.

Example
-------
>>> import audiosr_core
>>> sr = audiosr_core.load("lite")                        # any Enhancer
>>> res = sr.enhance(audio, 16000)                        # doctest: +SKIP
>>> sr.enhance_file("in.flac", "out.wav")                 # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import atomic, chunking, dsp
from . import audio as audio_io
from .errors import AudioSRError
from .rates import SAMPLE_RATE, check_rate, fit_length, output_length
from .sampling import SAMPLERS
from .seeds import fresh_seed
from .status import Status

__all__ = ["EnhanceOptions", "EnhanceResult", "Enhancer", "OutputExistsError", "StreamPlan",
           "HEADROOM_PEAK", "resolve_options", "select_channels", "to_model_rate",
           "save_result", "write_streamed", "blocks"]

HEADROOM_PEAK = 10 ** (-0.1 / 20)
"""Peak (-0.1 dBFS) an output is brought to when it would otherwise clip an integer format."""


class OutputExistsError(AudioSRError, FileExistsError):
    """The output file exists and overwriting was not asked for."""


@dataclass(frozen=True)
class EnhanceOptions:
    """How :meth:`Enhancer.enhance` runs. Defaults are ours; :meth:`official` is the original.

    ``lite`` uses only ``channels`` and ``resampler`` (and reports ``seed``); the other fields
    are the diffusion models' settings.

    Attributes
    ----------
    steps : int
        Diffusion steps (official CLI default 50).
    guidance_scale : float
        Classifier-free guidance on v (3.5); 1 disables it (one UNet pass per step).
    seed : int or None
        Seed of every random draw; None draws a fresh one.
    sampler : {"ddim", "dpmpp_2m"}
        ``"ddim"`` is the official sampler; ``"dpmpp_2m"`` is deterministic and needs fewer
        steps (about 20). See :data:`audiosr_core.sampling.SAMPLERS`.
    eta : float
        DDIM eta (official 1.0: fresh noise at every step).
    filter_kind : str
        Pre-processing low-pass: ``"cheby1"`` (ours, deterministic), ``"butter"``, ``"ellip"``,
        ``"bessel"`` or ``"random"`` (the official seeded draw among the four).
    conditioning : {"sample", "mean"}
        Conditioning latent: a posterior sample (official) or the posterior mean.
    channels : {"all", "first", "mono"}
        Process every channel (ours), only channel 0 (official) or their average (one output
        channel).
    output_level : {"input", "official"}
        Bring the output back to the input's level with the input band unaltered (ours), or
        the official peak 0.5 with the mean removed.
    resampler : {"soxr", "sinc_hann"}
        Input resampling to 48 kHz: soxr VHQ (ours) or torchaudio's sinc/Hann (official).
    batch_size : int
        Windows (of one long file, or of several files in :meth:`Enhancer.enhance_many`) run
        through the networks together. Speed and memory only: every window keeps its own
        seed and noise, so results equal an unbatched run's up to float rounding.
    """

    steps: int = 50
    guidance_scale: float = 3.5
    seed: int | None = 42
    sampler: str = "ddim"
    eta: float = 1.0
    filter_kind: str = "cheby1"
    conditioning: str = "sample"
    channels: str = "all"
    output_level: str = "input"
    resampler: str = "soxr"
    batch_size: int = 1

    @classmethod
    def official(cls, **overrides: Any) -> EnhanceOptions:
        """Settings that reproduce the official ``audiosr`` 0.0.7 command exactly."""
        base = dict(filter_kind="random", conditioning="sample", channels="first",
                    output_level="official", resampler="sinc_hann", sampler="ddim", eta=1.0)
        return cls(**{**base, **overrides})

    def __post_init__(self) -> None:
        choices = {
            "sampler": SAMPLERS, "conditioning": ("sample", "mean"),
            "channels": ("all", "first", "mono"), "output_level": ("input", "official"),
            "resampler": ("soxr", "sinc_hann"), "filter_kind": (*dsp.FILTER_KINDS, "random"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r} is not one of "
                                 f"{', '.join(allowed)}")
        for name in ("steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(
                self.seed, (int, np.integer))):
            raise ValueError(f"seed must be an integer or None, got {self.seed!r}")
        if not np.isfinite(self.guidance_scale) or self.guidance_scale < 0:
            raise ValueError(f"guidance_scale must be finite and >= 0, got {self.guidance_scale}")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1], got {self.eta}")

    def resolved_seed(self) -> int:
        """:attr:`seed`, or a fresh one when it is None."""
        return int(self.seed) if self.seed is not None else fresh_seed()


def resolve_options(options: EnhanceOptions | None, overrides: dict[str, Any]) -> EnhanceOptions:
    """``options`` (default :class:`EnhanceOptions`) with keyword ``overrides`` applied.

    Raises
    ------
    TypeError
        An override that is not an :class:`EnhanceOptions` field.
    """
    base = options or EnhanceOptions()
    if not overrides:
        return base
    known = {f.name for f in fields(EnhanceOptions)}
    unknown = set(overrides) - known
    if unknown:
        raise TypeError(f"unknown enhance option(s): {', '.join(sorted(unknown))}; valid "
                        f"options: {', '.join(sorted(known))}")
    return replace(base, **overrides)


@dataclass
class EnhanceResult:
    """Output of :meth:`Enhancer.enhance`.

    Attributes
    ----------
    audio : np.ndarray
        float32 ``[channels, samples]`` at 48 kHz, the input's duration
        (:func:`audiosr_core.rates.output_length` samples).
    sample_rate : int
        48000.
    cutoff_hz : list of float
        Detected input bandwidth per output channel, Hz.
    status : list of Status
        Per channel: ``Status.ENHANCED`` or why it passed through (``SILENT``, ``FULL_BAND``,
        ``LOW``, ``BELOW_RANGE``); plain strings compare equal (``"enhanced"``).
    seed : int
        The seed used (useful when ``seed=None`` drew one).
    """

    audio: np.ndarray
    sample_rate: int
    cutoff_hz: list[float]
    status: list[Status]
    seed: int
    filter_kinds: list[str] = field(default_factory=list)
    output_gain_db: float = 0.0
    """Gain applied to the whole file when saving so an integer format does not clip (<= 0)."""
    streamed: bool = False
    """True when a long file went from disk to disk in windows; ``audio`` is then empty."""


def result_statuses(cutoffs: Sequence[dsp.Cutoff]) -> list[Status]:
    """:attr:`EnhanceResult.status` of each channel: ``ENHANCED`` or why it passed through."""
    return [Status.ENHANCED if c.enhance else Status(c.status) for c in cutoffs]


def select_channels(x: np.ndarray, channels: str) -> np.ndarray:
    """``[C, N]`` -> the channels :attr:`EnhanceOptions.channels` asks for."""
    if channels == "first":
        return x[:1]
    if channels == "mono":
        return x.mean(axis=0, keepdims=True, dtype=np.float32)
    return x


def to_model_rate(audio: np.ndarray | torch.Tensor, sample_rate: Any,
                  opts: EnhanceOptions) -> tuple[np.ndarray, int]:
    """Validate input audio, pick its channels and resample it to 48 kHz.

    Returns
    -------
    x48 : np.ndarray
        float32 ``[channels, output_length(samples, rate)]``.
    rate : int
        The input's rate, Hz (validated).
    """
    rate = check_rate(sample_rate, "input")
    x = select_channels(audio_io.validate_array(audio, rate), opts.channels)
    n_out = output_length(x.shape[-1], rate)
    x48 = fit_length(audio_io.resample(x, rate, SAMPLE_RATE, method=opts.resampler), n_out)
    return x48, rate


class Enhancer:
    """What every super-resolution pipeline offers: :meth:`enhance` arrays, :meth:`enhance_file`.

    Subclasses implement :meth:`enhance` and :meth:`_stream_plan`; :meth:`enhance_many`
    may be overridden by models that batch.
    """

    stream_above_s = 300.0
    """Files longer than this (seconds) go from disk to disk in windows (bounded memory)."""

    def enhance(self, audio: np.ndarray | torch.Tensor, sample_rate: int,
                options: EnhanceOptions | None = None, *, progress: bool = False,
                **kwargs: Any) -> EnhanceResult:
        """Super-resolve ``[samples]`` or ``[channels, samples]`` audio to 48 kHz."""
        raise NotImplementedError

    def enhance_many(self, items: Sequence[tuple[np.ndarray | torch.Tensor, int]],
                     options: EnhanceOptions | None = None, *, progress: bool = False,
                     **kwargs: Any) -> list[EnhanceResult]:
        """:meth:`enhance` each ``(audio, sample_rate)`` item (models that batch override)."""
        return [self.enhance(audio, rate, options, progress=progress, **kwargs)
                for audio, rate in items]

    def enhance_file(self, input_path: str | os.PathLike[str], output_path: str | os.PathLike[str],
                     options: EnhanceOptions | None = None, *, overwrite: bool = False,
                     subtype: str | None = None, progress: bool = False,
                     **kwargs: Any) -> EnhanceResult:
        """Enhance one file into ``output_path`` (WAV or FLAC, written atomically).

        Refuses to write over ``input_path``; an existing ``output_path`` needs
        ``overwrite=True`` (else :class:`OutputExistsError`). If the result would clip the
        integer ``subtype`` (default 24-bit), the whole file is scaled to a -0.1 dBFS peak and
        ``output_gain_db`` records the gain. Files longer than :attr:`stream_above_s` stream
        from disk to disk in windows, so memory does not grow with the duration; their
        result's ``audio`` is empty (``[channels, 0]``) and ``streamed`` is True.
        """
        output_path = Path(output_path)
        if output_path.exists() and not overwrite:
            raise OutputExistsError(f"{output_path}: exists; pass overwrite=True to replace it")
        opts = resolve_options(options, kwargs)
        if self.streams_file(input_path, opts):
            with audio_io.Reader48(input_path) as reader:
                def read(a: int, b: int) -> np.ndarray:
                    return select_channels(reader.read(a, b), opts.channels)

                plan = self._stream_plan(read, reader.length, reader.rate, opts, progress)
                gain_db = write_streamed(output_path, read, plan, subtype, input_path, progress)
            plan.result.output_gain_db = gain_db
            return plan.result
        samples, rate = audio_io.load(input_path)
        res = self.enhance(samples, rate, opts, progress=progress)
        return save_result(res, output_path, subtype, input_path)

    def streams_file(self, path: str | os.PathLike[str], options: EnhanceOptions) -> bool:
        """Whether :meth:`enhance_file` streams ``path`` (long file, options allow it)."""
        return audio_io.info(path).duration_s > self.stream_above_s and self._streams(options)

    def _streams(self, opts: EnhanceOptions) -> bool:
        """Whether a long file can be streamed with these options."""
        return True

    def _stream_plan(self, read: Callable[[int, int], np.ndarray], length: int, rate: int,
                     opts: EnhanceOptions, progress: bool) -> StreamPlan:
        """Measure the whole file through ``read`` and return the windows to run."""
        raise NotImplementedError


def save_result(res: EnhanceResult, output_path: str | os.PathLike[str], subtype: str | None,
                input_path: str | os.PathLike[str]) -> EnhanceResult:
    """Write ``res.audio`` atomically; if it would clip the integer ``subtype``, scale the
    whole file to a -0.1 dBFS peak first (never hard clipping) and record the gain in
    ``res.output_gain_db``. Refuses to write over ``input_path``."""
    if audio_io.would_clip(res.audio, subtype or audio_io.DEFAULT_SUBTYPE):
        gain = np.float32(HEADROOM_PEAK) / np.float32(np.abs(res.audio).max())
        res.audio = res.audio * gain
        res.output_gain_db = float(20 * np.log10(gain))
    audio_io.save(output_path, res.audio, SAMPLE_RATE, subtype=subtype, input_paths=[input_path],
                  software=audio_io.SOFTWARE)
    return res


@dataclass
class StreamPlan:
    """How a long file is processed: its windows, what each becomes, and the result to report
    (``audio`` empty)."""

    windows: list[chunking.Window]
    process: Callable[[int, np.ndarray], np.ndarray] | None
    result: EnhanceResult
    process_many: chunking.ProcessMany | None = None
    batch_size: int = 1


def blocks(read: Callable[[int, int], np.ndarray], length: int,
           size: int = 60 * SAMPLE_RATE) -> Iterator[np.ndarray]:
    """``read`` the whole ``[0, length)`` in consecutive blocks of ``size`` samples."""
    for start in range(0, length, size):
        yield read(start, min(start + size, length))


def write_streamed(output_path: Path, read: Callable[[int, int], np.ndarray], plan: StreamPlan,
                   subtype: str | None, input_path: str | os.PathLike[str],
                   progress: bool) -> float:
    """Run ``plan``'s windows into a hidden float32 file, then write ``output_path`` atomically
    with one gain for the whole file if the integer ``subtype`` would clip. Returns the gain
    in dB (0 or negative)."""
    from tqdm.auto import tqdm

    channels = len(plan.result.status)
    peak = 0.0
    bar = tqdm(total=len(plan.windows), desc="windows", unit="win", leave=False,
               disable=not progress)
    try:
        with atomic.scratch_path(output_path) as scratch:
            with audio_io.block_writer(scratch, SAMPLE_RATE, channels, "FLOAT",
                                       fmt="WAV") as write_tmp:
                def write(block: np.ndarray) -> None:
                    nonlocal peak
                    peak = max(peak, float(np.abs(block).max(initial=0.0)))
                    write_tmp(block)

                def counted(indices: list[int], segments: list[np.ndarray]) -> list[np.ndarray]:
                    run = plan.process_many or chunking.one_by_one(plan.process)
                    outs = run(indices, segments)
                    bar.update(len(indices))
                    return outs

                chunking.overlap_add_stream(read, plan.windows, None, write,
                                            process_many=counted, batch_size=plan.batch_size)
            gain = 1.0
            if audio_io.would_clip(np.array([[peak]], np.float32),
                                   subtype or audio_io.DEFAULT_SUBTYPE):
                gain = HEADROOM_PEAK / peak
            with audio_io.Reader48(scratch, check_extension=False) as tmp, audio_io.atomic_writer(
                    output_path, SAMPLE_RATE, channels, subtype, [input_path],
                    audio_io.SOFTWARE) as write_out:
                for block in blocks(tmp.read, tmp.length, 30 * SAMPLE_RATE):
                    write_out(block * np.float32(gain))
    finally:
        bar.close()
    return float(20 * np.log10(gain))
