"""The same two nodes in ComfyUI's V3 schema (``comfy_api.latest``), and ``comfy_entrypoint``.

Imported only where ``comfy_api`` exists (``audiosr_adapters.comfyui`` guards it). Node ids,
input names and outputs equal the V1 nodes', so workflows work with either interface.
"""

from __future__ import annotations

from typing import Any

from comfy_api.latest import ComfyExtension, io

from audiosr_core.rates import MAX_SAMPLE_RATE, SAMPLE_RATE
from audiosr_core.sampling import SAMPLERS

from .models import DEVICES, DTYPES, check_model, load_model, model_choices
from .nodes import (
    CATEGORY,
    MAX_GUIDANCE,
    MAX_SEED,
    MAX_STEPS,
    MODEL_TYPE,
    TOOLTIPS,
    AudioSRLoader,
    AudioSRUpsample,
)
from .upsample import DEFAULTS, MIN_OUTPUT_RATE, upsample

__all__ = ["AudioSRModel", "AudioSRLoaderV3", "AudioSRUpsampleV3", "AudioSRExtension",
           "comfy_entrypoint"]

AudioSRModel = io.Custom(MODEL_TYPE)
"""The ``AUDIOSR_MODEL`` socket type."""


class AudioSRLoaderV3(io.ComfyNode):
    """V3 "AudioSR Loader" (node id ``AudioSRLoader``)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        """Inputs ``model``, ``device``, ``dtype``; output ``audiosr_model``."""
        return io.Schema(
            node_id="AudioSRLoader", display_name="AudioSR Loader", category=CATEGORY,
            description=AudioSRLoader.DESCRIPTION,
            inputs=[
                io.Combo.Input("model", options=model_choices(), default="lite",
                               tooltip=TOOLTIPS["model"]),
                io.Combo.Input("device", options=list(DEVICES), default="auto",
                               tooltip=TOOLTIPS["device"]),
                io.Combo.Input("dtype", options=list(DTYPES), default="auto",
                               tooltip=TOOLTIPS["dtype"]),
            ],
            outputs=[AudioSRModel.Output(display_name="audiosr_model")],
        )

    @classmethod
    def validate_inputs(cls, model: str) -> bool | str:
        """True, or why ``model`` cannot be loaded."""
        return check_model(model)

    @classmethod
    def execute(cls, model: str, device: str = "auto", dtype: str = "auto") -> io.NodeOutput:
        """The cached enhancer for these inputs."""
        return io.NodeOutput(load_model(model, device, dtype))


class AudioSRUpsampleV3(io.ComfyNode):
    """V3 "AudioSR Upsample" (node id ``AudioSRUpsample``)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        """The V1 node's inputs and outputs (``audio``, ``spectrogram``)."""
        return io.Schema(
            node_id="AudioSRUpsample", display_name="AudioSR Upsample", category=CATEGORY,
            description=AudioSRUpsample.DESCRIPTION,
            inputs=[
                AudioSRModel.Input("audiosr_model"),
                io.Audio.Input("audio"),
                io.Int.Input("steps", default=DEFAULTS.steps, min=1, max=MAX_STEPS,
                             tooltip=TOOLTIPS["steps"]),
                io.Float.Input("guidance_scale", default=DEFAULTS.guidance_scale, min=0.0,
                               max=MAX_GUIDANCE, step=0.1, tooltip=TOOLTIPS["guidance_scale"]),
                io.Int.Input("seed", default=DEFAULTS.seed, min=0, max=MAX_SEED,
                             control_after_generate=True, tooltip=TOOLTIPS["seed"]),
                io.Combo.Input("sampler", options=list(SAMPLERS), default=DEFAULTS.sampler,
                               tooltip=TOOLTIPS["sampler"]),
                io.Int.Input("output_rate", default=SAMPLE_RATE, min=MIN_OUTPUT_RATE,
                             max=MAX_SAMPLE_RATE, tooltip=TOOLTIPS["output_rate"]),
                io.Boolean.Input("spectrogram", default=True, optional=True,
                                 tooltip=TOOLTIPS["spectrogram"]),
            ],
            outputs=[io.Audio.Output(display_name="audio"),
                     io.Image.Output(display_name="spectrogram")],
        )

    @classmethod
    def execute(cls, audiosr_model: Any, audio: dict[str, Any], steps: int,
                guidance_scale: float, seed: int, sampler: str, output_rate: int = SAMPLE_RATE,
                spectrogram: bool = True) -> io.NodeOutput:
        """The enhanced AUDIO and the spectrogram IMAGE."""
        audio_out, image = upsample(audiosr_model, audio, steps=steps,
                                    guidance_scale=guidance_scale, seed=seed, sampler=sampler,
                                    output_rate=output_rate, spectrogram=spectrogram)
        return io.NodeOutput(audio_out, image)


class AudioSRExtension(ComfyExtension):
    """The node pack for ComfyUI's V3 loader."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        """Both nodes."""
        return [AudioSRLoaderV3, AudioSRUpsampleV3]


async def comfy_entrypoint() -> AudioSRExtension:
    """What ComfyUI's V3 loader calls."""
    return AudioSRExtension()
