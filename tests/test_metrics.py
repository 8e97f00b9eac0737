"""LSD and SI-SDR."""

from __future__ import annotations

import numpy as np
import pytest

from audiosr_core import metrics


def noise(n: int = 48000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def hand_lsd(ref: np.ndarray, est: np.ndarray) -> float:
    """ssr_eval LSD at 48 kHz by explicit centred framing, periodic Hann and float64 FFTs."""
    n_fft, hop = 2229, 480
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)

    def mag(x: np.ndarray) -> np.ndarray:
        padded = np.pad(x.astype(np.float64), n_fft // 2)
        frames = [padded[i:i + n_fft] * window for i in range(0, padded.size - n_fft + 1, hop)]
        return np.abs(np.fft.rfft(frames, axis=1)).T

    t, e = mag(ref), mag(est)
    return float(np.mean(np.sqrt(np.mean(np.log10(t**2 / (e + 1e-12) ** 2 + 1e-12) ** 2,
                                         axis=0))))


@pytest.mark.parametrize("gain", [0.5, 2.0, 0.1])
def test_lsd_of_a_pure_gain_is_two_log10_gain(gain):
    x = noise()
    assert metrics.lsd(x, gain * x) == pytest.approx(2 * abs(np.log10(gain)), abs=1e-5)


def test_lsd_matches_hand_computation_on_a_toy_case():
    """A noisy, tilted estimate of a tone-plus-noise reference, by explicit framing and FFT."""
    sr, n = 48000, 4800
    ref = (np.sin(2 * np.pi * 1000 * np.arange(n) / sr) + 0.1 * noise(n)).astype(np.float32)
    est = (0.5 * ref + 0.05 * np.cumsum(noise(n, seed=3)) / 30).astype(np.float32)
    assert metrics.lsd(ref, est, sr) == pytest.approx(hand_lsd(ref, est), rel=1e-4)
    assert metrics.lsd_stft_params(48000) == (2229, 480)
    assert metrics.lsd_stft_params(44100) == (2048, 441)


def test_lsd_matches_librosa_reference_implementation():
    librosa = pytest.importorskip("librosa")
    ref, est = noise(), noise(seed=1) * 0.3 + noise()
    t = np.abs(librosa.stft(ref, hop_length=480, n_fft=2229)).astype(np.float64)
    e = np.abs(librosa.stft(est, hop_length=480, n_fft=2229)).astype(np.float64)
    expected = np.mean(np.sqrt(np.mean(np.log10(t**2 / (e + 1e-12) ** 2 + 1e-12) ** 2, axis=0)))
    assert metrics.lsd(ref, est) == pytest.approx(expected, rel=1e-5)


def test_lsd_band_splits_high_and_low():
    x = noise()
    spec = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(x.size, 1 / 48000)
    spec[freqs > 8000] *= 0.01  # estimate: high band 40 dB down, low band intact
    est = np.fft.irfft(spec, x.size).astype(np.float32)
    assert metrics.lsd_band(x, est, 0, 7000) < 0.05
    assert metrics.lsd_band(x, est, 9000, np.inf) == pytest.approx(4.0, abs=0.05)
    full = metrics.lsd(x, est)
    assert metrics.lsd_band(x, est, 0, 7000) < full < metrics.lsd_band(x, est, 9000, np.inf)
    with pytest.raises(ValueError, match="no STFT bin"):
        metrics.lsd_band(x, est, 30000, 40000)


def test_lsd_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="differ by 200 samples"):
        metrics.lsd(noise(48000), noise(47800))
    with pytest.raises(ValueError, match="1-D"):
        metrics.lsd(noise().reshape(2, -1), noise().reshape(2, -1))


def test_si_sdr():
    x, n = noise(), noise(seed=5)
    assert metrics.si_sdr(x, 3.0 * x) > 100
    assert metrics.si_sdr(x, x + 0.1 * n) == pytest.approx(20.0, abs=0.3)
    with pytest.raises(ValueError, match="silent"):
        metrics.si_sdr(np.zeros(100), noise(100))


def test_lsd_of_an_empty_band_uses_a_float64_fft():
    """An estimate with an exactly empty high band, as a float32 array: the empty bins must be
    at float64 rounding level (as in ssr_eval), not float32's, which would lower LSD by ~0.15."""
    x = noise(48000)
    spec = np.fft.rfft(x.astype(np.float64))
    spec[np.fft.rfftfreq(x.size, 1 / 48000) >= 8000] = 0
    est = np.fft.irfft(spec, x.size).astype(np.float32)
    assert metrics.lsd(x, est) == pytest.approx(hand_lsd(x, est), rel=1e-3)
