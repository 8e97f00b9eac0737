"""Model weights: registry, download, conversion of official AudioSR checkpoints, and the cache.

The official ``pytorch_model.bin`` is ``{"state_dict": sd}`` with the full ``LatentDiffusion``
state (3743 keys, 6.18 GB). Inference needs only four groups of it::

    unet         <- model.diffusion_model.*
    vae_encoder  <- cond_stage_models.0.vae.{encoder,quant_conv}.*   (conditioning encoder)
    vae_decoder  <- first_stage_model.{post_quant_conv,decoder}.*
    vocoder      <- first_stage_model.vocoder.*
    scale_factor <- scale_factor (0-d float32 buffer)

Everything else (EMA copy, CLAP, the unused decoder/vocoder twins) is dropped. A converted
model is a folder with ``config.json`` and ``model.safetensors`` (about 672 M parameters,
2.7 GB for ``basic``) that :meth:`AudioSRModel.from_pretrained` loads, and
``first_stage_encoder.safetensors`` (``first_stage_model.{encoder,quant_conv}.*``, 90 M
parameters): inference never reads it; fine-tuning encodes its targets with it.

Examples
--------
>>> from audiosr_core.weights import convert_official, resolve_pretrained
>>> folder = resolve_pretrained("basic")     # downloads and converts once, then reuses the cache
>>> convert_official("pytorch_model.bin", "audiosr-basic")   # an official file you already have
PosixPath('audiosr-basic')
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from . import atomic
from .errors import WeightsError
from .models.audiosr import (
    CONFIG_NAME,
    MODEL_TYPE,
    TARGET_ENCODER_NAME,
    WEIGHTS_NAME,
    AudioSRConfig,
    AudioSRModel,
)
from .models.lite import LiteModel

#: model name -> (Hugging Face repository, file name) of the official checkpoints.
REGISTRY: dict[str, tuple[str, str]] = {
    "basic": ("haoheliu/audiosr_basic", "pytorch_model.bin"),
    "speech": ("haoheliu/audiosr_speech", "pytorch_model.bin"),
}
#: the packaged CPU model; reserved name, not shipped in this version.
LITE_NAME = "lite"
LITE_FOLDER = Path(__file__).resolve().parent / "assets" / "lite"
"""Where the packaged ``lite`` model lives."""
#: environment variable overriding the cache folder.
CACHE_ENV = "AUDIOSR_PLUG_CACHE"
#: file suffixes accepted as official checkpoints.
CHECKPOINT_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth")
OFFICIAL_SIZE = "6.18 GB"

#: component name -> (official key prefix, sub-prefixes kept under it)
OFFICIAL_COMPONENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "unet": ("model.diffusion_model.", ("",)),
    "vae_encoder": ("cond_stage_models.0.vae.", ("encoder.", "quant_conv.")),
    "vae_decoder": ("first_stage_model.", ("post_quant_conv.", "decoder.")),
    "vocoder": ("first_stage_model.vocoder.", ("",)),
}


# ------------------------------------------------------------------------------ reading / split
def load_official_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an official AudioSR checkpoint (``.bin``/``.ckpt``) and return its flat state dict.

    Loads with ``weights_only=True`` (no code is executed) and memory-maps when the file is in
    the zip format, so large checkpoints are not copied into RAM.

    Raises
    ------
    WeightsError
        The file is missing, not a PyTorch checkpoint, or has no AudioSR state dict.
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
    ``"scale_factor"`` as a 0-d tensor under the key ``"scale_factor"``. The tensors are the
    input's own (no copy), except ``scale_factor``.
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


def first_stage_encoder_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``first_stage_model.{encoder,quant_conv}.*`` relative to that prefix (empty if absent)."""
    prefix = "first_stage_model."
    return {k[len(prefix):]: v for k, v in state.items()
            if k.startswith((prefix + "encoder.", prefix + "quant_conv."))}


def split_training_state(
    state: Mapping[str, torch.Tensor], unet_names: list[str],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, int]:
    """What fine-tuning needs beyond the inference components.

    Parameters
    ----------
    state
        Official flat state dict.
    unet_names
        Our UNet's parameter names (``input_blocks.0.0.weight``, ...).

    Returns
    -------
    target_encoder
        ``first_stage_model.{encoder,quant_conv}.*`` relative to that prefix: the first-stage
        encoder of the training targets.
    ema
        UNet name -> EMA shadow (official ``model_ema.diffusion_model<name without dots>``), or
        ``None`` when the checkpoint has no complete EMA.
    num_updates
        The checkpoint's ``model_ema.num_updates`` (0 without EMA).
    """
    target = first_stage_encoder_state(state)
    if not target:
        raise WeightsError("official checkpoint has no 'first_stage_model.encoder.*' weights "
                           "(the first-stage encoder that fine-tuning needs).")
    ema = {name: state.get("model_ema.diffusion_model" + name.replace(".", ""))
           for name in unet_names}
    if any(v is None for v in ema.values()):
        return target, None, 0
    updates = state.get("model_ema.num_updates")
    return target, ema, int(updates) if updates is not None else 0


