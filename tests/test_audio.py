"""audiosr_core.audio: loading every format, validation errors, resampling, atomic saving."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiosr_core import audio
from audiosr_core.errors import AudioInputError, AudioSRError
from audiosr_core.rates import output_length

RNG_SEED = 1234
FRAMES = 1000
RATE_CHANNELS = [(4000, 1), (22050, 2), (384000, 8)]


def _codes(bits: int, frames: int, channels: int, seed: int = RNG_SEED) -> np.ndarray:
    """Random integer codes of a b-bit format, [frames, channels], including both extremes."""
    rng = np.random.default_rng(seed)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    codes = rng.integers(lo, hi, size=(frames, channels), endpoint=True, dtype=np.int64)
    codes[0, :], codes[1, :] = lo, hi
    return codes


def _sine(rate: int, frames: int, channels: int, freq: float = 300.0) -> np.ndarray:
    """[frames, channels] float32 sine at 0.5, a different phase per channel."""
    t = np.arange(frames)[:, None] / rate
    return (0.5 * np.sin(2 * np.pi * freq * t + np.arange(channels)[None, :])).astype(np.float32)


# --------------------------------------------------------------------------------------------
# loading: exact round trips of every integer and float sample type

# (container, subtype, extension, bits stored) -- bits None for float files.
LOSSLESS = [
    ("WAV", "PCM_U8", ".wav", 8),
    ("WAV", "PCM_16", ".wav", 16),
    ("WAV", "PCM_24", ".wav", 24),
    ("WAV", "PCM_32", ".wav", 32),
    ("WAV", "FLOAT", ".wav", None),
    ("WAV", "DOUBLE", ".wav", None),
    ("FLAC", "PCM_16", ".flac", 16),
    ("FLAC", "PCM_24", ".flac", 24),
    ("AIFF", "PCM_16", ".aiff", 16),
]


@pytest.mark.parametrize("rate,channels", RATE_CHANNELS)
@pytest.mark.parametrize(
    "fmt,subtype,ext,bits", LOSSLESS, ids=[f"{f}-{s}" for f, s, *_ in LOSSLESS]
)
def test_load_lossless_exact(tmp_path, fmt, subtype, ext, bits, rate, channels):
    path = tmp_path / f"clip{ext}"
    if bits is None:
        rng = np.random.default_rng(RNG_SEED)
        values = rng.uniform(-1.5, 1.5, size=(FRAMES, channels)).astype(np.float32)
        sf.write(path, values.astype(np.float64), rate, subtype=subtype, format=fmt)
        expected = values.T
    else:
        codes = _codes(bits, FRAMES, channels)
        # libsndfile stores the top `bits` bits of a left-justified int32.
        sf.write(path, (codes << (32 - bits)).astype(np.int32), rate, subtype=subtype, format=fmt)
        expected = (codes.T / 2.0 ** (bits - 1)).astype(np.float32)  # correctly rounded
    x, sr = audio.load(path)
    assert sr == rate
    assert x.dtype == np.float32 and x.shape == (channels, FRAMES) and x.flags.c_contiguous
    np.testing.assert_array_equal(x, expected)
    meta = audio.info(path)
    assert (meta.sample_rate, meta.channels, meta.frames) == (rate, channels, FRAMES)
    assert (meta.format, meta.subtype) == (fmt, subtype)
    assert meta.duration_s == pytest.approx(FRAMES / rate)


def test_pcm16_matches_int16_over_32768(tmp_path):
    """The official reader's convention: float32 = int16 / 32768, every code."""
    codes = np.arange(-32768, 32768, dtype=np.int16)
    path = tmp_path / "all_codes.wav"
    sf.write(path, codes, 8000, subtype="PCM_16")
    x, _ = audio.load(path)
    np.testing.assert_array_equal(x[0], codes.astype(np.float32) / np.float32(32768))


