"""The lite model, its pipeline and its trainer (random-weight models; the shipped model's
scores are checked in test_lite_shipped.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiosr_core import audio, dsp
from audiosr_core.lite_pipeline import LiteSR, highpass
from audiosr_core.models.lite import LiteConfig, LiteModel, copy_up_index
from audiosr_core.rates import output_length
from audiosr_core.train import lite as train_lite

from conftest import f32_atol

SMALL = LiteConfig(hidden=16, dilations=(1, 2), in_bands=32, env_bands=16)


def noise_lowpassed(cutoff_hz: float, seconds: float = 2.0, seed: int = 0,
                    channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((channels, int(seconds * 48000))).astype(np.float32) * 0.1
    return np.stack([dsp.lowpass(row, cutoff_hz) for row in x]).astype(np.float32)


@pytest.fixture(scope="module", params=["bins", "envelope"])
def lite(request) -> LiteSR:
    torch.manual_seed(0)
    return LiteSR(LiteModel(LiteConfig(head=request.param, hidden=32)))


def test_config_round_trip_and_errors():
    config = LiteConfig(head="envelope", dilations=(1, 3))
    assert LiteConfig.from_dict(config.to_dict()) == config
    assert config.receptive_field == 1 + 2 * 4
    with pytest.raises(ValueError, match="head must be 'bins' or 'envelope'"):
        LiteConfig(head="mask")
    with pytest.raises(ValueError, match="not a lite model config"):
        LiteConfig.from_dict({"model_type": "audiosr", "head": "bins"})


def test_save_and_load_give_the_same_outputs(tmp_path: Path):
    torch.manual_seed(1)
    model = LiteModel(SMALL).eval()
    folder = model.save_pretrained(tmp_path / "m")
    assert LiteModel.is_lite_folder(folder) and not LiteModel.is_lite_folder(tmp_path)
    loaded = LiteModel.from_pretrained(folder)
    saved, state = loaded.state_dict(), model.state_dict()
    assert saved.keys() == state.keys()
    for key in state:                                       # the weights are a copy: exact
        assert torch.equal(saved[key], state[key]), key
    logp, kc = torch.randn(2, 1025, 20), torch.tensor([200, 500])
    with torch.no_grad():
        # The copy sits elsewhere in memory, where a CPU may run other kernels (another
        # summation order): float32 rounding only. This small network moves by up to 4 ulps of
        # its output's peak between kernels (1 vs 2 threads, batch 1 vs 2, measured); 64 ulps.
        expected = model(logp, kc)
        torch.testing.assert_close(loaded(logp, kc), expected, rtol=0,
                                   atol=f32_atol(expected, 64))


def test_copy_up_index_keeps_the_band_and_copies_from_below_the_cutoff():
    index = copy_up_index(400, 0.1)
    assert np.array_equal(index[:400], np.arange(400))
    assert index[400:].max() < 400 - 0.1 * 400 + 4 and index[400:].min() >= 0
    assert np.all((np.arange(400, 1025) - index[400:]) % 4 == 0)   # phase-coherent shifts


@pytest.mark.parametrize(("rate", "seconds", "channels"), [
    (8000, 0.7, 1), (16000, 1.3, 2), (22050, 2.1, 1), (44100, 1.0, 2)])
def test_pipeline_duration_and_input_band(lite, rate, seconds, channels):
    rng = np.random.default_rng(rate)
    x = (0.1 * rng.standard_normal((channels, int(round(seconds * rate))))).astype(np.float32)
    result = lite.enhance(x, rate)
    n = output_length(x.shape[-1], rate)
    assert result.audio.shape == (channels, n) and result.sample_rate == 48000
    assert result.status == ["enhanced"] * channels
    assert all(c < rate / 2 for c in result.cutoff_hz)
    x48 = audio.resample(x, rate, 48000)[:, :n]
    for row_in, row_out, cut in zip(x48, result.audio, result.cutoff_hz, strict=True):
        diff = np.fft.rfft(row_out - row_in)
        freqs = np.fft.rfftfreq(n, 1 / 48000)
        below = np.abs(diff[freqs < cut - 1]).max()
        assert below < 1e-4 * np.abs(np.fft.rfft(row_in)).max()        # input band untouched
        total_in = np.sum(np.abs(np.fft.rfft(row_in)) ** 2)
        assert np.sum(np.abs(diff[freqs >= cut]) ** 2) > 1e-6 * total_in  # a high band added


def test_stereo_identical_channels_and_silent_channel(lite):
    mono = noise_lowpassed(6000.0)[0]
    out = lite.enhance(np.stack([mono, mono]), 48000).audio
    np.testing.assert_array_equal(out[0], out[1])
    result = lite.enhance(np.stack([mono, np.zeros_like(mono)]), 48000)
    assert result.status == ["enhanced", "silent"]
    assert np.all(result.audio[1] == 0)


def test_full_band_input_passes_through(lite):
    x = (0.1 * np.random.default_rng(3).standard_normal(48000)).astype(np.float32)
    result = lite.enhance(x, 48000)
    assert result.status == ["full-band"]
    np.testing.assert_array_equal(result.audio[0], x)


def test_blockwise_prediction_equals_one_block(lite, monkeypatch):
    import audiosr_core.lite_pipeline as lite_pipeline

    x = noise_lowpassed(5000.0, seconds=3.0)[0]
    whole = lite.extend(x, 220)
    monkeypatch.setattr(lite_pipeline, "BLOCK_FRAMES", 40)
    np.testing.assert_allclose(lite.extend(x, 220), whole, atol=1e-6)


def test_highpass_removes_everything_below_the_cutoff():
    x = noise_lowpassed(20000.0)[0]
    y = highpass(x, 5000.0)
    spec = np.abs(np.fft.rfft(y))
    freqs = np.fft.rfftfreq(len(x), 1 / 48000)
    assert spec[freqs < 5000].max() < 1e-3 and spec[freqs >= 5000].mean() > 1.0


# --------------------------------------------------------------------------------- training
def make_corpus(folder: Path, clips: int = 3) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(clips):
        path = folder / "speech" / f"clip{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, 0.1 * rng.standard_normal(4 * 48000), 48000, subtype="PCM_16")
        rows.append({"clip": f"speech/clip{i}.wav", "domain": "speech", "bandwidth_hz": 20000})
    with open(folder / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


def test_prepare_and_resumable_training(tmp_path: Path, monkeypatch):
    corpus = make_corpus(tmp_path / "corpus")
    data = train_lite.prepare(corpus, tmp_path / "data", draws=3, seed=0, workers=1)
    with open(data / train_lite.META_NAME, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9 and {r["kind"] for r in rows} <= {"cheby1", "ellip", "butter", "boxcar"}
    refs = np.load(data / "refs.npy")
    assert refs.shape == (3, 4 * 48000) and refs.dtype == np.int16
    kwargs = dict(steps=6, batch=2, crop_s=0.5, save_every=2, threads=1)
    straight = train_lite.train(data, tmp_path / "a", SMALL, **kwargs)

    calls = []
    real_loss = train_lite.high_band_loss

    def interrupted_at_step_5(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_loss(*args)

    monkeypatch.setattr(train_lite, "high_band_loss", interrupted_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train_lite.train(data, tmp_path / "b", SMALL, **kwargs)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["step"] == 4
    monkeypatch.setattr(train_lite, "high_band_loss", real_loss)
    resumed = train_lite.train(data, tmp_path / "b", SMALL, **kwargs)   # continues 4 -> 6
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["step"] == 6
    a, b = LiteModel.from_pretrained(straight), LiteModel.from_pretrained(resumed)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, msg=f"{name} differs after resuming")
    with pytest.raises(ValueError, match="another config"):
        train_lite.train(data, tmp_path / "b", LiteConfig(hidden=8, dilations=(1,)), **kwargs)


def test_training_loss_goes_down(tmp_path: Path):
    corpus = make_corpus(tmp_path / "corpus", clips=2)
    data = train_lite.prepare(corpus, tmp_path / "data", draws=2, seed=1, workers=1)
    run = tmp_path / "run"
    train_lite.train(data, run, SMALL, steps=100, batch=4, crop_s=0.5, lr=3e-3, threads=1)
    with open(run / "log.csv", newline="") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(("samples", "rate"), [(1, 8000), (300, 22050), (2000, 44100)])
def test_very_short_input(lite, samples, rate):
    x = (0.1 * np.random.default_rng(samples).standard_normal(samples)).astype(np.float32)
    result = lite.enhance(x, rate)
    assert result.audio.shape == (1, output_length(samples, rate))
    assert np.all(np.isfinite(result.audio))
