"""Adapters for services: other output rates, and the fail-safe ``on_error="passthrough"``."""

from __future__ import annotations

import logging

import adapter_fixtures as fx
import numpy as np
import pytest
import torch

from audiosr_adapters import enhance
from audiosr_adapters.upsampler import PASSED_THROUGH
from audiosr_core import audio
from audiosr_core.lite_pipeline import LiteSR
from audiosr_core.models.lite import LiteConfig, LiteModel
from audiosr_core.rates import output_length


@pytest.fixture(scope="module")
def lite() -> LiteSR:
    torch.manual_seed(0)
    return LiteSR(LiteModel(LiteConfig(hidden=16, dilations=(1, 2))))


def tts(texts: list[str]) -> np.ndarray:
    """A fake 22.05 kHz TTS: one narrow-band voiced waveform per text, [B, T] float32."""
    t = np.arange(int(0.6 * 22050)) / 22050
    rows = [0.3 * sum(np.sin(2 * np.pi * k * (120 + 10 * i) * t) / k for k in range(1, 30))
            for i, _ in enumerate(texts)]
    return np.stack(rows).astype(np.float32)


@pytest.mark.parametrize("rate", [44100, 96000, 16000])
def test_output_rate_reaches_audio_and_every_reported_rate(lite, rate):
    wrapped = enhance(tts, model=lite, sample_rate=22050, output_rate=rate)
    out = wrapped(["a", "b"])
    assert out.shape == (2, output_length(tts(["a"]).shape[-1], 22050, rate))
    reference = lite.enhance(tts(["a", "b"]), 22050).audio
    expected = audio.resample(reference, 48000, rate)[:, :out.shape[-1]]
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert wrapped.output_sample_rate == rate and f"-> {rate} Hz" in repr(wrapped)
    assert wrapped.last_status == [["enhanced", "enhanced"]]


def test_musicgen_reports_the_output_rate(lite):
    musicgen = fx.tiny_musicgen()
    wrapped = enhance(musicgen, model=lite, output_rate=44100)
    out = wrapped.generate(**fx.musicgen_inputs(["beat"]), do_sample=False, max_new_tokens=12)
    assert wrapped.config.audio_encoder.sampling_rate == 44100
    assert wrapped.audio_encoder.config.sampling_rate == 44100
    assert out.shape[-1] == output_length((12 - (fx.N_Q - 1)) * 640, 32000, 44100)
    assert musicgen.config.audio_encoder.sampling_rate == 32000     # the original is untouched


class Broken:
    """An enhancer that fails like an out-of-memory GPU."""

    calls = 0

    def enhance(self, audio_in, sample_rate, options=None, **kwargs):
        Broken.calls += 1
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")


def test_passthrough_returns_the_original_resampled_and_warns_once(caplog):
    wrapped = enhance(tts, model=Broken(), sample_rate=22050, on_error="passthrough",
                      output_rate=44100)
    with caplog.at_level(logging.WARNING, logger="audiosr_adapters"):
        first = wrapped(["a", "b"])
        second = wrapped(["c"])
    original = tts(["a", "b"])
    n = output_length(original.shape[-1], 22050, 44100)
    np.testing.assert_allclose(first, audio.resample(original, 22050, 44100)[:, :n], atol=1e-6)
    assert first.shape == (2, n) and second.shape == (1, n)
    warnings = [r for r in caplog.records if r.name == "audiosr_adapters"]
    assert len(warnings) == 1 and "OutOfMemoryError" in warnings[0].getMessage()
    assert wrapped.last_status == [[PASSED_THROUGH]]


def test_raise_is_the_default(lite):
    with pytest.raises(torch.OutOfMemoryError):
        enhance(tts, model=Broken(), sample_rate=22050)(["a"])
    with pytest.raises(ValueError, match="on_error='ignore' is not one of raise, passthrough"):
        enhance(tts, model=lite, sample_rate=22050, on_error="ignore")


def test_passthrough_on_bad_audio_keeps_the_request_alive(lite):
    def broken_tts(texts):
        x = tts(texts)
        x[0, 100] = np.nan                      # the engine refuses non-finite audio
        return x

    wrapped = enhance(broken_tts, model=lite, sample_rate=22050, on_error="passthrough")
    out = wrapped(["a"])
    assert out.shape == (1, output_length(tts(["a"]).shape[-1], 22050))
    assert wrapped.last_status == [[PASSED_THROUGH]]


def test_wide_band_input_passes_through_untouched_and_says_so(lite):
    rng = np.random.default_rng(0)

    def wide(texts):                            # white noise up to 24 kHz at 48 kHz
        return (0.1 * rng.standard_normal((len(texts), 48000))).astype(np.float32)

    wrapped = enhance(wide, model=lite, sample_rate=48000)
    x = wide(["a"])
    rng = np.random.default_rng(0)
    out = wrapped(["a"])
    np.testing.assert_array_equal(out, x)
    assert wrapped.last_status == [["full-band"]]