# (container, subtype, extension, rate, channels, min SNR dB)
LOSSY = [
    ("OGG", "VORBIS", ".ogg", 4000, 1, 30),
    ("OGG", "VORBIS", ".ogg", 22050, 2, 30),
    ("OGG", "VORBIS", ".ogg", 48000, 8, 30),
    ("MP3", "MPEG_LAYER_III", ".mp3", 22050, 1, 30),
    ("MP3", "MPEG_LAYER_III", ".mp3", 48000, 2, 30),
    ("OGG", "OPUS", ".opus", 48000, 2, 12),
]


@pytest.mark.parametrize(
    "fmt,subtype,ext,rate,channels,min_snr", LOSSY, ids=[f"{r[1]}-{r[3]}-{r[4]}ch" for r in LOSSY]
)
def test_load_lossy_close(tmp_path, fmt, subtype, ext, rate, channels, min_snr):
    if fmt not in sf.available_formats() or subtype not in sf.available_subtypes(fmt):
        pytest.skip(f"this libsndfile ({sf.__libsndfile_version__}) cannot write {fmt}/{subtype}")
    frames = int(0.3 * rate)
    sig = _sine(rate, frames, channels)
    path = tmp_path / f"clip{ext}"
    sf.write(path, sig, rate, format=fmt, subtype=subtype)
    x, sr = audio.load(path)
    assert sr == rate and x.dtype == np.float32 and x.shape == (channels, frames)
    err = x - sig.T
    snr = 10 * np.log10(np.sum(sig**2) / np.sum(err**2))
    assert snr > min_snr


# --------------------------------------------------------------------------------------------
# loading: every bad input gives AudioInputError naming the file


def _write_wav(path: Path, data: np.ndarray, rate: int, subtype: str = "PCM_16") -> Path:
    sf.write(path, data, rate, subtype=subtype)
    return path


