"""Fine-tuning data (audiosr_core.train.data): file listing, the corpus scan, deterministic
on-the-fly pairs and the rank/resume-invariant sampler, on audio synthesised in tmp_path."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from audiosr_core import dsp
from audiosr_core.errors import TrainingError
from audiosr_core.rates import SAMPLE_RATE
from audiosr_core.train import data
from audiosr_core.train.data import (
    AudioCorpus,
    PairDataset,
    ShardSampler,
    check_disjoint,
    crop_frames,
    global_items,
    list_audio,
)

CROP = 2.56
CROP_SAMPLES = 256 * 480


def write(path: Path, wave: np.ndarray, rate: int, subtype: str = "PCM_16") -> Path:
    """Write ``wave`` (``[samples]`` or ``[channels, samples]``) to ``path``; returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(wave, np.float32).T, rate, subtype=subtype)
    return path


def noise(seconds: float, rate: int = SAMPLE_RATE, seed: int = 0, channels: int = 1,
          level: float = 0.1) -> np.ndarray:
    """White noise ``[channels, samples]`` (``[samples]`` for one channel)."""
    x = np.random.default_rng(seed).standard_normal((channels, round(seconds * rate))) * level
    return (x[0] if channels == 1 else x).astype(np.float32)


def band_limited(seconds: float, cutoff_hz: float, seed: int = 0) -> np.ndarray:
    """48 kHz noise whose content ends at ``cutoff_hz`` (elliptic, 80 dB stop band)."""
    sos = scipy.signal.ellip(10, 0.1, 80, cutoff_hz, fs=SAMPLE_RATE, output="sos")
    return scipy.signal.sosfilt(sos, noise(seconds, seed=seed, level=0.3)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    """Five usable clips at 16, 44.1 and 48 kHz (one stereo, one band-limited)."""
    root = tmp_path_factory.mktemp("corpus")
    write(root / "a_noise48.wav", noise(6.0, seed=1), SAMPLE_RATE)
    write(root / "b_stereo44.flac", noise(5.0, 44100, seed=2, channels=2), 44100)
    write(root / "c_noise16.wav", noise(4.0, 16000, seed=3), 16000)
    write(root / "sub" / "d_band6k.wav", band_limited(5.0, 6000.0, seed=4), SAMPLE_RATE)
    t = np.arange(int(4.0 * 44100)) / 44100
    write(root / "sub" / "e_tones.wav", 0.3 * np.sin(2 * np.pi * 440 * t)
          + 0.1 * np.sin(2 * np.pi * 5000 * t), 44100, "FLOAT")
    return root


@pytest.fixture(scope="module")
def corpus(corpus_dir: Path) -> AudioCorpus:
    return AudioCorpus(list_audio([corpus_dir]), CROP)


@pytest.fixture(scope="module")
def dataset(corpus: AudioCorpus) -> PairDataset:
    return PairDataset(corpus, CROP, seed=3)


def assert_items_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)
        else:
            assert a[key] == b[key], key


# ------------------------------------------------------------------------------------ crops
@pytest.mark.parametrize(("seconds", "frames"), [(0.64, 64), (2.56, 256), (5.12, 512),
                                                 (7.68, 768), (10.24, 1024)])
def test_crop_frames_of_valid_crops(seconds, frames):
    assert crop_frames(seconds) == frames
    assert crop_frames(seconds) * data.FRAME_HOP == round(seconds * SAMPLE_RATE)


@pytest.mark.parametrize(("seconds", "hint"), [
    (3, "--crop-seconds 3 is not a multiple of 0.64 s; use 2.56, 3.2 or 5.12"),
    (0.3, "use 0.64 or 5.12"),
    (2.565, "use 2.56, 3.2 or 5.12"),
    (0, "use 0.64 or 5.12"),
    (-1, "not a multiple of 0.64 s"),
    (float("nan"), "use 0.64 or 5.12"),
])
def test_crop_frames_refuses_other_crops_and_lists_valid_ones(seconds, hint):
    with pytest.raises(TrainingError, match=hint.replace(".", r"\.")):
        crop_frames(seconds)


def test_crop_frames_other_multiple():
    assert crop_frames(1.28, multiple=32) == 128
    with pytest.raises(TrainingError, match="multiple of 0.32 s"):
        crop_frames(1.0, multiple=32)


