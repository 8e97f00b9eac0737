"""End to end on a tiny random-weight AudioSR: shapes, durations, band, level, channels, options."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import torch

from audiosr_core import AudioSR, EnhanceOptions, audio, metrics
from audiosr_core.errors import AudioInputError
from audiosr_core.models.audiosr import AudioSRConfig, AudioSRModel
from audiosr_core.pipeline import official_filter_draw
from audiosr_core.rates import output_length

FAST = {"steps": 2}


@pytest.fixture(scope="module")
def tiny(official_parts) -> AudioSR:
    """The parity fixture's tiny random model (its weights are scaled to give real output)."""
    model = AudioSRModel(AudioSRConfig.tiny())
    model.load_official(official_parts)
    return AudioSR(model, device="cpu")


def band_limited(sr: int, seconds: float, channels: int, seed: int = 0) -> np.ndarray:
    """Two tones plus weaker noise low-passed at 0.4 * sr (at most 18 kHz), peak about 0.3."""
    n = int(round(seconds * sr))
    rng = np.random.default_rng(seed)
    sos = scipy.signal.butter(10, min(0.4 * sr, 18000), fs=sr, output="sos")
    x = scipy.signal.sosfilt(sos, rng.standard_normal((channels, n)), axis=-1)
    t = np.arange(n) / sr
    x = 0.3 * x + np.sin(2 * np.pi * 440 * t) + 0.5 * np.sin(2 * np.pi * 0.2 * sr * t)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


@pytest.mark.parametrize(("sr", "seconds", "channels"), [
    (8000, 0.2, 1), (16000, 1.3, 2), (22050, 2.0, 1), (32000, 1.0, 2), (44100, 1.7, 2),
])
def test_output_rate_duration_band_and_level(tiny, sr, seconds, channels):
    x = band_limited(sr, seconds, channels)
    res = tiny.enhance(x, sr, **FAST)
    n_out = round(x.shape[1] * 48000 / sr)
    assert res.sample_rate == 48000
    assert res.audio.shape == (channels, n_out) and res.audio.dtype == np.float32
    assert res.status == ["enhanced"] * channels
    ref = audio.resample(x, sr, 48000)[:, :n_out]
    for c in range(channels):
        assert res.cutoff_hz[c] < sr / 2
        # The input band (up to the detected cutoff, less the 2 bins beside it) is unaltered ...
        assert metrics.lsd_band(ref[c], res.audio[c], 0, res.cutoff_hz[c] - 50) < 0.05
        # ... and above it there is new content.
        assert metrics.lsd_band(ref[c], res.audio[c], sr / 2 + 500, 24000) > 1.0
        # Level: the input's own band comes back at its level exactly. Over the full band the
        # untrained vocoder adds broadband noise at a level of its own (0.6-1.7 dB here); a
        # trained model's added band follows the input's envelope and adds less.
        low_out = lowpassed(res.audio[c], res.cutoff_hz[c] - 100)
        low_ref = lowpassed(ref[c], res.cutoff_hz[c] - 100)
        assert abs(audio.rms_dbfs(low_out) - audio.rms_dbfs(low_ref)) < 0.05
        assert abs(audio.rms_dbfs(res.audio[c]) - audio.rms_dbfs(ref[c])) < 2.0


def lowpassed(x: np.ndarray, cutoff_hz: float) -> np.ndarray:
    """Brick-wall low-pass at 48 kHz by FFT."""
    spec = np.fft.rfft(x)
    spec[np.fft.rfftfreq(x.size, 1 / 48000) >= cutoff_hz] = 0
    return np.fft.irfft(spec, x.size)


def test_thirty_seconds(tiny):
    x = band_limited(16000, 30.0, 1)
    res = tiny.enhance(x, 16000, steps=1, guidance_scale=1.0)
    assert res.audio.shape == (1, 30 * 48000)
    ref = audio.resample(x, 16000, 48000)
    assert metrics.lsd_band(ref[0], res.audio[0], 0, res.cutoff_hz[0] - 50) < 0.05


def test_output_length_rule():
    assert output_length(13600, 8000) == 81600
    assert output_length(1, 44100) == 1
    assert output_length(100, 44100) == 109  # 108.84 rounds up
    assert output_length(7, 44100) == 8      # 7.62


def test_channels_share_seed_and_noise_and_silence_stays(tiny):
    x = band_limited(16000, 1.0, 1)
    res = tiny.enhance(np.concatenate([x, x]), 16000, **FAST)
    np.testing.assert_array_equal(res.audio[0], res.audio[1])
    mono = tiny.enhance(x, 16000, **FAST)
    np.testing.assert_allclose(mono.audio[0], res.audio[0], atol=1e-5)
    res = tiny.enhance(np.concatenate([x, np.zeros_like(x)]), 16000, **FAST)
    assert res.status == ["enhanced", "silent"]
    assert not res.audio[1].any()


