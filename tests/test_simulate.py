"""Training-data simulation: the distribution of drawn degradations and what applying them does."""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pytest
import scipy.signal

from audiosr_core import dsp
from audiosr_core.train import simulate
from audiosr_core.train.simulate import (
    KINDS,
    STANDARD_RATES,
    Degradation,
    apply_degradation,
    draw_degradation,
    simulate_pair,
)

SR = 48000
N_DRAWS = 2000


@pytest.fixture(scope="module")
def draws() -> list[Degradation]:
    rng = np.random.default_rng(1234)
    return [draw_degradation(rng) for _ in range(N_DRAWS)]


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    """One second of white noise, float32 [samples]."""
    return np.random.default_rng(7).standard_normal(SR).astype(np.float32)


def psd(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectral density (Hann, 2048 samples): (frequencies in Hz, power)."""
    return scipy.signal.welch(wave.astype(np.float64), SR, nperseg=2048)


def band_ratio(wave: np.ndarray, above_hz: float, below_hz: float) -> float:
    """Energy at or above ``above_hz`` over energy below ``below_hz`` (Welch PSD)."""
    f, p = psd(wave)
    return float(p[f >= above_hz].sum() / p[f < below_hz].sum())


# --------------------------------------------------------------------------------------------
# drawing
# --------------------------------------------------------------------------------------------
class TestDraw:
    def test_every_kind_and_order_and_nothing_else(self, draws):
        kinds = collections.Counter(d.kind for d in draws)
        orders = collections.Counter(d.order for d in draws)
        assert set(kinds) == set(KINDS)
        assert set(orders) == set(range(2, 11))
        # uniform: 25 % per kind, 11.1 % per order
        assert all(0.21 < kinds[k] / N_DRAWS < 0.29 for k in KINDS)
        assert all(0.08 < orders[o] / N_DRAWS < 0.14 for o in range(2, 11))
        zero_phase = sum(d.zero_phase for d in draws) / N_DRAWS
        assert 0.45 < zero_phase < 0.55

    def test_cutoffs_uniform_in_range(self, draws):
        cutoffs = np.array([d.cutoff_hz for d in draws])
        assert cutoffs.min() >= 2000 and cutoffs.max() < 16000
        counts, _ = np.histogram(cutoffs, bins=7, range=(2000, 16000))
        share = counts / N_DRAWS  # 14.3 % expected in each 2 kHz bin
        assert np.all((share > 0.10) & (share < 0.20)), share

    def test_resample_rates_standard_above_twice_cutoff(self, draws):
        resampled = [d for d in draws if d.resample_rate is not None]
        assert all(d.resample_rate in STANDARD_RATES for d in resampled)
        assert all(d.resample_rate > 2 * d.cutoff_hz for d in resampled)
        assert set(d.resample_rate for d in resampled) == set(STANDARD_RATES)
        none_share = 1 - len(resampled) / N_DRAWS
        assert abs(none_share - 0.5) < 0.05
        # smallest-first bias: the smallest eligible rate is picked at least half the time
        smallest = [min(r for r in STANDARD_RATES if r > 2 * d.cutoff_hz) for d in resampled]
        share = np.mean([d.resample_rate == r for d, r in zip(resampled, smallest, strict=True)])
        assert 0.5 <= share < 0.65

    @pytest.mark.parametrize("p", [0.0, 0.2, 1.0])
    def test_p_resample(self, p):
        rng = np.random.default_rng(5)
        rates = [draw_degradation(rng, p_resample=p).resample_rate for _ in range(500)]
        none_share = sum(r is None for r in rates) / len(rates)
        assert abs(none_share - (1 - p)) < 0.06

    def test_max_cutoff_caps_the_cutoff(self):
        rng = np.random.default_rng(3)
        cutoffs = np.array(
            [draw_degradation(rng, max_cutoff_hz=5000.0).cutoff_hz for _ in range(500)]
        )
        assert cutoffs.min() >= 2000 and cutoffs.max() <= 5000
        assert cutoffs.mean() == pytest.approx(3500, abs=150)  # still uniform in [2000, 5000)
        # a bandwidth above the range changes nothing
        a = draw_degradation(np.random.default_rng(9), max_cutoff_hz=20000.0)
        assert a == draw_degradation(np.random.default_rng(9))

    def test_max_cutoff_below_range_raises(self):
        with pytest.raises(ValueError, match="too narrow-band"):
            draw_degradation(np.random.default_rng(0), max_cutoff_hz=1500.0)

    def test_restricted_kinds_and_orders(self):
        rng = np.random.default_rng(2)
        ds = [draw_degradation(rng, kinds=["ellip"], order_range=(4, 4)) for _ in range(50)]
        assert {(d.kind, d.order) for d in ds} == {("ellip", 4)}

    def test_deterministic_and_stream_aligned(self):
        a = [draw_degradation(np.random.default_rng(11)) for _ in range(3)]
        assert a[0] == a[1] == a[2]
        # the same six variates are consumed whatever p_resample says
        r1, r2 = np.random.default_rng(4), np.random.default_rng(4)
        for _ in range(20):
            d1, d2 = draw_degradation(r1, p_resample=0.0), draw_degradation(r2, p_resample=1.0)
            assert dataclasses.replace(d2, resample_rate=None) == d1

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"cutoff_range": (2000, 24000)},
            {"cutoff_range": (0, 8000)},
            {"kinds": ["bessel"]},
            {"kinds": []},
            {"order_range": (0, 4)},
            {"order_range": (6, 4)},
            {"p_resample": 1.5},
        ],
    )
    def test_bad_arguments_raise(self, kwargs):
        with pytest.raises(ValueError):
            draw_degradation(np.random.default_rng(0), **kwargs)


# --------------------------------------------------------------------------------------------
# the Degradation record
# --------------------------------------------------------------------------------------------
class TestDegradation:
    def test_cutoff_at_intermediate_nyquist_raises(self):
        with pytest.raises(ValueError, match="Nyquist frequency 8000 Hz of the resample rate"):
            Degradation(8000.0, "cheby1", 8, True, 16000)

    @pytest.mark.parametrize(
        "kwargs",
        [{"kind": "bessel"}, {"order": 0}, {"order": 2.5}, {"cutoff_hz": -1.0},
         {"cutoff_hz": float("nan")}, {"resample_rate": 0}, {"resample_rate": 16000.0}],
    )
    def test_invalid_fields_raise(self, kwargs):
        fields = {"cutoff_hz": 3000.0, "kind": "butter", "order": 4, "zero_phase": False,
                  "resample_rate": None} | kwargs
        with pytest.raises(ValueError):
            Degradation(**fields)


# --------------------------------------------------------------------------------------------
# applying
# --------------------------------------------------------------------------------------------
class TestApply:
    @pytest.mark.parametrize("cutoff", [3000.0, 11000.0])
    def test_boxcar_is_a_brick_wall(self, noise, cutoff):
        y = apply_degradation(noise, Degradation(cutoff, "boxcar", 2, False))
        power = np.abs(np.fft.rfft(y.astype(np.float64))) ** 2
        f = np.fft.rfftfreq(y.size, 1 / SR)
        # exact periodogram: every bin at or above the cutoff is gone (float32 rounding only)
        assert power[f >= cutoff].sum() / power[f < cutoff].sum() < 1e-9
        ref = np.abs(np.fft.rfft(noise.astype(np.float64))) ** 2
        keep = f < cutoff
        np.testing.assert_allclose(power[keep], ref[keep], rtol=1e-4, atol=1e-3)

    @pytest.mark.parametrize("kind", ["cheby1", "ellip", "butter"])
    @pytest.mark.parametrize("zero_phase", [False, True])
    @pytest.mark.parametrize("cutoff", [3000.0, 11000.0])
    def test_iir_stop_band_and_pass_band(self, noise, kind, zero_phase, cutoff):
        _, p_in = psd(noise)
        for order in (2, 6, 10):
            y = apply_degradation(noise, Degradation(cutoff, kind, order, zero_phase))
            f, p = psd(y)
            low = f < 0.8 * cutoff
            pass_db = 10 * np.log10(p[low].sum() / p_in[low].sum())
            assert abs(pass_db) < 1.0, (order, pass_db)
            if order == 6:  # worst case: causal Butterworth, 3.5e-5
                assert band_ratio(y, 2 * cutoff, cutoff) < 1e-4
            if order == 10:  # worst case: causal Butterworth, 2.2e-5
                assert band_ratio(y, 1.5 * cutoff, cutoff) < 1e-4

    @pytest.mark.parametrize("cutoff, rate", [(3000.0, 8000), (5000.0, 11025), (15000.0, 32000)])
    def test_resampling_removes_everything_above_its_nyquist(self, noise, cutoff, rate):
        # a gentle filter leaves plenty above rate/2; the round trip through `rate` must not
        plain = apply_degradation(noise, Degradation(cutoff, "butter", 2, False))
        assert band_ratio(plain, rate / 2, rate / 2) > 1e-2
        y = apply_degradation(noise, Degradation(cutoff, "butter", 2, False, rate))
        assert band_ratio(y, rate / 2, rate / 2) < 1e-8
        assert y.shape == noise.shape and y.dtype == noise.dtype

    @pytest.mark.parametrize("kind", KINDS)
    def test_shape_dtype_multichannel(self, noise, kind):
        stereo = np.stack([noise, -0.5 * noise[::-1]])
        d = Degradation(6000.0, kind, 8, kind == "ellip", 16000)
        y = apply_degradation(stereo, d)
        assert y.shape == stereo.shape and y.dtype == np.float32
        for ch in range(2):
            np.testing.assert_allclose(y[ch], apply_degradation(stereo[ch], d), atol=1e-6)
        y64 = apply_degradation(noise[:4801].astype(np.float64), d)
        assert y64.shape == (4801,) and y64.dtype == np.float64

    @pytest.mark.parametrize("n", [0, 1, 7, 40])
    def test_short_clips(self, n):
        x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
        for d in (Degradation(4000.0, "ellip", 10, True, 11025),
                  Degradation(3900.0, "boxcar", 2, False, 8000)):
            y = apply_degradation(x, d)
            assert y.shape == (n,) and np.all(np.isfinite(y))

    def test_cutoff_at_nyquist_raises(self, noise):
        with pytest.raises(ValueError, match="below the Nyquist frequency 24000 Hz"):
            apply_degradation(noise, Degradation(24000.0, "cheby1", 8, True))
        with pytest.raises(ValueError, match="Nyquist frequency 8000 Hz"):
            apply_degradation(noise, Degradation(9000.0, "boxcar", 2, True), sample_rate=16000)

    def test_non_float_input_raises(self):
        with pytest.raises(ValueError, match="float array"):
            apply_degradation(np.zeros(100, np.int16), Degradation(4000.0, "butter", 4, False))

    @pytest.mark.parametrize(
        "kind, order, zero_phase, below",
        [("boxcar", 2, False, True), ("ellip", 10, False, True), ("ellip", 10, True, True),
         ("ellip", 8, False, False), ("ellip", 8, True, False), ("cheby1", 10, True, False),
         ("butter", 10, True, False)],
    )
    def test_detected_cutoff_matches(self, noise, kind, order, zero_phase, below):
        # on a flat band the 0.985 rule reads about 1.5 % below a sharp edge; slower
        # transitions push it up to a few hundred Hz above the design cutoff
        for cutoff in (4000.0, 9000.0, 15000.0):
            y = apply_degradation(noise, Degradation(cutoff, kind, order, zero_phase))
            hz = dsp.detect_cutoff(y).hz
            if below:
                assert cutoff - 400 <= hz <= cutoff + 50, (cutoff, hz)
            else:
                assert abs(hz - cutoff) <= 400, (cutoff, hz)


# --------------------------------------------------------------------------------------------
# pairs
# --------------------------------------------------------------------------------------------
class TestSimulatePair:
    def test_pair_and_determinism(self, noise):
        clip = np.stack([noise, noise[::-1].copy()])
        low, target, d = simulate_pair(clip, np.random.default_rng(21), max_cutoff_hz=9000.0)
        assert target is clip
        assert low.shape == clip.shape and low.dtype == clip.dtype
        assert 2000 <= d.cutoff_hz <= 9000
        np.testing.assert_array_equal(low, apply_degradation(clip, d))
        again, _, d2 = simulate_pair(clip, np.random.default_rng(21), max_cutoff_hz=9000.0)
        assert d2 == d
        np.testing.assert_array_equal(again, low)

    def test_every_kind_through_the_pair_path(self, noise):
        rng = np.random.default_rng(8)
        seen = set()
        for _ in range(12):
            low, _, d = simulate_pair(noise[:4800], rng)
            seen.add(d.kind)
            assert band_ratio(low, d.cutoff_hz, d.cutoff_hz) < 0.5 * band_ratio(
                noise[:4800], d.cutoff_hz, d.cutoff_hz)
        assert seen == set(KINDS)


def test_module_example_runs():
    import doctest

    result = doctest.testmod(simulate, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
