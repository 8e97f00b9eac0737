"""Shared test fixtures: the official parity fixture and small synthetic signals."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
PARITY_ENV = "AUDIOSR_PARITY_DIR"
DEFAULT_PARITY_DIR = REPO.parent / "shared" / "reference" / "parity" / "dev"
PARITY_STEMS = ("chord8k_mono", "speech16k_mono", "tones44k_stereo")
DEVSET_ENV = "AUDIOSR_DEVSET_DIR"
DEFAULT_DEVSET_DIR = REPO.parent / "shared" / "data" / "devset"


def _shared_folder(env: str, default: Path, marker: str, what: str) -> Path:
    """A folder from ../shared (or ``$env``): skipped locally when absent, a failure under CI."""
    path = Path(os.environ.get(env, default))
    if not (path / marker).is_file():
        msg = f"{what} not found at {path}; set {env} to its path."
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _parity_dir() -> Path:
    return _shared_folder(PARITY_ENV, DEFAULT_PARITY_DIR, "config.json",
                          "parity fixture (../shared/reference/parity/dev beside the repository, "
                          "made by running the official AudioSR code)")


@pytest.fixture(scope="session")
def devset_dir() -> Path:
    """The 48 kHz dev set (../shared/data/devset; skips locally when absent, fails under CI)."""
    return _shared_folder(DEVSET_ENV, DEFAULT_DEVSET_DIR, "manifest.csv",
                          "dev set (../shared/data/devset beside the repository)")


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    """Folder of the official parity fixture (skips locally when absent, fails under CI)."""
    return _parity_dir()


@pytest.fixture(scope="session")
def parity_expected(parity_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """``{stem: {array name: array}}`` for every input of the fixture."""
    out = {}
    for stem in PARITY_STEMS:
        with np.load(parity_dir / "expected" / f"{stem}.npz") as data:
            out[stem] = {k: data[k] for k in data.files}
    return out


@pytest.fixture(scope="session")
def official_parts(parity_dir: Path):
    """The fixture checkpoint split into our components (see ``audiosr_core.weights``)."""
    from audiosr_core.weights import load_official_checkpoint, split_official_state_dict

    return split_official_state_dict(load_official_checkpoint(parity_dir / "checkpoint.ckpt"))


@pytest.fixture(scope="session")
def official_manifest(parity_dir: Path) -> dict[str, tuple[int, ...]]:
    """Every key of the official ``basic`` checkpoint with its shape (``()`` for scalars).

    Read from ``official_audiosr_basic_manifest.tsv`` beside the parity fixtures.
    """
    path = parity_dir.parents[1] / "official_audiosr_basic_manifest.tsv"
    if not path.is_file():
        path = DEFAULT_PARITY_DIR.parents[1] / path.name
    if not path.is_file():
        msg = f"{path.name} not found beside the parity fixture ({parity_dir.parents[1]})"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    shapes = {}
    for line in path.read_text().splitlines():
        key, shape, _dtype = line.split("\t")
        shapes[key] = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
    return shapes


def manifest_subset(manifest: dict[str, tuple[int, ...]], prefixes: tuple[str, ...],
                    strip: str) -> dict[str, tuple[int, ...]]:
    """Rows of ``manifest`` under any of ``prefixes``, with ``strip`` removed from the keys."""
    return {k[len(strip):]: v for k, v in manifest.items() if k.startswith(prefixes)}


def module_shapes(module) -> dict[str, tuple[int, ...]]:
    """Parameter and buffer names of a module with their shapes."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


# ------------------------------------------------------------------ tiny random-weight models
@pytest.fixture(scope="session")
def tiny_audiosr():
    """The official AudioSR architecture at the parity fixture's widths with seeded random
    weights (``AudioSRConfig.tiny()``): every stage runs, cheaply, without ../shared."""
    import torch

    from audiosr_core.models.audiosr import AudioSRConfig, AudioSRModel
    from audiosr_core.pipeline import AudioSR

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = AudioSRModel(AudioSRConfig.tiny())
    return AudioSR(model, device="cpu")


@pytest.fixture(scope="session")
def tiny_audiosr_dir(tmp_path_factory, tiny_audiosr) -> Path:
    """:func:`tiny_audiosr` saved as a model folder (what ``--model FOLDER`` loads)."""
    return tiny_audiosr.model.save_pretrained(tmp_path_factory.mktemp("models") / "tiny-random")


@pytest.fixture(scope="session")
def lite():
    """The packaged ``lite`` model."""
    import audiosr_core

    return audiosr_core.load("lite")
