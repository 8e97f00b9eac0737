"""AudioSR nodes for ComfyUI: "AudioSR Loader" and "AudioSR Upsample" (category audio/AudioSR).

This folder is a ComfyUI custom-node pack. Install audiosr-plug into ComfyUI's Python, then
link the folder into ``ComfyUI/custom_nodes/`` (see this folder's README.md); ComfyUI imports
this file, which works whether it is loaded that way or as ``audiosr_adapters.comfyui``.

- ``NODE_CLASS_MAPPINGS`` / ``NODE_DISPLAY_NAME_MAPPINGS``: the V1 interface
  (:mod:`audiosr_adapters.comfyui.nodes`).
- ``comfy_entrypoint``: the V3 interface (:mod:`audiosr_adapters.comfyui.v3`), defined only
  where ``comfy_api`` can be imported. Nothing of ComfyUI is imported otherwise.

Example
-------
>>> from audiosr_adapters.comfyui import NODE_CLASS_MAPPINGS
>>> sorted(NODE_CLASS_MAPPINGS)
['AudioSRLoader', 'AudioSRUpsample']
"""

from __future__ import annotations

import importlib.util

_MISSING = [name for name in ("audiosr_core", "audiosr_adapters")
            if importlib.util.find_spec(name) is None]
if _MISSING:
    raise ImportError(
        "the AudioSR nodes need the audiosr-plug package in ComfyUI's Python environment "
        f"(not importable: {', '.join(_MISSING)}). Install it with `python -m pip install "
        "audiosr-plug` using the Python that runs ComfyUI (or `python -m pip install -e "
        "<audiosr-plug checkout>`), then restart ComfyUI.")

from .nodes import AudioSRLoader, AudioSRUpsample  # noqa: E402  (after the check above)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "AudioSRLoader",
           "AudioSRUpsample"]

NODE_CLASS_MAPPINGS = {
    "AudioSRLoader": AudioSRLoader,
    "AudioSRUpsample": AudioSRUpsample,
}
"""Node id -> V1 node class (what ComfyUI registers)."""
NODE_DISPLAY_NAME_MAPPINGS = {
    "AudioSRLoader": "AudioSR Loader",
    "AudioSRUpsample": "AudioSR Upsample",
}
"""Node id -> the name shown in ComfyUI."""

try:
    import comfy_api.latest  # noqa: F401  (ComfyUI's V3 API, present in recent ComfyUI)
except ImportError:
    pass
else:
    from .v3 import comfy_entrypoint  # noqa: F401

    __all__ += ["comfy_entrypoint"]
