"""transformers MusicGen (32 kHz) and ``pipeline("text-to-audio")`` at 48 kHz.

``MusicgenForConditionalGeneration`` / ``MusicgenMelodyForConditionalGeneration``: the
wrapper's ``generate`` takes every argument of the original and returns torch ``[B, C, T48]``
(same dtype and device); with ``return_dict_in_generate=True`` the output object is kept and
its waveform field (``audio_values`` in transformers 4, ``sequences`` in 5) is replaced.
``config.sampling_rate``, ``config.audio_encoder.sampling_rate`` and
``audio_encoder.config.sampling_rate`` read 48000. All B x C waveforms of one call go
through AudioSR together, 8 per engine call.

``pipeline("text-to-audio")`` (any model whose pipeline returns a waveform, e.g. MusicGen):
the wrapper returns the same dict (or list of dicts) with ``"audio"`` at 48 kHz and
``"sampling_rate": 48000``; ``wrapped.sampling_rate`` is 48000. The pipeline's own rate is
used (``sample_rate=`` overrides it); a FastSpeech2ConformerWithHifiGan pipeline is refused
because it returns the mel spectrogram as ``"audio"``.

Example
-------
>>> from transformers import AutoProcessor, MusicgenForConditionalGeneration
>>> from audiosr_adapters import enhance
>>> processor = AutoProcessor.from_pretrained("facebook/musicgen-small")
>>> model = enhance(MusicgenForConditionalGeneration.from_pretrained("facebook/musicgen-small"))
>>> inputs = processor(text=["lo-fi beat"], padding=True, return_tensors="pt")
>>> audio = model.generate(**inputs, max_new_tokens=256)         # doctest: +SKIP
>>> rate = model.config.audio_encoder.sampling_rate             # 48000
"""

from __future__ import annotations

from typing import Any

import torch

from .proxy import CallableEnhanced, replace_output
from .upsampler import Settings, Upsampler

__all__ = ["MusicgenEnhanced", "TextToAudioEnhanced", "wrap_model", "wrap_pipeline"]

MODEL_RATE_PATHS = (("config", "sampling_rate"), ("config", "audio_encoder", "sampling_rate"),
                    ("audio_encoder", "config", "sampling_rate"))


class MusicgenEnhanced(CallableEnhanced):
    """A transformers MusicGen model whose ``generate`` returns 48 kHz audio.

    Calling the wrapper itself runs the original ``forward`` unchanged (it returns logits,
    not audio).
    """


class TextToAudioEnhanced(CallableEnhanced):
    """A transformers ``TextToAudioPipeline`` whose ``"audio"`` is 48 kHz."""


def wrap_model(model: Any, settings: Settings) -> MusicgenEnhanced:
    """Wrap ``MusicgenForConditionalGeneration`` or ``MusicgenMelodyForConditionalGeneration``."""
    rate = settings.sample_rate or model.config.audio_encoder.sampling_rate
    upsampler = Upsampler(settings, rate, lambda: model.device)

    def post_generate(output: Any) -> Any:
        if isinstance(output, torch.Tensor):
            # Token ids (integers) are not audio: a model configured not to decode returns them.
            return upsampler(output) if output.is_floating_point() else output
        audio_values = getattr(output, "audio_values", None)
        if audio_values is not None:  # transformers 4
            return replace_output(output, upsampler(audio_values), key="audio_values")
        sequences = getattr(output, "sequences", None)
        if isinstance(sequences, torch.Tensor) and sequences.is_floating_point():  # 5
            return replace_output(output, upsampler(sequences), key="sequences")
        return output

    return MusicgenEnhanced(model, upsampler, lambda output: output, MODEL_RATE_PATHS,
                            methods={"generate": post_generate})


def wrap_pipeline(pipe: Any, settings: Settings) -> TextToAudioEnhanced:
    """Wrap a transformers ``pipeline("text-to-audio")``/``("text-to-speech")`` object."""
    model_name = type(getattr(pipe, "model", None)).__name__
    if model_name == "FastSpeech2ConformerWithHifiGan" and getattr(pipe, "vocoder", None) is None:
        raise ValueError(
            "this text-to-audio pipeline returns FastSpeech2ConformerWithHifiGan's mel "
            "spectrogram as 'audio' (it takes the model's first output), not a waveform; wrap "
            "the model itself, enhance(model, sample_rate=22050), or build the pipeline from "
            "FastSpeech2ConformerModel with vocoder=FastSpeech2ConformerHifiGan")
    rate = settings.sample_rate or getattr(pipe, "sampling_rate", None)
    if rate is None:
        raise ValueError(f"this text-to-audio pipeline ({model_name}) reports no sampling_rate; "
                         "pass sample_rate= (Hz) to enhance(), e.g. 22050 for FastSpeech2")
    upsampler = Upsampler(settings, rate, lambda: getattr(pipe, "device", None))

    def post(output: Any) -> Any:
        items = [output] if isinstance(output, dict) else list(output)
        # "audio" is one array, or a list of arrays for models with several outputs per input
        waves = [item["audio"] if isinstance(item["audio"], list) else [item["audio"]]
                 for item in items]
        enhanced = iter(upsampler.many([w for group in waves for w in group]))
        new = []
        for item, group in zip(items, waves, strict=True):
            audio = [next(enhanced) for _ in group]
            new.append({**item, "audio": audio if isinstance(item["audio"], list) else audio[0],
                        "sampling_rate": upsampler.output_rate})
        return new[0] if isinstance(output, dict) else type(output)(new)

    return TextToAudioEnhanced(pipe, upsampler, post, (("sampling_rate",),))
