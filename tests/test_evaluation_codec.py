"""The quality benchmark's MP3 condition (encode, decode, delay alignment) and ViSQOL metric."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from audiosr_core import audio, dsp, metrics
from audiosr_core import evaluation as quality


def harmonic_1f(seconds: float, f0: float = 197.0, rate: int = 48000) -> np.ndarray:
    """Harmonics of ``f0`` up to 24 kHz with amplitudes ``1/k``, peak 0.5, float32."""
    t = np.arange(int(seconds * rate)) / rate
    ks = np.arange(1, int(23900 // f0) + 1)
    phases = np.random.default_rng(1).uniform(0, 2 * np.pi, ks.size)
    wave = (np.sin(2 * np.pi * f0 * ks[:, None] * t + phases[:, None]) / ks[:, None]).sum(0)
    return (0.5 * wave / np.abs(wave).max()).astype(np.float32)


def music_like(seconds: float) -> np.ndarray:
    """``[1, n]`` 48 kHz: the harmonic series, amplitude-modulated, plus a little noise."""
    n = int(seconds * 48000)
    t = np.arange(n) / 48000
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t)
    noise = 0.02 * np.random.default_rng(2).standard_normal(n)
    return (harmonic_1f(seconds) * env + noise).astype(np.float32)[None]


@pytest.fixture(scope="module")
def codec10() -> tuple[np.ndarray, quality.SimulatedInput, bytes]:
    """(10 s reference, its MP3 input, the encoded bytes of its 44.1 kHz version)."""
    ref = music_like(10.0)
    original = audio.resample(ref, 48000, quality.MP3_RATE)
    return ref, quality.mp3_input(ref), quality.mp3_encode(original, quality.MP3_RATE)


def test_mp3_round_trip_keeps_length(codec10):
    ref, inp, data = codec10
    n44 = audio.resample(ref, 48000, quality.MP3_RATE).shape[-1]
    decoded, rate = quality.mp3_decode(data)
    assert rate == quality.MP3_RATE and decoded.shape[0] == 1
    assert decoded.shape[-1] >= n44                                   # frames, not trimmed
    assert inp.low.shape == (1, n44) and inp.rate == quality.MP3_RATE
    assert inp.x48.shape == ref.shape and inp.low.dtype == np.float32


def test_alignment_finds_a_known_delay_exactly():
    x = music_like(2.0)[0]
    for delay in (123, -57):
        shifted = quality.remove_delay(x, -delay, x.size)             # x delayed by `delay`
        assert quality.estimate_delay(x, shifted, 2000) == delay
        restored = quality.remove_delay(shifted, delay, x.size)
        kept = slice(0, x.size - delay) if delay > 0 else slice(-delay, None)
        np.testing.assert_array_equal(restored[kept], x[kept])
    assert quality.estimate_delay(x, np.zeros_like(x), 100) == 0      # silence: no shift


def test_real_encoder_delay_is_removed(codec10):
    ref, inp, data = codec10
    original = audio.resample(ref, 48000, quality.MP3_RATE)
    decoded, _ = quality.mp3_decode(data)
    assert quality.estimate_delay(original, decoded, quality.MP3_MAX_LAG) == inp.delay > 0
    assert abs(quality.estimate_delay(original, inp.low, 200)) <= 1


def test_bitrate_is_48_kbps(codec10):
    ref, inp, data = codec10
    assert quality.mp3_compression_level(48) == pytest.approx(0.9444, abs=1e-4)
    kbps = quality.mp3_bitrate(data, 10.0)
    assert abs(kbps - 48) <= 0.1 * 48, kbps
    assert inp.kbps == pytest.approx(kbps)


def test_decoded_band_edge_lies_between_10_and_17_khz(codec10):
    _, inp, _ = codec10
    assert 10000 <= inp.cutoff_hz <= 17000, inp.cutoff_hz
    assert inp.condition == "mp3" and inp.label == "MP3 48 kb/s"


def test_evaluate_adds_an_mp3_block_and_a_visqol_column(tmp_path):
    import soundfile as sf

    (tmp_path / "music").mkdir()
    sf.write(tmp_path / "music" / "a.wav", music_like(1.5)[0], 48000, subtype="FLOAT")
    clips = quality.find_clips(tmp_path)
    rows, seconds = quality.evaluate(clips, [8000], quality.baseline_systems(), progress=False,
                                     conditions=("cheby8", "mp3"), visqol=True)
    summary = quality.summarize(rows)
    assert list(summary["music"]) == ["8 kHz", "MP3 48 kb/s"]
    mp3 = summary["all"]["MP3 48 kb/s"]
    assert mp3["sbr"]["LSD-HF"] < mp3["unprocessed"]["LSD-HF"]
    assert 1 <= mp3["unprocessed"]["ViSQOL"] <= 5 and seconds["visqol"] > 0
    assert {r["codec_delay"] for r in rows if r["condition"] == "mp3"} == {1105}
    text = quality.markdown(summary)
    assert "| MP3 48 kb/s | oracle |" in text and "### all clips, ViSQOL MOS-LQO" in text
    with pytest.raises(ValueError, match="unknown condition"):
        quality.simulated_inputs(music_like(0.5), [8000], ["aac"])


def test_visqol_identical_scores_high_and_orders_bandwidths():
    x = harmonic_1f(3.0)
    assert metrics.visqol(x, x) >= 4.5
    low4, low8 = dsp.lowpass(x, 4000.0), dsp.lowpass(x, 8000.0)
    assert metrics.visqol(x, low4) < metrics.visqol(x, low8)


def test_visqol_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "visqol", None)                  # import visqol fails
    with pytest.raises(ImportError, match=r'pip install "audiosr-plug\[eval\]"'):
        metrics.visqol(np.zeros(4800, np.float32), np.zeros(4800, np.float32))
