"""The adapters' engine: validated settings and the batched enhancer run.

Nothing here knows a generator family. :class:`Upsampler` turns waveforms (numpy or torch,
any leading batch/channel dimensions) into 48 kHz waveforms of the same type, dtype, device
and shape except the last axis. The recipes use it too (it is public).

Example
-------
>>> from audiosr_adapters.upsampler import Settings, Upsampler
>>> up = Upsampler(Settings.build("lite", None, None, None, {}), source_rate=16000)
>>> y = up(x)                # x [..., T] numpy/torch at 16 kHz -> [..., round(3 T)] at 48 kHz
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from audiosr_core.audio import MAX_CHANNELS, float_to_pcm, pcm_to_float, resample
from audiosr_core.enhancer import EnhanceOptions
from audiosr_core.loading import load
from audiosr_core.rates import check_rate, fit_length, output_length

__all__ = ["ON_ERROR", "PASSED_THROUGH", "Settings", "Upsampler", "module_device"]

Array = Any  # np.ndarray | torch.Tensor | list of float
ON_ERROR = ("raise", "passthrough")
"""Values of ``on_error``."""
PASSED_THROUGH = "passed-through-on-error"
"""Status of a waveform returned as the original (resampled) after a failure."""
logger = logging.getLogger("audiosr_adapters")


# ------------------------------------------------------------------------------- settings
@dataclasses.dataclass(frozen=True)
class Settings:
    """What :func:`audiosr_adapters.enhance` was asked for, validated.

    Attributes
    ----------
    model : str or os.PathLike or object
        A name/path for :func:`audiosr_core.load` or an enhancer (anything with ``.enhance``).
    device : torch.device or None
        Where a named model is loaded; None means the generator's device.
    sample_rate : int or None
        The generator's output rate, Hz, when the caller overrides what the adapter reads.
    options : EnhanceOptions
        Engine settings, ``channels="all"`` (every generated waveform keeps its channels);
        ``options.output_rate`` is the rate of the wrapper's audio (48000 by default).
    on_error : {"raise", "passthrough"}
        What a failure of super-resolution does: raise (default), or return the generator's
        original audio resampled to the output rate, with one warning logged.
    """

    model: Any
    device: torch.device | None
    sample_rate: int | None
    options: EnhanceOptions
    on_error: str = "raise"

    @classmethod
    def build(cls, model: Any, device: str | torch.device | None, sample_rate: int | None,
              options: EnhanceOptions | None, overrides: dict[str, Any],
              on_error: str = "raise") -> Settings:
        """Validate the arguments of ``enhance`` (raises TypeError/ValueError, says why)."""
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error={on_error!r} is not one of {', '.join(ON_ERROR)}")
        is_name = isinstance(model, (str, os.PathLike))
        if not is_name and not callable(getattr(model, "enhance", None)):
            raise TypeError(f"model must be a model name ('basic', 'speech', 'lite'), a folder or "
                            f"an enhancer with an .enhance(audio, sample_rate) method such as "
                            f"audiosr_core.load(...); got {type(model).__name__}")
        if device is not None and not is_name:
            raise ValueError("device= only applies when model is a name or path; an enhancer "
                             "object runs where it is (move it, or pass its name instead)")
        if options is not None and not isinstance(options, EnhanceOptions):
            raise TypeError(f"options must be an audiosr_core.EnhanceOptions, got "
                            f"{type(options).__name__}")
        fields = {f.name for f in dataclasses.fields(EnhanceOptions)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise TypeError(f"unknown enhance option(s) {', '.join(unknown)}; valid options: "
                            f"{', '.join(sorted(fields))} (plus model, device, sample_rate, "
                            "options)")
        opts = dataclasses.replace(options or EnhanceOptions(), **overrides)
        if opts.channels != "all":
            raise ValueError(f"channels={opts.channels!r} is not supported by the adapters: the "
                             "wrapped generator returns as many channels as the original; "
                             "down-mix its output yourself if you need mono")
        return cls(model, torch.device(device) if device is not None else None,
                   check_rate(sample_rate, "sample_rate") if sample_rate is not None else None,
                   opts, on_error)


def module_device(obj: Any) -> torch.device | None:
    """The device of a model or pipeline: its ``.device``, else its first parameter's."""
    device = getattr(obj, "device", None)
    if isinstance(device, (str, torch.device)):
        return torch.device(device)
    parameters = getattr(obj, "parameters", None)
    if callable(parameters):
        for p in parameters():
            return p.device
    return None


