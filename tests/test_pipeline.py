"""End to end on a tiny random-weight AudioSR: shapes, durations, band, level, channels, options.

The model is conftest's ``tiny_audiosr`` (seeded random weights scaled to give real output), so
nothing here needs ../shared.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import torch

from audiosr_core import AudioSR, EnhanceOptions, audio, chunking, metrics
from audiosr_core.errors import AudioInputError
from audiosr_core.pipeline import official_filter_draw
from audiosr_core.rates import SAMPLE_RATE, output_length

from conftest import f32_atol

#: Two DDIM steps with guidance (two UNet passes a step): every stage of the official flow.
FAST = {"steps": 2}
#: The cheapest run (one UNet pass), for tests about files, batches and windows rather than
#: the sampler. Two steps keep DDIM's fresh noise at a step (eta 1) in play.
CHEAP = {"steps": 2, "guidance_scale": 1.0}
#: Two evaluations of one computation that may take different kernels (batch size, thread
#: count, memory layout, CPU type) differ by float32 rounding only. Each kernel sums in its own
#: order; through the ~100 layers of encoder, UNet, decoder and vocoder that comes to tens of
#: ulps of the output's peak: measured 4-12 ulps here (1 vs 2 threads, batch 1 vs 2, windows
#: batched or not, channels-last vs contiguous weights), and the parity fixture's README
#: (section 7) gives ~18 ulps for 1 vs 2 threads. 128 ulps (7e-6 at a 0.47 peak) leaves a
#: margin of ~7x; a different seed or window moves the output by > 1e-2.
KERNEL_ULPS = 128


@pytest.fixture(scope="module")
def tiny(tiny_audiosr) -> AudioSR:
    """The tiny random-weight model (session-wide; tests that change attributes monkeypatch)."""
    return tiny_audiosr


@pytest.fixture(scope="module")
def windowed(tiny_audiosr) -> AudioSR:
    """The same model with 5.12 s windows (the shortest the model pads to, so a window costs
    one padded pass), 0.32 s context and 0.16 s crossfades: a 10 s signal spans three windows,
    where the default 10.24 s windows would need 20 s of signal at twice the cost a window."""
    sr = AudioSR(tiny_audiosr.model, device="cpu")
    sr.segment, sr.context, sr.crossfade = (int(5.12 * SAMPLE_RATE), int(0.32 * SAMPLE_RATE),
                                            int(0.16 * SAMPLE_RATE))
    return sr


def n_windows(sr: AudioSR, n48: int) -> int:
    return len(chunking.plan_windows(n48, sr.segment, sr.context, sr.crossfade))


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
    (8000, 0.2, 1), (16000, 1.3, 2), (22050, 2.0, 1), (32000, 1.0, 1), (44100, 1.7, 2),
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
        # untrained vocoder adds broadband noise at a level of its own (0.4-1.1 dB here); a
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


@pytest.mark.slow  # four 10.24 s windows: 8 padded passes
def test_thirty_seconds(tiny):
    """30 s through the default 10.24 s windows (four of them): exact duration, band kept."""
    x = band_limited(16000, 30.0, 1)
    res = tiny.enhance(x, 16000, steps=1, guidance_scale=1.0)
    assert n_windows(tiny, 30 * 48000) == 4
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
    res = tiny.enhance(np.concatenate([x, x, np.zeros_like(x)]), 16000, **CHEAP)
    assert res.status == ["enhanced", "enhanced", "silent"]
    assert not res.audio[2].any()
    # Rows of one batch may fall in different kernel blocks (and batch 2 vs 1 may take other
    # kernels): equal up to rounding. Different noise would differ by > 1e-2.
    np.testing.assert_allclose(res.audio[1], res.audio[0], rtol=0,
                               atol=f32_atol(res.audio, KERNEL_ULPS))
    mono = tiny.enhance(x, 16000, **CHEAP)
    np.testing.assert_allclose(mono.audio[0], res.audio[0], rtol=0,
                               atol=f32_atol(mono.audio, KERNEL_ULPS))


def test_seeds(tiny):
    x = band_limited(16000, 1.0, 1)
    a = tiny.enhance(x, 16000, seed=3, **CHEAP).audio
    b = tiny.enhance(x, 16000, seed=3, **CHEAP).audio
    c = tiny.enhance(x, 16000, seed=4, **CHEAP).audio
    np.testing.assert_array_equal(a, b)      # the same call again: same kernels, same bits
    assert np.abs(a - c).max() > 1e-3
    # seed=None draws one (and reports it) before any network runs: a silent input will do
    assert tiny.enhance(np.zeros_like(x), 16000, seed=None, **CHEAP).seed >= 0


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
    opts = {"sampler": "dpmpp_2m", "steps": 3, "guidance_scale": 1.0}
    a = tiny.enhance(x, 16000, conditioning="mean", **opts)
    b = tiny.enhance(x, 16000, conditioning="mean", **opts)
    c = tiny.enhance(x, 16000, conditioning="sample", **opts)
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
    res = tiny.enhance_file(src, out, **CHEAP)
    loaded, rate = audio.load(out)
    assert rate == 48000 and loaded.shape == res.audio.shape
    with pytest.raises(FileExistsError, match="overwrite"):
        tiny.enhance_file(src, out, **CHEAP)
    tiny.enhance_file(src, out, overwrite=True, **CHEAP)
    with pytest.raises(AudioInputError):
        tiny.enhance_file(src, src, overwrite=True, **CHEAP)
    assert src.read_bytes() == before


def test_low_precision_runs_close_to_float32(tiny):
    """bfloat16 networks (fast on CPUs with AMX/AVX512-BF16) stay close to float32."""
    x = band_limited(16000, 1.0, 1)
    ref = tiny.enhance(x, 16000, **CHEAP).audio[0]
    model = copy.deepcopy(tiny.model)                  # AudioSR casts its model in place
    low = AudioSR(model, device="cpu", dtype=torch.bfloat16).enhance(x, 16000, **CHEAP).audio[0]
    assert low.dtype == np.float32 and np.isfinite(low).all()
    assert metrics.lsd(ref, low) < 0.2          # 0.064 measured


def test_enhance_file_applies_one_gain_instead_of_clipping(tiny, tmp_path):
    src = tmp_path / "loud.wav"
    x = band_limited(16000, 1.0, 1)
    x = x / np.abs(x).max() * 0.9999  # almost full scale: the added band pushes it over
    audio.save(src, x, 16000, subtype="FLOAT")
    kept = tiny.enhance_file(src, tmp_path / "float.wav", subtype="FLOAT", **CHEAP)
    assert kept.output_gain_db == 0.0                     # float files may exceed full scale
    unclipped = kept.audio
    assert np.abs(unclipped).max() > 1.0
    np.testing.assert_array_equal(audio.load(tmp_path / "float.wav")[0], unclipped)
    res = tiny.enhance_file(src, tmp_path / "out.wav", **CHEAP)
    peak = np.abs(unclipped).max()
    assert res.output_gain_db == pytest.approx(20 * np.log10(10 ** (-0.1 / 20) / peak), abs=1e-3)
    written, _ = audio.load(tmp_path / "out.wav")
    # the same computation twice (same kernels); 24-bit quantisation is 1.2e-7 at full scale
    np.testing.assert_allclose(written, unclipped * 10 ** (res.output_gain_db / 20), atol=2e-6)


@pytest.mark.slow  # 12 padded passes: 3 windows x 2 channels, in memory and streamed
def test_streamed_file_equals_in_memory_run(windowed, tmp_path, monkeypatch):
    """A long file streamed from disk to disk (two windows per network call, then one) gives
    the in-memory result (same windows, seeds, gain and cutoff), with no partial file left."""
    x = band_limited(22050, 10.0, 2, seed=5)
    x[1] = x[0]
    src = tmp_path / "long.flac"
    sf.write(src, x.T, 22050, subtype="PCM_24")
    n48 = output_length(x.shape[1], 22050)
    assert n_windows(windowed, n48) == 3
    in_memory = windowed.enhance_file(src, tmp_path / "a.wav", subtype="FLOAT", **CHEAP)
    monkeypatch.setattr(windowed, "stream_above_s", 5.0)
    streamed = windowed.enhance_file(src, tmp_path / "b.wav", subtype="FLOAT", batch_size=2,
                                     **CHEAP)
    assert streamed.streamed and not in_memory.streamed and streamed.audio.shape == (2, 0)
    assert streamed.cutoff_hz == in_memory.cutoff_hz and streamed.status == in_memory.status
    a, _ = audio.load(tmp_path / "a.wav")
    b, _ = audio.load(tmp_path / "b.wav")
    assert a.shape == b.shape == (2, n48)
    # Besides kernel rounding (batches of 2 windows vs 1), the streamed input is resampled block
    # by block and its level measured over blocks: the same numbers up to float32 rounding of
    # the input, which the networks carry like their own rounding (5e-7 = 8 ulps measured).
    np.testing.assert_allclose(b, a, rtol=0, atol=f32_atol(a, KERNEL_ULPS))
    # Identical channels share their seed and noise (rows of one batch: rounding only).
    np.testing.assert_allclose(b[1], b[0], rtol=0, atol=f32_atol(b, KERNEL_ULPS))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "b.wav", "long.flac"]


def test_batched_windows_equal_unbatched(windowed):
    """--batch-size runs windows together; every window keeps its own seed and noise (DDIM
    eta 1 draws fresh noise each step), so only float rounding differs."""
    x = band_limited(16000, 10.0, 1, seed=7)            # three windows: a batch of 2, then 1
    assert n_windows(windowed, 10 * 48000) == 3
    one = windowed.enhance(x, 16000, **CHEAP).audio
    two = windowed.enhance(x, 16000, batch_size=2, **CHEAP).audio
    assert one.shape == two.shape == (1, 10 * 48000)
    np.testing.assert_allclose(two, one, rtol=0, atol=f32_atol(one, KERNEL_ULPS))


@pytest.mark.slow  # 10 padded passes: 5 rows batched, then each item alone
def test_enhance_many_batches_files_like_separate_runs(windowed):
    """Items of different rates, lengths and channel counts in one call: each result equals
    its own enhance() (silent and full-band items pass through). The 6 s item spans two
    windows, which share a call; the two short items pad to one length and share another."""
    items = [(band_limited(16000, 3.0, 1, seed=1), 16000),
             (band_limited(22050, 2.5, 2, seed=2), 22050),
             (band_limited(16000, 6.0, 1, seed=3), 16000),
             (np.zeros((1, 8000), np.float32), 16000)]
    assert n_windows(windowed, 6 * 48000) == 2
    batched = windowed.enhance_many(items, batch_size=4, **CHEAP)
    assert [r.status for r in batched] == [["enhanced"], ["enhanced"] * 2, ["enhanced"],
                                           ["silent"]]
    for (x, sr), res in zip(items, batched, strict=True):
        alone = windowed.enhance(x, sr, **CHEAP)
        assert res.audio.shape == alone.audio.shape == (x.shape[0], output_length(x.shape[1], sr))
        np.testing.assert_allclose(res.audio, alone.audio, rtol=0,
                                   atol=f32_atol(alone.audio, KERNEL_ULPS) if alone.audio.any()
                                   else 0)
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
