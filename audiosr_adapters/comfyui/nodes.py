"""The ComfyUI nodes, V1 interface: "AudioSR Loader" and "AudioSR Upsample".

``AudioSRLoader`` loads a model (``lite``, ``basic``, ``speech`` or one under
``ComfyUI/models/audiosr/``) into an ``AUDIOSR_MODEL``; ``AudioSRUpsample`` takes it and an
``AUDIO`` and returns the 48 kHz ``AUDIO`` plus an ``IMAGE`` of the before/after spectrograms.
The V3 schema twins in :mod:`audiosr_adapters.comfyui.v3` share these inputs and this code.

Example
-------
>>> from audiosr_adapters.comfyui.nodes import AudioSRLoader, AudioSRUpsample
>>> (model,) = AudioSRLoader().load("lite", "auto", "auto")                  # doctest: +SKIP
>>> audio, image = AudioSRUpsample().upsample(model, audio16k, 50, 3.5, 42, "ddim",
...                                           48000)                         # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import torch

from audiosr_core.enhancer import Enhancer
from audiosr_core.rates import MAX_SAMPLE_RATE, SAMPLE_RATE
from audiosr_core.sampling import SAMPLERS
from audiosr_core.seeds import SEED_BITS

from .models import DEVICES, DTYPES, check_model, load_model, model_choices
from .upsample import DEFAULTS, MIN_OUTPUT_RATE, upsample

__all__ = ["CATEGORY", "MODEL_TYPE", "MAX_STEPS", "MAX_GUIDANCE", "MAX_SEED", "TOOLTIPS",
           "AudioSRLoader", "AudioSRUpsample"]

CATEGORY = "audio/AudioSR"
"""Where the nodes appear in ComfyUI's node menu."""
MODEL_TYPE = "AUDIOSR_MODEL"
"""ComfyUI type of the loader's output (an :class:`audiosr_core.Enhancer`)."""
MAX_STEPS = 1000
MAX_GUIDANCE = 20.0
MAX_SEED = 2 ** SEED_BITS - 1
TOOLTIPS = {
    "model": "lite: packaged CPU model (offline, fast). basic / speech: the official AudioSR "
             "diffusion models (downloaded on first use). Others: models/audiosr/.",
    "device": "auto: CPU for lite, else cuda > mps > cpu.",
    "dtype": "Precision of the diffusion models (auto = float32); lite always runs float32.",
    "steps": "Diffusion steps (lite ignores it). About 20 are enough with dpmpp_2m.",
    "guidance_scale": "Classifier-free guidance (lite ignores it); 1 disables it.",
    "seed": "Seed of every random draw (lite ignores it).",
    "sampler": "ddim: the official sampler; dpmpp_2m: deterministic, fewer steps.",
    "output_rate": "Output sample rate, Hz (48000 is the models' own).",
    "spectrogram": "Draw the before/after spectrograms (0-24 kHz, one dB scale).",
}
"""Help texts of the inputs, shared by the V1 and V3 nodes."""


def _tip(name: str, **options: Any) -> dict[str, Any]:
    return {**options, "tooltip": TOOLTIPS[name]}


class AudioSRLoader:
    """Load an AudioSR model once; its output feeds AudioSR Upsample."""

    DESCRIPTION = "Loads an AudioSR super-resolution model (kept loaded between runs)."
    CATEGORY = CATEGORY
    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("audiosr_model",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, dict[str, tuple]]:
        """ComfyUI input spec: ``model``, ``device`` and ``dtype`` combos."""
        return {"required": {
            "model": (model_choices(), _tip("model", default="lite")),
            "device": (list(DEVICES), _tip("device", default="auto")),
            "dtype": (list(DTYPES), _tip("dtype", default="auto")),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, model: str) -> bool | str:
        """True, or why ``model`` cannot be loaded; a path outside the list is accepted."""
        return check_model(model)

    def load(self, model: str, device: str = "auto", dtype: str = "auto") -> tuple[Enhancer]:
        """``(enhancer,)`` for these inputs, from the cache after the first run."""
        return (load_model(model, device, dtype),)


class AudioSRUpsample:
    """Super-resolve every item and channel of an AUDIO batch with a loaded AudioSR model."""

    DESCRIPTION = ("Makes audio 48 kHz with AudioSR: every batch item and channel is enhanced; "
                   "also draws the input and output spectrograms.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("AUDIO", "IMAGE")
    RETURN_NAMES = ("audio", "spectrogram")
    FUNCTION = "upsample"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, dict[str, tuple]]:
        """ComfyUI input spec: the model, the audio, the diffusion settings, the output rate
        and (optional) the spectrogram switch."""
        return {
            "required": {
                "audiosr_model": (MODEL_TYPE,),
                "audio": ("AUDIO",),
                "steps": ("INT", _tip("steps", default=DEFAULTS.steps, min=1, max=MAX_STEPS)),
                "guidance_scale": ("FLOAT", _tip("guidance_scale",
                                                 default=DEFAULTS.guidance_scale, min=0.0,
                                                 max=MAX_GUIDANCE, step=0.1)),
                "seed": ("INT", _tip("seed", default=DEFAULTS.seed, min=0, max=MAX_SEED)),
                "sampler": (list(SAMPLERS), _tip("sampler", default=DEFAULTS.sampler)),
                "output_rate": ("INT", _tip("output_rate", default=SAMPLE_RATE,
                                            min=MIN_OUTPUT_RATE, max=MAX_SAMPLE_RATE)),
            },
            "optional": {
                "spectrogram": ("BOOLEAN", _tip("spectrogram", default=True)),
            },
        }

    def upsample(self, audiosr_model: Enhancer, audio: dict[str, Any], steps: int,
                 guidance_scale: float, seed: int, sampler: str, output_rate: int = SAMPLE_RATE,
                 spectrogram: bool = True) -> tuple[dict[str, Any], torch.Tensor]:
        """``(AUDIO, IMAGE)``: see :func:`audiosr_adapters.comfyui.upsample.upsample`."""
        return upsample(audiosr_model, audio, steps=steps, guidance_scale=guidance_scale,
                        seed=seed, sampler=sampler, output_rate=output_rate,
                        spectrogram=spectrogram)
