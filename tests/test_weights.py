"""Weights: official checkpoint conversion, the model cache and name resolution (never online)."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import zipfile
from pathlib import Path

import huggingface_hub
import pytest
import torch
from huggingface_hub.errors import LocalEntryNotFoundError
from safetensors import safe_open
from safetensors.torch import load_file

from audiosr_core import atomic, weights
from audiosr_core.errors import WeightsError
from audiosr_core.models.audiosr import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    AudioSRConfig,
    AudioSRModel,
)
from audiosr_core.weights import (
    OFFICIAL_COMPONENTS,
    convert_official,
    is_converted,
    load_official_checkpoint,
    resolve_pretrained,
)

from conftest import f32_atol

COMPONENTS = ("unet", "vae_encoder", "vae_decoder", "vocoder")
#: Float32 ulps of an output's peak by which one network's forward pass may move when other
#: kernels run it (see test_tiny_round_trip_exact_weights_same_function).
KERNEL_ULPS = 256
FIXTURE_SCALE = 0.8371000289916992
TINY_SCALE = 0.6180000305175781  # exactly representable in float32
BASIC_URL = "https://huggingface.co/haoheliu/audiosr_basic/resolve/main/pytorch_model.bin"


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(autouse=True)
def _no_network_no_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Offline, a throw-away default cache, and a download that fails the test if reached."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(weights.CACHE_ENV, raising=False)

    def forbidden(*args, **kwargs):
        raise AssertionError(f"unexpected hf_hub_download{args}")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", forbidden)


@pytest.fixture
def one_thread():
    """Run tiny forward passes on one thread (OpenMP spin-waits badly on a busy 2-core box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_model() -> AudioSRModel:
    """Tiny AudioSR with every weight randomised (no zero-initialised layers left)."""
    torch.manual_seed(1234)
    model = AudioSRModel(AudioSRConfig.tiny()).eval()
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if key != "scale_factor":
                value.add_(torch.randn_like(value) * 0.02)
        model.scale_factor.fill_(TINY_SCALE)
    return model


def official_layout(model: AudioSRModel, seed: int = 7) -> dict[str, torch.Tensor]:
    """An official-style flat state dict for ``model``, with unused twins and junk around it.

    The EMA copy and the unused twins get random values and only a few keys each (every key
    costs time in the ``weights_only`` unpickler); a large CLAP-like tensor stands for the bulk.
    """
    gen = torch.Generator().manual_seed(seed)

    def noise(t: torch.Tensor) -> torch.Tensor:
        return torch.randn(t.shape, generator=gen).to(t.dtype)

    def own(t: torch.Tensor) -> torch.Tensor:
        return t.detach().clone()

    def used_and_twins(module: torch.nn.Module, prefix: str, twin_prefix: str,
                       ema: bool = False) -> None:
        for i, (k, v) in enumerate(module.state_dict().items()):
            sd[prefix + k] = own(v)
            if i < 8 or k.startswith("conv_post"):
                sd[twin_prefix + (k.replace(".", "") if ema else k)] = noise(v)

    sd: dict[str, torch.Tensor] = {}
    used_and_twins(model.unet, "model.diffusion_model.", "model_ema.diffusion_model", ema=True)
    # encoder.*/quant_conv.* beside an unused first-stage encoder twin, and the reverse
    used_and_twins(model.vae_encoder, "cond_stage_models.0.vae.", "first_stage_model.")
    used_and_twins(model.vae_decoder, "first_stage_model.", "cond_stage_models.0.vae.")
    used_and_twins(model.vocoder, "first_stage_model.vocoder.", "cond_stage_models.0.vae.vocoder.")
    sd.update({
        "model_ema.decay": torch.tensor(0.9999),
        "model_ema.num_updates": torch.tensor(0, dtype=torch.int32),
        "clap.model.audio_branch.weight": torch.randn(2048, 2048, generator=gen),
        "clap.y": torch.randn(3, generator=gen),
        "betas": torch.rand(1000, generator=gen),
        "logvar": torch.zeros(1000),
        "scale_factor": own(model.scale_factor),
    })
    return sd


def write_checkpoint(path: Path, state: dict[str, torch.Tensor],
                     config: AudioSRConfig | None = None) -> Path:
    """``torch.save({"state_dict": state})`` plus, optionally, our config.json beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state}, path)
    if config is not None:
        (path.parent / CONFIG_NAME).write_text(json.dumps(config.to_dict()))
    return path


@pytest.fixture(scope="module")
def tiny_ckpt(tiny_model: AudioSRModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Official-layout checkpoint of ``tiny_model`` with its config.json beside it."""
    folder = tmp_path_factory.mktemp("official")
    return write_checkpoint(folder / "pytorch_model.bin", official_layout(tiny_model),
                            AudioSRConfig.tiny())


def assert_same_weights(a: AudioSRModel, b: AudioSRModel) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def assert_folder_holds(folder: Path, model: AudioSRModel) -> None:
    """The converted folder holds exactly ``model``'s weights and config (no model is built)."""
    stored = load_file(str(folder / WEIGHTS_NAME))
    state = model.state_dict()
    assert stored.keys() == state.keys()
    for key in state:
        assert torch.equal(stored[key], state[key]), key
    config = AudioSRConfig.from_dict(json.loads((folder / CONFIG_NAME).read_text()))
    assert config == dataclasses.replace(model.config, scale_factor=float(model.scale_factor))


def leftovers(folder: Path) -> list[str]:
    """Temporary files or folders a write left behind."""
    return [p.name for p in folder.rglob("*") if atomic.is_temporary(p)]


# ------------------------------------------------------------------------- dev fixture convert
def test_convert_dev_fixture(parity_dir: Path, official_parts, tmp_path: Path) -> None:
    ckpt = parity_dir / "checkpoint.ckpt"
    out = convert_official(ckpt, tmp_path / "dev", progress=False)
    assert out == tmp_path / "dev" and is_converted(out)
    assert leftovers(tmp_path) == []

    # config.json beside the checkpoint (official vocabulary) gave the architecture
    config = json.loads((out / CONFIG_NAME).read_text())
    assert AudioSRConfig.from_dict(config) == AudioSRConfig.tiny()
    assert config["scale_factor"] == FIXTURE_SCALE

    model = AudioSRModel.from_pretrained(out)
    state = model.state_dict()
    expected_keys = {f"{name}.{key}" for name in COMPONENTS for key in official_parts[name]}
    assert state.keys() == expected_keys | {"scale_factor"}
    for name in COMPONENTS:
        for key, value in official_parts[name].items():
            assert torch.equal(state[f"{name}.{key}"], value), f"{name}.{key}"
    assert float(model.scale_factor) == FIXTURE_SCALE

    with safe_open(str(out / WEIGHTS_NAME), "pt") as f:
        keys = set(f.keys())
    assert keys == state.keys()
    assert not any(k.startswith(("model_ema", "clap", "first_stage_model", "cond_stage_models",
                                 "model.")) for k in keys)
    assert not any(k.startswith(("vae_encoder.decoder", "vae_encoder.vocoder",
                                 "vae_decoder.encoder", "vae_decoder.vocoder")) for k in keys)

    # The file holds the kept weights only. (The fixture stores its EMA and unused twins as views
    # of the same storages, so compare with the full state dict's logical size.)
    full = load_official_checkpoint(ckpt)
    full_bytes = sum(v.numel() * v.element_size() for v in full.values())
    kept_bytes = sum(v.numel() * v.element_size() for v in state.values())
    size = (out / WEIGHTS_NAME).stat().st_size
    assert kept_bytes <= size < kept_bytes + 200_000
    assert size < 0.6 * full_bytes


# ----------------------------------------------------------------------------- tiny round trip
def test_tiny_round_trip_exact_weights_same_function(tiny_model: AudioSRModel, tiny_ckpt: Path,
                                                     tmp_path: Path, one_thread: None) -> None:
    official = load_official_checkpoint(tiny_ckpt)
    for twin in ("model_ema.diffusion_modeltime_embed0weight", "first_stage_model.encoder.",
                 "cond_stage_models.0.vae.decoder.", "cond_stage_models.0.vae.vocoder.conv_post"):
        assert any(k.startswith(twin) for k in official), twin
    out = convert_official(tiny_ckpt, tmp_path / "tiny", progress=False)
    loaded = AudioSRModel.from_pretrained(out)
    assert_same_weights(tiny_model, loaded)  # the used copies, not the twins
    assert float(loaded.scale_factor) == TINY_SCALE
    assert (out / WEIGHTS_NAME).stat().st_size < 0.5 * tiny_ckpt.stat().st_size

    # The weights are a copy and compared exactly above. The forward passes below only show
    # that the loaded model computes the same function: the copy's tensors sit elsewhere in
    # memory (aligned differently, from the safetensors file), so a CPU may run other kernels on
    # them, summing in another order (AMD EPYC: ~2e-6 apart). Measured here between contiguous
    # and channels-last weights: up to 32 ulps of the output's peak (UNet; encoder 16, decoder
    # 19). KERNEL_ULPS leaves 8x on that; changing one UNet weight by 1e-3 moves the output by
    # ~12000 ulps.
    gen = torch.Generator().manual_seed(0)
    mel = torch.randn(1, 1, 8, 256, generator=gen)
    latent = torch.randn(1, 16, 1, 32, generator=gen)
    unet_in = torch.randn(1, 32, 8, 16, generator=gen)

    def same_function(a: torch.Tensor, b: torch.Tensor) -> None:
        torch.testing.assert_close(b, a, rtol=0, atol=f32_atol(a, KERNEL_ULPS))

    with torch.inference_mode():
        for a, b in zip(tiny_model.vae_encoder(mel), loaded.vae_encoder(mel), strict=True):
            same_function(a, b)
        same_function(tiny_model.vae_decoder(latent), loaded.vae_decoder(latent))
        t = torch.tensor([500])
        same_function(tiny_model.unet(unet_in, t), loaded.unet(unet_in, t))
        voc_in = mel[:, 0].transpose(1, 2)
        same_function(tiny_model.vocoder(voc_in), loaded.vocoder(voc_in))


def test_convert_explicit_config_and_existing_folder(tiny_model: AudioSRModel, tiny_ckpt: Path,
                                                     tmp_path: Path) -> None:
    bare = write_checkpoint(tmp_path / "bare" / "model.ckpt", official_layout(tiny_model))
    target = tmp_path / "out"
    target.mkdir()
    (target / "notes.txt").write_text("kept")
    (target / CONFIG_NAME).write_text("{}")  # stale, replaced
    for config in (AudioSRConfig.tiny(), AudioSRConfig.tiny().to_dict(), tiny_ckpt.parent /
                   CONFIG_NAME):
        convert_official(bare, target, config=config, progress=False)
        assert_folder_holds(target, tiny_model)
    assert (target / "notes.txt").read_text() == "kept"
    assert leftovers(tmp_path) == []


def test_convert_progress_messages(tiny_ckpt: Path, tmp_path: Path, capsys) -> None:
    convert_official(tiny_ckpt, tmp_path / "p", progress=True)
    err = capsys.readouterr().err
    assert "converting" in err and "M parameters kept" in err


# ---------------------------------------------------------------------------- wrong checkpoints
def _convert_error(state: dict[str, torch.Tensor], tmp_path: Path,
                   config: AudioSRConfig | None = None) -> str:
    ckpt = write_checkpoint(tmp_path / "bad" / "bad.ckpt", state)
    with pytest.raises(WeightsError) as info:
        convert_official(ckpt, tmp_path / "out", config=config or AudioSRConfig.tiny(),
                         progress=False)
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []
    return str(info.value)


def test_missing_key(tiny_model: AudioSRModel, tmp_path: Path) -> None:
    state = official_layout(tiny_model)
    del state["model.diffusion_model.out.2.weight"]
    msg = _convert_error(state, tmp_path)
    assert "1 missing" in msg and "unet.out.2.weight" in msg and "bad.ckpt" in msg


def test_wrong_shape_and_unexpected(tiny_model: AudioSRModel, tmp_path: Path) -> None:
    state = official_layout(tiny_model)
    state["first_stage_model.vocoder.conv_post.weight"] = torch.zeros(1, 2, 5)
    state["model.diffusion_model.extra.weight"] = torch.zeros(3)
    msg = _convert_error(state, tmp_path)
    assert "vocoder.conv_post.weight: checkpoint [1, 2, 5] vs model [1, 2, 7]" in msg
    assert "1 unexpected" in msg and "unet.extra.weight" in msg


def test_wrong_architecture_lists_examples(tiny_model: AudioSRModel, tmp_path: Path) -> None:
    msg = _convert_error(official_layout(tiny_model), tmp_path, config=AudioSRConfig.basic())
    assert "different shape" in msg and "pass its config" in msg
    assert msg.count("vs model") <= 3  # a few examples, not thousands of keys


def test_missing_component_and_bad_scale(tiny_model: AudioSRModel, tmp_path: Path) -> None:
    state = {k: v for k, v in official_layout(tiny_model).items()
             if not k.startswith("first_stage_model.vocoder.")}
    assert "first_stage_model.vocoder.*" in _convert_error(state, tmp_path)
    state = official_layout(tiny_model)
    state["scale_factor"] = torch.tensor(float("nan"))
    assert "invalid 'scale_factor'" in _convert_error(state, tmp_path / "nan")


def test_not_a_checkpoint(tmp_path: Path) -> None:
    text = tmp_path / "notes.ckpt"
    text.write_text("hello, not a checkpoint")
    archive = tmp_path / "random.bin"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("archive/readme.txt", "no pickle in here")
    for bad in (text, archive):
        with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
            convert_official(bad, tmp_path / "out", progress=False)
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(WeightsError, match="not an official AudioSR checkpoint"):
        convert_official(other, tmp_path / "out", progress=False)
    with pytest.raises(WeightsError, match="checkpoint file not found"):
        convert_official(tmp_path / "absent.bin", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_unsafe_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.bin"
    with open(path, "wb") as f:
        # a callable where a tensor belongs: refused by the weights_only unpickler
        pickle.dump({"state_dict": {"scale_factor": os.getcwd}}, f, protocol=2)
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        convert_official(path, tmp_path / "out", progress=False)


def test_interrupted_write_leaves_nothing_loadable(tiny_ckpt: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_save(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(weights, "save_file", broken_save)
    with pytest.raises(WeightsError, match="could not write.*No space left"):
        convert_official(tiny_ckpt, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


# --------------------------------------------------------------------------------- cache dirs
def test_cache_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert weights.cache_dir() == tmp_path / "xdg" / "audiosr-plug"
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "mine"))
    assert weights.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(weights.CACHE_ENV)
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert weights.cache_dir() == tmp_path / "home" / ".cache" / "audiosr-plug"


# --------------------------------------------------------------------------- resolve_pretrained
def test_registry_cache_hit(tiny_model: AudioSRModel, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    tiny_model.save_pretrained(cache / "basic")
    assert resolve_pretrained("basic", cache_dir=cache) == cache / "basic"
    monkeypatch.setenv(weights.CACHE_ENV, str(cache))
    assert resolve_pretrained("basic") == cache / "basic"
    assert resolve_pretrained(" Basic ") == cache / "basic"
    assert_folder_holds(resolve_pretrained("basic"), tiny_model)


@pytest.mark.parametrize("error", [
    LocalEntryNotFoundError("file not in the local cache and outgoing traffic is disabled"),
    huggingface_hub.errors.OfflineModeIsEnabled("offline"),
])
def test_registry_offline_miss(error: Exception, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def offline(repo_id, filename, **kwargs):
        calls.append((repo_id, filename, kwargs))
        raise error

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError) as info:
        resolve_pretrained("basic", cache_dir=cache)
    msg = str(info.value)
    assert BASIC_URL in msg
    assert f"audiosr-plug convert pytorch_model.bin {cache / 'basic'}" in msg
    assert "AUDIOSR_PLUG_CACHE" in msg and "offline" in msg
    assert calls == [("haoheliu/audiosr_basic", "pytorch_model.bin", {"local_files_only": True})]
    assert not (cache / "basic").exists()


def test_registry_download_failure_online(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    seen = {}

    def no_network(repo_id, filename, **kwargs):
        seen.update(kwargs)
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    with pytest.raises(WeightsError) as info:
        resolve_pretrained("speech", cache_dir=tmp_path, progress=False)
    msg = str(info.value)
    assert "download failed (ConnectionError: Name or service not known)" in msg
    assert "https://huggingface.co/haoheliu/audiosr_speech/resolve/main/pytorch_model.bin" in msg
    assert f"audiosr-plug convert pytorch_model.bin {tmp_path / 'speech'}" in msg
    assert seen["local_files_only"] is False and "tqdm_class" in seen
    with pytest.raises(WeightsError, match="offline"):
        resolve_pretrained("speech", cache_dir=tmp_path, local_files_only=True)
    assert seen["local_files_only"] is True


def test_registry_download_converts_once(tiny_model: AudioSRModel, tiny_ckpt: Path,
                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    downloads, conversions = [], []

    def fake_download(repo_id, filename, **kwargs):
        downloads.append((repo_id, filename))
        return str(tiny_ckpt)

    real_convert = weights.convert_official

    def counting_convert(*args, **kwargs):
        conversions.append(args)
        return real_convert(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(weights, "convert_official", counting_convert)
    cache = tmp_path / "cache"
    first = resolve_pretrained("speech", cache_dir=cache, progress=False)
    assert first == cache / "speech" and is_converted(first)
    assert downloads == [("haoheliu/audiosr_speech", "pytorch_model.bin")]
    assert len(conversions) == 1
    assert tiny_ckpt.is_file()  # the downloaded original is left alone
    assert_same_weights(tiny_model, AudioSRModel.from_pretrained(first))

    assert resolve_pretrained("speech", cache_dir=cache) == first
    assert len(downloads) == 1 and len(conversions) == 1


def test_local_checkpoint_converted_once(tiny_model: AudioSRModel, tiny_ckpt: Path,
                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conversions = []
    real_convert = weights.convert_official

    def counting_convert(*args, **kwargs):
        conversions.append(args)
        return real_convert(*args, **kwargs)

    monkeypatch.setattr(weights, "convert_official", counting_convert)
    ckpt = tmp_path / "src" / "my-finetune.ckpt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(tiny_ckpt.read_bytes())
    (ckpt.parent / CONFIG_NAME).write_text((tiny_ckpt.parent / CONFIG_NAME).read_text())
    cache = tmp_path / "cache"

    folder = resolve_pretrained(ckpt, cache_dir=cache, progress=False)
    assert folder.parent == cache / "converted" and folder.name.startswith("my-finetune-")
    assert_folder_holds(folder, tiny_model)
    assert resolve_pretrained(str(ckpt), cache_dir=cache) == folder
    assert len(conversions) == 1

    os.utime(ckpt, ns=(0, 10**18))  # the file changed: convert again, elsewhere
    again = resolve_pretrained(ckpt, cache_dir=cache, progress=False)
    assert again != folder and len(conversions) == 2


def test_converted_folder_passthrough(tiny_model: AudioSRModel, tmp_path: Path) -> None:
    folder = tiny_model.save_pretrained(tmp_path / "basic")
    assert resolve_pretrained(folder, cache_dir=tmp_path / "cache") == folder
    assert resolve_pretrained(str(folder / WEIGHTS_NAME), cache_dir=tmp_path) == folder
    assert not (tmp_path / "cache").exists()


def test_lite_and_garbage(tmp_path: Path, monkeypatch) -> None:
    from audiosr_core import weights
    from audiosr_core.models.lite import LiteModel

    assert resolve_pretrained("lite", cache_dir=tmp_path) == weights.LITE_FOLDER
    assert LiteModel.is_lite_folder(weights.LITE_FOLDER)
    monkeypatch.setattr(weights, "LITE_FOLDER", tmp_path / "nowhere")
    with pytest.raises(WeightsError, match="packaged 'lite' model is missing.*reinstall"):
        resolve_pretrained("lite", cache_dir=tmp_path)
    with pytest.raises(WeightsError) as info:
        resolve_pretrained("no-such-model", cache_dir=tmp_path)
    msg = str(info.value)
    assert "'no-such-model'" in msg and "Accepted" in msg and "'basic' or 'speech'" in msg
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="not a converted AudioSR folder.*audiosr-plug convert"):
        resolve_pretrained(tmp_path / "empty", cache_dir=tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    with pytest.raises(WeightsError, match="unsupported file type"):
        resolve_pretrained(notes, cache_dir=tmp_path)


def test_corrupted_converted_folder(tiny_model: AudioSRModel, tmp_path: Path) -> None:
    folder = tiny_model.save_pretrained(tmp_path / "broken")
    (folder / WEIGHTS_NAME).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")  # truncated file
    with pytest.raises(WeightsError, match="Delete .*broken and convert again"):
        AudioSRModel.from_pretrained(folder)


def test_full_basic_model_is_exactly_the_official_inference_subset(official_manifest) -> None:
    """AudioSRModel('basic') on meta: its keys map one-to-one onto the manifest's inference rows.

    The inference subset is model.diffusion_model, first_stage_model.{decoder,post_quant_conv,
    vocoder}, cond_stage_models.0.vae.{encoder,quant_conv} and scale_factor: 672,012,546
    parameters (official-audiosr.md section 2).
    """
    with torch.device("meta"):
        model = AudioSRModel(AudioSRConfig.basic())
    ours = {}
    for key, value in model.state_dict().items():
        name, _, rest = key.partition(".")
        official = "scale_factor" if key == "scale_factor" else (
            OFFICIAL_COMPONENTS[name][0] + rest)
        ours[official] = tuple(value.shape)
    keep = tuple(prefix + sub for prefix, subs in OFFICIAL_COMPONENTS.values() for sub in subs)
    subset = {k: v for k, v in official_manifest.items()
              if k.startswith(keep) or k == "scale_factor"}
    assert ours == subset
    assert sum(p.numel() for p in model.parameters()) == 672_012_546
