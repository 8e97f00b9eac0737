"""``lite`` outside and at the edges of the band range it was trained for (2-16 kHz edges):
below it the input passes through with a status; inside it the generated band never rises
far above the input's own band."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from audiosr_core import audio
from audiosr_core.lite_pipeline import MIN_EDGE_HZ, detect_band
from audiosr_core.status import Status

RATE = 16000


def lowpassed_noise(cutoff_hz: float, rate: int = RATE, seconds: float = 2.0,
                    seed: int = 0, pink: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(rate * seconds))
    if pink:
        spec = np.fft.rfft(x)
        spec[1:] /= np.sqrt(np.fft.rfftfreq(x.size, 1 / rate)[1:])
        x = np.fft.irfft(spec, x.size)
    sos = scipy.signal.cheby1(8, 0.1, cutoff_hz / (rate / 2), output="sos")
    y = scipy.signal.sosfiltfilt(sos, x)
    return (0.25 * y / np.abs(y).max()).astype(np.float32)


@pytest.mark.parametrize("cutoff", [1100, 1300, 1500, 1700, 1850])
def test_edges_below_the_trained_range_pass_through(lite, cutoff):
    """Noise low-passed at 1.5 kHz once got a peak 17 dB over its own band (RMS +4.8 dB)."""
    x = lowpassed_noise(cutoff)
    res = lite.enhance(x, RATE)
    assert res.status == [Status.BELOW_RANGE]
    assert abs(res.cutoff_hz[0] - cutoff) < 0.1 * cutoff
    np.testing.assert_array_equal(res.audio, audio.resample(x[None], RATE))
    assert detect_band(audio.resample(x, RATE), RATE).status is Status.BELOW_RANGE


@pytest.mark.parametrize("cutoff", [2100, 2500, 3000, 4000, 6000, 7000])
@pytest.mark.parametrize("pink", [False, True])
def test_the_generated_band_never_towers_over_the_input_band(lite, cutoff, pink):
    """Inside the trained range: the loudest part of the generated band (Welch PSD, 23 Hz bins)
    stays within 8 dB of the input band's mean level near its edge (measured: at most 6 dB on
    white noise, whose true spectrum is flat), and the file's RMS rises by less than 4 dB."""
    x = lowpassed_noise(cutoff, pink=pink, seed=cutoff)
    res = lite.enhance(x, RATE)
    assert res.status == [Status.ENHANCED] and res.cutoff_hz[0] >= MIN_EDGE_HZ
    plain = audio.resample(x, RATE)
    f, p_out = scipy.signal.welch(res.audio[0], 48000, nperseg=2048)
    _, p_in = scipy.signal.welch(plain, 48000, nperseg=2048)
    near_edge = p_in[(f > 0.5 * cutoff) & (f < 0.9 * cutoff)].mean()
    generated = p_out[f > 1.05 * cutoff]
    assert 10 * np.log10(generated.max() / near_edge) < 8.0
    gain_db = 10 * np.log10(np.mean(res.audio[0] ** 2) / np.mean(plain ** 2))
    assert 0.0 < gain_db < 4.0


@pytest.mark.parametrize("signal", ["dc", "dc_plus_hum", "sub_khz_noise"])
def test_dc_and_sub_khz_content_pass_through_without_overshoot(lite, signal):
    n = RATE * 2
    t = np.arange(n) / RATE
    x = {"dc": np.full(n, 0.3),
         "dc_plus_hum": 0.3 + 0.05 * np.sin(2 * np.pi * 50 * t),
         "sub_khz_noise": lowpassed_noise(600) * 2}[signal].astype(np.float32)
    res = lite.enhance(x, RATE)
    assert res.status == [Status.LOW]
    plain = audio.resample(x[None], RATE)
    np.testing.assert_array_equal(res.audio, plain)
    assert np.abs(res.audio).max() <= np.abs(plain).max()
