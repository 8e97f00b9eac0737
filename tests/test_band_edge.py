"""The band-edge detector (:func:`audiosr_core.dsp.band_edge`) on a matrix of inputs.

Every case is made the way the product sees a file: the signal is generated at its container
rate, resampled to 48 kHz with :func:`audiosr_core.audio.resample` (soxr VHQ) and measured with
:func:`audiosr_core.dsp.detect_band_edge` with ``max_hz = min(rate, 48000) / 2``.

The detected edge is the knee where the content's spectrum starts to fall (the first STFT bin
above the band). :func:`tolerance_hz` is the one tolerance rule: within max(5 %, 300 Hz) of the
nominal edge for steep edges (Chebyshev I of order >= 6, elliptic with 40-100 dB stop bands,
FFT brick walls, encoder low-passes, content that simply ends at the container's Nyquist
frequency) and within 15 % for Butterworth filters of order >= 6. IIR filters are zero-phase
(``sosfiltfilt``, as :mod:`audiosr_core.train.simulate`), with 0.1 dB ripple where there is one;
their nominal edge is the design frequency (the end of the ripple band, or -3 dB per pass for
Butterworth).
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from audiosr_core import audio, dsp

from conftest import REPO

BIN_HZ = dsp.SAMPLE_RATE / dsp.N_FFT
SECONDS = 1.5
COLORS = ("white", "pink", "brown")
RATES = (16000, 22050, 24000, 32000, 44100, 48000, 96000)
CUTOFFS = (2000, 3000, 4500, 7000, 9000, 11000, 14000, 17000, 20000)
FILTERS = (("cheby1", 6, None), ("cheby1", 8, None), ("cheby1", 10, None),
           ("ellip", 6, 40.0), ("ellip", 8, 60.0), ("ellip", 8, 80.0), ("ellip", 6, 100.0),
           ("butter", 6, None), ("butter", 8, None), ("butter", 10, None),
           ("boxcar", None, None))


# ------------------------------------------------------------------------------ the one rule
def tolerance_hz(kind: str, edge_hz: float) -> float:
    """Allowed distance (Hz) of the detected edge from the nominal one: 15 % for Butterworth,
    max(5 %, 300 Hz) for every steep edge."""
    return 0.15 * edge_hz if kind == "butter" else max(0.05 * edge_hz, 300.0)


def assert_edge(cut: dsp.Cutoff, expected_hz: float, kind: str, what: str = "") -> None:
    tol = tolerance_hz(kind, expected_hz)
    assert abs(cut.hz - expected_hz) <= tol, (
        f"{what}: edge {cut.hz:.0f} Hz, expected {expected_hz:.0f} +- {tol:.0f} Hz")
    assert cut.hz == pytest.approx(cut.bin * BIN_HZ)


# -------------------------------------------------------------------------------- signals
@functools.cache
def noise(rate: int, color: str = "white", seconds: float = SECONDS, seed: int = 0) -> np.ndarray:
    """Gaussian noise at ``rate`` falling 0 (white), 3 (pink) or 6 (brown) dB per octave above
    50 Hz, peak 0.3 (cached, read-only)."""
    rng = np.random.default_rng([seed, rate, COLORS.index(color)])
    n = int(seconds * rate)
    x = rng.standard_normal(n)
    if color != "white":
        spec = np.fft.rfft(x)
        spec /= np.maximum(np.fft.rfftfreq(n, 1 / rate), 50.0) ** (0.5 if color == "pink" else 1.0)
        x = np.fft.irfft(spec, n)
    x = 0.3 * x / np.abs(x).max()
    x.flags.writeable = False
    return x


def lowpass(x: np.ndarray, rate: int, kind: str, order: int | None, cutoff_hz: float,
            stop_db: float | None = None) -> np.ndarray:
    """Zero-phase IIR low-pass (``sosfiltfilt``) or FFT brick wall (``"boxcar"``) at the cutoff."""
    if kind == "boxcar":
        spec = np.fft.rfft(x)
        spec[np.fft.rfftfreq(x.shape[-1], 1 / rate) >= cutoff_hz] = 0
        return np.fft.irfft(spec, x.shape[-1])
    wn = cutoff_hz / (rate / 2)
    if kind == "butter":
        sos = scipy.signal.butter(order, wn, output="sos")
    elif kind == "cheby1":
        sos = scipy.signal.cheby1(order, 0.1, wn, output="sos")
    else:
        sos = scipy.signal.ellip(order, 0.1, stop_db, wn, output="sos")
    return scipy.signal.sosfiltfilt(sos, x)


def detect(x: np.ndarray, rate: int) -> dsp.Cutoff:
    """What the product does with a file at ``rate``: soxr to 48 kHz, then the detector."""
    x48 = audio.resample(np.asarray(x, dtype=np.float32), rate, dsp.SAMPLE_RATE)
    return dsp.detect_band_edge(x48, max_hz=min(rate, dsp.SAMPLE_RATE) / 2)


def slope_noise(rate: int, db_per_octave: float, seconds: float = SECONDS) -> np.ndarray:
    """A natural-looking spectrum: noise falling ``db_per_octave`` above 500 Hz."""
    rng = np.random.default_rng(int(db_per_octave))
    n = int(seconds * rate)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / rate)
    spec *= 10 ** (-db_per_octave / 20 * np.log2(np.maximum(f, 500.0) / 500.0))
    x = np.fft.irfft(spec, n)
    return 0.3 * x / np.abs(x).max()


# ----------------------------------------------------------------- filters x rates x signals
def _matrix():
    for (kind, order, stop_db), rate, cutoff, color in itertools.product(
            FILTERS, RATES, CUTOFFS, COLORS):
        if cutoff <= 0.9 * min(rate, dsp.SAMPLE_RATE) / 2:
            name = f"{kind}{order or ''}{'-' + str(int(stop_db)) + 'dB' if stop_db else ''}"
            yield pytest.param(kind, order, stop_db, rate, cutoff, color,
                               id=f"{name}-{cutoff}Hz-in-{rate}-{color}")


@pytest.mark.parametrize(("kind", "order", "stop_db", "rate", "cutoff", "color"), list(_matrix()))
def test_filter_edge_matrix(kind, order, stop_db, rate, cutoff, color):
    cut = detect(lowpass(noise(rate, color), rate, kind, order, cutoff, stop_db), rate)
    assert cut.status == ("low" if cutoff < dsp.MIN_CUTOFF_HZ else "band-limited")
    assert_edge(cut, cutoff, kind, f"{kind} {order} at {cutoff} Hz in {rate} Hz {color} noise")


@pytest.mark.parametrize(("kind", "order", "stop_db", "rate", "cutoff"), [
    ("cheby1", 8, None, 44100, 11000), ("butter", 8, None, 44100, 11000),
    ("boxcar", None, None, 44100, 11000), ("ellip", 8, 80.0, 44100, 8000),
    ("ellip", 8, 60.0, 44100, 8000), ("cheby1", 8, None, 48000, 7000)])
def test_reported_cases(kind, order, stop_db, rate, cutoff):
    """The user's reports: 11 kHz in a 44.1 kHz file was the container's Nyquist frequency,
    an 80 dB elliptic edge at 8 kHz was missed, a Chebyshev edge at 7 kHz came out at 7.9 kHz."""
    cut = detect(lowpass(noise(rate, "white"), rate, kind, order, cutoff, stop_db), rate)
    assert cut.status == "band-limited"
    assert_edge(cut, cutoff, kind, "reported case")


@pytest.mark.parametrize("seconds", [1.5, 3.0])
@pytest.mark.parametrize("color", COLORS)
def test_signal_length_does_not_matter(seconds, color):
    x = lowpass(noise(44100, color, seconds, seed=7), 44100, "cheby1", 8, 9000.0)
    assert_edge(detect(x, 44100), 9000.0, "cheby1", f"{seconds} s")


# --------------------------------------------------------------- full band and container edge
@pytest.mark.parametrize("color", COLORS)
@pytest.mark.parametrize("rate", [48000, 96000, 192000])
def test_full_band_input(rate, color):
    """Content up to 24 kHz (also 96 and 192 kHz content brought down to 48 kHz)."""
    cut = detect(noise(rate, color, 1.5), rate)
    assert cut.status == "full-band" and cut.hz >= dsp.FULL_BAND_HZ


@pytest.mark.parametrize("color", COLORS)
@pytest.mark.parametrize("rate", [16000, 22050, 24000, 32000, 44100])
def test_content_ending_at_the_container_nyquist(rate, color):
    """Unfiltered noise in a low-rate file ends where the resampler's roll-off starts."""
    cut = detect(noise(rate, color), rate)
    assert cut.status == "band-limited"
    assert_edge(cut, rate / 2, "nyquist", f"{color} noise at {rate} Hz")


