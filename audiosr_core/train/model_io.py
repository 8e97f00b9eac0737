"""Where fine-tuning starts and what it leaves: starting models in, exported folders out.

A fine-tuning run starts from an official checkpoint (``basic``, ``speech`` or an official
``.bin``/``.ckpt``: everything is in it, including the first-stage encoder and the EMA weights)
or from a folder this module exported (``config.json`` + ``model.safetensors`` that
:meth:`AudioSR.from_pretrained` loads, plus ``first_stage_encoder.safetensors``, the
encoder of the training targets). A folder converted for inference only lacks that encoder and
is refused with the way out.

Example
-------
>>> from audiosr_core.train.model_io import export_folder, load_start
>>> start = load_start("basic")                      # downloads the official file once
>>> export_folder(start.model, "my-model")           # loadable with --model my-model
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .. import atomic, weights
from ..errors import TrainingError, WeightsError
from ..models.audiosr import TARGET_ENCODER_NAME, AudioSRModel
from ..models.lite import LiteModel
from ..models.vae import VAEEncoder
from .objective import FineTuneModel

__all__ = ["TARGET_ENCODER_NAME", "Start", "export_folder", "load_start"]



@dataclass
class Start:
    """A starting point: the model, its EMA shadows (``None``: start them from the UNet) and
    where it came from."""

    model: FineTuneModel
    ema_shadows: dict[str, torch.Tensor] | None
    ema_updates: int
    source: str


def load_start(name_or_path: str | os.PathLike[str], *, local_files_only: bool = False,
               progress: bool = True) -> Start:
    """Load a starting model for fine-tuning.

    Parameters
    ----------
    name_or_path
        ``"basic"`` / ``"speech"`` (the official file from the Hugging Face cache; else the
        converted copy in our cache if it holds the first-stage encoder, with EMA starting
        from its weights; else the official file, downloaded), an official checkpoint file
        (architecture from a ``config.json`` beside it, else the official one), or a folder
        written by :func:`export_folder` or ``audiosr-plug convert``.

    Raises
    ------
    TrainingError
        ``lite`` (not a diffusion model), or a folder without the first-stage encoder.
    WeightsError
        A name or path that does not exist or cannot be read.
    """
    text = os.fspath(name_or_path)
    key = text.strip().lower()
    if key == weights.LITE_NAME:
        raise TrainingError("'lite' is not a diffusion model: fine-tuning starts from 'basic', "
                            "'speech', an official checkpoint or an exported folder (the lite "
                            "model has its own trainer, python -m audiosr_core.train.lite).")
    if key in weights.REGISTRY:
        return _from_registry(key, local_files_only, progress)
    path = Path(text).expanduser()
    if path.is_file() and path.suffix.lower() in weights.CHECKPOINT_SUFFIXES:
        return _from_official(path)
    if path.is_dir():
        return _from_folder(path)
    raise WeightsError(
        f"starting model {text!r} not found: not 'basic' or 'speech', and no such "
        + ("file or folder" if not path.exists() else "checkpoint file "
           f"({'/'.join(weights.CHECKPOINT_SUFFIXES)})")
        + ". Give an official checkpoint (.bin/.ckpt) or a folder exported by "
          "'python -m audiosr_core.train.audiosr export'.")


def _from_registry(name: str, local_files_only: bool, progress: bool) -> Start:
    """The official file when it is in the Hugging Face cache (it has the EMA weights); else a
    fine-tunable converted copy in our cache; else the download."""
    try:
        return _from_official(weights.official_checkpoint(name, local_files_only=True,
                                                          progress=progress))
    except WeightsError:
        pass
    converted = weights.cache_dir() / name
    if weights.is_converted(converted) and (converted / TARGET_ENCODER_NAME).is_file():
        return _from_folder(converted)
    return _from_official(weights.official_checkpoint(name, local_files_only=local_files_only,
                                                      progress=progress))


def _from_official(path: Path) -> Start:
    config = weights.choose_config(None, path)
    state = weights.load_official_checkpoint(path)
    model = AudioSRModel(config)
    try:
        model.load_official(weights.split_official_state_dict(state))
        unet_names = [name for name, _ in model.unet.named_parameters()]
        target_state, ema, updates = weights.split_training_state(state, unet_names)
        target = VAEEncoder(config.vae)
        target.load_state_dict(target_state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: weights do not fit the architecture ({exc}); put the "
                           "model's config.json beside the checkpoint.") from exc
    del state
    return Start(FineTuneModel(model, target), ema, updates, str(path))


def _from_folder(folder: Path) -> Start:
    if LiteModel.is_lite_folder(folder):
        raise TrainingError(f"{folder}: a lite model folder; fine-tuning starts from an AudioSR "
                            "diffusion model.")
    model = AudioSRModel.from_pretrained(folder)
    encoder_path = folder / TARGET_ENCODER_NAME
    if not encoder_path.is_file():
        raise TrainingError(
            f"{folder}: converted for inference only (by an older audiosr-plug, or from a "
            f"checkpoint without it), so it lacks {TARGET_ENCODER_NAME} (the first-stage VAE "
            "encoder that encodes the training targets). Convert the official checkpoint again "
            "('audiosr-plug convert CHECKPOINT FOLDER'), or start from 'basic', 'speech' or "
            "the official .bin itself.")
    target = VAEEncoder(model.config.vae)
    try:
        target.load_state_dict(load_file(str(encoder_path)), strict=True)
    except (OSError, RuntimeError, SafetensorError) as exc:
        raise WeightsError(f"{encoder_path}: unreadable or does not match config.json "
                           f"({exc}).") from exc
    return Start(FineTuneModel(model, target), None, 0, str(folder))


def export_folder(model: FineTuneModel, directory: str | os.PathLike[str],
                  unet_state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write a folder that ``AudioSR.from_pretrained`` and ``--model`` load, and that a later
    fine-tuning run can start from.

    Parameters
    ----------
    model
        The fine-tuned model.
    directory
        Target folder (created; an existing ``model.safetensors`` is replaced atomically).
    unet_state
        UNet weights to export instead of the model's own (normally the EMA shadows).
    """
    directory = Path(directory)
    inference = model.model
    if unet_state is not None:
        saved = {k: v.detach().clone() for k, v in inference.unet.state_dict().items()}
        inference.unet.load_state_dict({**saved, **unet_state}, strict=True)
    directory.mkdir(parents=True, exist_ok=True)
    encoder = {k: v.detach().cpu().contiguous()
               for k, v in model.target_encoder.state_dict().items()}
    with atomic.atomic_path(directory / TARGET_ENCODER_NAME) as tmp:
        save_file(encoder, str(tmp), metadata={"format": "pt"})
    try:
        inference.save_pretrained(directory)     # config.json last: the folder is then complete
    finally:
        if unet_state is not None:
            inference.unet.load_state_dict(saved, strict=True)
    return directory