# ---------------------------------------------------------------------- array conversions
class _Rows:
    """One generator output as float32 ``[rows, samples]`` plus how to give the result back
    in the original's type, dtype, device and leading shape."""

    def __init__(self, x: Array) -> None:
        self.like = x
        self.int_dtype: np.dtype | None = None  # numpy twin of an integer tensor's dtype
        if isinstance(x, torch.Tensor):
            data = x.detach().to("cpu")
            if data.is_floating_point():
                arr = data.float().numpy()
            else:
                self.int_dtype = data.numpy().dtype
                arr = pcm_to_float(data.numpy(), "the generator's output")
        elif isinstance(x, np.ndarray):
            arr = pcm_to_float(x, "the generator's output")
        elif isinstance(x, (list, tuple)) and all(isinstance(v, (int, float)) for v in x):
            arr = np.asarray(x, dtype=np.float32)
        else:
            raise TypeError(f"expected a waveform (numpy array, torch tensor or list of floats), "
                            f"got {type(x).__name__}")
        if arr.ndim == 0:
            raise ValueError("expected a waveform [..., samples], got a scalar")
        self.shape = arr.shape
        rows = int(np.prod(arr.shape[:-1]))
        self.rows = np.ascontiguousarray(arr.reshape(rows, arr.shape[-1]), dtype=np.float32)

    def restore(self, rows: np.ndarray) -> Array:
        out = rows.reshape(*self.shape[:-1], rows.shape[-1])
        x = self.like
        if isinstance(x, torch.Tensor):
            if self.int_dtype is not None:
                out = float_to_pcm(out, self.int_dtype)
            return torch.from_numpy(np.ascontiguousarray(out)).to(device=x.device, dtype=x.dtype)
        if isinstance(x, np.ndarray):
            return float_to_pcm(out, x.dtype)
        return type(x)(out.astype(float).tolist())


