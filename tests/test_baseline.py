"""DSP band-replication baselines and the quality benchmark's input simulation."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiosr_core import baseline, dsp, metrics
from audiosr_core import evaluation as quality

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def noise8k() -> tuple[np.ndarray, np.ndarray]:
    """(full-band white noise, the same low-passed at 8 kHz), 1 s at 48 kHz."""
    full = 0.1 * np.random.default_rng(0).standard_normal(48000).astype(np.float32)
    return full, dsp.lowpass(full, 8000.0)


def harmonic_1f(seconds: float = 1.5, f0: float = 97.0) -> np.ndarray:
    """Harmonics of ``f0`` up to 24 kHz with amplitudes ``1/k`` (a -6 dB/octave envelope)."""
    t = np.arange(int(seconds * 48000)) / 48000
    ks = np.arange(1, int(23900 // f0) + 1)
    phases = np.random.default_rng(1).uniform(0, 2 * np.pi, ks.size)
    wave = (np.sin(2 * np.pi * f0 * ks[:, None] * t + phases[:, None]) / ks[:, None]).sum(0)
    return (0.5 * wave / np.abs(wave).max()).astype(np.float32)


def test_sbr_keeps_input_band_exactly(noise8k):
    _, low = noise8k
    out = baseline.spectral_band_replication(low, 8000.0)
    kc = baseline.cutoff_bin(8000.0)
    assert kc == 341
    x, y = dsp.stft(low.astype(np.float64)), dsp.stft(out.astype(np.float64))
    inner = (slice(0, kc - 8), slice(4, -4))  # away from the cutoff bin and the clip's ends
    assert np.abs(y[inner] - x[inner]).max() < 1e-3 * np.abs(x[inner]).max()


def test_sbr_fills_band_up_to_24k(noise8k):
    _, low = noise8k
    out = baseline.spectral_band_replication(low, 8000.0)
    p_in = (np.abs(dsp.stft(low.astype(np.float64))) ** 2).mean(axis=1)
    p_out = (np.abs(dsp.stft(out.astype(np.float64))) ** 2).mean(axis=1)
    ref_level = p_in[40:300].mean()
    edges = np.arange(8500, 24001, 1500) / baseline.BIN_HZ
    for lo, hi in zip(edges[:-1].astype(int), edges[1:].astype(int), strict=True):
        assert p_in[lo:hi].mean() < 1e-3 * ref_level            # what dsp.lowpass leaves
        assert 1e-4 * ref_level < p_out[lo:hi].mean() < ref_level
        assert p_out[lo:hi].mean() > 20 * p_in[lo:hi].mean()


def test_sbr_shapes_dtypes_and_passthrough(noise8k):
    full, low = noise8k
    out = baseline.spectral_band_replication(low.astype(np.float64), 8000.0)
    assert out.shape == low.shape and out.dtype == np.float32 and np.isfinite(out).all()
    stereo = np.stack([low, 0.5 * low])
    out2 = baseline.spectral_band_replication(stereo, None)       # detected per channel
    assert out2.shape == (2, low.size) and out2.dtype == np.float32
    np.testing.assert_allclose(out2[1], 0.5 * out2[0], rtol=0, atol=1e-6)
    # silent and full-band channels pass through unchanged when the cutoff is detected
    both = np.stack([np.zeros_like(low), full])
    np.testing.assert_array_equal(baseline.spectral_band_replication(both), both)
    oracle = baseline.oracle_band_replication(stereo, 8000.0, np.stack([full, 0.5 * full]))
    assert oracle.shape == stereo.shape and np.isfinite(oracle).all()


@pytest.mark.parametrize("bad", [0.0, -5.0, 24000.0, 30000.0, 100.0])
def test_sbr_rejects_bad_cutoffs(noise8k, bad):
    with pytest.raises(ValueError):
        baseline.spectral_band_replication(noise8k[1], bad)


def test_rejects_bad_arrays(noise8k):
    full, low = noise8k
    with pytest.raises(ValueError, match="float array"):
        baseline.spectral_band_replication(np.zeros((1, 1, 10), np.float32), 4000.0)
    with pytest.raises(ValueError, match="NaN"):
        baseline.spectral_band_replication(np.full(4800, np.nan, np.float32), 4000.0)
    with pytest.raises(ValueError, match="shape"):
        baseline.oracle_band_replication(low, 8000.0, full[:-1])


def test_harmonic_1f_sbr_beats_input_and_oracle_beats_sbr():
    ref = harmonic_1f()
    low, rate = quality.simulate_input(ref, 6000.0)
    x48 = quality.upsample(low, rate, ref.size)
    sbr = baseline.spectral_band_replication(x48, 6000.0)
    oracle = baseline.oracle_band_replication(x48, 6000.0, ref)
    hf = {name: metrics.lsd_band(ref, est, 6000.0, math.inf)
          for name, est in [("input", x48), ("sbr", sbr), ("oracle", oracle)]}
    assert hf["oracle"] < 0.9 * hf["sbr"] < hf["input"]
    assert hf["sbr"] < 0.5 * hf["input"]


def test_simulated_input_is_band_limited_at_the_cutoff():
    assert [quality.input_rate(c) for c in (4000, 8000, 12000, 16000)] == [8000, 16000, 24000,
                                                                          32000]
    ref = 0.1 * np.random.default_rng(2).standard_normal(48000).astype(np.float32)
    for cutoff in (4000.0, 8000.0):
        low, rate = quality.simulate_input(ref, cutoff)
        assert rate == 2 * cutoff and low.shape == (int(rate),) and low.dtype == np.float32
        x48 = quality.upsample(low, rate, ref.size)
        assert x48.shape == ref.shape
        assert 0.9 * cutoff <= dsp.detect_cutoff(x48).hz <= cutoff


def test_benchmark_end_to_end_on_two_tiny_clips(tmp_path):
    """``benchmarks/quality.py`` as a user runs it."""
    rng = np.random.default_rng(3)
    for domain in ("speech", "music"):
        (tmp_path / domain).mkdir()
        sf.write(tmp_path / domain / f"{domain}_a.wav",
                 0.1 * rng.standard_normal(24000), 48000, subtype="FLOAT")
    (tmp_path / "manifest.csv").write_text("clip,domain,cliff_hz\n"
                                           "speech/speech_a.wav,speech,20000\n")
    out = tmp_path / "q.json"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "quality.py"), "--refs",
                          str(tmp_path), "--cutoffs", "8000", "--json", str(out),
                          "--no-progress"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    text = run.stdout
    assert "### speech (1 clips)" in text and "### all clips, full-band LSD" in text
    import json

    summary = json.loads(out.read_text())["summary"]
    speech, music = summary["speech"]["8 kHz"], summary["music"]["8 kHz"]
    assert speech["sbr"]["LSD-HF"] < speech["unprocessed"]["LSD-HF"]
    assert speech["oracle"]["LSD-HFcl"] < speech["unprocessed"]["LSD-HFcl"]
    assert math.isnan(music["sbr"]["LSD-cl"])                  # no manifest row: no cliff
