"""diffusers ``AudioLDMPipeline`` and ``AudioLDM2Pipeline`` (16 kHz) at 48 kHz.

The wrapper is called exactly like the pipeline. ``.audios`` comes back as the pipeline gave
it (numpy for ``output_type="np"``, torch for ``"pt"``; ``return_dict=False`` gives the tuple)
with ``round(n * 3)`` samples per waveform; latents (``output_type="latent"`` on AudioLDM2)
pass through. All waveforms of one call (prompts x ``num_waveforms_per_prompt``) go through
AudioSR together, 8 per engine call. ``wrapped.vocoder.config.sampling_rate`` reads 48000.

Example
-------
>>> from diffusers import AudioLDM2Pipeline
>>> from audiosr_adapters import enhance
>>> pipe = enhance(AudioLDM2Pipeline.from_pretrained("cvssp/audioldm2"), model="basic")
>>> audio = pipe("rain on a tin roof", num_inference_steps=50).audios[0]   # doctest: +SKIP
>>> rate = pipe.vocoder.config.sampling_rate                                 # 48000
"""

from __future__ import annotations

from typing import Any

from .proxy import CallableEnhanced, replace_output
from .upsampler import Settings, Upsampler, module_device

__all__ = ["AudioLDMEnhanced", "wrap"]

RATE_PATHS = (("vocoder", "config", "sampling_rate"),)


class AudioLDMEnhanced(CallableEnhanced):
    """An AudioLDM/AudioLDM2 pipeline whose ``audios`` are 48 kHz (see the module docstring)."""


def wrap(pipe: Any, settings: Settings) -> AudioLDMEnhanced:
    """Wrap an ``AudioLDMPipeline``/``AudioLDM2Pipeline`` (or a pipeline with the same output:
    ``AudioPipelineOutput.audios`` ``[batch, samples]`` at ``vocoder.config.sampling_rate``)."""
    rate = settings.sample_rate or getattr(getattr(getattr(pipe, "vocoder", None), "config",
                                                   None), "sampling_rate", None)
    if rate is None:
        raise ValueError(f"{type(pipe).__name__} has no vocoder.config.sampling_rate; pass "
                         "sample_rate= (Hz) to enhance()")
    upsampler = Upsampler(settings, rate, lambda: module_device(pipe))

    def post(output: Any) -> Any:
        audios = output[0] if isinstance(output, tuple) else output.audios
        if getattr(audios, "ndim", 2) > 2:  # output_type="latent": [B, C, H, W], not audio
            return output
        return replace_output(output, upsampler(audios), key="audios", index=0)

    return AudioLDMEnhanced(pipe, upsampler, post, RATE_PATHS)
