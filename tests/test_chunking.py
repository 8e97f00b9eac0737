"""Windows, crossfades, and long audio through the tiny AudioSR without seams."""

from __future__ import annotations

import numpy as np
import pytest

from audiosr_core import AudioSR, audio, chunking, metrics
from audiosr_core.chunking import overlap_add, plan_windows, window_weight


@pytest.mark.parametrize("n", [100, 1000, 1001, 2500, 10_007])
def test_windows_cover_the_signal_and_weights_sum_to_one(n):
    windows = plan_windows(n, segment=1000, context=100, crossfade=50)
    if n <= 1000:
        assert windows == [windows[0]] and (windows[0].start, windows[0].stop) == (0, n)
    total = np.zeros(n)
    for i, w in enumerate(windows):
        weight = window_weight(windows, i)
        assert w.seg_start == max(0, w.start - (0 if n <= 1000 else 100))
        assert w.seg_stop - w.seg_start <= 1000
        assert w.stop - w.start == (n if n <= 1000 else 800)      # no short last window
        total[w.start:w.stop] += weight
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    for a, b in zip(windows, windows[1:], strict=False):
        assert a.stop - b.start >= 50                               # at least the crossfade


def test_overlap_add_of_identity_is_identity():
    x = np.random.default_rng(0).standard_normal((2, 12_345)).astype(np.float32)
    y = overlap_add(x, plan_windows(x.shape[-1], 2000, 300, 100), lambda i, seg: seg)
    np.testing.assert_allclose(y, x, atol=1e-6)
    with pytest.raises(ValueError, match="no room"):
        plan_windows(5000, 1000, 450, 200)


@pytest.fixture(scope="module")
def tiny(tiny_audiosr) -> AudioSR:
    """conftest's tiny random-weight model, in a pipeline of its own with short windows so a
    short test signal spans several of them (the shared pipeline keeps its settings)."""
    sr = AudioSR(tiny_audiosr.model, device="cpu")
    sr.segment, sr.context, sr.crossfade = int(2.56 * 48000), int(0.32 * 48000), 4800
    return sr


def test_long_audio_has_no_seams_and_keeps_its_band(tiny):
    sr_in, seconds = 16000, 5.5                    # three windows, four edges to check
    n = int(sr_in * seconds)
    t = np.arange(n) / sr_in
    rng = np.random.default_rng(1)
    x = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
         + 0.02 * rng.standard_normal(n)).astype(np.float32)
    res = tiny.enhance(x, sr_in, steps=2, guidance_scale=1.0)   # one UNet pass a step
    y = res.audio[0]
    assert y.shape == (int(seconds * 48000),)
    windows = plan_windows(y.size, tiny.segment, tiny.context, tiny.crossfade)
    assert len(windows) >= 3
    ref = audio.resample(x[None], sr_in, 48000)[0]
    assert metrics.lsd_band(ref, y, 0, res.cutoff_hz[0] - 50) < 0.05
    # No click at any boundary: the sample-to-sample jump there is like the jumps elsewhere,
    # and the 20 ms level on both sides of every window edge agrees within 1 dB.
    jumps = np.abs(np.diff(y))
    typical = np.percentile(jumps, 99.9)
    block = 960
    for w in windows[1:]:
        for edge in (w.start, windows[windows.index(w) - 1].stop):
            assert jumps[edge - 5:edge + 5].max() <= typical
            before, after = y[edge - block:edge], y[edge:edge + block]
            assert abs(audio.rms_dbfs(before) - audio.rms_dbfs(after)) < 1.0


def test_streamed_overlap_add_writes_each_sample_once_in_order():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 50_000)).astype(np.float32)
    windows = plan_windows(x.shape[-1], segment=9000, context=1024, crossfade=512, align=512)
    assert all(w.start % 512 == 0 and w.seg_start % 512 == 0 for w in windows)
    assert windows[-1].stop == x.shape[-1]
    blocks = []
    chunking.overlap_add_stream(lambda a, b: x[:, a:b], windows, lambda i, seg: 2 * seg,
                                blocks.append)
    np.testing.assert_allclose(np.concatenate(blocks, axis=1), 2 * x, atol=1e-5)
    assert max(b.shape[1] for b in blocks) <= 9000