def test_seeds(tiny):
    x = band_limited(16000, 1.0, 1)
    a = tiny.enhance(x, 16000, seed=3, **FAST).audio
    b = tiny.enhance(x, 16000, seed=3, **FAST).audio
    c = tiny.enhance(x, 16000, seed=4, **FAST).audio
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    assert tiny.enhance(x, 16000, seed=None, **FAST).seed >= 0


def test_pass_through_for_full_band_and_silent_input(tiny):
    full = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 48000)).astype(np.float32)
    res = tiny.enhance(full, 48000, **FAST)
    assert res.status == ["full-band"]
    np.testing.assert_array_equal(res.audio, full)
    res = tiny.enhance(np.zeros(16000, np.float32), 16000, **FAST)
    assert res.status == ["silent"] and res.audio.shape == (1, 48000) and not res.audio.any()


def test_official_mode(tiny):
    x = band_limited(16000, 1.0, 2)
    res = tiny.enhance(x, 16000, EnhanceOptions.official(steps=2))
    assert res.audio.shape == (1, 48000)                  # channel 0 only
    assert res.filter_kinds == ["ellip"]                   # the official draw for seed 42
    # Peak 0.5 over the padded signal (5.12 s), then cut to the input's length, as official.
    assert 0.2 < np.abs(res.audio).max() <= 0.5


@pytest.mark.parametrize(("seed", "kind"), [(42, "ellip"), (0, "butter"), (1, "cheby1"),
                                            (1234, "bessel")])
def test_official_filter_draw(seed, kind):
    assert official_filter_draw(seed) == kind


def test_posterior_mean_and_dpm_solver_options(tiny):
    x = band_limited(16000, 1.0, 1)
    a = tiny.enhance(x, 16000, conditioning="mean", sampler="dpmpp_2m", steps=3)
    b = tiny.enhance(x, 16000, conditioning="mean", sampler="dpmpp_2m", steps=3)
    c = tiny.enhance(x, 16000, conditioning="sample", sampler="dpmpp_2m", steps=3)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert np.abs(a.audio - c.audio).max() > 1e-3
    assert a.audio.shape == (1, 48000)


def test_bad_inputs_and_options(tiny):
    x = band_limited(16000, 0.5, 1)
    x[0, 10] = np.nan
    with pytest.raises(AudioInputError, match="NaN"):
        tiny.enhance(x, 16000)
    with pytest.raises(AudioInputError, match="2000 Hz"):
        tiny.enhance(np.zeros(1000, np.float32), 2000)
    with pytest.raises(ValueError, match="sampler='euler'"):
        tiny.enhance(np.zeros(1000, np.float32), 16000, sampler="euler")
    with pytest.raises(TypeError, match="ddim_steps"):
        tiny.enhance(np.zeros(1000, np.float32), 16000, ddim_steps=3)


def test_enhance_file_never_overwrites(tiny, tmp_path):
    src = tmp_path / "in.wav"
    audio.save(src, band_limited(16000, 0.5, 1), 16000, subtype="PCM_16")
    before = src.read_bytes()
    out = tmp_path / "out" / "in_48k.flac"
    res = tiny.enhance_file(src, out, **FAST)
    loaded, rate = audio.load(out)
    assert rate == 48000 and loaded.shape == res.audio.shape
    with pytest.raises(FileExistsError, match="overwrite"):
        tiny.enhance_file(src, out, **FAST)
    tiny.enhance_file(src, out, overwrite=True, **FAST)
    with pytest.raises(AudioInputError):
        tiny.enhance_file(src, src, overwrite=True, **FAST)
    assert src.read_bytes() == before


def test_low_precision_runs_close_to_float32(tiny, official_parts):
    """bfloat16 networks (fast on CPUs with AMX/AVX512-BF16) stay close to float32."""
    import torch

    x = band_limited(16000, 1.0, 1)
    ref = tiny.enhance(x, 16000, **FAST).audio[0]
    model = AudioSRModel(AudioSRConfig.tiny())
    model.load_official(official_parts)
    low = AudioSR(model, device="cpu", dtype=torch.bfloat16).enhance(x, 16000, **FAST).audio[0]
    assert low.dtype == np.float32 and np.isfinite(low).all()
    assert metrics.lsd(ref, low) < 0.2          # 0.07 measured


