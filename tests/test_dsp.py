"""The DSP chain against the official parity fixture and on synthetic signals."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from audiosr_core import audio, dsp

from conftest import PARITY_STEMS


def assert_log_mel_close(actual: np.ndarray, expected: np.ndarray) -> None:
    """Fixture tolerance for log-mels: 1e-4 where expected > -8, 5e-3 everywhere."""
    err = np.abs(actual - expected)
    assert err[expected > -8].max() < 1e-4
    assert err.max() < 5e-3


@pytest.mark.parametrize("stem", PARITY_STEMS)
class TestParity:
    def test_mel_input(self, parity_expected, stem):
        d = parity_expected[stem]
        feats = dsp.mel_features(d["wave48"], int(d["target_frame"]))
        assert feats.log_mel.shape == d["mel_input"].shape
        assert feats.magnitude.shape == (int(d["target_frame"]), 1024)
        assert_log_mel_close(feats.log_mel, d["mel_input"])

    def test_cutoff(self, parity_expected, stem):
        d = parity_expected[stem]
        cut = dsp.detect_cutoff(d["wave48"])
        assert cut.bin == int(d["cutoff_bin"])
        assert cut.hz == float(d["cutoff_hz"])
        assert cut.status == "band-limited" and cut.enhance
        assert int(cut.hz) == int(d["lowpass_highcut_int"])

    def test_lowpass_both_kinds_and_rate_quirk(self, parity_expected, stem):
        d = parity_expected[stem]
        low_rate = dsp.hard_lowpass_rate(float(d["cutoff_hz"]))
        np.testing.assert_array_equal(d["lowpass_resample_up_down"],
                                      [[low_rate, 48000], [48000, low_rate]])
        for kind in ("cheby1", "butter"):
            out = dsp.lowpass(d["wave48"], float(d["cutoff_hz"]), kind=kind)
            assert out.dtype == np.float32 and out.shape == d["wave48"].shape
            assert np.abs(out - d[f"lowpass_{kind}"]).max() < 2e-6

    def test_mel_lowpass_and_mel_replacement(self, parity_expected, stem):
        d = parity_expected[stem]
        feats = dsp.mel_features(d["lowpass_cheby1"], int(d["target_frame"]))
        assert_log_mel_close(feats.log_mel, d["mel_lowpass"])
        k = dsp.mel_cutoff_bin(d["mel_lowpass"])
        assert k == int(d["cutoff_melbin"])
        replaced = dsp.replace_mel_low_band(d["mel_decoded"], d["mel_lowpass"], k)
        assert np.abs(replaced - d["mel_replaced"]).max() < 2e-4

    def test_waveform_replacement_and_final_level(self, parity_expected, stem):
        d = parity_expected[stem]
        res = dsp.replace_low_band(d["vocoder_wave"][0, 0], d["lowpass_cheby1"])
        assert res.cutoff_bin == int(d["post_cutoff_bin"])
        assert res.ratio_raw == pytest.approx(float(d["post_energy_ratio_raw"]), rel=1e-5)
        assert res.ratio == pytest.approx(float(d["post_energy_ratio_clamped"]), rel=1e-5)
        assert res.wave.shape == d["post_wave"][0, 0].shape
        assert np.abs(res.wave - d["post_wave"][0, 0]).max() < 2e-5
        final = dsp.official_output_level(res.wave)
        assert np.abs(final - d["final_wave"][0, 0]).max() < 2e-5


def brickwall_noise(cutoff_hz: float, seconds: float = 4.0, seed: int = 0) -> np.ndarray:
    """White noise at 48 kHz with every FFT bin at or above ``cutoff_hz`` removed."""
    n = int(seconds * dsp.SAMPLE_RATE)
    spec = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    spec[np.fft.rfftfreq(n, 1 / dsp.SAMPLE_RATE) >= cutoff_hz] = 0
    return (0.3 * np.fft.irfft(spec, n)).astype(np.float32)


@pytest.mark.parametrize("cutoff_hz", [2000, 4000, 8000, 12000, 16000])
def test_cutoff_of_lowpassed_noise(cutoff_hz):
    cut = dsp.detect_cutoff(brickwall_noise(cutoff_hz))
    assert abs(cut.hz - cutoff_hz) < 300
    assert cut.status == "band-limited"
    # A real IIR low-pass (elliptic, order 8) lands within the same distance.
    sos = scipy.signal.ellip(8, 0.1, 60, cutoff_hz, fs=dsp.SAMPLE_RATE, output="sos")
    noise = np.random.default_rng(1).standard_normal(4 * dsp.SAMPLE_RATE)
    cut = dsp.detect_cutoff(scipy.signal.sosfilt(sos, noise).astype(np.float32))
    assert abs(cut.hz - cutoff_hz) < 300


def test_cutoff_status_for_silence_full_band_and_rumble():
    assert dsp.detect_cutoff(np.zeros(48000, np.float32)).status == "silent"
    assert dsp.detect_cutoff(1e-6 * brickwall_noise(8000)).status == "silent"
    full = dsp.detect_cutoff(brickwall_noise(24001))
    assert full.status == "full-band" and not full.enhance
    t = np.arange(48000) / 48000
    assert dsp.detect_cutoff(np.sin(2 * np.pi * 100 * t).astype(np.float32)).status == "low"


def test_lowpass_refuses_cutoff_at_or_above_nyquist():
    wave = brickwall_noise(8000, 0.5)
    for bad in (24000, 30000, 0):
        with pytest.raises(ValueError, match="Nyquist"):
            dsp.lowpass(wave, bad)
    with pytest.raises(ValueError, match="unknown filter kind"):
        dsp.lowpass(wave, 4000, kind="boxcar")


@pytest.mark.parametrize("kind", dsp.FILTER_KINDS)
def test_lowpass_removes_the_band_above_cutoff(kind):
    noise = brickwall_noise(24001, 2.0)
    out = dsp.lowpass(noise, 6000, kind=kind)
    spec = np.abs(np.fft.rfft(out)) ** 2
    freqs = np.fft.rfftfreq(out.size, 1 / dsp.SAMPLE_RATE)
    assert spec[freqs > 8000].sum() < 1e-4 * spec[freqs < 4000].sum()


@pytest.mark.parametrize("preserve", [False, True])
def test_waveform_replacement_keeps_reference_low_band(preserve):
    reference = brickwall_noise(6000, 3.0, seed=2)
    generated = 0.1 * brickwall_noise(24001, 3.0, seed=3)
    res = dsp.replace_low_band(generated, reference, preserve_reference=preserve)
    assert 6000 - 300 < res.cutoff_bin * 24000 / 1024 < 6000
    out_spec, ref_spec = dsp.stft(res.wave), dsp.stft(reference)
    kc = res.cutoff_bin
    gain = 1.0 if preserve else 1.0 / res.ratio
    # Re-analysis is exact away from the cutoff bin (spectral leakage) and the edge frames.
    inner = (slice(0, kc - 8), slice(2, -2))
    np.testing.assert_allclose(out_spec[inner], gain * ref_spec[inner],
                               atol=1e-3 * np.abs(ref_spec).max())
    if preserve:
        high = (slice(kc + 8, None), slice(2, -2))
        np.testing.assert_allclose(out_spec[high], res.ratio * dsp.stft(generated)[high],
                                   atol=1e-3 * np.abs(out_spec).max())


def test_stft_istft_round_trip():
    x = brickwall_noise(20000, 1.0)
    np.testing.assert_allclose(dsp.istft(dsp.stft(x), x.size), x, atol=1e-6)


def test_mel_filterbank_matches_librosa():
    librosa = pytest.importorskip("librosa")
    expected = librosa.filters.mel(sr=48000, n_fft=2048, n_mels=256, fmin=20, fmax=24000)
    np.testing.assert_allclose(dsp.mel_filterbank(), expected, atol=1e-8)


def test_padded_lengths_are_multiples_of_512_frames():
    assert dsp.padded_frames(13600, 8000) == 512
    assert dsp.padded_frames(48000 * 10, 48000) == 1024
    assert dsp.padded_frames(int(5.12 * 48000), 48000) == 512
    # The official int() truncation gives 511 for 0.3 s; we round.
    assert dsp.padded_frames(300, 1000) == 512


# ------------------------------------------------------------------------- band-edge detector
def pinkish_noise(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Noise falling 6 dB per octave: the 0.985 energy rule stops far inside its band."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 48000)
    spec = np.fft.rfft(rng.standard_normal(n))
    spec /= np.maximum(np.fft.rfftfreq(n, 1 / 48000), 100.0)
    x = np.fft.irfft(spec, n)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


@pytest.mark.parametrize(("cutoff", "rate"), [(4000.0, 8000), (8000.0, 16000),
                                              (12000.0, 24000), (16000.0, 32000)])
def test_band_edge_of_filtered_and_resampled_input(cutoff, rate):
    """The benchmark's inputs: Chebyshev order 8 at the cutoff, soxr to the smallest rate
    holding it and back. soxr's band ends at 91-95 % of its Nyquist frequency."""
    from audiosr_core.train import simulate

    d = simulate.Degradation(cutoff, "cheby1", 8, zero_phase=True)
    filtered = simulate.apply_degradation(pinkish_noise(seed=int(cutoff)), d)
    low = audio.resample(audio.resample(filtered[None], 48000, rate), rate, 48000)[0]
    edge = dsp.detect_band_edge(low, max_hz=rate / 2)
    assert edge.status == "band-limited"
    assert 0.88 * cutoff <= edge.hz <= cutoff
    assert edge.hz == edge.bin * 23.4375
    assert dsp.detect_cutoff(low).hz < edge.hz - 150          # the energy rule stops short