def test_max_hz_caps_the_band_and_block_sums_give_the_same_edge():
    x = noise(48000, "pink")
    assert dsp.detect_band_edge(x.astype(np.float32), max_hz=6000).hz == pytest.approx(6000.0)
    low = lowpass(x, 48000, "cheby1", 8, 9000.0).astype(np.float32)
    one = dsp.detect_band_edge(low, max_hz=24000)
    blocks = dsp.band_edge(dsp.power_sum(low) / dsp.feature_frames(low.size),
                           float(np.abs(low).max()), 24000)
    assert blocks.bin == one.bin and blocks.status == one.status == "band-limited"


# ------------------------------------------------------------------ gentle slopes, low content
@pytest.mark.parametrize("db_per_octave", [3, 6, 9, 12, 18, 24])
def test_natural_slopes_are_not_an_edge(db_per_octave):
    x = slope_noise(48000, db_per_octave)
    assert detect(x, 48000).status == "full-band"
    y = slope_noise(44100, db_per_octave)
    assert_edge(detect(y, 44100), 22050, "nyquist", f"{db_per_octave} dB/octave at 44.1 kHz")


def test_a_tone_over_broadband_noise_is_not_the_band():
    """A strong tone stands 40 dB over the noise in its bin, but the noise is content."""
    rate = 16000
    t = np.arange(2 * rate) / rate
    x = 0.2 * np.sin(2 * np.pi * 330 * t) + 0.03 * np.random.default_rng(0).standard_normal(t.size)
    cut = detect(x, rate)
    assert cut.status == "band-limited"
    assert_edge(cut, rate / 2, "nyquist", "330 Hz tone over noise")


