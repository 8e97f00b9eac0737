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

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import soundfile as sf
import torch

from . import atomic, chunking, dsp
from . import audio as audio_io
from .errors import AudioSRError
from .rates import MAX_SAMPLE_RATE, SAMPLE_RATE, check_rate, fit_length, output_length
from .sampling import SAMPLERS
from .seeds import fresh_seed
from .status import Status

__all__ = ["EnhanceOptions", "EnhanceResult", "Enhancer", "Planner", "FilePlan", "WindowTask",
           "OutputExistsError", "HEADROOM_PEAK", "resolve_options", "select_channels",
           "to_model_rate", "to_output_rate", "ModelInput", "OutputRate", "MIN_OUTPUT_RATE",
           "result_statuses", "save_result", "streamed_output", "StreamedOutput",
           "write_streamed", "blocks"]

MIN_OUTPUT_RATE = 8000
"""Lowest :attr:`EnhanceOptions.output_rate`, Hz."""
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
    output_rate : int
        Rate of the result, Hz: 48000 (the models' rate, default), or any whole number of Hz
        from 8000 up (44100 for CD/DAW projects, 96000, ...), reached by resampling the 48 kHz
        result with soxr VHQ. The length follows the same rule
        (:func:`audiosr_core.rates.output_length` of the input at this rate); content above
        ``output_rate / 2`` is removed by that resampling.
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
    output_rate: int = SAMPLE_RATE

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
        rate = self.output_rate
        if (isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating))
                or not np.isfinite(rate) or rate != int(rate) or not
                MIN_OUTPUT_RATE <= rate <= MAX_SAMPLE_RATE):
            raise ValueError(f"output_rate must be a whole number of Hz from {MIN_OUTPUT_RATE} "
                             f"to {MAX_SAMPLE_RATE}, got {rate!r} (48000 is the models' rate)")
        object.__setattr__(self, "output_rate", int(rate))

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
        float32 ``[channels, samples]`` at ``sample_rate``, the input's duration
        (:func:`audiosr_core.rates.output_length` samples).
    sample_rate : int
        :attr:`EnhanceOptions.output_rate`: 48000 unless another rate was asked for.
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


class ModelInput(NamedTuple):
    """An input validated and at the models' rate."""

    x48: np.ndarray
    """float32 ``[channels, output_length(samples, rate)]`` at 48 kHz."""
    rate: int
    """The input's rate, Hz (validated)."""
    samples: int
    """The input's length, samples at ``rate``."""


def to_model_rate(audio: np.ndarray | torch.Tensor, sample_rate: Any,
                  opts: EnhanceOptions) -> ModelInput:
    """Validate input audio, pick its channels and resample it to 48 kHz."""
    rate = check_rate(sample_rate, "input")
    x = select_channels(audio_io.validate_array(audio, rate), opts.channels)
    n_out = output_length(x.shape[-1], rate)
    x48 = fit_length(audio_io.resample(x, rate, SAMPLE_RATE, method=opts.resampler), n_out)
    return ModelInput(x48, rate, x.shape[-1])


class OutputRate(NamedTuple):
    """The rate a result is delivered at, and its length there."""

    rate: int
    samples: int

    @classmethod
    def of(cls, samples: int, rate: int, output_rate: int) -> OutputRate:
        """For an input of ``samples`` at ``rate`` Hz: ``output_length(samples, rate,
        output_rate)`` samples at ``output_rate``."""
        return cls(output_rate, output_length(samples, rate, output_rate))


def to_output_rate(audio48: np.ndarray, target: OutputRate) -> np.ndarray:
    """A 48 kHz result ``[channels, n]`` at ``target.rate`` (soxr VHQ), exactly
    ``target.samples`` long; returned unchanged at 48 kHz."""
    if target.rate == SAMPLE_RATE:
        return audio48
    return fit_length(audio_io.resample(audio48, SAMPLE_RATE, target.rate), target.samples)


class WindowTask(NamedTuple):
    """One window for the networks: its file's planned state, its index, its samples."""

    state: Any
    index: int
    segment: np.ndarray
    """``[channels, seg_stop - seg_start]`` float32 at 48 kHz."""


