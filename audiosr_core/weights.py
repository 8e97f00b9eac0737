"""Model weights: reading official AudioSR checkpoints and splitting them into our components.

The official ``pytorch_model.bin`` is ``{"state_dict": sd}`` with the full ``LatentDiffusion``
state (3743 keys, 6.18 GB). Inference needs only four groups of it::

    unet         <- model.diffusion_model.*
    vae_encoder  <- cond_stage_models.0.vae.{encoder,quant_conv}.*   (conditioning encoder)
    vae_decoder  <- first_stage_model.{post_quant_conv,decoder}.*
    vocoder      <- first_stage_model.vocoder.*
    scale_factor <- scale_factor (0-d float32 buffer)

Everything else (EMA copy, CLAP, the unused encoder/decoder/vocoder twins) is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from .errors import WeightsError

#: component name -> (official key prefix, sub-prefixes kept under it)
OFFICIAL_COMPONENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "unet": ("model.diffusion_model.", ("",)),
    "vae_encoder": ("cond_stage_models.0.vae.", ("encoder.", "quant_conv.")),
    "vae_decoder": ("first_stage_model.", ("post_quant_conv.", "decoder.")),
    "vocoder": ("first_stage_model.vocoder.", ("",)),
}


def load_official_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an official AudioSR checkpoint (``.bin``/``.ckpt``) and return its flat state dict.

    Loads with ``weights_only=True`` (no code is executed) and memory-maps when the file is in
    the zip format, so large checkpoints are not copied into RAM.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint file not found.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:
        # Legacy (non-zip) pickles cannot be memory-mapped.
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({exc}).") from exc
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({exc}).") from exc
    state = obj.get("state_dict", obj) if isinstance(obj, Mapping) else None
    if not isinstance(state, Mapping) or "scale_factor" not in state:
        raise WeightsError(
            f"{path}: not an official AudioSR checkpoint (expected a state dict with "
            "'scale_factor' and 'model.diffusion_model.*' keys)."
        )
    return dict(state)


def split_official_state_dict(
    state: Mapping[str, torch.Tensor],
) -> dict[str, dict[str, torch.Tensor]]:
    """Split an official flat state dict into our inference components.

    Returns ``{"unet": {...}, "vae_encoder": {...}, "vae_decoder": {...}, "vocoder": {...}}``
    whose keys are relative to each component (e.g. ``encoder.conv_in.weight``), plus
    ``"scale_factor"`` as a 0-d tensor under the key ``"scale_factor"``.
    """
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for name, (prefix, subs) in OFFICIAL_COMPONENTS.items():
        parts[name] = {
            key[len(prefix):]: value
            for key, value in state.items()
            if key.startswith(prefix) and key[len(prefix):].startswith(subs)
        }
        if not parts[name]:
            raise WeightsError(f"official checkpoint has no '{prefix}*' weights ({name}).")
    parts["scale_factor"] = {"scale_factor": state["scale_factor"].detach().clone().float()}
    return parts