def test_silence():
    hiss = np.random.default_rng(1).standard_normal(48000)
    for x in (np.zeros(48000), 0.9 * dsp.SILENCE_PEAK * hiss / np.abs(hiss).max(), np.zeros(0)):
        cut = dsp.detect_band_edge(x.astype(np.float32))
        assert cut.status == "silent" and cut.bin == 0 and cut.hz == 0.0
    assert dsp.band_edge(np.zeros(1024), 0.5).status == "silent"
    assert dsp.band_edge(np.full(1024, np.nan), 0.5).status == "silent"


@pytest.mark.parametrize("noise_db", [None, -100.0, -80.0, -60.0, -45.0])
@pytest.mark.parametrize("level", [0.05, 0.3, -0.7])
def test_dc_is_low(level, noise_db):
    """A constant, or a constant with a trace of noise (at least 40 dB under it), has no band
    to extend."""
    rms = 0.0 if noise_db is None else abs(level) * 10 ** (noise_db / 20)
    x = level + rms * np.random.default_rng(2).standard_normal(48000)
    cut = dsp.detect_band_edge(x.astype(np.float32))
    assert cut.status == "low" and cut.hz < 100


def test_dc_offset_under_real_content_is_ignored():
    x = 0.05 + 0.01 * np.random.default_rng(3).standard_normal(48000)
    assert dsp.detect_band_edge(x.astype(np.float32)).status == "full-band"
    y = 0.2 + lowpass(noise(48000), 48000, "cheby1", 8, 6000.0)
    assert_edge(dsp.detect_band_edge(y.astype(np.float32)), 6000.0, "cheby1", "DC + 6 kHz")


@pytest.mark.parametrize("freq", [5.0, 20.0, 50.0, 200.0, 700.0])
def test_low_tones_are_low(freq):
    t = np.arange(2 * 48000) / 48000
    cut = detect(0.5 * np.sin(2 * np.pi * freq * t), 48000)
    assert cut.status == "low" and freq < cut.hz < freq + 300


