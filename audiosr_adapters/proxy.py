"""The wrapper every adapter returns: a generator used exactly like the original, 48 kHz out.

:class:`Enhanced` proxies attributes and methods to the original, runs the enhanced methods'
results through a post-processing function, and makes every place the original reports its
sample rate read 48000; :class:`CallableEnhanced` does the same for callables.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from audiosr_core.enhancer import EnhanceOptions

from .upsampler import Upsampler

__all__ = ["Enhanced", "CallableEnhanced", "replace_output", "RatePath"]

RatePath = tuple[str, ...]


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


def _rate_tree(paths: Iterable[RatePath], rate: int) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = rate
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
        set_(self, "_rates", _rate_tree(rate_paths, upsampler.output_rate))
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

    @property
    def output_sample_rate(self) -> int:
        """The rate of the wrapper's audio, Hz (48000 unless ``output_rate=`` said)."""
        return self._upsampler.output_rate

    @property
    def last_status(self) -> list[list[str]]:
        """Per waveform of the last call, per row (batch item x channel): ``"enhanced"``, why
        it passed through untouched (``"full-band"``, ``"silent"``, ...), or
        ``"passed-through-on-error"`` (``on_error="passthrough"`` after a failure)."""
        return self._upsampler.last_status

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
                f"{self.source_sample_rate} Hz -> {self.output_sample_rate} Hz, "
                f"model={model!r})")


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
