"""Which AudioSR models the ComfyUI loader offers, where they are, and the loaded-model cache.

Choices: ``lite`` (the packaged CPU model), ``basic`` and ``speech`` (the official diffusion
models, downloaded on first use), then, inside ComfyUI, every model under
``ComfyUI/models/audiosr/``: a folder with ``config.json`` (``audiosr-plug convert`` output or a
lite model) listed by its name, or an official checkpoint file (``.bin``, ``.ckpt``, ``.pt``,
``.pth``) by its relative path. Outside ComfyUI (or through the API) a model may also be any
existing folder or file path.

Loaded models are kept (keyed by model, device and dtype) so running a workflow again does not
load them again; the :data:`CACHE_SIZE` most recently used stay.

Example
-------
>>> from audiosr_adapters.comfyui.models import load_model, model_choices
>>> model_choices()[:3]
['lite', 'basic', 'speech']
>>> enhancer = load_model("lite")                     # doctest: +SKIP
>>> load_model("lite") is enhancer                    # doctest: +SKIP
True
"""

from __future__ import annotations

import importlib
import os
import threading
from collections import OrderedDict
from pathlib import Path, PurePosixPath
from types import ModuleType

import torch

from audiosr_core.enhancer import Enhancer
from audiosr_core.loading import MODEL_NAMES, load
from audiosr_core.models.audiosr import CONFIG_NAME
from audiosr_core.weights import CHECKPOINT_SUFFIXES

__all__ = ["MODELS_FOLDER", "DEVICES", "DTYPES", "CACHE_SIZE", "comfy_folder_paths",
           "comfy_models", "model_choices", "resolve_model", "check_model", "load_model",
           "clear_cache"]

