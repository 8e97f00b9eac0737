"""audiosr-plug engine: AudioSR latent-diffusion super-resolution to 48 kHz.

>>> import audiosr_core
>>> sr = audiosr_core.load()                 # "lite" (packaged); or "basic", "speech", a folder
>>> res = sr.enhance(audio, 16000)           # res.audio: float32 [channels, samples] at 48 kHz
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .enhancer import EnhanceOptions, Enhancer, EnhanceResult
    from .lite_pipeline import LiteSR
    from .loading import DEFAULT_MODEL, load
    from .pipeline import AudioSR
    from .status import Outcome, Status

__all__ = ["load", "DEFAULT_MODEL", "AudioSR", "LiteSR", "Enhancer", "EnhanceOptions",
           "EnhanceResult", "Status", "Outcome", "__version__"]

_LAZY = {
    "load": "loading", "DEFAULT_MODEL": "loading", "AudioSR": "pipeline",
    "LiteSR": "lite_pipeline", "Enhancer": "enhancer", "EnhanceOptions": "enhancer",
    "EnhanceResult": "enhancer", "Status": "status", "Outcome": "status",
}


def __getattr__(name: str):
    # Lazy: `import audiosr_core` (e.g. for the CLI's --version) does not import torch.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'audiosr_core' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)
