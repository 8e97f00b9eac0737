"""Any callable that returns a waveform (ESPnet, SpeechBrain, Coqui, your own TTS) at 48 kHz.

The callable may return a numpy array, a torch tensor or a list of floats, shaped
``[..., samples]`` (``[T]``, ``[C, T]``, ``[B, C, T]``, ...), or a dict holding one under
``"wav"``, ``"waveform"`` or ``"audio"`` (ESPnet's ``Text2Speech`` returns ``{"wav": ...}``).
The wrapper returns the same with the waveform at 48 kHz in the same type, dtype and device.
Its rate is ``sample_rate=``, else the callable's ``sample_rate``/``sampling_rate``/``fs``
attribute, which the wrapper then reports as 48000.

Example
-------
>>> from audiosr_adapters import enhance
>>> # SpeechBrain FastSpeech2 + HiFi-GAN (22.05 kHz): a function from texts to waveforms
>>> def tts(texts):
...     mel, *_ = fastspeech2.encode_text(texts)
...     return hifi_gan.decode_batch(mel)                 # [B, 1, T]
>>> tts48 = enhance(tts, sample_rate=22050, model="speech")
>>> wavs = tts48(["Hello world"])                         # doctest: +SKIP  [B, 1, T48]
>>> espnet48 = enhance(Text2Speech.from_pretrained(tag))  # ESPnet: rate from .fs
>>> wav = espnet48("Hello world")["wav"]                  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from audiosr_core.rates import check_rate

from .proxy import CallableEnhanced, replace_output
from .upsampler import Settings, Upsampler

__all__ = ["AUDIO_KEYS", "RATE_ATTRIBUTES", "GenericEnhanced", "source_rate", "wrap"]

AUDIO_KEYS = ("wav", "waveform", "audio")
"""Keys of a returned dict that hold the waveform, in the order they are looked up."""
RATE_ATTRIBUTES = ("sample_rate", "sampling_rate", "fs")
"""Attributes a callable may report its rate in (ESPnet uses ``fs``)."""


class GenericEnhanced(CallableEnhanced):
    """A waveform-returning callable whose output is 48 kHz."""


def source_rate(fn: Callable[..., Any]) -> tuple[int, str] | None:
    """``(rate, attribute)`` from the first of :data:`RATE_ATTRIBUTES` holding a number."""
    for name in RATE_ATTRIBUTES:
        value = getattr(fn, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return check_rate(value, f"{type(fn).__name__}.{name}"), name
    return None


def wrap(fn: Callable[..., Any], settings: Settings) -> GenericEnhanced:
    """Wrap a callable whose return value is a waveform (or a dict holding one)."""
    reported = source_rate(fn)
    rate = settings.sample_rate or (reported[0] if reported else None)
    if rate is None:
        raise ValueError(f"cannot tell the sample rate of {_name(fn)}: pass sample_rate= (Hz) to "
                         "enhance(), e.g. enhance(tts, sample_rate=22050)")
    upsampler = Upsampler(settings, rate)

    def post(output: Any) -> Any:
        if isinstance(output, Mapping):
            key = next((k for k in AUDIO_KEYS if k in output), None)
            if key is None:
                raise TypeError(f"{_name(fn)} returned a dict without any of the keys "
                                f"{', '.join(AUDIO_KEYS)}; wrap a function that returns the "
                                "waveform instead")
            return replace_output(output, upsampler(output[key]), key=key)
        try:
            return upsampler(output)
        except TypeError as exc:
            raise TypeError(f"{_name(fn)} returned something that is not a waveform ({exc}); "
                            "wrap a function that returns only the waveform") from exc

    rate_paths = ((reported[1],),) if reported else ()
    return GenericEnhanced(fn, upsampler, post, rate_paths)


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__