MODELS_FOLDER = "audiosr"
"""ComfyUI model-folder name: ``ComfyUI/models/audiosr/`` (``folder_paths``)."""
DEVICES = ("auto", "cpu", "cuda", "mps")
"""Device choices; ``auto`` is the engine's default (CPU for ``lite``, else cuda > mps > cpu)."""
DTYPES: dict[str, torch.dtype | None] = {
    "auto": None, "float32": torch.float32, "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
"""Network precision choices of the diffusion models (``lite`` always runs float32)."""
CACHE_SIZE = 2
"""Loaded models kept between runs (least recently used dropped first)."""

_cache: OrderedDict[tuple[str, str, str], Enhancer] = OrderedDict()
_cache_lock = threading.Lock()


# ---------------------------------------------------------------------------- ComfyUI folders
def comfy_folder_paths() -> ModuleType | None:
    """ComfyUI's ``folder_paths`` module with our folder registered, or None outside ComfyUI."""
    try:
        folder_paths = importlib.import_module("folder_paths")
    except ImportError:
        return None
    _register_folder(folder_paths)
    return folder_paths


def _register_folder(folder_paths: ModuleType) -> None:
    """Add ``models/audiosr`` to ComfyUI's model folders once (it lists every file in it)."""
    known = getattr(folder_paths, "folder_names_and_paths", None)
    if isinstance(known, dict) and MODELS_FOLDER in known:
        return
    add = getattr(folder_paths, "add_model_folder_path", None)
    models_dir = getattr(folder_paths, "models_dir", None)
    if callable(add) and models_dir:
        add(MODELS_FOLDER, os.path.join(models_dir, MODELS_FOLDER))


def comfy_models() -> dict[str, str]:
    """Models under ``ComfyUI/models/audiosr/``: choice name -> full path ({} outside ComfyUI).

    A folder holding ``config.json`` is one model, named by its path relative to the models
    folder (``my-model``); checkpoint files outside such folders are named by their relative
    path (``official/basic.ckpt``). Names equal to ``lite``/``basic``/``speech`` are left out
    (those names mean the built-in models).
    """
    folder_paths = comfy_folder_paths()
    if folder_paths is None:
        return {}
    try:
        files = [str(f) for f in folder_paths.get_filename_list(MODELS_FOLDER)]
    except (KeyError, OSError):
        return {}
    relative = {f: PurePosixPath(f.replace(os.sep, "/")) for f in files}
    folders = sorted(str(p.parent) for p in relative.values()
                     if p.name == CONFIG_NAME and len(p.parts) > 1)
    found: dict[str, str] = {}
    for name in folders:
        full = folder_paths.get_full_path(MODELS_FOLDER, f"{name}/{CONFIG_NAME}")
        if full:
            found[name] = os.path.dirname(full)
    for file, path in sorted(relative.items()):
        inside = any(str(path).startswith(f"{name}/") for name in folders)
        if path.suffix.lower() in CHECKPOINT_SUFFIXES and not inside:
            full = folder_paths.get_full_path(MODELS_FOLDER, file)
            if full:
                found[str(path)] = full
    return {name: path for name, path in found.items() if name.lower() not in MODEL_NAMES}


def model_choices() -> list[str]:
    """The loader's ``model`` combo: built-in names, then ComfyUI's ``models/audiosr``."""
    return [*MODEL_NAMES, *comfy_models()]


# ------------------------------------------------------------------------------- resolution
def resolve_model(model: str) -> str:
    """What :func:`audiosr_core.load` gets for a ``model`` choice.

    Parameters
    ----------
    model : str
        ``lite``/``basic``/``speech``, a name from :func:`comfy_models`, or an existing folder
        or checkpoint path (``~`` expanded).

    Returns
    -------
    str
        The built-in name (lower case) or a full path.

    Raises
    ------
    ValueError
        Anything else; the message lists what is accepted.
    """
    if not isinstance(model, (str, os.PathLike)):
        raise ValueError(f"model must be a name or a path, got {type(model).__name__}")
    name = os.fspath(model).strip()
    if name.lower() in MODEL_NAMES:
        return name.lower()
    listed = comfy_models()
    if name in listed:
        return listed[name]
    path = Path(name).expanduser()
    if name and path.exists():
        return str(path.resolve())
    extra = f", one of {', '.join(sorted(listed))}" if listed else ""
    raise ValueError(f"unknown AudioSR model {name!r}: use {', '.join(MODEL_NAMES)}{extra}, a "
                     f"model under ComfyUI/models/{MODELS_FOLDER}/ (a folder with {CONFIG_NAME} "
                     f"or an official {'/'.join(CHECKPOINT_SUFFIXES)} file) or an existing path")


def check_model(model: str) -> bool | str:
    """ComfyUI input validation: True, or the reason ``model`` cannot be loaded (this also
    lets a path that is not among the listed choices through, for API use)."""
    try:
        resolve_model(model)
    except ValueError as exc:
        return str(exc)
    return True


# ------------------------------------------------------------------------------------ cache
def load_model(model: str = "lite", device: str = "auto", dtype: str = "auto") -> Enhancer:
    """The enhancer for these loader inputs, loaded once and then taken from the cache.

    Parameters
    ----------
    model : str
        See :func:`resolve_model`.
    device : {"auto", "cpu", "cuda", "mps"}
        Where it runs; ``auto`` lets the engine choose.
    dtype : {"auto", "float32", "float16", "bfloat16"}
        Network precision of the diffusion models; ``auto`` is float32.

    Returns
    -------
    Enhancer
        What :func:`audiosr_core.load` returns; the same object for the same inputs while it
        stays among the :data:`CACHE_SIZE` most recently used.

    Raises
    ------
    ValueError
        Unknown model, device or dtype.
    """
    if device not in DEVICES:
        raise ValueError(f"device {device!r} is not one of {', '.join(DEVICES)}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    target = resolve_model(model)
    key = (target, device, dtype)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        enhancer = load(target, device=None if device == "auto" else device, dtype=DTYPES[dtype])
        _cache[key] = enhancer
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        return enhancer


def clear_cache() -> None:
    """Forget every loaded model (they are freed once nothing else holds them)."""
    with _cache_lock:
        _cache.clear()