# ------------------------------------------------------------------------------------ converting
def convert_official(
    checkpoint: str | Path,
    output_dir: str | Path,
    config: AudioSRConfig | Mapping[str, Any] | str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Convert an official checkpoint into a folder that :meth:`AudioSRModel.from_pretrained` loads.

    The inference weights are kept (about 672 M parameters for ``basic``) in
    ``model.safetensors``, and the first-stage encoder that fine-tuning needs (90 M) in
    ``first_stage_encoder.safetensors``; the file is
    memory-mapped and written straight to safetensors, so neither the checkpoint nor the model
    is ever held twice in RAM. A new folder appears complete or not at all; in an existing
    one each file is replaced atomically and ``config.json`` (what marks a folder as
    converted) comes last.

    Parameters
    ----------
    checkpoint
        Official ``.bin``/``.ckpt`` file (``{"state_dict": ...}`` or a bare state dict).
    output_dir
        Folder to create (parents too). An existing folder is reused: its ``config.json`` and
        ``model.safetensors`` are replaced, other files are left alone.
    config
        Architecture: an :class:`AudioSRConfig`, a config dictionary (the official
        ``get_basic_config()`` vocabulary or ours) or the path of such a JSON file. ``None``:
        a ``config.json`` beside the checkpoint in either vocabulary, else
        :meth:`AudioSRConfig.basic`. The written ``scale_factor`` is always the checkpoint's.
    progress
        Print what is being done to stderr.

    Returns
    -------
    Path
        ``output_dir``.

    Raises
    ------
    WeightsError
        Unreadable checkpoint, or weights whose keys or shapes do not fit ``config``
        (the message lists a few missing, unexpected and mismatched keys).
    """
    checkpoint, output_dir = Path(checkpoint), Path(output_dir)
    cfg = choose_config(config, checkpoint)
    state = load_official_checkpoint(checkpoint)
    parts = split_official_state_dict(state)
    scale = parts["scale_factor"]["scale_factor"]
    if scale.numel() != 1 or not bool(torch.isfinite(scale).all()) or float(scale) <= 0:
        raise WeightsError(f"{checkpoint}: invalid 'scale_factor' {scale.tolist()} "
                           "(expected one positive number).")
    cfg = dataclasses.replace(cfg, scale_factor=float(scale))
    flat = {f"{name}.{key}": value for name in OFFICIAL_COMPONENTS
            for key, value in parts[name].items()}
    flat["scale_factor"] = scale.reshape(())
    tensors = _validated(flat, cfg, checkpoint)
    encoder = _validated_encoder(first_stage_encoder_state(state), cfg, checkpoint, progress)
    del state, parts, flat

    n_params = sum(t.numel() for t in tensors.values())
    _say(progress, f"converting {checkpoint} -> {output_dir} "
                   f"({n_params / 1e6:.1f} M parameters kept)")
    if output_dir.exists() and not output_dir.is_dir():
        raise WeightsError(f"{output_dir} exists and is not a folder.")
    metadata = {"format": "pt", "model_type": MODEL_TYPE, "converted_from": checkpoint.name}
    config_text = json.dumps({**cfg.to_dict(), "scale_factor": float(scale)}, indent=2) + "\n"
    try:
        if not output_dir.exists():            # a new folder appears complete or not at all
            with atomic.atomic_folder(output_dir) as tmp:
                save_file(tensors, str(tmp / WEIGHTS_NAME), metadata=metadata)
                if encoder:
                    save_file(encoder, str(tmp / TARGET_ENCODER_NAME), metadata=metadata)
                (tmp / CONFIG_NAME).write_text(config_text)
        else:
            # Without config.json the folder is not "converted": a crash before the end
            # leaves it to be converted again, never half-replaced.
            (output_dir / CONFIG_NAME).unlink(missing_ok=True)
            with atomic.atomic_path(output_dir / WEIGHTS_NAME) as tmp:
                save_file(tensors, str(tmp), metadata=metadata)
            if encoder:
                with atomic.atomic_path(output_dir / TARGET_ENCODER_NAME) as tmp:
                    save_file(encoder, str(tmp), metadata=metadata)
            atomic.write_text(output_dir / CONFIG_NAME, config_text)
    except (OSError, SafetensorError) as exc:
        raise WeightsError(f"could not write the converted model to {output_dir}: {exc} "
                           "(is there enough free disk space?)") from exc
    _say(progress, f"done: {output_dir}")
    return output_dir


def _validated(flat: dict[str, torch.Tensor], config: AudioSRConfig,
               source: Path) -> dict[str, torch.Tensor]:
    """Check ``flat`` against ``AudioSRModel(config)`` built on the meta device.

    Returns the tensors ready for safetensors: contiguous, in the model's dtypes, and copied
    only where needed (tensors sharing a storage, non-contiguous ones, dtype changes), so a
    memory-mapped checkpoint is written without loading it all.
    """
    reference = _expected_layout(config)
    missing = sorted(reference.keys() - flat.keys())
    unexpected = sorted(flat.keys() - reference.keys())
    mismatched = []
    for key in sorted(reference.keys() & flat.keys()):
        (shape, dtype), got = reference[key], flat[key]
        if tuple(got.shape) != shape:
            mismatched.append(f"{key}: checkpoint {list(got.shape)} vs model {list(shape)}")
        elif got.dtype != dtype and not (got.is_floating_point() and dtype.is_floating_point):
            mismatched.append(f"{key}: checkpoint {got.dtype} vs model {dtype}")
    if missing or unexpected or mismatched:
        details = "; ".join(
            f"{len(items)} {label} (e.g. {', '.join(items[:3])})"
            for label, items in (("missing", missing), ("unexpected", unexpected),
                                 ("with a different shape or type", mismatched)) if items)
        raise WeightsError(
            f"{source}: weights do not fit the model architecture: {details}. If this is a "
            "different or scaled-down architecture, pass its config (a config.json in the "
            "official vocabulary beside the checkpoint is picked up automatically)."
        )
    shared = Counter(_storage_id(t) for t in flat.values())
    out = {}
    for key, tensor in flat.items():
        tensor = tensor.detach()
        dtype = reference[key][1]
        if shared[_storage_id(tensor)] > 1 or not tensor.is_contiguous() or tensor.dtype != dtype:
            tensor = tensor.to(dtype=dtype, copy=True).contiguous()
        out[key] = tensor
    return out


def _validated_encoder(encoder: dict[str, torch.Tensor], config: AudioSRConfig,
                       source: Path, progress: bool) -> dict[str, torch.Tensor]:
    """The first-stage encoder, contiguous float32, if it fits ``VAEEncoder(config.vae)``;
    otherwise empty, with a message: inference does not need it, fine-tuning does."""
    from .models.vae import VAEEncoder

    with torch.device("meta"):
        reference = {k: tuple(v.shape) for k, v in VAEEncoder(config.vae).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in encoder.items()}
    if got != reference:
        _say(progress, f"{source} has no complete first-stage encoder "
                       f"({len(got)} of its {len(reference)} tensors fit): the converted folder "
                       "serves inference but cannot start a fine-tuning run.")
        return {}
    return {k: v.detach().to(torch.float32).contiguous().clone() for k, v in encoder.items()}


@functools.lru_cache(maxsize=4)
def _expected_layout(config: AudioSRConfig) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Key -> (shape, dtype) of ``AudioSRModel(config)``, built on the meta device (no memory)."""
    with torch.device("meta"):
        state = AudioSRModel(config).state_dict()
    return {key: (tuple(value.shape), value.dtype) for key, value in state.items()}


def _storage_id(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage().data_ptr()


def choose_config(config: AudioSRConfig | Mapping[str, Any] | str | Path | None,
                  checkpoint: Path) -> AudioSRConfig:
    """The architecture of an official checkpoint (see :func:`convert_official`'s ``config``)."""
    if isinstance(config, AudioSRConfig):
        return config
    if isinstance(config, Mapping):
        parsed = _parse_config(config)
        if parsed is None:
            raise WeightsError("config: neither the official get_basic_config() vocabulary "
                               f"nor an audiosr-plug config (model_type {MODEL_TYPE!r}).")
        return parsed
    if config is not None:
        return _read_config_file(Path(config), required=True) or AudioSRConfig.basic()
    beside = checkpoint.parent / CONFIG_NAME
    if beside.is_file():
        return _read_config_file(beside, required=False) or AudioSRConfig.basic()
    return AudioSRConfig.basic()


def _read_config_file(path: Path, required: bool) -> AudioSRConfig | None:
    """Parse a JSON config; ``None`` for an unknown vocabulary unless ``required``."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        if not required:
            return None
        raise WeightsError(f"{path}: cannot read the config ({exc}).") from exc
    parsed = _parse_config(data) if isinstance(data, Mapping) else None
    if parsed is None and required:
        raise WeightsError(f"{path}: neither the official get_basic_config() vocabulary nor "
                           f"an audiosr-plug config (model_type {MODEL_TYPE!r}).")
    return parsed


def _parse_config(data: Mapping[str, Any]) -> AudioSRConfig | None:
    try:
        if data.get("model_type") == MODEL_TYPE:
            return AudioSRConfig.from_dict(data)
        if "unet_config" in data.get("model", {}).get("params", {}):
            return AudioSRConfig.from_official(data)
    except (KeyError, TypeError, ValueError, AttributeError, StopIteration) as exc:
        raise WeightsError(f"malformed model config ({type(exc).__name__}: {exc}).") from exc
    return None


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"audiosr-plug: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ cache / resolve
def cache_dir() -> Path:
    """Folder holding converted models.

    ``$AUDIOSR_PLUG_CACHE`` if set, else ``$XDG_CACHE_HOME/audiosr-plug``, else
    ``~/.cache/audiosr-plug``. The folder is not created here.
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "audiosr-plug"


def is_converted(folder: str | Path) -> bool:
    """Whether ``folder`` holds a complete converted model (``config.json`` + safetensors)."""
    folder = Path(folder)
    config, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not (config.is_file() and weights.is_file()):
        return False
    try:
        return json.loads(config.read_text()).get("model_type") == MODEL_TYPE
    except (OSError, ValueError, AttributeError):
        return False


def official_url(name: str) -> str:
    """Direct download address of a registry model's official checkpoint."""
    repo, filename = REGISTRY[name]
    return f"https://huggingface.co/{repo}/resolve/main/{filename}"


def resolve_pretrained(
    name_or_path: str | os.PathLike[str],
    *,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    progress: bool = True,
) -> Path:
    """Return a converted model folder for a model name, a folder or an official checkpoint.

    Parameters
    ----------
    name_or_path
        ``"basic"`` or ``"speech"``: the official weights, downloaded from Hugging Face with
        ``huggingface_hub`` on first use (6.18 GB into the Hugging Face cache, shared with the
        official ``audiosr`` package) and converted once into ``<cache>/<name>/`` (2.7 GB).
        After that the downloaded original is no longer needed and can be removed from the
        Hugging Face cache (``hf cache rm model/haoheliu/audiosr_basic``, or
        ``huggingface-cli delete-cache`` with older huggingface_hub) to free 6 GB; it is not
        deleted automatically. ``"lite"`` is the CPU model shipped inside the
        package (``audiosr_core/assets/lite``). A folder with ``config.json`` +
        ``model.safetensors`` is returned as is. An
        official ``.bin``/``.ckpt``/``.pt``/``.pth`` file is converted once into
        ``<cache>/converted/<stem>-<hash>/`` and reused while the file is unchanged. Names take
        precedence over same-named folders: write ``./basic`` for a folder.
    cache_dir
        Cache folder; default :func:`cache_dir` (``$AUDIOSR_PLUG_CACHE``,
        ``$XDG_CACHE_HOME/audiosr-plug`` or ``~/.cache/audiosr-plug``).
    local_files_only
        Never use the network (also when ``HF_HUB_OFFLINE=1``): the official file must already
        be in the Hugging Face cache or converted in ours.
    progress
        Show download progress bars (huggingface_hub's) and conversion messages on stderr.

    Returns
    -------
    Path
        Folder loadable with :meth:`AudioSRModel.from_pretrained` (or, for ``"lite"`` and lite
        folders, :meth:`audiosr_core.models.lite.LiteModel.from_pretrained`).

    Raises
    ------
    WeightsError
        Unknown name or path, a failed or impossible download (the
        message says which file to fetch and how to convert it), or a failed conversion.
    """
    root = _cache_root(cache_dir)
    if isinstance(name_or_path, str) and name_or_path.strip().lower() in REGISTRY:
        return _resolve_registry(name_or_path.strip().lower(), root, local_files_only, progress)
    if isinstance(name_or_path, str) and name_or_path.strip().lower() == LITE_NAME:
        if not LiteModel.is_lite_folder(LITE_FOLDER):
            raise WeightsError(f"the packaged 'lite' model is missing from {LITE_FOLDER}; "
                               "reinstall audiosr-plug")
        return LITE_FOLDER
    path = Path(os.fspath(name_or_path)).expanduser()
    if path.is_dir():
        if is_converted(path) or LiteModel.is_lite_folder(path):
            return path
        raise WeightsError(
            f"{path}: not a converted AudioSR folder (expected {CONFIG_NAME} with model_type "
            f"{MODEL_TYPE!r} and {WEIGHTS_NAME}). Convert an official checkpoint with "
            f"'audiosr-plug convert CHECKPOINT {path}'."
        )
    if path.is_file():
        if path.suffix.lower() in CHECKPOINT_SUFFIXES:
            return _resolve_checkpoint_file(path, root, progress)
        if path.name in (WEIGHTS_NAME, CONFIG_NAME) and is_converted(path.parent):
            return path.parent
    raise WeightsError(
        f"cannot load model {os.fspath(name_or_path)!r}: "
        + ("not a file or folder that exists" if not path.exists() else "unsupported file type")
        + ". Accepted: 'basic' or 'speech' (official weights, downloaded on first use), "
        f"a folder with {CONFIG_NAME} and {WEIGHTS_NAME} (from 'audiosr-plug convert'), or an "
        f"official checkpoint file ({'/'.join(CHECKPOINT_SUFFIXES)})."
    )


def _cache_root(override: str | Path | None) -> Path:
    return Path(override).expanduser() if override is not None else cache_dir()


def _resolve_checkpoint_file(path: Path, root: Path, progress: bool) -> Path:
    resolved = path.resolve()
    stat = resolved.stat()
    key = f"{resolved}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()
    target = root / "converted" / f"{path.stem}-{hashlib.sha256(key).hexdigest()[:12]}"
    if not is_converted(target):
        convert_official(resolved, target, progress=progress)
    return target


def _env_offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return value in {"1", "ON", "YES", "TRUE"}


def _resolve_registry(name: str, root: Path, local_files_only: bool, progress: bool) -> Path:
    target = root / name
    if is_converted(target):
        return target
    downloaded = official_checkpoint(name, cache_dir=root, local_files_only=local_files_only,
                                     progress=progress)
    convert_official(downloaded, target, progress=progress)
    _say(progress, f"the downloaded original ({OFFICIAL_SIZE}) is no longer needed; free the "
                   f"space with 'hf cache rm model/{REGISTRY[name][0]}' if you like.")
    return target


def official_checkpoint(name: str, *, cache_dir: str | Path | None = None,
                        local_files_only: bool = False, progress: bool = True) -> Path:
    """The official checkpoint file of a registry model, downloaded once into the Hugging Face
    cache (fine-tuning needs the whole file: the first-stage encoder and the EMA weights that
    a converted inference folder drops).

    Raises
    ------
    WeightsError
        Unknown name, or a failed or impossible download (the message says what to fetch).
    """
    name = name.strip().lower()
    if name not in REGISTRY:
        raise WeightsError(f"unknown official model {name!r} (known: {', '.join(REGISTRY)})")
    root = _cache_root(cache_dir)
    target = root / name
    repo_id, filename = REGISTRY[name]
    offline = local_files_only or _env_offline()
    try:
        import huggingface_hub

        kwargs: dict[str, Any] = {"local_files_only": offline}
        if not progress:
            kwargs["tqdm_class"] = _silent_tqdm()
        downloaded = Path(huggingface_hub.hf_hub_download(repo_id, filename, **kwargs))
    except Exception as exc:  # any download failure becomes one actionable message
        if offline:
            reason = ("offline mode is on (HF_HUB_OFFLINE or local_files_only) and the file is "
                      "not in the Hugging Face cache")
        else:
            reason = f"the download failed ({type(exc).__name__}: {exc})"
        raise WeightsError(_download_help(name, target, root, reason)) from exc
    _say(progress, f"official '{name}' checkpoint: {downloaded}")
    return downloaded


def _download_help(name: str, target: Path, root: Path, reason: str) -> str:
    repo_id, filename = REGISTRY[name]
    return (
        f"cannot get the official '{name}' weights ({repo_id}, {filename}, {OFFICIAL_SIZE}): "
        f"{reason}.\n"
        f"To install them by hand:\n"
        f"  1. download {official_url(name)}\n"
        f"  2. audiosr-plug convert {filename} {target}\n"
        f"     (or pass the downloaded file itself as the model path).\n"
        f"Converted models are cached in {root}; set {CACHE_ENV} to use another folder."
    )


def _silent_tqdm() -> type:
    from huggingface_hub.utils import tqdm as hf_tqdm

    class SilentTqdm(hf_tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return SilentTqdm
