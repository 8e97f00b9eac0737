"""audiocraft ``MusicGen`` and ``AudioGen`` at 48 kHz.

``generate``, ``generate_unconditional``, ``generate_continuation``, ``generate_with_chroma``
(MusicGen melody models) and ``generate_audio`` take every argument of the original and
return torch ``[B, C, T48]`` (same dtype and device); with ``return_tokens=True`` the
``(audio, tokens)`` tuple is kept and only the audio changes. ``sample_rate`` reads 48000, so
``audio_write(path, wav[0].cpu(), model.sample_rate)`` writes the right rate. Everything
else (``set_generation_params``, ``frame_rate``, ...) is the original's. All B x C waveforms
of one call go through AudioSR together, 8 per engine call.

audiocraft 1.3.0 pins torch 2.1; install it next to a newer torch with ``--no-deps`` (see the
README section "Adapters").

Example
-------
>>> from audiocraft.models import MusicGen
>>> from audiosr_adapters import enhance
>>> model = enhance(MusicGen.get_pretrained("facebook/musicgen-small"), model="basic")
>>> model.set_generation_params(duration=8)
>>> wav = model.generate(["lo-fi beat with warm keys"])           # doctest: +SKIP
>>> model.sample_rate                                               # 48000
"""

from __future__ import annotations

from typing import Any

from .proxy import Enhanced
from .upsampler import Settings, Upsampler

__all__ = ["AudiocraftEnhanced", "GENERATE_METHODS", "wrap"]

GENERATE_METHODS = ("generate", "generate_unconditional", "generate_continuation",
                    "generate_with_chroma", "generate_audio")
"""Methods that return audio; each is enhanced when the model has it."""


class AudiocraftEnhanced(Enhanced):
    """An audiocraft generation model whose generate methods return 48 kHz audio."""


def wrap(model: Any, settings: Settings) -> AudiocraftEnhanced:
    """Wrap an audiocraft ``MusicGen``/``AudioGen`` (any ``BaseGenModel`` with these methods)."""
    upsampler = Upsampler(settings, settings.sample_rate or model.sample_rate,
                          lambda: model.device)

    def post(output: Any) -> Any:
        if isinstance(output, tuple):  # return_tokens=True: (audio, tokens)
            return (upsampler(output[0]), *output[1:])
        return upsampler(output)

    return AudiocraftEnhanced(model, upsampler, (("sample_rate",),),
                              methods={name: post for name in GENERATE_METHODS})
