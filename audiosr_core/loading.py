"""One front door for every model: ``load(name_or_path) -> Enhancer``.

Default-model policy: everywhere a model can be left out -- :func:`load`, the
``audiosr-plug`` command, ``audiosr_adapters.enhance`` and the recipes -- it is
:data:`DEFAULT_MODEL`, ``"lite"``: the CPU model shipped inside the package (offline, no
download, many times real time). The official diffusion models are opt-in by name:
``"basic"`` (general audio) and ``"speech"`` (speech), downloaded and converted on first use.

Example
-------
>>> import audiosr_core
>>> sr = audiosr_core.load()                       # "lite": LiteSR
>>> sr = audiosr_core.load("basic", device="cuda")  # AudioSR (diffusion)     # doctest: +SKIP
>>> sr = audiosr_core.load("~/models/my-audiosr")   # a converted folder       # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:        # importing this module stays cheap: no torch until load() runs
    import torch

    from .enhancer import Enhancer, Planner

__all__ = ["DEFAULT_MODEL", "MODEL_NAMES", "load", "load_planner"]

DEFAULT_MODEL = "lite"
"""The model used wherever none is named (see the module docstring)."""
MODEL_NAMES = ("lite", "basic", "speech")
"""The names :func:`load` knows; anything else is a folder or an official checkpoint file."""


def load(name_or_path: str | os.PathLike[str] = DEFAULT_MODEL,
         device: str | torch.device | None = None, dtype: torch.dtype | None = None,
         **kwargs: Any) -> Enhancer:
    """Load any model by name, folder or official checkpoint file.

    Parameters
    ----------
    name_or_path : str or PathLike
        ``"lite"`` (default), ``"basic"``, ``"speech"``, a folder written by
        ``save_pretrained`` / ``audiosr-plug convert`` (lite or diffusion), or an official
        ``.bin``/``.ckpt`` file (converted once into the cache).
    device : str or torch.device, optional
        Default: CPU for ``lite``, else cuda > mps > cpu. A device this machine does not have
        raises :class:`audiosr_core.errors.DeviceError`.
    dtype : torch.dtype, optional
        Network precision of the diffusion models (default float32; ``lite`` runs float32).
    kwargs
        Passed to :func:`audiosr_core.weights.resolve_pretrained` (``cache_dir``,
        ``local_files_only``, ``progress``).

    Returns
    -------
    Enhancer
        :class:`LiteSR` or :class:`AudioSR`; both have ``enhance``, ``enhance_many`` and
        ``enhance_file``.
    """
    from .lite_pipeline import LiteSR
    from .models.lite import LiteModel
    from .pipeline import AudioSR
    from .weights import resolve_pretrained

    folder = resolve_pretrained(name_or_path, **kwargs)
    if LiteModel.is_lite_folder(folder):
        return LiteSR.from_pretrained(folder, device)
    return AudioSR.from_pretrained(folder, device=device, dtype=dtype)


def load_planner(name_or_path: str | os.PathLike[str] = DEFAULT_MODEL) -> Planner:
    """The planner of a model (windows and file-level measurements) without its weights.

    What a CPU worker needs to read, measure and cut files into windows for a model that
    runs elsewhere (:mod:`audiosr_core.distributed`). Only the model's ``config.json`` is
    read; ``"basic"`` and ``"speech"`` need nothing at all (no download).

    Raises
    ------
    WeightsError
        A path that is neither a lite nor a converted diffusion model.
    """
    import json

    from .lite_pipeline import LitePlanner
    from .models.lite import CONFIG_NAME, LiteConfig, LiteModel
    from .pipeline import DiffusionPlanner
    from .weights import LITE_FOLDER, REGISTRY, resolve_pretrained

    name = str(name_or_path).strip().lower() if isinstance(name_or_path, str) else None
    if name in REGISTRY:
        return DiffusionPlanner()
    folder = LITE_FOLDER if name == "lite" else resolve_pretrained(name_or_path)
    if LiteModel.is_lite_folder(folder):
        config = LiteConfig.from_dict(json.loads((folder / CONFIG_NAME).read_text()))
        return LitePlanner(config.floor)
    return DiffusionPlanner()
