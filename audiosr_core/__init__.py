"""audiosr-plug engine: AudioSR latent-diffusion super-resolution to 48 kHz.

>>> from audiosr_core import AudioSR
>>> sr = AudioSR.from_pretrained("basic")
>>> res = sr.enhance(audio, 16000)          # res.audio: float32 [channels, samples] at 48 kHz
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .pipeline import AudioSR, EnhanceOptions, EnhanceResult

__all__ = ["AudioSR", "EnhanceOptions", "EnhanceResult", "__version__"]


def __getattr__(name: str):
    # Lazy: `import audiosr_core` (e.g. for the CLI's --version) does not import torch.
    if name in ("AudioSR", "EnhanceOptions", "EnhanceResult"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'audiosr_core' has no attribute {name!r}")
