"""Shared test fixtures: the official parity fixture, tiny random-weight models, markers and
float32 tolerances.

Markers (registered in pyproject.toml) are set here, not in the test files:

* ``needs_shared``: the test uses one of :data:`SHARED_FIXTURES` (../shared: the official parity
  fixture or the dev set; skipped locally without it, a failure under ``CI=true``);
* ``browser``: the test drives Debian's headless Chromium (tests/study_fixtures.py);
* ``slow`` is set in the test files, on tests that stay above ~6 s on a 2-core CPU.

``make test-fast`` runs ``-m "not slow and not browser"``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
PARITY_ENV = "AUDIOSR_PARITY_DIR"
DEFAULT_PARITY_DIR = REPO.parent / "shared" / "reference" / "parity" / "dev"
PARITY_STEMS = ("chord8k_mono", "speech16k_mono", "tones44k_stereo")
TRAIN_PARITY_ENV = "AUDIOSR_TRAIN_PARITY_DIR"
DEFAULT_TRAIN_PARITY_DIR = REPO.parent / "shared" / "reference" / "parity" / "train-dev"
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
def train_parity_dir() -> Path:
    """The official training-objective fixture (skips locally when absent, fails under CI)."""
    return _shared_folder(TRAIN_PARITY_ENV, DEFAULT_TRAIN_PARITY_DIR, "train_settings.json",
                          "training parity fixture (../shared/reference/parity/train-dev)")


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
#: Pre-``tanh`` level (standard deviation) of the tiny model's vocoder on a decoded random
#: latent. With it the model adds a high band about 0.4-1.1 dB above the input's own level,
#: like the parity fixture's weights; PyTorch's default initialisation gives a vocoder whose
#: output is ~60 dB down, i.e. nearly a pass-through that no seed or option would change.
TINY_VOCODER_LEVEL = 0.035


def audible_random_weights(model, seed: int = 0):
    """Redraw every weight of an :class:`AudioSRModel` the way the parity fixture's generator
    does (its README, section 2), so that each stage passes an O(1) signal on.

    Conv/Linear weights ~ N(0, 1/fan_in), biases ~ N(0, 0.05^2), GroupNorm/LayerNorm weights
    ~ 1 + N(0, 0.1^2) and biases ~ N(0, 0.1^2); the vocoder's ``conv_post`` is made zero-mean,
    bias-free and scaled to :data:`TINY_VOCODER_LEVEL`. Deterministic for a seed (a CPU
    generator), whatever the machine.
    """
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(seed)

    def draw(t: torch.Tensor, std: float, mean: float = 0.0) -> None:
        t.copy_(mean + std * torch.randn(t.shape, generator=gen))

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.ConvTranspose1d):          # weight [in, out, k], stride s
                draw(m.weight, (m.weight.shape[0] * m.weight.shape[2] / m.stride[0]) ** -0.5)
            elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                draw(m.weight, m.weight[0].numel() ** -0.5)
            elif isinstance(m, (nn.GroupNorm, nn.LayerNorm)):
                draw(m.weight, 0.1, 1.0)
            else:
                continue
            if m.bias is not None:
                draw(m.bias, 0.1 if isinstance(m, (nn.GroupNorm, nn.LayerNorm)) else 0.05)
        post = model.vocoder.conv_post
        post.weight.sub_(post.weight.mean())
        post.bias.zero_()
        post.weight.mul_(1e-3)                 # tanh is linear there: output = pre-tanh signal
        mel = model.vae_decoder(torch.randn(1, 16, 8, 32, generator=gen))[:, 0].transpose(1, 2)
        post.weight.mul_(TINY_VOCODER_LEVEL / float(model.vocoder(mel).std()))
    return model.eval()


@pytest.fixture(scope="session")
def tiny_audiosr():
    """The official AudioSR architecture at the parity fixture's widths with seeded random
    weights (``AudioSRConfig.tiny()``, :func:`audible_random_weights`): every stage runs,
    cheaply, and adds an audible high band, without ../shared.

    Session-scoped and shared: build ``AudioSR(tiny_audiosr.model)`` for other window settings,
    and copy the model before casting it (``AudioSR(model, dtype=...)`` casts in place).
    """
    from audiosr_core.models.audiosr import AudioSRConfig, AudioSRModel
    from audiosr_core.pipeline import AudioSR

    return AudioSR(audible_random_weights(AudioSRModel(AudioSRConfig.tiny())), device="cpu")


@pytest.fixture(scope="session")
def tiny_audiosr_dir(tmp_path_factory, tiny_audiosr) -> Path:
    """:func:`tiny_audiosr` saved as a model folder (what ``--model FOLDER`` loads)."""
    return tiny_audiosr.model.save_pretrained(tmp_path_factory.mktemp("models") / "tiny-random")


@pytest.fixture(scope="session")
def lite():
    """The packaged ``lite`` model."""
    import audiosr_core

    return audiosr_core.load("lite")


# ------------------------------------------------------------------------- float32 tolerances
#: float32 machine epsilon, 2**-23: one unit in the last place (ulp) of a number in [1, 2).
F32_EPS = float(np.finfo(np.float32).eps)


def f32_atol(reference, ulps: float) -> float:
    """An absolute tolerance of ``ulps`` float32 ulps of ``reference``'s largest magnitude.

    For comparing two evaluations of the same float32 computation that may take different
    kernels (memory layout, batch size, thread count, CPU type): each kernel may sum in its own
    order, and a reordered sum of K terms moves by up to about K * eps * sum|terms| (worst case;
    typically sqrt(K) * eps). ``ulps`` is that growth through the network, stated at the call.
    """
    import torch

    ref = reference.detach().float() if isinstance(reference, torch.Tensor) else reference
    return ulps * F32_EPS * float(np.abs(np.asarray(ref)).max())


# ------------------------------------------------------------------------------------ markers
#: Fixtures that read ../shared: a test using any of them (directly or through another fixture)
#: is marked ``needs_shared``.
SHARED_FIXTURES = frozenset({"parity_dir", "parity_expected", "official_parts",
                             "official_manifest", "devset_dir", "train_parity_dir"})
#: Modules whose tests drive Chromium; any other module that imports a Chromium helper of
#: tests/study_fixtures.py is caught by :data:`CHROMIUM_HELPERS`.
BROWSER_MODULES = frozenset({"test_study_browser.py", "test_study_end_to_end.py"})
CHROMIUM_HELPERS = ("headless_chromium", "require_chromium", "run_rater_session")


def _drives_chromium(item: pytest.Item) -> bool:
    if item.path.name in BROWSER_MODULES:
        return True
    module = getattr(item, "module", None)
    return any(getattr(getattr(module, name, None), "__module__", None) == "study_fixtures"
               for name in CHROMIUM_HELPERS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``needs_shared`` on tests using :data:`SHARED_FIXTURES`, ``browser`` on Chromium tests."""
    for item in items:
        if SHARED_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.needs_shared)
        if _drives_chromium(item):
            item.add_marker(pytest.mark.browser)


def kept_band_hz(audio48, source_rate: int, fraction: float = 0.9) -> float:
    """Top of the band an enhancer keeps as the input's own, Hz: ``fraction`` of the source's
    Nyquist frequency, or 95 % of the band edge ``lite`` detects if that is lower (content
    that ends inside the container, such as pure tones, is extended from its own edge)."""
    from audiosr_core.lite_pipeline import detect_band

    limit = fraction * source_rate / 2
    for row in np.atleast_2d(np.asarray(audio48, np.float32)):
        edge = detect_band(row, source_rate)
        if edge.enhance:
            limit = min(limit, 0.95 * edge.hz)
    return limit
