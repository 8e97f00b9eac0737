"""--output-rate / output_rate=: other output rates than 48 kHz, on every path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiosr_core import audio
from audiosr_core.enhancer import EnhanceOptions
from audiosr_core.rates import output_length

REPO = Path(__file__).resolve().parents[1]
RATES = (8000, 16000, 22050, 44100, 48000, 88200, 96000, 192000)


def _speechy(rate: int, seconds: float, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Harmonic tones up to the input's band, with noise: ``[channels, n]`` float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    x = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / rate) / k
            for k in range(1, int(0.45 * rate / 200)))
    rows = [0.2 * x / np.abs(x).max() * (0.8 ** c) + 0.003 * rng.standard_normal(t.size)
            for c in range(channels)]
    return np.stack(rows).astype(np.float32)


def _band_db(x: np.ndarray, rate: int, lo: float, hi: float) -> float:
    """Mean power in ``[lo, hi)`` Hz, dB (Parseval: independent of the rate and length)."""
    spec = np.abs(np.fft.rfft(x, axis=-1)) ** 2 / x.shape[-1] ** 2
    f = np.fft.rfftfreq(x.shape[-1], 1 / rate)
    return float(10 * np.log10(spec[..., (f >= lo) & (f < hi)].sum() + 1e-20))


@pytest.mark.parametrize("out_rate", RATES)
def test_length_rate_level_and_input_band_kept_per_rate(lite, out_rate):
    x = _speechy(16000, 1.3)
    ref = lite.enhance(x, 16000)
    res = lite.enhance(x, 16000, output_rate=out_rate)
    assert res.sample_rate == out_rate
    assert res.audio.shape == (2, output_length(x.shape[-1], 16000, out_rate))
    assert res.audio.dtype == np.float32 and np.isfinite(res.audio).all()
    assert res.status == ref.status and res.cutoff_hz == ref.cutoff_hz
    # exactly the 48 kHz result resampled (soxr VHQ), so the level and the band are kept
    expected = audio.resample(ref.audio, 48000, out_rate)[:, :res.audio.shape[-1]]
    n = min(expected.shape[-1], res.audio.shape[-1])
    assert np.allclose(res.audio[:, :n], expected[:, :n], atol=1e-6)
    band = min(7000.0, 0.45 * out_rate)               # the input band below its 8 kHz edge
    for ch in range(2):
        assert abs(_band_db(res.audio[ch], out_rate, 100, band)
                   - _band_db(x[ch], 16000, 100, band)) < 0.2
        assert abs(audio.rms_dbfs(res.audio[ch]) - audio.rms_dbfs(ref.audio[ch])) < 0.3


def test_lengths_over_rates_and_odd_sizes(lite):
    rng = np.random.default_rng(1)
    for in_rate in (8000, 11025, 22050, 44100):
        for n in (1, 2, 97, 4411, 10001):
            x = 0.1 * rng.standard_normal(n).astype(np.float32)
            for out_rate in (8000, 44100, 96000, 12345):
                res = lite.enhance(x, in_rate, output_rate=out_rate)
                assert res.audio.shape[-1] == output_length(n, in_rate, out_rate)
                assert res.audio.shape[-1] == max(1, round(n * out_rate / in_rate)) or \
                    abs(res.audio.shape[-1] - n * out_rate / in_rate) <= 0.5


@pytest.mark.parametrize("bad", [7999, 0, -44100, 44100.5, float("nan"), "44100", True, 400000])
def test_bad_output_rates_are_refused(bad):
    with pytest.raises(ValueError, match="output_rate must be a whole number of Hz from 8000"):
        EnhanceOptions(output_rate=bad)
    assert EnhanceOptions(output_rate=44100.0).output_rate == 44100


def test_enhance_many_and_diffusion_model(tiny_audiosr):
    x = _speechy(22050, 0.8, channels=1)
    res = tiny_audiosr.enhance(x, 22050, steps=2, output_rate=44100)
    assert res.sample_rate == 44100 and res.audio.shape == (1, output_length(x.shape[-1], 22050,
                                                                             44100))
    ref = tiny_audiosr.enhance(x, 22050, steps=2)
    expected = audio.resample(ref.audio, 48000, 44100)[:, :res.audio.shape[-1]]
    assert np.allclose(res.audio, expected, atol=1e-5)
    many = tiny_audiosr.enhance_many([(x, 22050), (x[:, :5000], 22050)], steps=2,
                                     output_rate=96000)
    assert [m.audio.shape[-1] for m in many] == [output_length(x.shape[-1], 22050, 96000),
                                                 output_length(5000, 22050, 96000)]


def test_streamed_file_equals_in_memory_at_another_rate(lite, tmp_path):
    x = _speechy(32000, 9.0)
    src = tmp_path / "long.wav"
    sf.write(src, x.T, 32000, subtype="FLOAT")
    memory = lite.enhance_file(src, tmp_path / "memory.wav", output_rate=44100, subtype="FLOAT")
    streamed_lite = type(lite).__new__(type(lite))
    streamed_lite.__dict__.update(lite.__dict__)
    streamed_lite.stream_above_s = 2.0
    streamed_lite.window_s = 3.0
    streamed = streamed_lite.enhance_file(src, tmp_path / "streamed.wav", output_rate=44100,
                                          subtype="FLOAT")
    assert streamed.streamed and not memory.streamed
    assert streamed.sample_rate == memory.sample_rate == 44100
    a, ra = sf.read(tmp_path / "memory.wav", dtype="float32", always_2d=True)
    b, rb = sf.read(tmp_path / "streamed.wav", dtype="float32", always_2d=True)
    assert ra == rb == 44100 and a.shape == b.shape == (output_length(x.shape[-1], 32000,
                                                                      44100), 2)
    # windows of 3 s instead of one pass: equal away from the ends, as at 48 kHz
    inner = slice(44100, -44100)
    assert np.abs(a[inner] - b[inner]).max() < 2e-3


def test_cli_output_rate(tmp_path):
    x = _speechy(16000, 1.0)
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "a.wav", x.T, 16000)
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "audiosr_core", "enhance", str(tmp_path / "in"),
                           "-o", str(tmp_path / "out"), "--output-rate", "44100", "--report",
                           str(report), "-q"], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    info = sf.info(tmp_path / "out" / "in" / "a.wav")
    assert info.samplerate == 44100 and info.frames == output_length(x.shape[-1], 16000, 44100)
    assert json.loads(report.read_text())["files"][0]["result"] == "processed"
    bad = subprocess.run([sys.executable, "-m", "audiosr_core", "enhance", str(tmp_path / "in"),
                          "-o", str(tmp_path / "out2"), "--output-rate", "100"],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert bad.returncode == 2 and "output_rate must be a whole number of Hz from 8000" in \
        bad.stderr and "Traceback" not in bad.stderr
