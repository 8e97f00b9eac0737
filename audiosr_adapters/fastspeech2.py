"""transformers FastSpeech2-Conformer text-to-speech at 48 kHz.

- ``FastSpeech2ConformerWithHifiGan``: calling the wrapper (or its ``forward``) returns the
  same output with ``waveform`` ``[B, T48]`` (the last tuple element with
  ``return_dict=False``); spectrogram, durations, pitch and energy are untouched.
- ``FastSpeech2ConformerModel`` + ``FastSpeech2ConformerHifiGan``: the acoustic model makes a
  mel spectrogram, so wrap the vocoder: ``vocoder(spectrogram)`` returns ``[B, T48]`` (``[T48]``
  for an unbatched spectrogram).

Neither config stores a sample rate; the released checkpoint (espnet LJSpeech) is
22 050 Hz, which is the default here. A ``sampling_rate`` set on the vocoder config is used
instead, and ``sample_rate=`` overrides both. ``config.vocoder_config.sampling_rate``
(``config.sampling_rate`` on a bare vocoder) reads 48000 on the wrapper. Outputs are
detached from the autograd graph. ESPnet and SpeechBrain FastSpeech2: see
:mod:`audiosr_adapters.generic`.

Example
-------
>>> from transformers import FastSpeech2ConformerTokenizer, FastSpeech2ConformerWithHifiGan
>>> from audiosr_adapters import enhance
>>> tokenizer = FastSpeech2ConformerTokenizer.from_pretrained("espnet/fastspeech2_conformer")
>>> tts = enhance(FastSpeech2ConformerWithHifiGan.from_pretrained(
...     "espnet/fastspeech2_conformer_with_hifigan"), model="speech")
>>> ids = tokenizer("Hello, my dog is cute.", return_tensors="pt")["input_ids"]
>>> waveform = tts(ids).waveform                  # doctest: +SKIP  [1, T] at 48 kHz
"""

from __future__ import annotations

from typing import Any

from .proxy import CallableEnhanced, replace_output
from .upsampler import Settings, Upsampler, module_device

__all__ = ["DEFAULT_RATE", "FastSpeech2Enhanced", "wrap"]

DEFAULT_RATE = 22050
"""Rate of the released FastSpeech2-Conformer HiFi-GAN, Hz (not stored in its config)."""


class FastSpeech2Enhanced(CallableEnhanced):
    """A FastSpeech2-Conformer model with HiFi-GAN, or the HiFi-GAN alone, at 48 kHz."""


def wrap(model: Any, settings: Settings) -> FastSpeech2Enhanced:
    """Wrap ``FastSpeech2ConformerWithHifiGan`` or ``FastSpeech2ConformerHifiGan``."""
    names = {cls.__name__ for cls in type(model).__mro__}
    with_vocoder = "FastSpeech2ConformerWithHifiGan" in names
    if not with_vocoder and "FastSpeech2ConformerHifiGan" not in names:
        raise TypeError(
            f"{type(model).__name__} returns a mel spectrogram, not audio: wrap its vocoder "
            "instead (vocoder = enhance(FastSpeech2ConformerHifiGan.from_pretrained(...)); "
            "audio = vocoder(model(input_ids).spectrogram)), or use "
            "FastSpeech2ConformerWithHifiGan")
    vocoder_config = model.config.vocoder_config if with_vocoder else model.config
    rate = (settings.sample_rate or getattr(vocoder_config, "sampling_rate", None)
            or DEFAULT_RATE)
    upsampler = Upsampler(settings, rate, lambda: module_device(model))

    if with_vocoder:
        def post(output: Any) -> Any:
            waveform = output[-1] if isinstance(output, tuple) else output.waveform
            return replace_output(output, upsampler(waveform), key="waveform", index=-1)
        rate_paths = (("config", "vocoder_config", "sampling_rate"),)
    else:
        post = upsampler
        rate_paths = (("config", "sampling_rate"),)
    return FastSpeech2Enhanced(model, upsampler, post, rate_paths, methods={"forward": post})