@pytest.mark.parametrize(("kind", "order"), [("cheby1", 8), ("butter", 8), ("boxcar", None)])
@pytest.mark.parametrize("cutoff", [300.0, 600.0, 900.0])
@pytest.mark.parametrize("rate", [16000, 44100])
def test_sub_1khz_content_is_low(kind, order, cutoff, rate):
    cut = detect(lowpass(noise(rate), rate, kind, order, cutoff), rate)
    assert cut.status == "low" and cut.hz < dsp.MIN_CUTOFF_HZ
    if kind != "butter":
        assert_edge(cut, cutoff, kind, f"noise low-passed at {cutoff} Hz")


def test_detector_is_cheap():
    power = dsp.power_mean(lowpass(noise(48000, "pink"), 48000, "ellip", 8, 9000.0, 60.0)
                           .astype(np.float32))
    dsp.band_edge(power, 0.3, 24000)
    t0 = time.perf_counter()
    for _ in range(20):
        dsp.band_edge(power, 0.3, 24000)
    assert (time.perf_counter() - t0) / 20 < 0.02


# -------------------------------------------------------------------------------- encoders
def encoder_edge_hz(decoded: np.ndarray, rate: int) -> float:
    """Independent measure of a codec's low-pass on decoded white noise: the highest frequency
    where a Welch PSD (8192-point segments, 5-bin moving average) is within 10 dB of its
    pass-band level (its median over 1-4 kHz)."""
    f, psd = scipy.signal.welch(decoded.astype(np.float64), rate, nperseg=8192)
    db = np.convolve(10 * np.log10(psd + 1e-30), np.full(5, 0.2), mode="same")
    passband = np.median(db[(f > 1000) & (f < 4000)])
    return float(f[np.flatnonzero(db >= passband - 10)[-1]])


ENCODERS = [("MP3", "MPEG_LAYER_III", rate, level)
            for rate in (22050, 32000, 44100, 48000) for level in (0.0, 0.3, 0.5, 0.7, 0.9)]
ENCODERS += [("OGG", "VORBIS", rate, level)
             for rate in (44100, 48000) for level in (0.0, 0.5, 0.7, 0.9, 1.0)]
ENCODERS += [("OGG", "OPUS", 48000, level) for level in (0.0, 0.5, 0.9, 1.0)]


@pytest.mark.parametrize(("fmt", "subtype", "rate", "level"), ENCODERS,
                         ids=[f"{f}-{s}-{r}-q{q}" for f, s, r, q in ENCODERS])
def test_encoder_lowpass(fmt, subtype, rate, level):
    if fmt not in sf.available_formats() or subtype not in sf.available_subtypes(fmt):
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} has no {fmt}/{subtype} encoder")
    buf = io.BytesIO()
    try:
        sf.write(buf, noise(rate, "white", 3.0, seed=1).astype(np.float32), rate, format=fmt,
                 subtype=subtype, compression_level=level)
    except (RuntimeError, sf.LibsndfileError) as exc:
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} cannot write {fmt}/{subtype}: {exc}")
    buf.seek(0)
    decoded, decoded_rate = sf.read(buf, dtype="float32")
    expected = encoder_edge_hz(decoded, decoded_rate)
    cut = detect(decoded, decoded_rate)
    if expected >= dsp.FULL_BAND_HZ:
        assert cut.status == "full-band"
    else:
        assert_edge(cut, expected, "encoder", f"{fmt}/{subtype} {rate} Hz level {level}")


# ------------------------------------------------------------------------------- real clips
# Chebyshev I of order 6 is left out here: its first 3 dB of roll-off span 6 % of the cutoff,
# and on real clips a spectral peak just above the cutoff moves the visible knee up by 5-18 %
# (it is in the noise matrix above).
REAL_FILTERS = (("cheby1", 8, None), ("ellip", 8, 60.0), ("ellip", 6, 40.0),
                ("boxcar", None, None), ("butter", 8, None), ("butter", 6, None))
REAL_CUTOFFS = (2500, 4000, 6000, 9000, 12000, 16000)
REAL_CASES = [pytest.param(k, o, s, c, id=f"{k}{o or ''}-{c}Hz")
              for (k, o, s), c in itertools.product(REAL_FILTERS, REAL_CUTOFFS)]


