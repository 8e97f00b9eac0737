"""Which models the app offers, and the options each takes.

The page names a model by its key only (``lite``, ``basic``, ``speech`` or the key of a
``--model-dir`` folder); the server maps the key to what :func:`audiosr_core.load` gets, so
no path from the client ever reaches the file system.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsError
from ..rates import SAMPLE_RATE

__all__ = ["ModelChoice", "build_catalogue", "output_rates", "OTHER_RATES"]

OTHER_RATES = (44100, 96000)
"""Output rates offered besides 48 kHz (the engine's ``output_rate``)."""


@dataclass(frozen=True)
class ModelChoice:
    """One model the page can pick.

    Attributes
    ----------
    key : str
        What the page sends.
    label : str
        What the page shows.
    source : str
        What :func:`audiosr_core.load` is given (a name or a folder).
    diffusion : bool
        Whether steps, guidance scale and seed apply.
    note : str
        A short remark for the page ("packaged, fast", "downloads 6.2 GB on first use").
    """

    key: str
    label: str
    source: str
    diffusion: bool
    note: str

    def to_json(self) -> dict[str, object]:
        """What the page gets (no server path)."""
        return {"key": self.key, "label": self.label, "diffusion": self.diffusion,
                "note": self.note}


def output_rates() -> tuple[int, ...]:
    """The output rates the page offers, Hz: 48 kHz and :data:`OTHER_RATES`."""
    return tuple(sorted({SAMPLE_RATE, *OTHER_RATES}))


def _official(name: str) -> ModelChoice:
    from ..weights import OFFICIAL_SIZE, cache_dir, is_converted

    ready = is_converted(cache_dir() / name)
    what = "general audio" if name == "basic" else "speech"
    note = "diffusion, " + what + (", converted and cached" if ready
                                   else f", downloads {OFFICIAL_SIZE} on first use")
    return ModelChoice(name, name, name, True, note)


def _folder_key(folder: Path, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", folder.name).strip("-.") or "model"
    key, n = base, 2
    while key in taken:
        key, n = f"{base}-{n}", n + 1
    return key


def _folder_choice(folder: str | os.PathLike[str], taken: set[str]) -> ModelChoice:
    """A ``--model-dir`` folder, checked now (a bad one stops the app before it starts)."""
    from ..models.lite import LiteModel
    from ..weights import is_converted

    path = Path(os.fspath(folder)).expanduser()
    if not path.is_dir():
        raise WeightsError(f"--model-dir {path}: not a folder")
    lite = LiteModel.is_lite_folder(path)
    if not (lite or is_converted(path)):
        raise WeightsError(f"--model-dir {path}: not a model folder (expected config.json and "
                           "model.safetensors, as written by 'audiosr-plug convert' or "
                           "save_pretrained)")
    key = _folder_key(path, taken)
    return ModelChoice(key, key, os.fspath(path.resolve()), not lite,
                       "lite folder" if lite else "diffusion folder")


def build_catalogue(default: str = "lite",
                    model_dirs: tuple[str | os.PathLike[str], ...] | list = ()
                    ) -> tuple[list[ModelChoice], str]:
    """The models to offer and the key of the one selected first.

    ``default`` is ``lite``, ``basic``, ``speech`` or a folder (added to the list, like the
    ``model_dirs``).

    Raises
    ------
    WeightsError
        A folder that is not a model.
    """
    choices = [ModelChoice("lite", "lite", "lite", False, "packaged CPU model, fast, offline"),
               _official("basic"), _official("speech")]
    names = {c.key for c in choices}
    folders = list(model_dirs)
    wanted = str(default).strip()
    if wanted.lower() not in names:
        folders.insert(0, wanted)
    for folder in folders:
        choices.append(_folder_choice(folder, {c.key for c in choices}))
    selected = wanted.lower() if wanted.lower() in names else choices[3].key
    return choices, selected
