"""The packaged ``lite`` model: loads offline, is small, and reproduces its published dev-set
scores (``audiosr_core/assets/lite/scores.json``, written by ``benchmarks/quality.py``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import audiosr_core
from audiosr_core import evaluation as quality
from audiosr_core.lite_pipeline import LiteSR
from audiosr_core.models.lite import LiteConfig
from audiosr_core.weights import LITE_FOLDER

CHECKED_CLIPS = ("music/music_007_sonicpi_loop.wav", "sfx/sfx_018_openttd_opensfx.wav",
                 "speech/speech_010_tuxpaint_be.wav")
CUTOFFS = (4000.0, 8000.0, 12000.0, 16000.0)


@pytest.fixture(scope="module")
def scores() -> dict:
    return json.loads((LITE_FOLDER / "scores.json").read_text())


@pytest.fixture(scope="module")
def lite() -> LiteSR:
    return audiosr_core.load("lite")


def test_packaged_model_is_small_and_documented(lite):
    assert isinstance(lite, LiteSR)
    assert (LITE_FOLDER / "model.safetensors").stat().st_size <= 10 * 2**20
    card = (LITE_FOLDER / "README.md").read_text()
    assert "python -m audiosr_core.train.lite train" in card          # the exact command
    config = json.loads((LITE_FOLDER / "config.json").read_text())
    assert LiteConfig.from_dict(config) == lite.model.config


def test_published_summary_beats_unprocessed_and_sbr_everywhere(scores):
    """The model card's claim, checked on the stored full dev-set run."""
    for group, by_cut in scores["summary"].items():
        for cut, systems in by_cut.items():
            model = systems["model"]["LSD"]
            assert model < systems["unprocessed"]["LSD"], (group, cut)
            assert model < systems["sbr"]["LSD"], (group, cut)
    assert scores["summary"]["all"]["4 kHz"]["model"]["LSD"] <= 2.0


@pytest.mark.parametrize("clip", CHECKED_CLIPS)
def test_reproduces_published_dev_scores(lite, scores, devset_dir, clip):
    published = {(r["clip"], r["cutoff_hz"]): r for r in scores["rows"] if r["system"] == "model"}
    cliffs = {c.name: c.cliff_hz for c in quality.find_clips(devset_dir)}
    ref = quality.load_reference(devset_dir / clip)
    for cut in CUTOFFS:
        low, rate = quality.simulate_input(ref, cut)
        out = lite.enhance(low, rate).audio[..., :ref.shape[-1]]
        got = quality.score_channels(ref, out, cut, cliffs[clip])
        want = published[(clip, cut)]
        assert got["LSD"] == pytest.approx(want["LSD"], abs=0.01), (clip, cut)
        assert got["LSD-HF"] == pytest.approx(want["LSD-HF"], abs=0.01), (clip, cut)
        # the input's own band is untouched: the added signal has nothing below the edge
        x48 = quality.upsample(low, rate, ref.shape[-1])
        edge = lite.enhance(low, rate).cutoff_hz[0]
        diff = np.fft.rfft(out[0] - x48[0])
        freqs = np.fft.rfftfreq(out.shape[-1], 1 / 48000)
        assert np.abs(diff[freqs < edge - 1]).max() < 1e-4 * np.abs(np.fft.rfft(x48[0])).max()


def test_long_file_streamed_equals_one_pass_without_seams(lite, tmp_path, monkeypatch):
    """A 40 s stereo file streamed in 6 s windows (12 of them, 1.02 s context each side) equals
    the one-pass result away from the file ends, with no jump or level change at any window
    boundary. (Window length does not change what is checked: each boundary is a boundary;
    short windows give many of them on a short file.)"""
    import soundfile as sf

    from audiosr_core import audio, chunking

    rate, seconds, window_s = 16000, 40, 6.0
    n = rate * seconds
    t = np.arange(n) / rate
    rng = np.random.default_rng(0)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 0.3 * t)
    left = envelope * (0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.01 * np.sin(t)))
                       + 0.05 * rng.standard_normal(n))
    right = 0.2 * np.sin(2 * np.pi * 330 * t) + 0.03 * rng.standard_normal(n)
    src = tmp_path / "long.wav"
    sf.write(src, np.stack([left, right], axis=1), rate, subtype="PCM_16")
    one = lite.enhance_file(src, tmp_path / "one.wav", subtype="FLOAT")
    monkeypatch.setattr(lite, "stream_above_s", 10.0)
    monkeypatch.setattr(lite, "window_s", window_s)
    streamed = lite.enhance_file(src, tmp_path / "streamed.wav", subtype="FLOAT")
    assert streamed.streamed and not one.streamed
    assert streamed.cutoff_hz == one.cutoff_hz and streamed.status == ["enhanced"] * 2
    a, rate_a = audio.load(tmp_path / "one.wav")
    b, _ = audio.load(tmp_path / "streamed.wav")
    assert rate_a == 48000 and a.shape == b.shape == (2, 48000 * seconds)   # exact duration
    inner = slice(48000, -48000)
    np.testing.assert_allclose(b[:, inner], a[:, inner], atol=2e-4)
    windows = chunking.plan_windows(b.shape[1], int(window_s * 48000), lite.CONTEXT,
                                    lite.CROSSFADE, align=512)
    assert len(windows) >= 9
    jumps = np.abs(np.diff(b, axis=1))
    for w in windows[1:]:
        for edge in (w.start, windows[windows.index(w) - 1].stop):
            near = jumps[:, edge - 240:edge + 240].max()
            assert near <= 1.01 * jumps[:, edge - 4800:edge + 4800].max()
            level = [20 * np.log10(np.sqrt(np.mean(y[:, edge - 2400:edge + 2400] ** 2)))
                     for y in (a, b)]
            assert abs(level[0] - level[1]) < 0.01
    x48 = audio.resample(audio.load(src)[0], rate, 48000)
    for c, edge in enumerate(streamed.cutoff_hz):
        diff = np.fft.rfft(b[c] - x48[c, :b.shape[1]])
        freqs = np.fft.rfftfreq(b.shape[1], 1 / 48000)
        below = np.abs(diff[freqs < edge - 50]).max()
        assert below < 1e-3 * np.abs(np.fft.rfft(x48[c])).max()      # the input band is kept