def test_enhance_file_applies_one_gain_instead_of_clipping(tiny, tmp_path):
    src = tmp_path / "loud.wav"
    x = band_limited(16000, 1.0, 1)
    x = x / np.abs(x).max() * 0.9999  # almost full scale: the added band pushes it over
    audio.save(src, x, 16000, subtype="FLOAT")
    unclipped = tiny.enhance(x, 16000, **FAST).audio
    assert np.abs(unclipped).max() > 1.0
    res = tiny.enhance_file(src, tmp_path / "out.wav", **FAST)
    peak = np.abs(unclipped).max()
    assert res.output_gain_db == pytest.approx(20 * np.log10(10 ** (-0.1 / 20) / peak), abs=1e-3)
    written, _ = audio.load(tmp_path / "out.wav")
    np.testing.assert_allclose(written, unclipped * 10 ** (res.output_gain_db / 20), atol=2e-6)
    kept = tiny.enhance_file(src, tmp_path / "float.wav", subtype="FLOAT", **FAST)
    assert kept.output_gain_db == 0.0


def test_streamed_file_equals_in_memory_run(tiny, tmp_path, monkeypatch):
    """A long file streamed from disk to disk (two windows per network call) gives the
    in-memory result (same windows, seeds, gain and cutoff), with no partial file left."""
    x = band_limited(22050, 20.0, 2, seed=5)
    x[1] = x[0]
    src = tmp_path / "long.flac"
    sf.write(src, x.T, 22050, subtype="PCM_24")
    in_memory = tiny.enhance_file(src, tmp_path / "a.wav", subtype="FLOAT", **FAST)
    monkeypatch.setattr(tiny, "stream_above_s", 10.0)
    streamed = tiny.enhance_file(src, tmp_path / "b.wav", subtype="FLOAT", batch_size=2, **FAST)
    assert streamed.streamed and not in_memory.streamed and streamed.audio.shape == (2, 0)
    assert streamed.cutoff_hz == in_memory.cutoff_hz and streamed.status == in_memory.status
    a, _ = audio.load(tmp_path / "a.wav")
    b, _ = audio.load(tmp_path / "b.wav")
    assert a.shape == b.shape == (2, output_length(x.shape[1], 22050))
    np.testing.assert_allclose(b, a, atol=1e-4)
    np.testing.assert_array_equal(b[0], b[1])                 # identical channels stay equal
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "b.wav", "long.flac"]


def test_batched_windows_equal_unbatched(tiny):
    """--batch-size runs windows together; every window keeps its own seed and noise (DDIM
    eta 1 draws fresh noise each step), so only float rounding differs."""
    x = band_limited(16000, 20.0, 1, seed=7)           # three windows: a batch of 2, then 1
    one = tiny.enhance(x, 16000, **FAST).audio
    two = tiny.enhance(x, 16000, batch_size=2, **FAST).audio
    assert one.shape == two.shape == (1, 20 * 48000)
    np.testing.assert_allclose(two, one, atol=1e-5)


def test_enhance_many_batches_files_like_separate_runs(tiny):
    """Items of different rates, lengths and channel counts in one call: each result equals
    its own enhance() (silent and full-band items pass through)."""
    items = [(band_limited(16000, 3.0, 1, seed=1), 16000),
             (band_limited(22050, 2.5, 2, seed=2), 22050),
             (band_limited(16000, 7.0, 1, seed=3), 16000),
             (np.zeros((1, 8000), np.float32), 16000)]
    batched = tiny.enhance_many(items, batch_size=4, **FAST)
    assert [r.status for r in batched] == [["enhanced"], ["enhanced"] * 2, ["enhanced"],
                                           ["silent"]]
    for (x, sr), res in zip(items, batched, strict=True):
        alone = tiny.enhance(x, sr, **FAST)
        assert res.audio.shape == alone.audio.shape == (x.shape[0], output_length(x.shape[1], sr))
        np.testing.assert_allclose(res.audio, alone.audio, atol=1e-5)
        assert res.cutoff_hz == alone.cutoff_hz and res.seed == alone.seed


def test_row_noise_gives_each_group_its_own_draws():
    from audiosr_core.pipeline import RowNoise

    def gens(*seeds):
        return [torch.Generator().manual_seed(s) for s in seeds]

    noise = RowNoise(gens(1, 2), [2, 1])
    first, second = noise((3, 4)), noise((3, 4))
    for seed, rows in ((1, slice(0, 2)), (2, slice(2, 3))):
        alone = RowNoise(gens(seed), [1])
        np.testing.assert_array_equal(first[rows], alone((3, 4)).expand(rows.stop - rows.start,
                                                                          3, 4))
        np.testing.assert_array_equal(second[rows], alone((3, 4)).expand(rows.stop - rows.start,
                                                                           3, 4))
    assert not torch.equal(first[0], first[2])


def test_batch_size_must_be_positive(tiny):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        tiny.enhance(band_limited(16000, 1.0, 1), 16000, batch_size=0)
