"""Fine-tuning runs on the tiny configuration: outputs, resume, DDP, export, errors."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import audiosr_core
from audiosr_core.errors import TrainingError, WeightsError
from audiosr_core.models.audiosr import AudioSRConfig
from audiosr_core.models.unet import SpatialTransformer, UNet
from audiosr_core.train import audiosr as finetune
from audiosr_core.train.model_io import export_folder, load_start
from audiosr_core.train.objective import FineTuneModel

REPO = Path(__file__).resolve().parents[1]
CROP = 1.28          # 128 mel frames: the smallest crop the UNet takes, to keep tests quick


def _write_clips(folder: Path, count: int, seed: int, rate: int = 48000, seconds: float = 3.0,
                 channels: int = 1) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        n = int(seconds * rate)
        tone = 0.3 * np.sin(2 * np.pi * (150 + 90 * i) * np.arange(n) / rate)
        x = (0.1 * rng.standard_normal((n, channels)) + tone[:, None]).astype(np.float32)
        path = folder / f"clip{i}.wav"
        sf.write(path, x, rate)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    _write_clips(root / "train", 3, seed=0)
    _write_clips(root / "train" / "hifi", 1, seed=1, rate=44100, channels=2)
    _write_clips(root / "valid", 2, seed=2)
    torch.manual_seed(0)
    export_folder(FineTuneModel.random(AudioSRConfig.tiny()), root / "start")
    return root


def _settings(ws: Path, out: str, **kw) -> finetune.FineTuneSettings:
    base = dict(data=[str(ws / "train")], out=str(ws / out), model=str(ws / "start"),
                crop_seconds=CROP, batch_size=2, steps=4, warmup_steps=2, save_every=2,
                valid_every=100, num_workers=0, device="cpu")
    base.update(kw)
    return finetune.FineTuneSettings(**base)


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _unet_outputs(state: dict) -> torch.Tensor:
    unet = UNet(AudioSRConfig.tiny().unet)
    unet.load_state_dict(state)
    x = torch.randn(2, 32, 16, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return unet.eval()(x, torch.tensor([10, 700]))


# ------------------------------------------------------------------------------ a whole run
@pytest.mark.slow  # 4 steps, two validations through the pipeline, export and enhancement
def test_run_writes_logs_validation_checkpoint_and_a_loadable_model(workspace):
    result = finetune.train(_settings(workspace, "run", valid=[str(workspace / "valid")],
                                      valid_every=2, valid_clips=2, valid_steps=2),
                            progress=False)
    run = workspace / "run"
    assert result.finished and result.step == 4 and len(result.losses) == 4
    assert all(np.isfinite(result.losses))
    log = _rows(run / "log.csv")
    assert [int(r["step"]) for r in log] == [1, 2, 3, 4]
    assert float(log[0]["lr"]) == pytest.approx(5e-5) and float(log[1]["lr"]) == pytest.approx(1e-4)
    valid = _rows(run / "valid.csv")
    assert [int(r["step"]) for r in valid] == [2, 4]
    assert all(0 < float(r["lsd"]) < 20 and 0 < float(r["lsd_above_cutoff"]) < 20 for r in valid)
    assert len(list((run / "valid").glob("step_*.png"))) == 4
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))   # tensorboard: dev extra
    # the exported model (EMA weights) loads like any model folder and enhances
    sr = audiosr_core.load(str(run / "model"))
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    out = sr.enhance(x, 16000, steps=2)
    assert out.audio.shape == (1, 48000) and np.isfinite(out.audio).all()
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    exported = load_start(run / "model").model.unet.state_dict()
    for name, shadow in state["ema"]["shadows"].items():
        assert torch.equal(exported[name], shadow)
    # and a second run can start from it
    assert load_start(run / "model").ema_updates == 0


def test_stop_and_resume_equals_an_uninterrupted_run(workspace):
    whole = finetune.train(_settings(workspace, "whole"), progress=False)
    first = finetune.train(_settings(workspace, "parts"), stop_after=3, progress=False)
    assert (first.step, first.finished) == (3, False)
    assert not (workspace / "parts" / "model").exists()
    second = finetune.train(_settings(workspace, "parts"), progress=False)
    assert (second.step, second.finished) == (4, True) and len(second.losses) == 1
    again = finetune.train(_settings(workspace, "parts"), progress=False)   # nothing left to do
    assert (again.step, again.finished, again.losses) == (4, True, [])
    # same kernels, same shapes, same order: the resumed run repeats the computation
    assert np.allclose(whole.losses, first.losses + second.losses, rtol=1e-6, atol=0)
    a = torch.load(workspace / "whole" / "checkpoint.pt", weights_only=True)
    b = torch.load(workspace / "parts" / "checkpoint.pt", weights_only=True)
    for name, value in a["unet"].items():
        assert torch.allclose(value, b["unet"][name], rtol=0, atol=1e-7), name
    for name, value in a["ema"]["shadows"].items():
        assert torch.allclose(value, b["ema"]["shadows"][name], rtol=0, atol=1e-7), name
    assert a["ema"]["num_updates"] == b["ema"]["num_updates"] == 4
    assert a["optimizer"]["state"][0]["step"] == b["optimizer"]["state"][0]["step"]
    assert [int(r["step"]) for r in _rows(workspace / "parts" / "log.csv")] == [1, 2, 3, 4]


def test_resume_with_other_stream_settings_is_refused(workspace):
    finetune.train(_settings(workspace, "changed", steps=2), progress=False)
    with pytest.raises(TrainingError, match="batch_size|global_batch"):
        finetune.train(_settings(workspace, "changed", steps=3, batch_size=1), progress=False)
    with pytest.raises(TrainingError, match="seed"):
        finetune.train(_settings(workspace, "changed", steps=3, seed=5), progress=False)


def _cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "audiosr_core.train.audiosr", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def _cli_args(ws: Path, out: str, steps: int = 6, batch: int = 2) -> list[str]:
    return ["train", "--data", str(ws / "train"), "--model", str(ws / "start"), "--out",
            str(ws / out), "--crop-seconds", str(CROP), "--batch-size", str(batch), "--steps",
            str(steps), "--warmup-steps", "2", "--save-every", "2", "--num-workers", "0",
            "--device", "cpu"]


@pytest.mark.slow  # three training processes
def test_sigkill_then_rerun_finishes_like_an_uninterrupted_run(workspace):
    assert _cli(*_cli_args(workspace, "straight")).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "audiosr_core.train.audiosr",
                             *_cli_args(workspace, "killed")], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    checkpoint = workspace / "killed" / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert checkpoint.exists()
    killed_at = torch.load(checkpoint, weights_only=True)["step"]
    assert 2 <= killed_at <= 6
    assert not [p for p in (workspace / "killed").iterdir() if p.name.endswith(".part")
                and not p.name.startswith(".")]
    rerun = _cli(*_cli_args(workspace, "killed"))
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    a = torch.load(workspace / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(checkpoint, weights_only=True)
    assert a["step"] == b["step"] == 6
    for name, value in a["unet"].items():
        assert torch.allclose(value, b["unet"][name], rtol=0, atol=1e-7), name
    steps = [int(r["step"]) for r in _rows(workspace / "killed" / "log.csv")]
    assert steps == list(range(1, 7))


@pytest.mark.slow  # torchrun with two gloo processes, and one process with the same global batch
def test_torchrun_two_processes_equal_one_with_the_same_global_batch(workspace):
    one = _cli(*_cli_args(workspace, "ddp1", steps=4, batch=2))
    assert one.returncode == 0, one.stderr[-2000:]
    torchrun = Path(sys.executable).with_name("torchrun")
    two = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(29500 + os.getpid() % 1000), "-m", "audiosr_core.train.audiosr",
         *_cli_args(workspace, "ddp2", steps=4, batch=1)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert two.returncode == 0, two.stderr[-3000:]
    log1, log2 = _rows(workspace / "ddp1" / "log.csv"), _rows(workspace / "ddp2" / "log.csv")
    assert len(log1) == len(log2) == 4                       # rank 0 alone writes the log
    for r1, r2 in zip(log1, log2, strict=True):
        assert float(r2["loss"]) == pytest.approx(float(r1["loss"]), rel=1e-5)
        assert float(r2["grad_norm"]) == pytest.approx(float(r1["grad_norm"]), rel=1e-4)
    a = torch.load(workspace / "ddp1" / "checkpoint.pt", weights_only=True)
    b = torch.load(workspace / "ddp2" / "checkpoint.pt", weights_only=True)
    # Weights feeding a per-channel GroupNorm at width 32 have no effect (see the training
    # fixture's README): Adam moves them by +-lr whatever their noise-level gradient, so the
    # function is compared, not those weights.
    ya, yb = _unet_outputs(a["unet"]), _unet_outputs(b["unet"])
    assert torch.allclose(ya, yb, rtol=0, atol=1e-5 * float(ya.abs().max()))
    assert not (workspace / "ddp2" / "model").exists() or (workspace / "ddp2" / "model" /
                                                           "config.json").is_file()


# ------------------------------------------------------------------------ options and export
def test_attention_subset_trains_only_attention_blocks(workspace):
    finetune.train(_settings(workspace, "attn", steps=2, trainable="attention"), progress=False)
    start = load_start(workspace / "start").model.unet.state_dict()
    state = torch.load(workspace / "attn" / "checkpoint.pt", weights_only=True)["unet"]
    moved = {k for k in start if not torch.equal(start[k], state[k])}
    unet = UNet(AudioSRConfig.tiny().unet)
    attention = {f"{prefix}.{name}" for prefix, module in unet.named_modules()
                 if isinstance(module, SpatialTransformer) for name, _ in
                 module.named_parameters()}
    assert moved and moved <= attention
    assert "input_blocks.0.0.weight" not in moved and "out.2.bias" not in moved


def test_bf16_autocast_step_on_cpu(workspace):
    result = finetune.train(_settings(workspace, "bf16", steps=1, precision="bf16",
                                      gradient_checkpointing=True), progress=False)
    assert result.step == 1 and np.isfinite(result.losses[0])


@pytest.mark.slow  # three processes each import torch
def test_export_command(workspace):
    finetune.train(_settings(workspace, "exp", steps=2), progress=False)
    out = _cli("export", str(workspace / "exp"), str(workspace / "exported"), "--weights", "raw")
    assert out.returncode == 0, out.stderr
    state = torch.load(workspace / "exp" / "checkpoint.pt", weights_only=True)["unet"]
    loaded = load_start(workspace / "exported").model.unet.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    again = _cli("export", str(workspace / "exp"), str(workspace / "exported"))
    assert again.returncode == 2 and "already exists" in again.stderr
    missing = _cli("export", str(workspace / "nothing"), str(workspace / "x"))
    assert missing.returncode == 2 and "not a fine-tuning run folder" in missing.stderr


# ------------------------------------------------------------------------------------ errors
def test_starting_model_errors(workspace, tmp_path, tiny_audiosr_dir):
    with pytest.raises(WeightsError, match="starting model .* not found"):
        load_start(tmp_path / "nope")
    with pytest.raises(TrainingError, match="converted for inference only"):
        load_start(tiny_audiosr_dir)
    with pytest.raises(TrainingError, match="not a diffusion model"):
        load_start("lite")
    with pytest.MonkeyPatch.context() as mp:     # offline with an empty Hugging Face cache
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_HOME", str(tmp_path / "hf"))
        mp.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
        with pytest.raises(WeightsError,
                           match=r"(?s)haoheliu/audiosr_speech.*offline mode.*download"):
            load_start("speech", progress=False)
    proc = _cli(*_cli_args(workspace, "badmodel")[:-2], "--model", str(tmp_path / "nope"))
    assert proc.returncode == 2 and "not found" in proc.stderr and "Traceback" not in proc.stderr


def test_data_errors_are_clear(workspace, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TrainingError, match="no training audio in .*empty"):
        finetune.train(_settings(workspace, "e1", data=[str(empty)]), progress=False)
    silent = tmp_path / "silent"
    silent.mkdir()
    sf.write(silent / "a.wav", np.zeros(48000 * 3, np.float32), 48000)
    sf.write(silent / "b.wav", np.zeros(48000 * 3, np.float32), 48000)
    with pytest.raises(TrainingError, match="silent"):
        finetune.train(_settings(workspace, "e2", data=[str(silent)]), progress=False)
    short = tmp_path / "short"
    _write_clips(short, 2, seed=3, seconds=0.5)
    with pytest.raises(TrainingError, match="shorter than"):
        finetune.train(_settings(workspace, "e3", data=[str(short)]), progress=False)
    with pytest.raises(TrainingError, match="clip0.wav"):
        finetune.train(_settings(workspace, "e4", valid=[str(workspace / "train" / "clip0.wav")]),
                       progress=False)
    with pytest.raises(TrainingError, match="multiple of 0.64"):
        finetune.train(_settings(workspace, "e5", crop_seconds=3.0), progress=False)
    with pytest.raises(TrainingError, match="--batch-size must be at least 1"):
        finetune.train(_settings(workspace, "e6", batch_size=0), progress=False)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "log.csv").write_text("mine\n")
    with pytest.raises(TrainingError, match="not a fine-tuning run"):
        finetune.train(_settings(workspace, str(notes)), progress=False)
    assert (notes / "log.csv").read_text() == "mine\n"
    assert not any((workspace / name).exists() for name in ("e1", "e2", "e3", "e4", "e5"))


def test_out_of_memory_names_the_batch_size(workspace, monkeypatch):
    def oom(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(FineTuneModel, "loss", oom)
    with pytest.raises(TrainingError, match=r"--batch-size 2 per device.*--grad-accum to 2"):
        finetune.train(_settings(workspace, "oom"), progress=False)


def test_a_converted_folder_can_be_fine_tuned(parity_dir, tmp_path):
    from audiosr_core.weights import convert_official, load_official_checkpoint

    folder = convert_official(parity_dir / "checkpoint.ckpt", tmp_path / "dev", progress=False)
    start = load_start(folder)
    state = load_official_checkpoint(parity_dir / "checkpoint.ckpt")
    for key, value in start.model.target_encoder.state_dict().items():
        assert torch.equal(value, state[f"first_stage_model.{key}"]), key
    assert start.ema_shadows is None           # a converted folder keeps no EMA copy
    # 'speech' offline, without the official file: the fine-tunable converted copy in our cache
    cache = tmp_path / "cache"
    convert_official(parity_dir / "checkpoint.ckpt", cache / "speech", progress=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUDIOSR_PLUG_CACHE", str(cache))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
        assert load_start("speech", progress=False).source == str(cache / "speech")


@pytest.mark.slow  # the official tiny checkpoint: first-stage encoder and EMA come from it
def test_starting_from_an_official_checkpoint_keeps_its_ema(workspace, parity_dir):
    start = load_start(parity_dir / "checkpoint.ckpt")
    assert start.ema_shadows is not None and start.ema_updates == 0
    name = "out.2.bias"
    assert not torch.equal(start.ema_shadows[name], start.model.unet.state_dict()[name])
    result = finetune.train(_settings(workspace, "official", model=str(parity_dir /
                                                                        "checkpoint.ckpt"),
                                      steps=1), progress=False)
    assert result.step == 1
    state = torch.load(workspace / "official" / "checkpoint.pt", weights_only=True)
    # one EMA update from the checkpoint's shadows: decay 2/11, as the official LitEma
    after = state["unet"][name]
    expected = start.ema_shadows[name] - (1 - 2 / 11) * (start.ema_shadows[name] - after)
    assert torch.allclose(state["ema"]["shadows"][name], expected, atol=1e-6)