@dataclass
class FilePlan:
    """How one signal is enhanced, decided before any network runs.

    Attributes
    ----------
    length : int
        Samples at 48 kHz.
    output : OutputRate or None
        Rate and length of the delivered result when it is not 48 kHz (set by the engines
        that deliver it; None: 48 kHz, ``length`` samples).
    windows : list of chunking.Window
        What the networks see; their outputs are joined with :mod:`audiosr_core.chunking`.
    state : object
        The model's file-level state (cutoffs, normalisation, levels, seed): everything a
        window needs besides its samples. Picklable, so windows can run in other processes.
    result : EnhanceResult
        Statuses, cutoffs and seed to report (``audio`` empty until joined).
    """

    length: int
    windows: list[chunking.Window]
    state: Any
    result: EnhanceResult
    output: OutputRate | None = None

    @property
    def active(self) -> bool:
        """Whether any channel is enhanced (otherwise the input passes through)."""
        return any(s is Status.ENHANCED for s in self.result.status)


class Planner:
    """Plans files without network weights: which windows, and the file-level state.

    Each model has one (:meth:`Enhancer.planner`); it is small and picklable, so CPU workers
    can read, measure and cut files into windows while the networks run elsewhere
    (:func:`audiosr_core.loading.load_planner` builds one from a model's config alone).
    """

    stream_above_s: float = 300.0
    """Files longer than this (seconds) are measured and cut from disk (bounded memory)."""

    def plan(self, x48: np.ndarray, rate: int, opts: EnhanceOptions) -> FilePlan:
        """Plan an in-memory signal ``[channels, samples]`` already at 48 kHz (``rate`` is
        its original rate, Hz)."""
        raise NotImplementedError

    def plan_stream(self, read: Callable[[int, int], np.ndarray], length: int, rate: int,
                    opts: EnhanceOptions) -> FilePlan:
        """Plan a long signal of ``length`` samples at 48 kHz, measured through ``read(a, b)``
        (``[channels, b - a]``) in one pass of bounded memory."""
        raise NotImplementedError

    def streams(self, opts: EnhanceOptions) -> bool:
        """Whether long files may be measured from disk with these options."""
        return True

    def streams_file(self, path: str | os.PathLike[str], opts: EnhanceOptions) -> bool:
        """Whether ``path`` is long enough to be planned and joined through the disk."""
        return audio_io.info(path).duration_s > self.stream_above_s and self.streams(opts)


