"""Fine-tuning data: high-resolution audio files -> (target, simulated low-pass) training pairs.

Pairs are made on the fly and are a pure function of ``(seed, global item index)``: a resumed
run, a run with any number of DataLoader workers and a multi-process (DDP) run see exactly the
same items, in the same order.

1. :func:`list_audio` turns files, folders and list files into audio paths;
   :func:`check_disjoint` refuses validation files that are also training files.
2. :class:`AudioCorpus` reads every file once (header, then a streamed peak scan in bounded
   memory) and keeps the usable clips; the others are :class:`Skipped` with a reason.
3. :class:`PairDataset` item ``i`` of the endless stream is clip ``perm_e[i % n]`` of epoch
   ``e = i // n``: a crop of :func:`crop_frames` mel frames read from disk (only that region),
   one channel, 48 kHz (soxr), official normalisation (mean removed, peak 0.5), degraded by
   :mod:`audiosr_core.train.simulate` with the cutoff capped at the crop's own band edge, and
   the official log-mel of both.
4. :class:`ShardSampler` hands each rank its slice of every global micro-batch.

Cost: one 5.12 s item from a 44.1 kHz stereo file takes about 27 ms on one CPU core (median
of 50 items, 40 ms at most; AMD EPYC, ``OMP_NUM_THREADS=1``): read and resample 5 ms, log-mel
2 x 7 ms, band edge 4 ms, degradation 2-6 ms. A near-silent crop costs one more read per
extra offset tried.

Example
-------
>>> from torch.utils.data import DataLoader
>>> from audiosr_core.train import data
>>> files = data.list_audio(["corpus/"])                            # doctest: +SKIP
>>> corpus = data.AudioCorpus(files, 5.12)                          # doctest: +SKIP
>>> corpus.summary()                                                # doctest: +SKIP
'412 clips, 3.4 h; skipped 3: 2 silent, 1 unreadable'
>>> dataset = data.PairDataset(corpus, 5.12, seed=0)                # doctest: +SKIP
>>> loader = DataLoader(dataset, batch_size=4, num_workers=4,
...                     sampler=data.ShardSampler(4, start_step=0))  # doctest: +SKIP
>>> next(iter(loader))["log_mel_spec"].shape                        # doctest: +SKIP
torch.Size([4, 512, 256])
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset, Sampler

from .. import audio, dsp
from ..errors import AudioInputError, TrainingError
from ..jobs import find_audio, read_list
from ..rates import SAMPLE_RATE, fit_length, output_length
from ..seeds import derive_seed
from . import simulate

__all__ = [
    "FRAME_HOP",
    "FRAMES_PER_SECOND",
    "LIST_EXTENSIONS",
    "MIN_TRAIN_RATE",
    "crop_frames",
    "list_audio",
    "check_disjoint",
    "ClipInfo",
    "Skipped",
    "AudioCorpus",
    "PairDataset",
    "ShardSampler",
    "global_items",
]

FRAME_HOP = dsp.HOP
"""Samples per mel frame at 48 kHz (480: 100 frames per second)."""
FRAMES_PER_SECOND = SAMPLE_RATE // FRAME_HOP
"""Mel frames per second (100)."""
LIST_EXTENSIONS: tuple[str, ...] = (".txt", ".lst", ".list")
"""A source with one of these extensions is a list file: one audio path per line."""
MIN_TRAIN_RATE = 8000
"""Lowest sample rate of a training clip, Hz (its band must reach the 2 kHz lowest cutoff)."""
CROP_TRIES = 8
"""Crop offsets drawn per item: the first, then the next while the crop is near-silent (in a
file that is half silence all of them are silent at most once in 2**8 = 256 items; the
loudest is kept)."""
QUIET_RATIO = 10 ** (-50 / 20)
"""A crop whose peak lies 50 dB under its channel's peak (or at most
:data:`audiosr_core.dsp.SILENCE_PEAK`) is near-silent and the next offset is tried."""
_SCAN_BLOCK = 1 << 17
"""Frames read at a time by the corpus scan (128 k frames: at most 4 MB for 8 channels)."""
_SKIP_LABELS = {"unreadable": "unreadable", "low-rate": f"below {MIN_TRAIN_RATE} Hz",
                "short": "too short", "silent": "silent"}


# -------------------------------------------------------------------------------------- crops
def crop_frames(seconds: float, multiple: int = 64) -> int:
    """Mel frames of a training crop of ``seconds``: ``round(seconds * 100)``.

    The crop must be a whole, positive multiple of ``multiple`` frames: 64 frames (0.64 s) is
    what the AudioSR VAE and UNet need (the latent has ``frames / 8`` steps, divided by 8 in
    the UNet). Crop samples at 48 kHz are ``frames * FRAME_HOP``.

    Parameters
    ----------
    seconds : float
        Crop length, s (2.56, 5.12, 10.24, ...).
    multiple : int
        Frames the crop must be a multiple of.

    Returns
    -------
    int
        Frames (256 for 2.56 s, 512 for 5.12 s, 1024 for 10.24 s).

    Raises
    ------
    TrainingError
        Not a positive multiple; the message lists valid crops around it.
    """
    exact = float(seconds) * FRAMES_PER_SECOND if math.isfinite(float(seconds)) else math.nan
    frames = round(exact) if math.isfinite(exact) else 0
    if frames > 0 and abs(exact - frames) < 1e-6 and frames % multiple == 0:
        return int(frames)
    step = multiple / FRAMES_PER_SECOND
    below = math.floor(exact / multiple) * multiple if math.isfinite(exact) else 0
    options = {below, below + multiple, round(dsp.SEGMENT_S * FRAMES_PER_SECOND)}
    valid = sorted(f for f in options if f > 0)
    words = [f"{f / FRAMES_PER_SECOND:g}" for f in valid]
    choice = words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
    raise TrainingError(f"--crop-seconds {seconds:g} is not a multiple of {step:g} s; "
                        f"use {choice}")


# -------------------------------------------------------------------------------------- files
def _missing(source: Path, what: str, listed_in: Path | None = None) -> TrainingError:
    kind = "file" if source.suffix.lower() in (*audio.SUPPORTED_EXTENSIONS,
                                               *LIST_EXTENSIONS) else "folder"
    where = f" (listed in {audio.display_path(listed_in)})" if listed_in else ""
    return TrainingError(f"{what} {kind} {audio.display_path(source)}{where} does not exist")


def _expand(source: Path, what: str, listed_in: Path | None = None) -> list[Path]:
    """Audio files of one source: a folder's files, a list file's entries, or the file."""
    if source.is_dir():
        return find_audio(source)
    if not source.exists():
        raise _missing(source, what, listed_in)
    if listed_in is not None or source.suffix.lower() not in LIST_EXTENSIONS:
        return [source]
    try:
        entries = read_list(os.fspath(source))
    except OSError as exc:
        raise TrainingError(f"cannot read {what} list file {audio.display_path(source)}: "
                            f"{exc.strerror or exc}") from exc
    found: list[Path] = []
    for entry in entries:
        found += _expand(source.parent / entry, what, source)    # absolute entries stay so
    return found


def list_audio(sources: Sequence[str | os.PathLike[str]], what: str = "training") -> list[Path]:
    """Audio files named by files, folders and list files.

    Folders are searched recursively (sorted, hidden names skipped, only
    :data:`audiosr_core.audio.SUPPORTED_EXTENSIONS`, as the enhance CLI does). A list file (one
    of :data:`LIST_EXTENSIONS`) holds one path per line (blank lines and ``#`` comments
    skipped), files or folders, relative ones relative to the list file's folder. Files named
    directly or in a list are taken whatever their extension (:class:`AudioCorpus` says why one
    is unusable). Order is kept; a file named twice (same resolved path) is taken once.

    Parameters
    ----------
    sources : sequence of str or PathLike
        Files, folders and list files.
    what : str
        What the files are for, in messages (``"training"``, ``"validation"``).

    Returns
    -------
    list of Path

    Raises
    ------
    TrainingError
        A source (or a list entry) that does not exist, an unreadable list file, or no audio
        file at all.
    """
    found: list[Path] = []
    seen: set[str] = set()
    for raw in sources:
        for path in _expand(Path(os.fspath(raw)), what):
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                found.append(path)
    if not found:
        names = [audio.display_path(s) for s in sources]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise TrainingError(f"no {what} audio in {shown or 'no sources'} (looked for "
                            f"{' '.join(audio.SUPPORTED_EXTENSIONS)})")
    return found


def _identity(path: Path) -> tuple[int, int] | str:
    """What makes two paths the same file: device and inode, else the resolved path."""
    try:
        st = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    return (st.st_dev, st.st_ino)


def check_disjoint(train: Sequence[Path], valid: Sequence[Path]) -> None:
    """Refuse validation files that are also training files.

    Files are the same when they are one file on disk (``os.path.samefile``: symbolic and hard
    links included). Folders that contain each other are fine; only shared files count.

    Parameters
    ----------
    train, valid : sequence of Path
        The two sets (from :func:`list_audio`).

    Raises
    ------
    TrainingError
        Names up to three shared files and how many there are.
    """
    train_ids = {_identity(p) for p in train}
    shared = [p for p in valid if _identity(p) in train_ids]
    if not shared:
        return
    names = ", ".join(audio.display_path(p) for p in shared[:3])
    more = f" and {len(shared) - 3} more" if len(shared) > 3 else ""
    one = len(shared) == 1
    raise TrainingError(
        f"{len(shared)} validation file{'' if one else 's'} {'is' if one else 'are'} also "
        f"{'a training file' if one else 'training files'}: {names}{more}; a model scored on "
        "audio it was trained on looks better than it is: remove them from one of the sets")


# ------------------------------------------------------------------------------------- corpus
@dataclass(frozen=True)
class ClipInfo:
    """One usable training file.

    Attributes
    ----------
    path : Path
        The file, as listed.
    sample_rate : int
        Native rate, Hz.
    frames : int
        Native-rate samples per channel.
    channels : int
    seconds : float
        ``frames / sample_rate``, s.
    peaks : tuple of float
        Peak absolute amplitude of each channel after removing its mean (full scale 1.0).
    """

    path: Path
    sample_rate: int
    frames: int
    channels: int
    seconds: float
    peaks: tuple[float, ...] = ()

    @property
    def loud_channels(self) -> tuple[int, ...]:
        """Channels that are not silent (peak above :data:`audiosr_core.dsp.SILENCE_PEAK`);
        all of them when ``peaks`` is not known."""
        if not self.peaks:
            return tuple(range(self.channels))
        return tuple(c for c, p in enumerate(self.peaks) if p > dsp.SILENCE_PEAK)

    @property
    def length48(self) -> int:
        """Samples per channel at 48 kHz."""
        return output_length(self.frames, self.sample_rate)


@dataclass(frozen=True)
class Skipped:
    """A file left out of the corpus.

    Attributes
    ----------
    path : Path
    reason : str
        Why, in words (for an unreadable file the :class:`AudioInputError` message).
    kind : str
        ``"unreadable"``, ``"low-rate"``, ``"short"`` or ``"silent"``.
    seconds : float
        Duration, s (0 when the header cannot be read).
    """

    path: Path
    reason: str
    kind: str = "unreadable"
    seconds: float = 0.0


def _sf_name(path: Path) -> str | bytes:
    """A path for libsndfile: bytes on POSIX, so names that are not valid UTF-8 open too."""
    return os.fspath(path) if os.name == "nt" else os.fsencode(path)


def _channel_peaks(path: Path, channels: int) -> tuple[float, ...]:
    """Peak of each channel after removing its mean, from one streamed pass over the file:
    ``max(max - mean, mean - min)``, blocks of :data:`_SCAN_BLOCK` frames.

    Raises
    ------
    AudioInputError
        The samples cannot be decoded or hold NaN/Inf.
    """
    lo = np.full(channels, np.inf)
    hi = np.full(channels, -np.inf)
    total = np.zeros(channels)
    count = 0
    try:
        with sf.SoundFile(_sf_name(path)) as f:
            while True:
                block = f.read(_SCAN_BLOCK, dtype="float32", always_2d=True)
                if not len(block):
                    break
                if not np.isfinite(block).all():
                    raise AudioInputError(f"{audio.display_path(path)}: contains NaN/Inf "
                                          "samples; fix or remove the file")
                lo = np.minimum(lo, block.min(axis=0))
                hi = np.maximum(hi, block.max(axis=0))
                total += block.sum(axis=0, dtype=np.float64)
                count += len(block)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioInputError(f"{audio.display_path(path)}: cannot be decoded as audio "
                              f"({exc}); re-export or re-download it") from None
    if count == 0:
        return tuple(0.0 for _ in range(channels))
    mean = total / count
    return tuple(float(v) for v in np.maximum(hi - mean, mean - lo))


def _scan(path: Path, crop_samples: int, pad_short: bool) -> ClipInfo | Skipped:
    """Header checks, then the peak scan: a :class:`ClipInfo` or why the file is skipped."""
    try:
        meta = audio.info(path)
    except AudioInputError as exc:
        return Skipped(path, str(exc), "unreadable")
    if meta.sample_rate < MIN_TRAIN_RATE:
        return Skipped(path, f"sample rate {meta.sample_rate} Hz is below the "
                             f"{MIN_TRAIN_RATE} Hz minimum for training", "low-rate",
                       meta.duration_s)
    clip = ClipInfo(path, meta.sample_rate, meta.frames, meta.channels, meta.duration_s)
    if clip.length48 < crop_samples and not pad_short:
        return Skipped(path, f"{clip.seconds:.2f} s is shorter than the "
                             f"{crop_samples / SAMPLE_RATE:g} s crop", "short", clip.seconds)
    try:
        peaks = _channel_peaks(path, meta.channels)
    except AudioInputError as exc:
        return Skipped(path, str(exc), "unreadable", clip.seconds)
    if max(peaks) <= dsp.SILENCE_PEAK:
        return Skipped(path, f"silent (peak {audio.peak_dbfs(np.array(peaks)):.0f} dBFS after "
                             "removing DC)", "silent", clip.seconds)
    return ClipInfo(path, meta.sample_rate, meta.frames, meta.channels, meta.duration_s, peaks)


def _largest_crop(seconds: float, multiple: int = 64) -> float:
    """Longest valid crop (s) not longer than ``seconds``; 0 if there is none."""
    return math.floor(seconds * FRAMES_PER_SECOND / multiple + 1e-9) * multiple \
        / FRAMES_PER_SECOND


def _short_hint(skipped: Sequence[Skipped], crop_seconds: float) -> str:
    """``(longest 3.1 s): pass --crop-seconds 2.56 or --pad-short`` for the short files."""
    longest = max(s.seconds for s in skipped)
    fit = _largest_crop(longest)
    fix = f"--crop-seconds {fit:g} or --pad-short" if fit > 0 else "--pad-short"
    return f"(longest {longest:.1f} s): pass {fix}"


def _hours_text(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours >= 1 else f"{seconds / 60:.1f} min"


class AudioCorpus:
    """The usable clips among some audio files.

    Each file is read once: its header (:func:`audiosr_core.audio.info`), then, for files long
    enough, a streamed pass for the peak of each channel after removing its mean (bounded
    memory: an hour-long file needs a few MB). Files are skipped when unreadable or corrupt,
    below :data:`MIN_TRAIN_RATE`, shorter than the crop (unless ``pad_short``: then items are
    zero-padded at the end, as the official ``pad_wav``), or silent (every channel's peak at
    most :data:`audiosr_core.dsp.SILENCE_PEAK`).

    Parameters
    ----------
    files : sequence of Path
        From :func:`list_audio`.
    crop_seconds : float
        Crop length, s (:func:`crop_frames`).
    pad_short : bool
        Keep clips shorter than the crop.
    what : str
        What the files are for, in messages.

    Attributes
    ----------
    clips : list of ClipInfo
        Usable files, in the order given.
    skipped : list of Skipped
        The others, in the order given.
    crop_seconds : float
    pad_short : bool

    Raises
    ------
    TrainingError
        No usable clip; the message says why (no files, all silent, all too short with the
        crop that would fit, or a count of each reason).
    """

    def __init__(self, files: Sequence[Path], crop_seconds: float, *, pad_short: bool = False,
                 what: str = "training") -> None:
        self.crop_seconds = float(crop_seconds)
        self.pad_short = bool(pad_short)
        self.what = what
        crop_samples = crop_frames(crop_seconds) * FRAME_HOP
        self.clips: list[ClipInfo] = []
        self.skipped: list[Skipped] = []
        for path in files:
            result = _scan(Path(path), crop_samples, self.pad_short)
            (self.clips if isinstance(result, ClipInfo) else self.skipped).append(result)
        if not self.clips:
            raise TrainingError(self._nothing_usable())

    def _nothing_usable(self) -> str:
        what, n, crop = self.what, len(self.skipped), self.crop_seconds
        if n == 0:
            return f"no {what} audio files to read"
        kinds = Counter(s.kind for s in self.skipped)
        files, are = (f"the {what} file", "is") if n == 1 else (f"all {n} {what} files", "are")
        short = [s for s in self.skipped if s.kind == "short"]
        if kinds["silent"] == n:
            return f"{files} {are} silent (peak at most -80 dBFS after removing DC)"
        if kinds["short"] == n:
            return (f"{files} {are} shorter than the {crop:g} s crop "
                    f"{_short_hint(short, crop)}")
        if kinds["unreadable"] == n:
            return f"{files} {are} unreadable; the first: {self.skipped[0].reason}"
        if kinds["low-rate"] == n:
            return f"{files} {are} sampled below {MIN_TRAIN_RATE} Hz"
        parts = [f"{count} {_SKIP_LABELS[kind]}" for kind, count in kinds.most_common()]
        hint = f"; the too short ones {_short_hint(short, crop)}" if short else ""
        return f"no usable audio among the {n} {what} files: {', '.join(parts)}{hint}"

    @property
    def seconds(self) -> float:
        """Total duration of the usable clips, s."""
        return float(sum(c.seconds for c in self.clips))

    @property
    def hours(self) -> float:
        """Total duration of the usable clips, h."""
        return self.seconds / 3600

    def summary(self) -> str:
        """One line: ``"412 clips, 3.4 h; skipped 3: 2 silent, 1 unreadable"``."""
        n = len(self.clips)
        text = f"{n} clip{'s' if n != 1 else ''}, {_hours_text(self.seconds)}"
        if self.skipped:
            kinds = Counter(s.kind for s in self.skipped)
            parts = ", ".join(f"{c} {_SKIP_LABELS[k]}" for k, c in kinds.most_common())
            text += f"; skipped {len(self.skipped)}: {parts}"
        return text


# ------------------------------------------------------------------------------------ dataset
def _dc_peak(x: np.ndarray) -> float:
    """Peak absolute amplitude of ``x`` after removing its mean."""
    return float(np.max(np.abs(x - x.mean()))) if x.size else 0.0


class PairDataset(Dataset):
    """Training pairs made on the fly: the item is a pure function of ``(seed, index)``.

    ``index`` is a global position in an endless stream (0, 1, 2, ... across epochs; any
    ``int >= 0``, not bounded by ``len``): with ``n`` clips, epoch ``e = index // n`` takes
    clip ``perm_e[index % n]``, ``perm_e`` a permutation drawn from
    ``np.random.default_rng(derive_seed(seed, "epoch", e))``, so each epoch holds every clip
    exactly once. Everything else random about the item is drawn from
    ``np.random.default_rng(derive_seed(seed, "item", index))``, in this order: the channel
    (among the non-silent ones), :data:`CROP_TRIES` crop offsets, the degradation.

    Making an item:

    1. read the crop region only (plus the resampler's margin) at the native rate and
       resample to 48 kHz (soxr VHQ, :class:`audiosr_core.audio.Reader48`); take the channel;
    2. if the crop is near-silent (its peak 50 dB under the channel's, :data:`QUIET_RATIO`),
       try the next drawn offset, up to :data:`CROP_TRIES` in all, and keep the loudest;
    3. official normalisation (:func:`audiosr_core.audio.official_normalize`: mean removed,
       peak 0.5) of the samples the file holds, then zero-padded at the end to exactly
       ``frames * 480`` samples (:func:`audiosr_core.rates.fit_length`) -- the target;
    4. the target's band edge (:func:`audiosr_core.dsp.detect_band_edge`, on the crop);
       a degradation drawn with :func:`~audiosr_core.train.simulate.draw_degradation`, its
       cutoff capped at the band edge (never below ``cutoff_range[0]``), so a reference that
       ends at 11 kHz never gets a 14 kHz "low-pass"; applied to the target (the low-pass
       input is not normalised again);
    5. the official log-mel (:func:`audiosr_core.dsp.mel_features`) of target and input.

    With ``validation=True`` item ``i`` is clip ``i % n`` (no permutation) cropped from the
    middle of the file, with channel, further offsets and degradation from
    ``derive_seed(seed, "valid", i)``: the same items at every evaluation.

    Parameters
    ----------
    corpus : AudioCorpus
        The clips.
    crop_seconds : float
        Crop length, s (:func:`crop_frames`); at most the corpus's own unless it pads short
        clips.
    seed : int
        Seed of the stream.
    cutoff_range : (float, float)
        Low-pass cutoffs drawn, Hz.
    kinds : sequence of str
        Filter kinds drawn (:data:`audiosr_core.train.simulate.KINDS`).
    order_range : (int, int)
        IIR filter orders drawn, inclusive.
    validation : bool
        Fixed items with waveforms (see above).

    Raises
    ------
    TrainingError
        An invalid crop, degradation setting, or a crop longer than the corpus was scanned
        for.

    Notes
    -----
    Items hold no open file: the dataset pickles into DataLoader workers and opens each file
    only while reading an item.
    """

    def __init__(self, corpus: AudioCorpus, crop_seconds: float, seed: int = 0, *,
                 cutoff_range: tuple[float, float] = (2000.0, 16000.0),
                 kinds: Sequence[str] = simulate.KINDS, order_range: tuple[int, int] = (2, 10),
                 validation: bool = False) -> None:
        self.frames = crop_frames(crop_seconds)
        self.samples = self.frames * FRAME_HOP
        if (not corpus.pad_short
                and self.frames > crop_frames(corpus.crop_seconds)):
            raise TrainingError(f"crop {crop_seconds:g} s is longer than the "
                                f"{corpus.crop_seconds:g} s {corpus.what} clips were checked "
                                "for; build the corpus with this crop")
        self.clips = list(corpus.clips)
        self.what = corpus.what
        self.seed = int(seed)
        self.cutoff_range = (float(cutoff_range[0]), float(cutoff_range[1]))
        self.kinds = tuple(kinds)
        self.order_range = (int(order_range[0]), int(order_range[1]))
        self.validation = bool(validation)
        try:
            self._draw(np.random.default_rng(0), None)
        except ValueError as exc:
            raise TrainingError(f"invalid degradation settings: {exc}") from exc
        self._perm: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.clips)

    def _draw(self, rng: np.random.Generator, edge_hz: float | None) -> simulate.Degradation:
        cap = None if edge_hz is None else max(self.cutoff_range[0], edge_hz)
        return simulate.draw_degradation(rng, cutoff_range=self.cutoff_range, kinds=self.kinds,
                                         order_range=self.order_range, max_cutoff_hz=cap)

    def permutation(self, epoch: int) -> np.ndarray:
        """Clip order of ``epoch``: ``[n]`` int64, a permutation of ``range(n)``."""
        if self._perm is None or self._perm[0] != epoch:
            rng = np.random.default_rng(derive_seed(self.seed, "epoch", epoch))
            self._perm = (epoch, rng.permutation(len(self.clips)))
        return self._perm[1]

    def locate(self, index: int) -> tuple[int, np.random.Generator]:
        """Clip index and random generator of item ``index`` (see the class docstring)."""
        index = int(index)
        if index < 0:
            raise IndexError(f"item index {index} is negative; indices are 0, 1, 2, ...")
        n = len(self.clips)
        if self.validation:
            return index % n, np.random.default_rng(derive_seed(self.seed, "valid", index))
        epoch, position = divmod(index, n)
        clip = int(self.permutation(epoch)[position])
        return clip, np.random.default_rng(derive_seed(self.seed, "item", index))

    def _crop(self, clip: ClipInfo, channel: int, offsets: np.ndarray) -> tuple[np.ndarray, int]:
        """The loudest of the first crops until one is not near-silent: native-level 48 kHz
        ``[samples]`` float32 (zeros past the end of the file) and its offset."""
        quiet = max(dsp.SILENCE_PEAK, QUIET_RATIO * clip.peaks[channel]) if clip.peaks \
            else dsp.SILENCE_PEAK
        best, best_peak, best_offset = None, -1.0, 0
        try:
            with audio.Reader48(clip.path) as reader:
                for offset in offsets:
                    offset = int(offset)
                    wave = reader.read(offset, offset + self.samples)[channel]
                    held = max(0, min(self.samples, clip.length48 - offset))
                    peak = _dc_peak(wave[:held])
                    if peak > best_peak:
                        best, best_peak, best_offset = wave, peak, offset
                    if peak > quiet:
                        break
        except AudioInputError as exc:
            raise TrainingError(f"{self.what} clip could not be read (did it change since the "
                                f"corpus was scanned?): {exc}") from exc
        return best, best_offset

    def __getitem__(self, index: int) -> dict[str, Any]:
        clip_index, rng = self.locate(index)
        clip = self.clips[clip_index]
        loud = clip.loud_channels or (0,)
        channel = loud[int(rng.integers(len(loud)))]
        span = max(0, clip.length48 - self.samples)
        offsets = rng.integers(0, span + 1, size=CROP_TRIES)
        if self.validation:
            offsets[0] = span // 2
        raw, offset = self._crop(clip, channel, offsets)
        held = max(1, min(self.samples, clip.length48 - offset))
        target = fit_length(audio.official_normalize(raw[:held]), self.samples)
        edge = dsp.detect_band_edge(target, max_hz=min(clip.sample_rate, SAMPLE_RATE) / 2)
        degradation = self._draw(rng, edge.hz)
        low = simulate.apply_degradation(target, degradation)
        item: dict[str, Any] = {
            "log_mel_spec": torch.from_numpy(dsp.mel_features(target, self.frames).log_mel),
            "lowpass_mel": torch.from_numpy(dsp.mel_features(low, self.frames).log_mel),
            "cutoff_hz": float(degradation.cutoff_hz),
            "edge_hz": float(edge.hz),
            "kind": degradation.kind,
            "order": int(degradation.order),
            "zero_phase": bool(degradation.zero_phase),
            "resample_rate": int(degradation.resample_rate or 0),
            "index": int(index),
            "clip": int(clip_index),
            "path": audio.display_path(clip.path),
            "offset_s": offset / SAMPLE_RATE,
        }
        if self.validation:
            item["waveform"] = torch.from_numpy(np.ascontiguousarray(target, np.float32))
            item["waveform_lowpass"] = torch.from_numpy(np.ascontiguousarray(low, np.float32))
        return item


# ------------------------------------------------------------------------------------ sampler
def global_items(step: int, micro: int, batch_size: int, world_size: int = 1, rank: int = 0,
                 grad_accum: int = 1) -> range:
    """Global item indices rank ``rank`` takes for micro-batch ``micro`` of optimiser step
    ``step``.

    Micro-step ``g = step * grad_accum + micro`` takes items
    ``[g * B, (g + 1) * B)`` with ``B = batch_size * world_size``; rank ``r`` takes
    ``[g * B + r * batch_size, g * B + (r + 1) * batch_size)``.

    Parameters
    ----------
    step : int
        Optimiser step, >= 0.
    micro : int
        Micro-batch of the step, ``0 <= micro < grad_accum``.
    batch_size : int
        Items per rank per micro-batch.
    world_size, rank : int
        Processes, and this one's rank.
    grad_accum : int
        Micro-batches per optimiser step.

    Returns
    -------
    range
        ``batch_size`` consecutive indices.

    Raises
    ------
    ValueError
        Out-of-range arguments.
    """
    if batch_size < 1 or world_size < 1 or grad_accum < 1:
        raise ValueError(f"batch_size {batch_size}, world_size {world_size} and grad_accum "
                         f"{grad_accum} must be >= 1")
    if not 0 <= rank < world_size or not 0 <= micro < grad_accum or step < 0:
        raise ValueError(f"need step >= 0 (got {step}), 0 <= rank < {world_size} (got {rank}) "
                         f"and 0 <= micro < {grad_accum} (got {micro})")
    g = step * grad_accum + micro
    start = g * batch_size * world_size + rank * batch_size
    return range(start, start + batch_size)


class ShardSampler(Sampler[int]):
    """Endless stream of the global item indices one rank trains on, from ``start_step`` on.

    For each optimiser step ``s >= start_step`` and micro-batch ``k < grad_accum`` it yields
    :func:`global_items` ``(s, k, batch_size, world_size, rank, grad_accum)``. The global
    batch of a micro-step is the same whatever the split: one process with batch size 2 takes
    exactly the items two ranks with batch size 1 take, and a run resumed at step ``s``
    continues the stream of a run from 0 exactly. Use it with a DataLoader of the same
    ``batch_size`` (``DataLoader(dataset, batch_size, sampler=ShardSampler(batch_size, ...))``);
    each batch is then one micro-batch, in order.

    Parameters
    ----------
    batch_size : int
        Items per rank per micro-batch.
    rank, world_size : int
        This process's rank and the number of processes.
    start_step : int
        First optimiser step (the resumed step).
    grad_accum : int
        Micro-batches per optimiser step.
    """

    def __init__(self, batch_size: int, *, rank: int = 0, world_size: int = 1,
                 start_step: int = 0, grad_accum: int = 1) -> None:
        global_items(start_step, 0, batch_size, world_size, rank, grad_accum)   # validates
        self.batch_size = int(batch_size)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.start_step = int(start_step)
        self.grad_accum = int(grad_accum)

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        while True:
            for micro in range(self.grad_accum):
                yield from global_items(step, micro, self.batch_size, self.world_size,
                                        self.rank, self.grad_accum)
            step += 1