# ---------------------------------------------------------------------------- the engine
class Upsampler:
    """Runs one enhancer over a generator's outputs, 48 kHz (or ``output_rate``) out, same
    container out.

    The enhancer is created on first use (``audiosr_core.load(model, device=...)``) and
    reused by every later call; an enhancer object passed in is used as it is.

    Batching: every waveform row (each batch item and channel) of one call's outputs that has
    the same length is stacked as a channel of one engine call, at most 8 rows per call
    (the engine's channel limit); rows of other lengths go in their own calls.

    Parameters
    ----------
    settings : Settings
        Model, device and options.
    source_rate : int
        The generator's output rate, Hz.
    generator_device : callable, optional
        Returns the generator's current device (where a named model is loaded by default).
    """

    def __init__(self, settings: Settings, source_rate: int,
                 generator_device: Callable[[], torch.device | None] | None = None) -> None:
        self.settings = settings
        self.source_rate = check_rate(source_rate, "the generator's sample rate")
        self._generator_device = generator_device or (lambda: None)
        self._enhancer = None if isinstance(settings.model, (str, os.PathLike)) else settings.model
        self._lock = threading.Lock()
        self._warned = False
        self.last_status: list[list[str]] = []
        """Per waveform of the last call, per row (batch item x channel): the engine's status
        (``"enhanced"``, ``"full-band"``, ``"silent"``, ...) or :data:`PASSED_THROUGH`."""

    @property
    def output_rate(self) -> int:
        """The rate of the audio this upsampler returns, Hz."""
        return self.settings.options.output_rate

    @property
    def loaded(self) -> bool:
        """Whether the enhancer exists yet."""
        return self._enhancer is not None

    def enhancer(self, device_hint: torch.device | None = None) -> Any:
        """The enhancer, loaded once: on ``settings.device``, else the generator's device,
        else ``device_hint`` (the device of the audio being enhanced), else the engine's
        default."""
        if self._enhancer is None:
            with self._lock:
                if self._enhancer is None:
                    device = (self.settings.device or self._generator_device()
                              or device_hint)
                    self._enhancer = load(self.settings.model, device=device)
        return self._enhancer

    def __call__(self, x: Array) -> Array:
        """One waveform ``[..., samples]`` at the source rate -> ``[..., samples48]``."""
        return self.many([x])[0]

    def many(self, items: Sequence[Array]) -> list[Array]:
        """Several waveforms (any shapes ``[..., samples]``) enhanced in as few engine calls
        as possible; each comes back in its own type, dtype, device and leading shape with
        :func:`audiosr_core.rates.output_length` ``(samples, source_rate)`` samples."""
        prepared = [_Rows(x) for x in items]
        outputs = [np.zeros((len(p.rows), output_length(p.rows.shape[-1], self.source_rate,
                                                        self.output_rate)), np.float32)
                   for p in prepared]
        statuses = [["empty"] * len(p.rows) for p in prepared]
        groups: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for i, p in enumerate(prepared):
            if p.rows.shape[-1] > 0:
                groups[p.rows.shape[-1]].extend((i, r) for r in range(len(p.rows)))
        hint = next((x.device for x in items if isinstance(x, torch.Tensor)), None)
        for refs in groups.values():
            for start in range(0, len(refs), MAX_CHANNELS):
                chunk = refs[start:start + MAX_CHANNELS]
                audio = np.stack([prepared[i].rows[r] for i, r in chunk])
                enhanced, status = self._run_or_pass(audio, hint)
                for k, (i, r) in enumerate(chunk):
                    outputs[i][r] = enhanced[k]
                    statuses[i][r] = status[k]
        self.last_status = statuses
        return [p.restore(out) for p, out in zip(prepared, outputs, strict=True)]

    def _run_or_pass(self, audio: np.ndarray, hint: torch.device | None
                     ) -> tuple[np.ndarray, list[str]]:
        """The enhanced rows and their statuses; with ``on_error="passthrough"`` a failure
        gives the rows themselves at the output rate instead (warned about once)."""
        try:
            return self._run(audio, hint)
        except Exception as exc:
            if self.settings.on_error != "passthrough":
                raise
            if not self._warned:
                self._warned = True
                logger.warning("super-resolution failed (%s: %s); returning the generator's "
                               "own audio resampled to %d Hz (on_error='passthrough'; further "
                               "failures are not logged)", type(exc).__name__, exc,
                               self.output_rate)
            n = output_length(audio.shape[-1], self.source_rate, self.output_rate)
            original = fit_length(resample(audio, self.source_rate, self.output_rate), n)
            return original.astype(np.float32), [PASSED_THROUGH] * len(audio)

    def _run(self, audio: np.ndarray, hint: torch.device | None
             ) -> tuple[np.ndarray, list[str]]:
        result = self.enhancer(hint).enhance(audio, self.source_rate,
                                             options=self.settings.options)
        out = np.asarray(result.audio, dtype=np.float32)
        expected = (audio.shape[0], output_length(audio.shape[-1], self.source_rate,
                                                  self.output_rate))
        if out.shape != expected or int(result.sample_rate) != self.output_rate:
            raise RuntimeError(
                f"the enhancer returned {out.shape} at {result.sample_rate} Hz for input "
                f"{audio.shape} at {self.source_rate} Hz; expected {expected} at "
                f"{self.output_rate} Hz (an enhancer must keep every channel and the duration, "
                "as AudioSR does)")
        status = [str(s) for s in getattr(result, "status", ["enhanced"] * len(out))]
        return out, status