BAD_FILES = {
    "missing": (lambda d: d / "missing.wav", "not found"),
    "corrupt": (
        lambda d: (
            (d / "corrupt.wav").write_bytes(np.random.default_rng(0).bytes(4000))
            and d / "corrupt.wav"
        ),
        "cannot be decoded",
    ),
    "text_as_wav": (
        lambda d: (
            (d / "notes_as.wav").write_text("RIFF? no, just text\n" * 50) and d / "notes_as.wav"
        ),
        "cannot be decoded",
    ),
    "zero_frames": (
        lambda d: _write_wav(d / "empty.wav", np.zeros((0, 1), np.float32), 16000),
        "no audio samples",
    ),
    "nan": (
        lambda d: _write_wav(
            d / "nan.wav", np.array([0.0, 0.1, np.nan, 0.2], np.float32), 16000, "FLOAT"
        ),
        "NaN/Inf",
    ),
    "inf": (
        lambda d: _write_wav(
            d / "inf.wav", np.array([[0.0, -np.inf], [0.1, 0.2]], np.float32), 16000, "FLOAT"
        ),
        "NaN/Inf",
    ),
    "rate_2k": (
        lambda d: _write_wav(d / "speech.wav", np.zeros((200, 1), np.float32), 2000),
        "2000 Hz is below the 4000 Hz minimum",
    ),
    "rate_400k": (
        lambda d: _write_wav(d / "ultra.wav", np.zeros((200, 1), np.float32), 400000),
        "above the 384000 Hz maximum",
    ),
    "nine_channels": (
        lambda d: _write_wav(d / "surround.wav", np.zeros((100, 9), np.float32), 48000),
        "9 channels",
    ),
    "txt_extension": (
        lambda d: (d / "notes.txt").write_text("hello") and d / "notes.txt",
        "unsupported extension '.txt'",
    ),
    "folder": (lambda d: (d / "album.wav").mkdir() or d / "album.wav", "is a folder"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_raises_input_error(tmp_path, case):
    make, problem = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(AudioInputError) as exc_info:
        audio.load(path)
    msg = str(exc_info.value)
    assert str(path) in msg and path.name in msg
    assert problem in msg
    assert ";" in msg  # problem; fix
    assert exc_info.value.__cause__ is None or isinstance(exc_info.value.__cause__, AudioSRError)
    if case not in ("nan", "inf"):  # info() checks everything but the samples
        with pytest.raises(AudioInputError, match=re.escape(problem)):
            audio.info(path)


def test_error_message_suggests_fix(tmp_path):
    path = _write_wav(tmp_path / "speech.wav", np.zeros((200, 1), np.float32), 2000)
    with pytest.raises(AudioInputError) as exc_info:
        audio.load(path)
    msg = str(exc_info.value)
    assert msg.startswith(f"{path}: sample rate 2000 Hz is below the 4000 Hz minimum; resample it")


def test_truncated_file_loads_what_is_there(tmp_path):
    path = _write_wav(tmp_path / "cut.wav", np.full((1000, 1), 0.25, np.float32), 16000)
    path.write_bytes(path.read_bytes()[:-500])  # header still claims 1000 frames
    x, _ = audio.load(path)
    assert 0 < x.shape[1] < 1000 and np.all(x == 0.25)


# --------------------------------------------------------------------------------------------
# in-memory validation


def test_validate_array_shapes_and_types():
    mono = np.linspace(-1, 1, 500)
    out = audio.validate_array(mono, 16000)
    assert out.shape == (1, 500) and out.dtype == np.float32 and out.flags.c_contiguous
    stereo = np.zeros((2, 500), np.float32)
    assert audio.validate_array(stereo, 16000.0).shape == (2, 500)
    ints = np.array([[-32768, 0, 16384]], np.int16)
    np.testing.assert_array_equal(audio.validate_array(ints, 8000), [[-1.0, 0.0, 0.5]])
    u8 = np.array([0, 128, 192], np.uint8)
    np.testing.assert_array_equal(audio.validate_array(u8, 8000), [[-1.0, 0.0, 0.5]])


def test_validate_array_torch():
    torch = pytest.importorskip("torch")
    t = torch.linspace(-1, 1, 300, requires_grad=True)
    for tensor in (t, t.to(torch.float16), t.to(torch.bfloat16), t[None].repeat(2, 1).double()):
        out = audio.validate_array(tensor, 24000)
        assert out.dtype == np.float32 and out.shape[1] == 300
        np.testing.assert_allclose(out[0], np.linspace(-1, 1, 300), atol=1e-2)


BAD_ARRAYS = {
    "samples_channels": (np.zeros((48000, 2), np.float32), 48000, "audio.T"),
    "nine_channels": (np.zeros((9, 1000), np.float32), 48000, "9 channels"),
    "three_dims": (np.zeros((1, 1, 100), np.float32), 48000, "shape (1, 1, 100)"),
    "empty": (np.zeros((1, 0), np.float32), 48000, "no audio samples"),
    "nan": (np.array([0.0, np.nan, 0.0]), 48000, "NaN/Inf"),
    "inf": (np.array([[0.0, 0.0], [np.inf, 0.0]]), 48000, "channel 1 at sample 0,"),
    "rate_low": (np.zeros(100), 2000, "below the 4000 Hz minimum"),
    "rate_high": (np.zeros(100), 400000, "above the 384000 Hz maximum"),
    "rate_fraction": (np.zeros(100), 22050.5, "whole number"),
    "complex": (np.zeros(100, np.complex64), 48000, "complex"),
    "int64": (np.zeros(100, np.int64), 48000, "int64"),
    "ragged": ([[0.0, 1.0], [0.0]], 48000, "cannot be read"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARRAYS))
def test_validate_array_errors(case):
    arr, rate, problem = BAD_ARRAYS[case]
    with pytest.raises(AudioInputError, match=r"^my_clip: ") as exc_info:
        audio.validate_array(arr, rate, name="my_clip")
    assert problem in str(exc_info.value)


# --------------------------------------------------------------------------------------------
# resampling


@pytest.mark.parametrize("stem", ["chord8k_mono", "speech16k_mono", "tones44k_stereo"])
def test_sinc_hann_reproduces_official_wave48(parity_dir, parity_expected, stem):
    x, sr = audio.load(parity_dir / "inputs" / f"{stem}.wav")
    expected = parity_expected[stem]["wave48"]
    wave = audio.official_normalize(audio.resample(x, sr, 48000, method="sinc_hann")[0])
    n = wave.shape[0]
    assert n == -(-x.shape[1] * 48000 // sr) <= expected.shape[0]
    err = float(np.max(np.abs(wave - expected[:n])))
    print(f"{stem}: sinc_hann max |diff| vs wave48 = {err:.3g}")
    assert err <= 2e-6
    assert not np.any(expected[n:])


def test_soxr_keeps_a_sine_a_sine():
    sr_in, sr_out, freq = 16000, 48000, 1000.0
    x = (0.5 * np.sin(2 * np.pi * freq * np.arange(16000) / sr_in)).astype(np.float32)
    y = audio.resample(x[None], sr_in, sr_out)
    assert y.shape == (1, 48000) and y.dtype == np.float32
    ideal = 0.5 * np.sin(2 * np.pi * freq * np.arange(48000) / sr_out)
    core = slice(2000, -2000)  # away from the start/end transients
    assert np.max(np.abs(y[0, core] - ideal[core])) < 1e-4
    spectrum = np.abs(np.fft.rfft(y[0, core] * np.hanning(y[0, core].size)))
    peak_hz = np.argmax(spectrum) * sr_out / y[0, core].size
    assert abs(peak_hz - freq) < 2.0


@pytest.mark.parametrize("method", ["soxr", "sinc_hann"])
@pytest.mark.parametrize(
    "orig,target,n",
    [(16000, 48000, 1001), (44100, 48000, 999), (22050, 48000, 12345), (48000, 16000, 1001),
     (384000, 48000, 12345), (4000, 48000, 7), (8000, 48000, 1)],
)  # fmt: skip
def test_resample_length_is_the_one_length_rule(method, orig, target, n):
    x = np.random.default_rng(0).standard_normal((2, n)).astype(np.float32) * 0.1
    y = audio.resample(x, orig, target, method=method)
    expected = math.floor(n * target / orig + 0.5)           # nearest, halves up
    assert y.shape == (2, output_length(n, orig, target)) == (2, expected)
    assert y.dtype == np.float32
    assert audio.resample(x[0], orig, target, method=method).shape == (y.shape[1],)


def test_resample_methods_agree_in_band():
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.standard_normal(8000)).astype(np.float32)
    x = audio.resample(x - x.mean(), 8000, 4000)  # band-limited test signal
    a = audio.resample(x, 4000, 48000, method="soxr")
    b = audio.resample(x, 4000, 48000, method="sinc_hann")
    core = slice(1000, -1000)
    assert np.max(np.abs(a[core] - b[core])) < 0.02 * np.max(np.abs(a))


def test_resample_same_rate_is_a_copy():
    x = np.ones((1, 10), np.float32)
    y = audio.resample(x, 48000, 48000)
    np.testing.assert_array_equal(x, y)
    assert y is not x and not np.shares_memory(x, y)


def test_resample_refusals():
    x = np.zeros((1, 100), np.float32)
    with pytest.raises(AudioInputError, match="soxr"):
        audio.resample(x, 44099, 48000, method="sinc_hann")
    assert audio.resample(x, 44099, 48000).shape == (1, round(100 * 48000 / 44099))
    with pytest.raises(AudioInputError, match="unknown method"):
        audio.resample(x, 16000, 48000, method="linear")
    with pytest.raises(AudioInputError, match="positive"):
        audio.resample(x, 0, 48000)


# --------------------------------------------------------------------------------------------
# level


def test_official_normalize():
    x = np.array([0.1, 0.3, -0.2, 0.6], np.float32)
    y = audio.official_normalize(x)
    ref = x - np.mean(x)
    ref = ref / (np.max(np.abs(ref)) + 1e-8) * 0.5
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-7)
    assert np.max(np.abs(y)) == pytest.approx(0.5, abs=1e-7)
    two = audio.official_normalize(np.stack([x, 3 * x + 1]))
    np.testing.assert_allclose(two[0], y, atol=1e-7)
    np.testing.assert_allclose(two[1], y, atol=1e-6)


def test_levels():
    sine = np.sin(2 * np.pi * np.arange(48000) / 48)[None]
    assert audio.peak_dbfs(sine) == pytest.approx(0.0, abs=1e-6)
    assert audio.rms_dbfs(sine) == pytest.approx(-3.0103, abs=1e-3)
    assert audio.peak_dbfs(0.5 * sine) == pytest.approx(-6.0206, abs=1e-3)
    assert audio.peak_dbfs(np.zeros((2, 10))) == -math.inf
    assert audio.rms_dbfs(np.zeros((2, 10))) == -math.inf


def test_would_clip():
    assert not audio.would_clip(np.array([-1.0, 32767 / 32768]), "PCM_16")
    assert audio.would_clip(np.array([1.0]), "PCM_16")
    assert not audio.would_clip(np.array([1.0 - 2**-23]), "PCM_24")
    assert audio.would_clip(np.array([-1.0001]), "PCM_24")
    assert not audio.would_clip(np.array([4.0]), "FLOAT")


# --------------------------------------------------------------------------------------------
# saving

SAVE_CASES = [("wav", "PCM_16", 16), ("wav", "PCM_24", 24), ("wav", "FLOAT", None),
              ("flac", "PCM_16", 16), ("flac", "PCM_24", 24)]  # fmt: skip


@pytest.mark.parametrize("rate,channels", RATE_CHANNELS)
@pytest.mark.parametrize("ext,subtype,bits", SAVE_CASES, ids=[f"{e}-{s}" for e, s, _ in SAVE_CASES])
def test_save_round_trip_exact(tmp_path, ext, subtype, bits, rate, channels):
    if bits is None:
        x = np.random.default_rng(1).uniform(-2, 2, (channels, FRAMES)).astype(np.float32)
    else:
        x = (_codes(bits, FRAMES, channels).T / 2.0 ** (bits - 1)).astype(np.float32)
    out = tmp_path / "sub" / "dir" / f"out.{ext}"
    assert audio.save(out, x, rate, subtype=subtype) == out
    y, sr = audio.load(out)
    assert sr == rate
    np.testing.assert_array_equal(y, x)
    assert audio.info(out).subtype == subtype
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


def test_save_default_subtype_mono_and_clipping(tmp_path):
    out = audio.save(tmp_path / "a.wav", np.array([0.0, 1.0, -1.0, 2.0, -2.0]), 16000)
    assert audio.info(out).subtype == audio.DEFAULT_SUBTYPE == "PCM_24"
    y, _ = audio.load(out)
    top = 1 - 2.0**-23
    np.testing.assert_array_equal(y, [[0.0, top, -1.0, top, -1.0]])  # saturated, no wrap-around
    assert audio.save(tmp_path / "b.flac", np.zeros(100), 16000, subtype=16).suffix == ".flac"
    assert audio.info(tmp_path / "b.flac").subtype == "PCM_16"


def test_save_refuses_to_overwrite_its_input(tmp_path):
    src = _write_wav(tmp_path / "in.wav", _sine(16000, 1600, 1), 16000)
    before = src.read_bytes()
    new = np.zeros((1, 4800), np.float32)
    spellings = [src, tmp_path / "." / "in.wav", tmp_path / "x" / ".." / "in.wav"]
    link = tmp_path / "link.wav"
    link.symlink_to(src)
    hard = tmp_path / "hard.wav"
    os.link(src, hard)
    for target in [*spellings, link, hard]:
        with pytest.raises(AudioInputError, match="refusing to overwrite the input") as exc_info:
            audio.save(target, new, 48000, input_paths=[str(src)])
        assert str(target) in str(exc_info.value)
    with pytest.raises(AudioInputError, match="refusing"):
        audio.save(src, new, 48000, input_paths=src)  # one path instead of a list
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.wav", "in.wav", "link.wav"]
    # a different output next to it is fine
    audio.save(tmp_path / "in_48k.wav", new, 48000, input_paths=[src])


def test_save_bad_requests(tmp_path):
    x = np.zeros((1, 100), np.float32)
    with pytest.raises(AudioInputError, match=r"out\.mp3: cannot write extension"):
        audio.save(tmp_path / "out.mp3", x, 48000)
    with pytest.raises(AudioInputError, match="FLAC with sample type 'FLOAT'"):
        audio.save(tmp_path / "out.flac", x, 48000, subtype="FLOAT")
    with pytest.raises(AudioInputError, match="NaN/Inf"):
        audio.save(tmp_path / "nan.wav", np.array([0.0, np.nan]), 48000)
    (tmp_path / "dir.wav").mkdir()
    with pytest.raises(AudioInputError, match="existing folder"):
        audio.save(tmp_path / "dir.wav", x, 48000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.wav"]


@pytest.mark.parametrize("exc_type", [OSError, KeyboardInterrupt])
def test_save_is_atomic(tmp_path, monkeypatch, exc_type):
    dest = audio.save(tmp_path / "out.wav", np.full((1, 100), 0.5), 16000)
    before = dest.read_bytes()
    def failing_fsync(fd):  # the temporary file is complete, then something goes wrong
        raise exc_type("simulated failure")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    expected = AudioSRError if exc_type is OSError else KeyboardInterrupt
    with pytest.raises(expected):
        audio.save(dest, np.zeros((2, 5000)), 48000)
    assert dest.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_atomic_writer_blocks_and_interruption(tmp_path):
    blocks = [np.full((2, 1000), 0.25 * k, np.float32) for k in range(3)]
    with audio.atomic_writer(tmp_path / "s.flac", 48000, 2, "PCM_16") as write:
        for block in blocks:
            write(block)
    data, rate = audio.load(tmp_path / "s.flac")
    np.testing.assert_array_equal(data, np.concatenate(blocks, axis=1))
    with pytest.raises(KeyboardInterrupt), audio.atomic_writer(tmp_path / "t.wav", 48000, 1) as w:
        w(blocks[1][:1])
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.flac"]


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_reader48_blocks_equal_whole_file_resampling(tmp_path, rate):
    rng = np.random.default_rng(rate)
    x = (0.1 * rng.standard_normal((2, rate * 5))).astype(np.float32)
    sf.write(tmp_path / "x.wav", x.T, rate, subtype="FLOAT")
    n = round(x.shape[1] * 48000 / rate)
    whole = audio.resample(x, rate, 48000)[:, :n]
    with audio.Reader48(tmp_path / "x.wav") as reader:
        assert reader.length == n and reader.channels == 2
        blocks = [reader.read(a, min(a + 37_003, n)) for a in range(0, n, 37_003)]
        tail = reader.read(n - 10, n + 50)
    np.testing.assert_allclose(np.concatenate(blocks, axis=1), whole, atol=1e-6)
    assert tail.shape == (2, 60) and np.all(tail[:, 10:] == 0)


def test_reader48_reports_nan_blocks(tmp_path):
    x = np.zeros((48000, 1), np.float32)
    x[30000] = np.nan
    sf.write(tmp_path / "nan.wav", x, 48000, subtype="FLOAT")
    with audio.Reader48(tmp_path / "nan.wav") as reader:
        assert reader.read(0, 1000).shape == (1, 1000)
        with pytest.raises(AudioInputError, match="nan.wav: contains 1 NaN/Inf sample"):
            reader.read(20000, 40000)