@pytest.mark.parametrize("cutoff", [3000.0, 9000.0, 15000.0])
def test_band_edge_of_a_brick_wall(cutoff):
    from audiosr_core.train import simulate

    d = simulate.Degradation(cutoff, "boxcar", 8, zero_phase=True)
    edge = dsp.detect_band_edge(simulate.apply_degradation(pinkish_noise(), d))
    assert cutoff - 150 <= edge.hz <= cutoff + 50


def test_band_edge_full_band_silent_and_gentle():
    noise = pinkish_noise(seconds=1.0, seed=1)
    assert dsp.detect_band_edge(noise).status == "full-band"
    assert dsp.detect_band_edge(np.zeros(48000, np.float32)).status == "silent"
    # A gentle filter (zero-phase Butterworth order 2 at 8 kHz: -33 dB at 11.7 kHz) is either
    # found where its content has fallen away or taken as full-band, never inside its band.
    gentle = scipy.signal.sosfiltfilt(dsp.design_lowpass(8000.0, "butter", 2), noise)
    edge = dsp.detect_band_edge(gentle.astype(np.float32))
    assert edge.status == "full-band" or edge.hz >= 8000
    assert dsp.detect_band_edge(noise, max_hz=6000).hz == 6000 // 23.4375 * 23.4375