# ---------------------------------------------------------------------------------- listing
def test_list_audio_folders_lists_and_duplicates(tmp_path: Path):
    tone = noise(0.1)
    a = write(tmp_path / "music" / "a.wav", tone, SAMPLE_RATE)
    b = write(tmp_path / "music" / "deep" / "b.flac", tone, SAMPLE_RATE)
    write(tmp_path / "music" / ".hidden.wav", tone, SAMPLE_RATE)
    write(tmp_path / "music" / ".cache" / "c.wav", tone, SAMPLE_RATE)
    (tmp_path / "music" / "notes.txt").write_text("not audio\n")
    (tmp_path / "music" / "cover.jpg").write_bytes(b"\xff\xd8")
    other = write(tmp_path / "other" / "q.wav", tone, SAMPLE_RATE)
    listed = tmp_path / "lists" / "train.txt"
    listed.parent.mkdir()
    listed.write_text(f"# training files\n\n../other/q.wav\n{a}\n../music/deep\n")

    assert list_audio([tmp_path / "music"]) == [a, b]            # sorted, recursive, no hidden
    found = list_audio([listed, str(tmp_path / "music"), a, tmp_path / "other" / ".." / "other"])
    assert [p.resolve() for p in found] == [other.resolve(), a.resolve(), b.resolve()]
    assert found[0] == listed.parent / "../other/q.wav"          # relative to the list file
    os.symlink(a, tmp_path / "link.wav")
    assert list_audio([a, tmp_path / "link.wav"]) == [a]          # same resolved file: once