def smooth_across(x: np.ndarray, rate: int, cutoff: float, gentle: bool = False) -> bool:
    """Whether the clip's own spectrum is smooth across ``cutoff``, so that the filter's edge is
    the content's edge: over 0.8-1.25 x cutoff its Welch PSD (4096-point segments, averaged over
    2 % of the cutoff) stays within 2 dB rms of a straight line in dB over log-frequency that
    falls less than 18 dB per octave (for a ``gentle`` filter, Butterworth, one that rises or
    falls less than 8 dB per octave). Where the clip has a spectral peak, a dip, or a slope of
    its own that is steep next to the filter's right at the cutoff, the knee of the filtered
    spectrum is not where the filter starts to fall."""
    f, psd = scipy.signal.welch(x, rate, nperseg=4096)
    band = (f >= 0.8 * cutoff) & (f <= 1.25 * cutoff)
    n = max(1, int(0.02 * cutoff / f[1]))
    db = np.convolve(10 * np.log10(psd[band] + 1e-30), np.ones(n) / n, mode="valid")
    logf = np.log2(np.linspace(0.8, 1.25, db.size))
    coef = np.polyfit(logf, db, 1)
    slope_ok = abs(coef[0]) < 8.0 if gentle else coef[0] > -18.0
    return float(np.std(db - np.polyval(coef, logf))) <= 2.0 and slope_ok


def check_clips(clips, kind, order, stop_db, cutoff) -> int:
    """Low-pass each ``(name, wave, rate, bandwidth_hz)`` below its bandwidth and check the
    edge; returns how many clips were checked."""
    failures, checked = [], 0
    for name, x, rate, bandwidth in clips:
        if cutoff > 0.8 * bandwidth or not smooth_across(x, rate, cutoff, kind == "butter"):
            continue
        checked += 1
        cut = detect(lowpass(x, rate, kind, order, cutoff, stop_db), rate)
        if cut.status != "band-limited" or abs(cut.hz - cutoff) > tolerance_hz(kind, cutoff):
            failures.append(f"{name}: {cut.hz:.0f} Hz ({cut.status})")
    assert not failures, f"{kind} {order} at {cutoff} Hz: " + "; ".join(failures)
    return checked


@functools.cache
def dev_clips(folder: str) -> tuple:
    """3 s of every dev clip (from 1 s on) with its bandwidth (``bw80_hz`` and ``cliff_hz``
    of the manifest, whichever is lower)."""
    out = []
    with open(Path(folder) / "manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            x, rate = sf.read(Path(folder) / row["clip"], dtype="float64", always_2d=True)
            x = x[int(1.0 * rate):int(4.0 * rate), 0]
            out.append((row["clip"], x, rate, min(float(row["bw80_hz"]), float(row["cliff_hz"]))))
    return tuple(out)


@functools.cache
def example_clips() -> tuple:
    """The bundled examples (first channel); their README puts the content's end at 0.95 x
    Nyquist (7.6 and 15.2 kHz)."""
    out = []
    for name, top in (("speech_like_16k.wav", 7600.0), ("music_like_32k.flac", 15200.0)):
        x, rate = sf.read(REPO / "examples" / name, dtype="float64", always_2d=True)
        out.append((name, x[:, 0], rate, top))
    return tuple(out)


@pytest.mark.needs_shared
@pytest.mark.parametrize(("kind", "order", "stop_db", "cutoff"), REAL_CASES)
def test_dev_clips_low_passed(devset_dir, kind, order, stop_db, cutoff):
    check_clips(dev_clips(str(devset_dir)), kind, order, stop_db, cutoff)


@pytest.mark.needs_shared
def test_dev_clips_enough_cases(devset_dir):
    """The smoothness condition keeps most of the matrix (a guard against it emptying it)."""
    clips = dev_clips(str(devset_dir))
    kept = sum(c <= 0.8 * bw and smooth_across(x, rate, c)
               for _, x, rate, bw in clips for c in REAL_CUTOFFS)
    assert len(clips) == 22 and kept >= 60


@pytest.mark.parametrize(("kind", "order", "stop_db", "cutoff"), REAL_CASES)
def test_example_clips_low_passed(kind, order, stop_db, cutoff):
    check_clips(example_clips(), kind, order, stop_db, cutoff)


@pytest.mark.parametrize("index", [0, 1])
def test_example_clips_as_they_are(index):
    name, x, rate, top = example_clips()[index]
    cut = detect(x, rate)
    assert cut.status == "band-limited"
    assert_edge(cut, top, "nyquist", name)