class Enhancer:
    """What every super-resolution model offers: :meth:`enhance` arrays, :meth:`enhance_many`,
    :meth:`enhance_file`.

    A model supplies :meth:`planner` (windows and file-level state, no weights) and
    :meth:`run_windows` (the networks on windows of any files); planning, joining the windows,
    saving, the never-clip gain and the overwrite policy are the same for every model, here.
    """

    stream_above_s = 300.0
    """Files longer than this (seconds) go from disk to disk in windows (bounded memory)."""

    def planner(self) -> Planner:
        """This model's planner, with its current settings (``stream_above_s``, windows)."""
        raise NotImplementedError

    def run_windows(self, tasks: Sequence[WindowTask], options: EnhanceOptions, *,
                    progress: bool = False) -> list[np.ndarray]:
        """Enhance windows (of one file or of several) and return one output per task, of the
        segment's shape. Results do not depend on how windows are grouped: batches of
        ``options.batch_size`` are formed here, and each window keeps its own seed."""
        raise NotImplementedError

    # ------------------------------------------------------------------------- arrays
    def enhance(self, audio: np.ndarray | torch.Tensor, sample_rate: int,
                options: EnhanceOptions | None = None, *, progress: bool = False,
                **kwargs: Any) -> EnhanceResult:
        """Super-resolve audio to 48 kHz.

        Parameters
        ----------
        audio : np.ndarray or torch.Tensor
            ``[samples]`` or ``[channels, samples]`` (at most 8 channels), full scale +-1.
        sample_rate : int
            Hz, 4000 to 384000 (whole-number floats are fine).
        options : EnhanceOptions, optional
            Settings; keyword arguments (``steps=``, ``guidance_scale=``, ``seed=``, ...)
            override single fields.
        progress : bool
            Show progress bars (diffusion steps).

        Returns
        -------
        EnhanceResult
            ``audio`` float32 ``[channels, samples]`` at 48 kHz with exactly the input's
            duration (:func:`audiosr_core.rates.output_length`). Near-silent, full-band and
            sub-1 kHz channels pass through (resampled only), with their status.
        """
        return self.enhance_many([(audio, sample_rate)], options, progress=progress,
                                 **kwargs)[0]

    def enhance_many(self, items: Sequence[tuple[np.ndarray | torch.Tensor, int]],
                     options: EnhanceOptions | None = None, *, progress: bool = False,
                     **kwargs: Any) -> list[EnhanceResult]:
        """:meth:`enhance` several ``(audio, sample_rate)`` items, each result equal to the
        item's own :meth:`enhance` up to float rounding. Up to ``options.batch_size``
        windows share network calls: the windows of one long item, or short items (one
        window each) together."""
        opts = resolve_options(options, kwargs)
        planner = self.planner()
        signals = [to_model_rate(audio, rate, opts) for audio, rate in items]
        plans = [planner.plan(s.x48, s.rate, opts) for s in signals]
        single = [j for j, plan in enumerate(plans) if plan.active and len(plan.windows) == 1]
        outputs = dict(zip(single, self.run_windows(
            [WindowTask(plans[j].state, 0, signals[j][0]) for j in single], opts,
            progress=progress), strict=True))
        results = []
        for j, ((x48, rate, samples), plan) in enumerate(zip(signals, plans, strict=True)):
            if j in outputs:
                audio = outputs[j]
            elif plan.active:
                audio = chunking.overlap_add(x48, plan.windows, None,
                                             process_many=self._window_runner(plan, opts,
                                                                              progress),
                                             batch_size=opts.batch_size)
            else:
                audio = x48.copy()
            audio = to_output_rate(audio, OutputRate.of(samples, rate, opts.output_rate))
            results.append(replace(plan.result, audio=audio, sample_rate=opts.output_rate))
        return results

    def _window_runner(self, plan: FilePlan, opts: EnhanceOptions,
                       progress: bool) -> chunking.ProcessMany:
        """``process_many(indices, segments)`` for the windows of one planned file."""
        if not plan.active:
            return lambda indices, segments: [np.asarray(s, np.float32) for s in segments]
        return lambda indices, segments: self.run_windows(
            [WindowTask(plan.state, i, s) for i, s in zip(indices, segments, strict=True)],
            opts, progress=progress)

    # -------------------------------------------------------------------------- files
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
        planner = self.planner()
        if planner.streams_file(input_path, opts):
            with audio_io.Reader48(input_path) as reader:
                def read(a: int, b: int) -> np.ndarray:
                    return select_channels(reader.read(a, b), opts.channels)

                plan = planner.plan_stream(read, reader.length, reader.rate, opts)
                rate_out = OutputRate.of(reader.meta.frames, reader.rate, opts.output_rate)
                gain_db = write_streamed(output_path, read, plan,
                                         self._window_runner(plan, opts, progress),
                                         opts.batch_size, subtype, input_path, progress,
                                         rate_out)
            return replace(plan.result, output_gain_db=gain_db, streamed=True,
                           sample_rate=opts.output_rate)
        samples, rate = audio_io.load(input_path)
        res = self.enhance(samples, rate, opts, progress=progress)
        return save_result(res, output_path, subtype, input_path)

    def streams_file(self, path: str | os.PathLike[str], options: EnhanceOptions) -> bool:
        """Whether :meth:`enhance_file` streams ``path`` (long file, options allow it)."""
        return self.planner().streams_file(path, options)


def save_result(res: EnhanceResult, output_path: str | os.PathLike[str], subtype: str | None,
                input_path: str | os.PathLike[str] | None) -> EnhanceResult:
    """Write ``res.audio`` atomically; if it would clip the integer ``subtype``, scale the
    whole file to a -0.1 dBFS peak first (never hard clipping) and record the gain in
    ``res.output_gain_db``. Refuses to write over ``input_path`` (None: an input that is not
    a local file)."""
    if audio_io.would_clip(res.audio, subtype or audio_io.DEFAULT_SUBTYPE):
        gain = np.float32(HEADROOM_PEAK) / np.float32(np.abs(res.audio).max())
        res.audio = res.audio * gain
        res.output_gain_db = float(20 * np.log10(gain))
    audio_io.save(output_path, res.audio, res.sample_rate, subtype=subtype,
                  input_paths=[input_path] if input_path is not None else [],
                  software=audio_io.SOFTWARE)
    return res


def blocks(read: Callable[[int, int], np.ndarray], length: int,
           size: int = 60 * SAMPLE_RATE) -> Iterator[np.ndarray]:
    """``read`` the whole ``[0, length)`` in consecutive blocks of ``size`` samples."""
    for start in range(0, length, size):
        yield read(start, min(start + size, length))


