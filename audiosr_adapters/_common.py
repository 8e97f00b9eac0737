"""Shared machinery of the adapters: settings, the batched enhancer run, the wrapper proxy.

Nothing here knows a generator family. :class:`Upsampler` turns waveforms (numpy or torch,
any leading batch/channel dimensions) into 48 kHz waveforms of the same type, dtype, device
and shape except the last axis; :class:`Enhanced` is the proxy every adapter returns.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from audiosr_core.audio import MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from audiosr_core.pipeline import OUTPUT_RATE, EnhanceOptions, output_length

__all__ = ["OUTPUT_RATE", "Settings", "Upsampler", "Enhanced", "CallableEnhanced",
           "replace_output", "module_device"]

Array = Any  # np.ndarray | torch.Tensor | list of float
RatePath = tuple[str, ...]


# ------------------------------------------------------------------------------- settings
@dataclasses.dataclass(frozen=True)
class Settings:
    """What :func:`audiosr_adapters.enhance` was asked for, validated.

    Attributes
    ----------
    model : str or os.PathLike or object
        A name/path for ``AudioSR.from_pretrained`` or an enhancer (anything with ``.enhance``).
    device : torch.device or None
        Where a named model is loaded; None means the generator's device.
    sample_rate : int or None
        The generator's output rate, Hz, when the caller overrides what the adapter reads.
    options : EnhanceOptions
        Engine settings, ``channels="all"`` (every generated waveform keeps its channels).
    """

    model: Any
    device: torch.device | None
    sample_rate: int | None
    options: EnhanceOptions

    @classmethod
    def build(cls, model: Any, device: str | torch.device | None, sample_rate: int | None,
              options: EnhanceOptions | None, overrides: dict[str, Any]) -> Settings:
        """Validate the arguments of ``enhance`` (raises TypeError/ValueError, says why)."""
        is_name = isinstance(model, (str, os.PathLike))
        if not is_name and not callable(getattr(model, "enhance", None)):
            raise TypeError(f"model must be a model name ('basic', 'speech', 'lite'), a folder or "
                            f"an enhancer with an .enhance(audio, sample_rate) method such as "
                            f"AudioSR.from_pretrained(...); got {type(model).__name__}")
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
                   opts)


def check_rate(rate: Any, what: str) -> int:
    """``rate`` as an int in the engine's accepted range, or a ValueError naming ``what``."""
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer, float)) \
            or rate != int(rate):
        raise ValueError(f"{what} must be a whole number of Hz, got {rate!r}")
    if not MIN_SAMPLE_RATE <= int(rate) <= MAX_SAMPLE_RATE:
        raise ValueError(f"{what}={int(rate)} Hz is outside the supported "
                         f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
    return int(rate)


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
                arr = _numpy_to_float(data.numpy())
        elif isinstance(x, np.ndarray):
            arr = _numpy_to_float(x)
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
                out = _float_to_numpy(out, self.int_dtype)
            return torch.from_numpy(np.ascontiguousarray(out)).to(device=x.device, dtype=x.dtype)
        if isinstance(x, np.ndarray):
            return _float_to_numpy(out, x.dtype)
        return type(x)(out.astype(float).tolist())


def _numpy_to_float(x: np.ndarray) -> np.ndarray:
    """Float audio as float32; integer audio scaled to +-1 (as ``audio.validate_array``)."""
    if x.dtype.kind == "f":
        return x.astype(np.float32, copy=False)
    if x.dtype.kind == "i":
        return (x / 2.0 ** (8 * x.dtype.itemsize - 1)).astype(np.float32)
    if x.dtype == np.uint8:
        return ((x.astype(np.float32) - 128) / 128).astype(np.float32)
    raise TypeError(f"cannot enhance a numpy array of dtype {x.dtype}; expected audio")


def _float_to_numpy(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The inverse of :func:`_numpy_to_float` (rounded, clipped to the integer range)."""
    if dtype.kind == "f":
        return x.astype(dtype, copy=False)
    if dtype.kind == "i":
        scale = 2.0 ** (8 * dtype.itemsize - 1)
        return np.clip(np.round(x * scale), -scale, scale - 1).astype(dtype)
    return np.clip(np.round(x * 128 + 128), 0, 255).astype(dtype)  # uint8


# ---------------------------------------------------------------------------- the engine
class Upsampler:
    """Runs one enhancer over a generator's outputs, 48 kHz out, same container out.

    The enhancer is created on first use (``AudioSR.from_pretrained(model, device=...)``) and
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
                    from audiosr_core import AudioSR

                    device = (self.settings.device or self._generator_device()
                              or device_hint)
                    self._enhancer = AudioSR.from_pretrained(self.settings.model, device=device)
        return self._enhancer

    def __call__(self, x: Array) -> Array:
        """One waveform ``[..., samples]`` at the source rate -> ``[..., samples48]``."""
        return self.many([x])[0]

    def many(self, items: Sequence[Array]) -> list[Array]:
        """Several waveforms (any shapes ``[..., samples]``) enhanced in as few engine calls
        as possible; each comes back in its own type, dtype, device and leading shape with
        ``round(samples * 48000 / source_rate)`` samples."""
        prepared = [_Rows(x) for x in items]
        outputs = [np.zeros((len(p.rows), output_length(p.rows.shape[-1], self.source_rate)),
                            np.float32) for p in prepared]
        groups: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for i, p in enumerate(prepared):
            if p.rows.shape[-1] > 0:
                groups[p.rows.shape[-1]].extend((i, r) for r in range(len(p.rows)))
        hint = next((x.device for x in items if isinstance(x, torch.Tensor)), None)
        for refs in groups.values():
            for start in range(0, len(refs), MAX_CHANNELS):
                chunk = refs[start:start + MAX_CHANNELS]
                audio = np.stack([prepared[i].rows[r] for i, r in chunk])
                enhanced = self._run(audio, hint)
                for k, (i, r) in enumerate(chunk):
                    outputs[i][r] = enhanced[k]
        return [p.restore(out) for p, out in zip(prepared, outputs, strict=True)]

    def _run(self, audio: np.ndarray, hint: torch.device | None) -> np.ndarray:
        result = self.enhancer(hint).enhance(audio, self.source_rate,
                                             options=self.settings.options)
        out = np.asarray(result.audio, dtype=np.float32)
        expected = (audio.shape[0], output_length(audio.shape[-1], self.source_rate))
        if out.shape != expected or int(result.sample_rate) != OUTPUT_RATE:
            raise RuntimeError(
                f"the enhancer returned {out.shape} at {result.sample_rate} Hz for input "
                f"{audio.shape} at {self.source_rate} Hz; expected {expected} at {OUTPUT_RATE} Hz "
                "(an enhancer must keep every channel and the duration, as AudioSR does)")
        return out


# ------------------------------------------------------------------------- output editing
def replace_output(output: Any, value: Any, *, key: str, index: int = 0) -> Any:
    """A copy of a generator's output with one field replaced.

    ``output`` may be a tuple (``index`` is used), a dataclass such as diffusers' ``BaseOutput``
    or transformers' ``ModelOutput`` (``key``), or a mapping (``key``).
    """
    if isinstance(output, tuple) and not hasattr(output, "_fields"):
        i = index % len(output)
        return (*output[:i], value, *output[i + 1:])
    if dataclasses.is_dataclass(output) and not isinstance(output, type):
        return dataclasses.replace(output, **{key: value})
    if isinstance(output, Mapping):
        return type(output)({**output, key: value})
    raise TypeError(f"cannot replace {key!r} in a {type(output).__name__}")


# ---------------------------------------------------------------------------- the wrapper
class _RateView:
    """Attribute view of a component whose reported sample rate reads 48000.

    Every other attribute, call and assignment goes to the component itself.
    """

    def __init__(self, target: Any, tree: dict[str, Any]) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_tree", tree)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        sub = self._tree.get(name)
        if sub is None:
            return getattr(self._target, name)
        if isinstance(sub, dict):
            return _RateView(getattr(self._target, name), sub)
        return sub

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target, name, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._target(*args, **kwargs)

    def __dir__(self) -> Iterable[str]:
        return sorted(set(dir(self._target)) | set(self._tree))

    def __repr__(self) -> str:
        return repr(self._target)


def _rate_tree(paths: Iterable[RatePath]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = OUTPUT_RATE
    return tree


class Enhanced:
    """A generator whose audio comes out at 48 kHz, used exactly like the original.

    Attributes and methods not enhanced are the original's (assignments go to the original
    too); methods that returned the original now return this wrapper, so
    ``enhance(pipe).to("cuda")`` keeps the wrapper. Every place listed in ``rate_paths``
    (e.g. ``("vocoder", "config", "sampling_rate")``) reads 48000.

    Parameters
    ----------
    original : object
        The generator; never modified.
    upsampler : Upsampler
        Shared by every enhanced method of this wrapper.
    rate_paths : sequence of tuple of str
        Attribute paths where the original reports its sample rate.
    methods : dict of str to callable, optional
        Post-processing of the return value of each enhanced method name (``name`` ->
        ``post(result)``); the wrapper method has the original's signature.
    """

    def __init__(self, original: Any, upsampler: Upsampler, rate_paths: Sequence[RatePath] = (),
                 methods: Mapping[str, Callable[[Any], Any]] | None = None) -> None:
        set_ = object.__setattr__
        set_(self, "_original", original)
        set_(self, "_upsampler", upsampler)
        set_(self, "_rates", _rate_tree(rate_paths))
        set_(self, "_methods", {name: self._enhanced_method(name, post)
                                for name, post in (methods or {}).items()
                                if callable(getattr(original, name, None))})

    # -- public API of the wrapper itself
    def unwrap(self) -> Any:
        """The original generator, untouched (it still produces its native rate)."""
        return self._original

    @property
    def enhancer(self) -> Any:
        """The super-resolution model (loaded now if no call has loaded it yet)."""
        return self._upsampler.enhancer()

    @property
    def enhance_options(self) -> EnhanceOptions:
        """The engine settings used for every call."""
        return self._upsampler.settings.options

    @property
    def source_sample_rate(self) -> int:
        """The original generator's output rate, Hz."""
        return self._upsampler.source_rate

    # -- proxy behaviour
    def _enhanced_method(self, name: str, post: Callable[[Any], Any]) -> Callable[..., Any]:
        original_method = getattr(self._original, name)

        @functools.wraps(original_method)
        def method(*args: Any, **kwargs: Any) -> Any:
            return post(getattr(self._original, name)(*args, **kwargs))

        return method

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        methods = object.__getattribute__(self, "_methods")
        if name in methods:
            return methods[name]
        rates = object.__getattribute__(self, "_rates")
        original = object.__getattribute__(self, "_original")
        if name in rates:
            sub = rates[name]
            return _RateView(getattr(original, name), sub) if isinstance(sub, dict) else sub
        value = getattr(original, name)
        if inspect.ismethod(value) and value.__self__ is original:
            return self._returning_self(value)
        return value

    def _returning_self(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def chained(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            return self if result is self._original else result

        return chained

    def __setattr__(self, name: str, value: Any) -> None:
        reports_rate = name in self._rates and not isinstance(self._rates[name], dict)
        if name in self._methods or reports_rate:
            raise AttributeError(f"{name!r} is managed by the 48 kHz wrapper; set it on "
                                 ".unwrap() instead")
        setattr(self._original, name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._original, name)

    def __dir__(self) -> Iterable[str]:
        return sorted(set(dir(self._original)) | set(dir(type(self))) | set(self._methods))

    def __repr__(self) -> str:
        model = self._upsampler.settings.model
        model = model if isinstance(model, (str, os.PathLike)) else type(model).__name__
        return (f"{type(self).__name__}({type(self._original).__name__}, "
                f"{self.source_sample_rate} Hz -> {OUTPUT_RATE} Hz, model={model!r})")


class CallableEnhanced(Enhanced):
    """An :class:`Enhanced` generator that is called like a function (pipelines, modules).

    ``call_post`` post-processes what the original's call returns. ``inspect.signature`` of
    the wrapper is the original's call signature (``forward``'s for a ``torch.nn.Module``,
    whose own ``__call__`` only says ``*args, **kwargs``).
    """

    def __init__(self, original: Any, upsampler: Upsampler, call_post: Callable[[Any], Any],
                 rate_paths: Sequence[RatePath] = (),
                 methods: Mapping[str, Callable[[Any], Any]] | None = None) -> None:
        super().__init__(original, upsampler, rate_paths, methods)
        object.__setattr__(self, "_call_post", call_post)
        target = original.forward if isinstance(original, torch.nn.Module) else original
        try:
            object.__setattr__(self, "__signature__", inspect.signature(target))
        except (TypeError, ValueError):  # no introspectable signature: leave the default
            pass

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call_post(self._original(*args, **kwargs))
