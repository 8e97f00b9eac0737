"""One output length for every path: the formula, the resampler, streamed reads, lite, the
diffusion models (in memory, batched, streamed) and the adapters, over many rates and odd
lengths."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import soundfile as sf

from audiosr_adapters.upsampler import Settings, Upsampler
from audiosr_core import audio
from audiosr_core.rates import SAMPLE_RATE, output_length

_rng = np.random.default_rng(20261203)
NAMED_RATES = [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 176400,
               192000]
RATES = sorted({*NAMED_RATES, *(int(r) for r in _rng.integers(8000, 192001, 12))})
LENGTHS = [1, 7, 441, 4801, 96001, *(int(n) | 1 for n in _rng.integers(3, 60000, 4))]


def _expected(n: int, rate: int, target: int = SAMPLE_RATE) -> int:
    """Nearest integer to n * target / rate, halves up, in exact rational arithmetic; at
    least one sample for a non-empty input."""
    exact = Fraction(n * target, rate)
    nearest = int(exact + Fraction(1, 2)) if exact.denominator != 1 else int(exact)
    return max(nearest, 1) if n else 0


def _signal(channels: int, n: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal((channels, n))).astype(np.float32)


@pytest.mark.parametrize("rate", RATES)
def test_formula_is_nearest_with_halves_up(rate):
    for n in [*LENGTHS, 0, 2, 3, rate, rate + 1, 2 * rate - 1]:
        assert output_length(n, rate) == _expected(n, rate), (n, rate)
        assert output_length(n, SAMPLE_RATE, rate) == _expected(n, SAMPLE_RATE, rate)


def test_the_reported_96k_case():
    assert output_length(96001, 96000) == 48001


@pytest.mark.parametrize("rate", RATES)
def test_resampler_gives_the_formula_length(rate):
    for n in LENGTHS:
        x = _signal(2, n)
        assert audio.resample(x, rate).shape == (2, output_length(n, rate)), (n, rate)
        y = audio.resample(x[0], SAMPLE_RATE, rate)
        assert y.shape == (output_length(n, SAMPLE_RATE, rate),)


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 96000])
def test_sinc_hann_resampler_gives_the_formula_length(rate):
    for n in LENGTHS[:5]:
        y = audio.resample(_signal(1, n), rate, method="sinc_hann")
        assert y.shape == (1, output_length(n, rate))


@pytest.mark.parametrize("rate", [11025, 22050, 44100, 88200, 96000, 192000, 37111])
@pytest.mark.parametrize("n", [96001, 4801, 1])
def test_streamed_reads_cover_exactly_the_in_memory_length(tmp_path, rate, n):
    """Reader48 (the streamed path's input) has the in-memory length, and reading it in odd
    blocks gives the whole-file resampling (within soxr's chunk-edge effects, 1e-4 of full
    scale; float32 rounding alone is 1e-7)."""
    x = _signal(2, n, seed=rate)
    path = tmp_path / "x.wav"
    sf.write(path, x.T, rate, subtype="FLOAT")
    whole = audio.resample(x, rate)
    with audio.Reader48(path) as reader:
        assert reader.length == whole.shape[-1] == output_length(n, rate)
        edges = [0, *sorted({min(reader.length, e) for e in (1, 977, 30011, 48000)}),
                 reader.length]
        parts = [reader.read(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)
                 if b > a]
    joined = np.concatenate(parts, axis=1)
    assert joined.shape == whole.shape
    np.testing.assert_allclose(joined, whole, atol=1e-4)


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 88200, 96000, 192000])
def test_lite_in_memory_and_streamed_lengths_agree(lite, tmp_path, rate):
    n = 96001 if rate >= 88200 else 4801 * (rate // 8000) | 1
    x = _signal(2, n)
    res = lite.enhance(x, rate)
    assert res.audio.shape == (2, output_length(n, rate))
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, x.T, rate, subtype="FLOAT")
    streamed = type(lite)(lite.model)
    streamed.stream_above_s = 0.0
    out = streamed.enhance_file(src, dst, subtype="FLOAT")
    assert out.streamed
    assert sf.info(dst).frames == output_length(n, rate)


@pytest.mark.slow
@pytest.mark.parametrize("rate,n", [(96000, 96001), (11025, 2205), (44100, 44101)])
def test_diffusion_in_memory_batched_and_streamed_lengths_agree(tiny_audiosr, tmp_path,
                                                               rate, n):
    fast = dict(steps=1, guidance_scale=1.0)
    x = _signal(1, n)
    alone = tiny_audiosr.enhance(x, rate, **fast)
    batched = tiny_audiosr.enhance_many([(x, rate), (_signal(1, n, 1), rate)], batch_size=2,
                                        **fast)
    assert alone.audio.shape == batched[0].audio.shape == (1, output_length(n, rate))
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, x.T, rate, subtype="FLOAT")
    before = tiny_audiosr.stream_above_s
    tiny_audiosr.stream_above_s = 0.0
    try:
        res = tiny_audiosr.enhance_file(src, dst, subtype="FLOAT", **fast)
    finally:
        tiny_audiosr.stream_above_s = before
    assert res.streamed and sf.info(dst).frames == output_length(n, rate)


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 32000, 44100, 96000])
def test_adapters_give_the_formula_length(lite, rate):
    up = Upsampler(Settings.build(lite, None, None, None, {}), rate)
    for n in (1, 7, 4801):
        x = _signal(3, n)
        assert up(x).shape == (3, output_length(n, rate))