class StreamedOutput:
    """Where the joined output of a long file goes: a hidden float32 file beside the output,
    then, once complete, the output itself with one gain for the whole file if the integer
    ``subtype`` would clip (:func:`streamed_output`)."""

    def __init__(self, write: Callable[[np.ndarray], None]) -> None:
        self._write = write
        self.peak = 0.0
        self.gain_db = 0.0
        """Gain applied when the output was written (0 or negative), set at the end."""

    def write(self, block: np.ndarray) -> None:
        """Append joined samples ``[channels, n]``."""
        self.peak = max(self.peak, float(np.abs(block).max(initial=0.0)))
        self._write(block)


@contextlib.contextmanager
def streamed_output(output_path: str | os.PathLike[str], channels: int, subtype: str | None,
                    input_path: str | os.PathLike[str] | None = None,
                    output_rate: OutputRate | None = None) -> Iterator[StreamedOutput]:
    """A :class:`StreamedOutput` for ``output_path``; the file appears, complete and tagged as
    an enhancer's output, when the ``with`` block ends without an exception (never
    otherwise). Blocks are written at 48 kHz; ``output_rate`` (None: 48 kHz) resamples the
    whole stream to another rate and length on the way out (:func:`audio_io.resample_blocks`).
    Memory does not depend on the file's length."""
    with atomic.scratch_path(output_path) as scratch:
        with audio_io.block_writer(scratch, SAMPLE_RATE, channels, "FLOAT",
                                   fmt="WAV") as write_tmp:
            sink = StreamedOutput(write_tmp)
            yield sink
        inputs = [input_path] if input_path is not None else []
        if output_rate is None or output_rate.rate == SAMPLE_RATE:
            sink.gain_db = _write_scaled(scratch, sink.peak, output_path, SAMPLE_RATE, channels,
                                         subtype, inputs)
            return
        with atomic.scratch_path(output_path) as resampled:
            peak = 0.0
            with audio_io.Reader48(scratch, check_extension=False) as tmp, \
                    audio_io.block_writer(resampled, output_rate.rate, channels, "FLOAT",
                                          fmt="WAV") as write_tmp:
                for block in audio_io.resample_blocks(
                        blocks(tmp.read, tmp.length, 30 * SAMPLE_RATE), SAMPLE_RATE,
                        output_rate.rate, output_rate.samples):
                    peak = max(peak, float(np.abs(block).max(initial=0.0)))
                    write_tmp(block)
            sink.gain_db = _write_scaled(resampled, peak, output_path, output_rate.rate,
                                         channels, subtype, inputs)


def _write_scaled(scratch: Path, peak: float, output_path: str | os.PathLike[str], rate: int,
                  channels: int, subtype: str | None, inputs: list) -> float:
    """Copy the float32 ``scratch`` file (at ``rate``) to ``output_path``, scaled to a
    -0.1 dBFS peak if the integer ``subtype`` would clip; returns the gain in dB."""
    gain = 1.0
    if audio_io.would_clip(np.array([[peak]], np.float32), subtype or audio_io.DEFAULT_SUBTYPE):
        gain = HEADROOM_PEAK / peak
    with sf.SoundFile(str(scratch)) as tmp, audio_io.atomic_writer(
            output_path, rate, channels, subtype, inputs, audio_io.SOFTWARE) as write_out:
        for block in tmp.blocks(blocksize=30 * rate, dtype="float32", always_2d=True):
            write_out(block.T * np.float32(gain))
    return float(20 * np.log10(gain))


def write_streamed(output_path: Path, read: Callable[[int, int], np.ndarray], plan: FilePlan,
                   process_many: chunking.ProcessMany, batch_size: int, subtype: str | None,
                   input_path: str | os.PathLike[str], progress: bool,
                   output_rate: OutputRate | None = None) -> float:
    """Run ``plan``'s windows through ``process_many`` (``batch_size`` at a time) into
    :func:`streamed_output`. Returns the gain in dB (0 or negative)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(plan.windows), desc="windows", unit="win", leave=False,
               disable=not progress)

    def counted(indices: list[int], segments: list[np.ndarray]) -> list[np.ndarray]:
        outs = process_many(indices, segments)
        bar.update(len(indices))
        return outs

    try:
        with streamed_output(output_path, len(plan.result.status), subtype,
                             input_path, output_rate) as sink:
            chunking.overlap_add_stream(read, plan.windows, None, sink.write,
                                        process_many=counted, batch_size=batch_size)
    finally:
        bar.close()
    return sink.gain_db