def test_list_audio_errors(tmp_path: Path):
    with pytest.raises(TrainingError, match=r"training folder .*nowhere does not exist"):
        list_audio([tmp_path / "nowhere"])
    with pytest.raises(TrainingError, match=r"validation file .*gone\.wav does not exist"):
        list_audio([tmp_path / "gone.wav"], what="validation")
    (tmp_path / "l.lst").write_text("missing.flac\n")
    with pytest.raises(TrainingError, match=r"missing\.flac \(listed in .*l\.lst\) does not"):
        list_audio([tmp_path / "l.lst"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("no audio here")
    with pytest.raises(TrainingError, match=r"no training audio in .*empty \(looked for "
                                            r"\.wav \.flac .*\.mp3"):
        list_audio([tmp_path / "empty"])


# -------------------------------------------------------------------------------- disjoint
def test_check_disjoint(tmp_path: Path):
    tone = noise(0.1)
    train = [write(tmp_path / "set" / f"t{i}.wav", tone, SAMPLE_RATE) for i in range(6)]
    valid = [write(tmp_path / "set" / "valid" / f"v{i}.wav", tone, SAMPLE_RATE)
             for i in range(2)]
    check_disjoint(list_audio([tmp_path / "set"])[:6], valid)     # nested folders: fine
    check_disjoint(train, valid)
    with pytest.raises(TrainingError, match=r"^1 validation file is also a training file: "
                                            r".*t2\.wav; a model scored on audio it was "
                                            r"trained on"):
        check_disjoint(train, [valid[0], train[2]])
    os.symlink(train[4], tmp_path / "alias.wav")
    with pytest.raises(TrainingError, match=r"alias\.wav; a model scored"):
        check_disjoint(train, [tmp_path / "alias.wav"])
    with pytest.raises(TrainingError, match=r"^5 validation files are also training files: "
                                            r".*t0\.wav, .*t1\.wav, .*t2\.wav and 2 more"):
        check_disjoint(train, [*train[:5], *valid])


# ---------------------------------------------------------------------------------- corpus
def test_corpus_scan_keeps_usable_clips_and_says_why_others_are_skipped(tmp_path: Path):
    good = write(tmp_path / "good.wav", noise(3.0), SAMPLE_RATE)
    stereo = write(tmp_path / "stereo.flac", np.stack([np.zeros(3 * 44100), noise(3.0, 44100)]),
                   44100)
    silent = write(tmp_path / "silent.wav", np.zeros(3 * SAMPLE_RATE), SAMPLE_RATE)
    dc = write(tmp_path / "dc.wav", np.full(3 * SAMPLE_RATE, 0.3), SAMPLE_RATE, "FLOAT")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(np.random.default_rng(0).bytes(5000))
    nan = noise(3.0)
    nan[1000] = np.nan
    nan_file = write(tmp_path / "nan.wav", nan, SAMPLE_RATE, "FLOAT")
    short = write(tmp_path / "short.wav", noise(1.0), SAMPLE_RATE)
    low_rate = write(tmp_path / "low.wav", noise(3.0, 6000), 6000)

    files = [good, stereo, silent, dc, corrupt, nan_file, short, low_rate]
    corpus = AudioCorpus(files, CROP)
    assert [c.path for c in corpus.clips] == [good, stereo]
    assert corpus.clips[1].sample_rate == 44100 and corpus.clips[1].channels == 2
    assert corpus.clips[1].frames == 3 * 44100 and corpus.clips[1].seconds == 3.0
    assert corpus.clips[1].loud_channels == (1,)
    kinds = {s.path.name: s.kind for s in corpus.skipped}
    assert kinds == {"silent.wav": "silent", "dc.wav": "silent", "corrupt.wav": "unreadable",
                     "nan.wav": "unreadable", "short.wav": "short", "low.wav": "low-rate"}
    reasons = {s.path.name: s.reason for s in corpus.skipped}
    assert "cannot be decoded as audio" in reasons["corrupt.wav"]
    assert "NaN" in reasons["nan.wav"]
    assert "1.00 s is shorter than the 2.56 s crop" in reasons["short.wav"]
    assert "6000 Hz is below the 8000 Hz minimum" in reasons["low.wav"]
    assert corpus.hours == pytest.approx(6.0 / 3600)
    assert corpus.summary() == ("2 clips, 0.1 min; skipped 6: 2 silent, 2 unreadable, "
                                "1 too short, 1 below 8000 Hz")
    assert AudioCorpus([good], CROP).summary() == "1 clip, 0.1 min"


def test_corpus_errors_say_why_nothing_is_usable(tmp_path: Path):
    silent = [write(tmp_path / f"s{i}.wav", np.zeros(3 * SAMPLE_RATE), SAMPLE_RATE)
              for i in range(2)]
    short = [write(tmp_path / f"short{i}.wav", noise(s), SAMPLE_RATE)
             for i, s in enumerate((3.1, 1.0))]
    corrupt = tmp_path / "bad.wav"
    corrupt.write_bytes(b"RIFF not really")
    with pytest.raises(TrainingError, match="no training audio files"):
        AudioCorpus([], CROP)
    with pytest.raises(TrainingError, match=r"all 2 training files are silent"):
        AudioCorpus(silent, CROP)
    with pytest.raises(TrainingError, match=r"all 2 validation files are shorter than the "
                                            r"5\.12 s crop \(longest 3\.1 s\): pass "
                                            r"--crop-seconds 2\.56 or --pad-short"):
        AudioCorpus(short, 5.12, what="validation")
    with pytest.raises(TrainingError, match=r"the training file is shorter than the 2\.56 s "
                                            r"crop \(longest 1\.0 s\): pass --crop-seconds "
                                            r"0\.64 or --pad-short"):
        AudioCorpus(short[1:], CROP)
    with pytest.raises(TrainingError, match=r"the training file is unreadable; the first: "
                                            r".*bad\.wav: cannot be decoded"):
        AudioCorpus([corrupt], CROP)
    with pytest.raises(TrainingError, match=r"no usable audio among the 4 training files: "
                                            r"2 silent, 1 too short, 1 unreadable; the too "
                                            r"short ones \(longest 1\.0 s\)"):
        AudioCorpus([*silent, short[1], corrupt], CROP)
    kept = AudioCorpus(short, 5.12, pad_short=True)
    assert [c.path for c in kept.clips] == short and not kept.skipped


# ---------------------------------------------------------------------------------- dataset
def test_items_have_the_documented_shapes_and_fields(dataset: PairDataset):
    item = dataset[0]
    for key in ("log_mel_spec", "lowpass_mel"):
        assert item[key].shape == (256, 256) and item[key].dtype == torch.float32
        assert torch.isfinite(item[key]).all()
    assert "waveform" not in item
    assert item["index"] == 0 and isinstance(item["path"], str)
    assert item["kind"] in ("cheby1", "ellip", "butter", "boxcar") and 2 <= item["order"] <= 10
    assert 2000 <= item["cutoff_hz"] < 16000
    assert 0 <= item["offset_s"] <= 6.0 - CROP
    assert len(dataset) == 5


def test_items_are_a_pure_function_of_seed_and_index(corpus: AudioCorpus, dataset: PairDataset):
    first = dataset[13]
    assert_items_close(first, dataset[13])
    fresh = PairDataset(corpus, CROP, seed=3)
    assert_items_close(fresh[13], first)                          # another object, out of order
    assert_items_close(pickle.loads(pickle.dumps(dataset))[13], first)
    other = dataset[14]
    assert not torch.allclose(other["log_mel_spec"], first["log_mel_spec"])
    reseeded = PairDataset(corpus, CROP, seed=4)[13]
    assert (reseeded["path"], reseeded["offset_s"], reseeded["cutoff_hz"]) != \
        (first["path"], first["offset_s"], first["cutoff_hz"])


def test_dataloader_workers_give_the_same_batches(dataset: PairDataset):
    order = [3, 17, 0, 42, 8, 9]                                 # beyond len: later epochs
    serial = list(DataLoader(dataset, batch_size=2, sampler=order, num_workers=0))
    parallel = list(DataLoader(dataset, batch_size=2, sampler=order, num_workers=2))
    assert len(serial) == len(parallel) == 3
    for a, b in zip(serial, parallel, strict=True):
        assert a["log_mel_spec"].shape == (2, 256, 256)
        assert a["index"].tolist() == b["index"].tolist()
        assert_items_close(a, b)


def test_each_epoch_visits_every_clip_once(dataset: PairDataset):
    n = len(dataset)
    orders = []
    for epoch in range(4):
        clips = [dataset.locate(i)[0] for i in range(epoch * n, (epoch + 1) * n)]
        assert sorted(clips) == list(range(n))
        orders.append(clips)
    assert len({tuple(o) for o in orders}) > 1                   # reshuffled between epochs
    assert dataset[7]["clip"] == orders[1][2]


def test_validation_items_are_fixed_and_match_their_waveforms(corpus: AudioCorpus):
    valid = PairDataset(corpus, CROP, seed=3, validation=True)
    for i in (0, 1):
        item = valid[i]
        clip = corpus.clips[i]
        assert item["clip"] == i
        assert item["offset_s"] == (clip.length48 - CROP_SAMPLES) // 2 / SAMPLE_RATE
        target, low = item["waveform"].numpy(), item["waveform_lowpass"].numpy()
        assert target.shape == low.shape == (CROP_SAMPLES,) and target.dtype == np.float32
        assert np.max(np.abs(target)) == pytest.approx(0.5, abs=1e-6)
        assert abs(float(target.mean())) < 1e-6
        np.testing.assert_allclose(item["log_mel_spec"].numpy(),
                                   dsp.mel_features(target, 256).log_mel, atol=1e-6, rtol=0)
        np.testing.assert_allclose(item["lowpass_mel"].numpy(),
                                   dsp.mel_features(low, 256).log_mel, atol=1e-6, rtol=0)
        assert_items_close(item, PairDataset(corpus, CROP, seed=3, validation=True)[i])


def _energy_above(wave: np.ndarray, hz: float) -> float:
    spec = np.abs(np.fft.rfft(wave.astype(np.float64))) ** 2
    return float(spec[np.fft.rfftfreq(wave.size, 1 / SAMPLE_RATE) >= hz].sum())


def test_the_low_pass_removes_the_content_above_the_cutoff(corpus: AudioCorpus):
    sharp = PairDataset(corpus, CROP, seed=5, validation=True, kinds=("ellip", "boxcar"),
                        order_range=(8, 10))
    for i in range(len(sharp)):
        item = sharp[i]
        target, low = item["waveform"].numpy(), item["waveform_lowpass"].numpy()
        above = 1.1 * item["cutoff_hz"]
        if _energy_above(target, above) < 1e-6 * _energy_above(target, 0.0):
            continue                                              # nothing there to remove
        ratio_db = 10 * np.log10(_energy_above(low, above) / _energy_above(target, above))
        assert ratio_db < -30, (item["path"], item["kind"], item["cutoff_hz"], ratio_db)


def test_the_cutoff_never_exceeds_the_clips_own_band(tmp_path: Path):
    path = write(tmp_path / "band6k.wav", band_limited(20.0, 6000.0), SAMPLE_RATE)
    dataset = PairDataset(AudioCorpus([path], CROP), CROP, seed=0)
    cutoffs = [dataset[i]["cutoff_hz"] for i in range(50)]
    assert max(cutoffs) <= 6300.0
    assert min(cutoffs) >= 2000.0
    narrow = write(tmp_path / "band1k.wav", band_limited(3.0, 1000.0), SAMPLE_RATE)
    item = PairDataset(AudioCorpus([narrow], CROP), CROP)[0]
    assert item["cutoff_hz"] == 2000.0                            # held at the lowest cutoff


def test_near_silent_crops_are_redrawn(tmp_path: Path):
    wave = np.concatenate([np.zeros(6 * SAMPLE_RATE, np.float32), noise(6.0, seed=9)])
    path = write(tmp_path / "half_silent.wav", wave, SAMPLE_RATE)
    dataset = PairDataset(AudioCorpus([path], CROP), CROP, seed=0)
    for i in range(30):
        item = dataset[i]
        assert item["offset_s"] + CROP > 6.0, i                  # overlaps the noise
        assert float(item["log_mel_spec"].max()) > np.log(1e-3)


def test_stereo_with_a_silent_channel_uses_the_other(tmp_path: Path):
    wave = np.stack([np.zeros(3 * 44100), noise(3.0, 44100, seed=5)])
    path = write(tmp_path / "right_only.wav", wave, 44100)
    dataset = PairDataset(AudioCorpus([path], CROP), CROP)
    for i in range(4):
        assert float(dataset[i]["log_mel_spec"].mean()) > np.log(1e-5) + 3


def test_short_clips_are_zero_padded_with_pad_short(tmp_path: Path):
    path = write(tmp_path / "short.wav", noise(1.5, 44100, seed=6), 44100)
    with pytest.raises(TrainingError, match="shorter than the 2.56 s crop"):
        AudioCorpus([path], CROP)
    corpus = AudioCorpus([path], CROP, pad_short=True)
    item = PairDataset(corpus, CROP, validation=True)[0]
    wave = item["waveform"].numpy()
    assert wave.shape == (CROP_SAMPLES,) and item["offset_s"] == 0.0
    held = round(1.5 * SAMPLE_RATE)
    assert np.all(wave[held:] == 0) and np.max(np.abs(wave[:held])) == pytest.approx(0.5)
    assert item["log_mel_spec"].shape == (256, 256)


def test_dataset_refuses_settings_it_cannot_honour(corpus: AudioCorpus):
    with pytest.raises(TrainingError, match="longer than the 2.56 s training clips were"):
        PairDataset(corpus, 5.12)
    with pytest.raises(TrainingError, match="invalid degradation settings"):
        PairDataset(corpus, CROP, kinds=("sinc",))
    with pytest.raises(TrainingError, match="not a multiple"):
        PairDataset(corpus, 3.0)


# ---------------------------------------------------------------------------------- sampler
def _take(sampler: ShardSampler, n: int) -> list[int]:
    it = iter(sampler)
    return [next(it) for _ in range(n)]


@pytest.mark.parametrize("grad_accum", [1, 3])
def test_one_rank_sees_what_two_ranks_see(grad_accum):
    steps = 10
    micro = steps * grad_accum
    single = _take(ShardSampler(2, grad_accum=grad_accum), micro * 2)
    ranks = [_take(ShardSampler(1, rank=r, world_size=2, grad_accum=grad_accum), micro)
             for r in range(2)]
    for g in range(micro):
        assert single[2 * g:2 * g + 2] == [ranks[0][g], ranks[1][g]]
    assert single == list(range(micro * 2))
    assert list(global_items(4, 1, 2, 2, 1, grad_accum=3)) == [4 * 3 * 4 + 4 + 2,
                                                               4 * 3 * 4 + 4 + 3]


@pytest.mark.parametrize("world_size", [1, 3])
def test_a_resumed_sampler_continues_the_stream(world_size):
    for rank in range(world_size):
        full = _take(ShardSampler(2, rank=rank, world_size=world_size, grad_accum=2), 40)
        resumed = _take(ShardSampler(2, rank=rank, world_size=world_size, grad_accum=2,
                                     start_step=5), 20)
        assert resumed == full[20:]


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rank"):
        ShardSampler(2, rank=2, world_size=2)
    with pytest.raises(ValueError, match=">= 1"):
        ShardSampler(0)
    with pytest.raises(ValueError, match="micro"):
        global_items(0, 1, 2)
