"""Audio files and arrays: load, validate, resample, measure level, save.

Every function works on float32 numpy arrays shaped ``[channels, samples]`` with full scale
at +-1.0 and sample rates in Hz. Everything that can go wrong with a user's audio raises
:class:`~audiosr_core.errors.AudioInputError`, whose message names the file (or array), says
what is wrong and what to do about it.

Example
-------
>>> from audiosr_core import audio
>>> x, sr = audio.load("examples/speech_like_16k.wav")      # float32 [1, 48000], 16000
>>> y = audio.resample(x, sr, 48000)                         # soxr, very high quality
>>> out = audio.save("out/speech_48k.wav", y, 48000,
...                  input_paths=["examples/speech_like_16k.wav"])  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from . import __version__, atomic
from .errors import AudioInputError, AudioSRError
from .rates import SAMPLE_RATE, check_rate, output_length

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "SAVE_SUBTYPES",
    "DEFAULT_SUBTYPE",
    "MAX_CHANNELS",
    "AudioInfo",
    "info",
    "load",
    "validate_array",
    "pcm_to_float",
    "float_to_pcm",
    "check_subtype",
    "atomic_writer",
    "block_writer",
    "SOFTWARE",
    "is_enhanced_output",
    "display_path",
    "Reader48",
    "resample",
    "resample_blocks",
    "official_normalize",
    "peak_dbfs",
    "rms_dbfs",
    "would_clip",
    "save",
]

#: File name extensions :func:`load` accepts (lower case). The container is detected from the
#: file's content by libsndfile; the extension only guards against passing non-audio files.
SUPPORTED_EXTENSIONS: tuple[str, ...] = (
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3",
    ".aif", ".aiff", ".aifc", ".au", ".caf", ".w64", ".rf64",
)  # fmt: skip
#: Most channels accepted in one file or array.
MAX_CHANNELS = 8

#: Output container (from the extension) -> subtypes :func:`save` writes.
SAVE_SUBTYPES: dict[str, tuple[str, ...]] = {
    "WAV": ("PCM_16", "PCM_24", "FLOAT"),
    "FLAC": ("PCM_16", "PCM_24"),
}
#: Subtype :func:`save` uses when none is given (both containers).
DEFAULT_SUBTYPE = "PCM_24"
#: The "software" tag of every file an enhancer writes (libsndfile appends its own version).
SOFTWARE = f"audiosr-plug {__version__}"

_SAVE_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
_SUBTYPE_ALIASES = {
    "16": "PCM_16", "PCM16": "PCM_16", "INT16": "PCM_16",
    "24": "PCM_24", "PCM24": "PCM_24", "INT24": "PCM_24",
    "FLOAT32": "FLOAT", "F32": "FLOAT", "32F": "FLOAT",
}  # fmt: skip
_INT_BITS = {"PCM_16": 16, "PCM_24": 24}
#: Subtypes decoded through libsndfile's integer path (left-justified int32), so that a
#: b-bit code k becomes exactly k / 2**(b-1) -- the convention of torchaudio.load.
_INTEGER_SUBTYPES = frozenset(
    {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "ALAC_16", "ALAC_20", "ALAC_24", "ALAC_32"}
)
#: Largest sinc_hann kernel (output phases x taps) we agree to build: 16 M floats = 64 MB.
_MAX_SINC_KERNEL = 1 << 24


# --------------------------------------------------------------------------------------------
# errors


def display_path(path: str | os.PathLike[str] | bytes) -> str:
    """A path as text that can always be printed: bytes that are not valid UTF-8 (a Latin-1
    ``caf\\xe9.wav``) are shown as ``\\xe9`` escapes instead of breaking the output."""
    raw = os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace")


def _sf_name(path: str | os.PathLike[str]) -> str | bytes:
    """A path for libsndfile: bytes on POSIX, so names that are not valid UTF-8 open too."""
    return os.fspath(path) if os.name == "nt" else os.fsencode(path)


def _error(name: str, problem: str, fix: str) -> AudioInputError:
    """``AudioInputError("<name>: <problem>; <fix>")``."""
    return AudioInputError(f"{display_path(name)}: {problem}; {fix}")


def _check_channels(name: str, channels: int) -> None:
    if channels < 1:
        raise _error(name, "has no channels", "check the program that wrote it")
    if channels > MAX_CHANNELS:
        raise _error(
            name,
            f"has {channels} channels, more than the {MAX_CHANNELS} supported",
            f"split it into files of at most {MAX_CHANNELS} channels or downmix it "
            "(e.g. `ffmpeg -i IN -ac 2 OUT.wav`)",
        )


def _check_frames(name: str, frames: int) -> None:
    if frames <= 0:
        raise _error(
            name,
            "contains no audio samples (0 frames)",
            "check the recording or export that produced it",
        )


def _check_finite(name: str, data: np.ndarray, sample_rate: int) -> None:
    """Raise if ``data`` ([channels, samples]) holds NaN or +-Inf."""
    finite = np.isfinite(data)
    if finite.all():
        return
    bad = ~finite
    count = int(bad.sum())
    channel, index = (int(v) for v in np.argwhere(bad)[0])
    raise _error(
        name,
        f"contains {count} NaN/Inf sample{'s' if count != 1 else ''} (e.g. channel {channel} "
        f"at sample {index}, {index / sample_rate:.3f} s)",
        "fix the program that produced it, or replace them before calling "
        "(e.g. `numpy.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)`)",
    )


# --------------------------------------------------------------------------------------------
# files


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, read from its header.

    Attributes
    ----------
    path : Path
        The file, as given.
    sample_rate : int
        Hz.
    channels : int
    frames : int
        Samples per channel.
    duration_s : float
        ``frames / sample_rate``, seconds.
    subtype : str
        libsndfile sample type, e.g. ``"PCM_16"``, ``"FLOAT"``, ``"VORBIS"``.
    format : str
        libsndfile container, e.g. ``"WAV"``, ``"FLAC"``, ``"MP3"``.
    """

    path: Path
    sample_rate: int
    channels: int
    frames: int
    duration_s: float
    subtype: str
    format: str


def _check_path(path: str | os.PathLike[str], check_extension: bool = True) -> tuple[Path, str]:
    """Existence, type, extension and read permission of an input file -> (Path, name)."""
    name = os.fspath(path)
    p = Path(name)
    if not p.exists():
        where = "" if p.is_absolute() else f" (looked in {os.getcwd()})"
        raise _error(name, f"file not found{where}", "check the path and spelling")
    if p.is_dir():
        raise _error(name, "is a folder, not an audio file", "pass the audio files inside it")
    ext = p.suffix.lower()
    if check_extension and ext not in SUPPORTED_EXTENSIONS:
        what = f"unsupported extension '{p.suffix}'" if ext else "no file extension"
        raise _error(
            name,
            f"{what} (supported: {' '.join(SUPPORTED_EXTENSIONS)})",
            "convert it to WAV or FLAC first (e.g. `ffmpeg -i IN OUT.wav`)",
        )
    try:
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise _error(
            name, f"cannot be opened ({exc.strerror or exc})", "check that it is readable"
        ) from None
    if p.stat().st_size == 0:
        raise _error(name, "is an empty file (0 bytes)",
                     "the export or download that made it did not finish; make it again")
    return p, name


def _corrupt(name: str, exc: BaseException) -> AudioInputError:
    text = str(exc).strip()
    reason = text.splitlines()[0] if text else type(exc).__name__
    # "Error opening 'x.wav': Format not recognised." -> "Format not recognised"
    reason = re.sub(r"^Error opening .*?: (Error : )?", "", reason).rstrip(".")
    if "does not exist" in reason or "not a regular file" in reason:
        reason = "format not recognised"  # libsndfile's words for undecodable MP3 data
    return _error(
        name,
        f"cannot be decoded as audio ({reason})",
        "the file is corrupt, truncated or not really audio; re-export or re-download it",
    )


_DECODE_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError)


def info(path: str | os.PathLike[str], *, check_extension: bool = True) -> AudioInfo:
    """Validate a file's header and describe it, without decoding its samples.

    Checks everything :func:`load` checks except NaN/Inf samples (that needs the samples).

    Parameters
    ----------
    path : str or PathLike
        An audio file with one of :data:`SUPPORTED_EXTENSIONS`.
    check_extension : bool
        False accepts any name (for temporary files, whose names end in ``.part``).

    Returns
    -------
    AudioInfo

    Raises
    ------
    AudioInputError
        Missing, unreadable or corrupt file, unsupported extension, zero frames, sample rate
        outside [4000, 384000] Hz, more than 8 channels.

    See Also
    --------
    load
    """
    p, name = _check_path(path, check_extension)
    try:
        meta = sf.info(_sf_name(name))
    except _DECODE_ERRORS as exc:
        raise _corrupt(name, exc) from None
    rate, channels, frames = int(meta.samplerate), int(meta.channels), int(meta.frames)
    check_rate(rate, name)
    _check_channels(name, channels)
    _check_frames(name, frames)
    return AudioInfo(
        path=p,
        sample_rate=rate,
        channels=channels,
        frames=frames,
        duration_s=frames / rate,
        subtype=str(meta.subtype),
        format=str(meta.format),
    )


def load(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Decode an audio file to float32 ``[channels, samples]`` and its sample rate.

    Any container and sample type libsndfile reads is accepted (WAV, FLAC, OGG Vorbis/Opus,
    MP3, AIFF, CAF, ...; 8/16/24/32-bit integer, 32/64-bit float). Integer PCM with b bits
    decodes a code k to exactly ``float32(k / 2**(b-1))`` -- for PCM_16 that is ``k / 32768``,
    the same values ``torchaudio.load`` gives. Float files are returned as stored (values
    beyond +-1.0 are kept).

    Parameters
    ----------
    path : str or PathLike
        An audio file with one of :data:`SUPPORTED_EXTENSIONS`.

    Returns
    -------
    audio : np.ndarray
        float32, ``[channels, samples]``, C-contiguous.
    sample_rate : int
        Hz.

    Raises
    ------
    AudioInputError
        Missing, unreadable or corrupt file, unsupported extension, zero samples, NaN/Inf
        samples, sample rate outside [4000, 384000] Hz, more than 8 channels.

    See Also
    --------
    info, validate_array, save

    Examples
    --------
    >>> x, sr = load("examples/music_like_32k.flac")
    >>> x.shape, x.dtype, sr
    ((2, 128000), dtype('float32'), 32000)
    """
    _, name = _check_path(path)
    try:
        with sf.SoundFile(_sf_name(name)) as f:
            rate, channels = int(f.samplerate), int(f.channels)
            check_rate(rate, name)
            _check_channels(name, channels)
            audio = _decode(f, -1)
    except AudioInputError:
        raise
    except _DECODE_ERRORS as exc:
        raise _corrupt(name, exc) from None
    _check_frames(name, audio.shape[1])
    _check_finite(name, audio, rate)
    return audio, rate


def _decode(f: sf.SoundFile, frames: int) -> np.ndarray:
    """Up to ``frames`` frames (-1: all) from the current position as float32
    ``[channels, samples]``: integer PCM as exactly ``code / 2**(bits-1)`` (through libsndfile's
    left-justified int32), everything else as libsndfile's float32."""
    if f.subtype in _INTEGER_SUBTYPES:
        raw = f.read(frames, dtype="int32", always_2d=True)  # [samples, channels]
        out = np.empty((raw.shape[1], raw.shape[0]), dtype=np.float32)
        # int32 -> float32 rounds once; the power-of-two scale is exact.
        np.multiply(raw.T, np.float32(2.0**-31), out=out, dtype=np.float32)
        return out
    return np.ascontiguousarray(f.read(frames, dtype="float32", always_2d=True).T)


def is_enhanced_output(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file an audiosr-plug enhancer wrote (its "software" tag says so).

    False for anything unreadable; reads the header only.
    """
    try:
        with sf.SoundFile(_sf_name(path)) as f:
            software = f.software or ""
    except (*_DECODE_ERRORS, AttributeError):
        return False
    return software.split(" (")[0].split(" ")[0] == SOFTWARE.split(" ")[0]


# --------------------------------------------------------------------------------------------
# arrays


def _as_numpy(audio: Any, name: str) -> np.ndarray:
    """numpy view/copy of a numpy array, torch tensor or nested sequence."""
    if type(audio).__module__.split(".")[0] == "torch" and hasattr(audio, "detach"):
        tensor = audio.detach()
        if tensor.is_complex():
            raise _error(name, "has complex samples", "pass real-valued audio")
        if tensor.is_floating_point() and tensor.element_size() != 4:
            tensor = tensor.float()  # bfloat16 has no numpy twin; float32 is the target anyway
        return tensor.cpu().numpy()
    try:
        return np.asarray(audio)
    except (TypeError, ValueError) as exc:
        raise _error(
            name,
            f"cannot be read as an array of samples ({exc})",
            "pass a numpy array or torch tensor shaped [samples] or [channels, samples]",
        ) from None


def pcm_to_float(arr: np.ndarray, name: str = "input") -> np.ndarray:
    """Samples as float32 with full scale at +-1.0: the one PCM-to-float conversion.

    Floats are converted to float32 as they are. Signed integers of 8, 16 and 32 bits are
    divided by ``2**(bits-1)`` (an int16 code k becomes exactly ``k / 32768``); uint8 is
    ``(x - 128) / 128``. Other integer types (int64, uint16, uint32, ...) have no agreed
    audio scale -- an int64 array is usually a list of int16 codes that numpy widened -- and
    are refused rather than silently scaled to near-silence.

    Parameters
    ----------
    arr : np.ndarray
        Any shape.
    name : str
        How the error message refers to the audio.

    Raises
    ------
    AudioInputError
        Complex or unscaled integer types.

    See Also
    --------
    float_to_pcm : the inverse.
    """
    kind = arr.dtype.kind
    if kind == "f":
        return arr.astype(np.float32, copy=False)
    if kind == "i" and arr.dtype.itemsize in (1, 2, 4):
        return arr.astype(np.float32) * np.float32(2.0 ** -(8 * arr.dtype.itemsize - 1))
    if arr.dtype == np.uint8:
        return (arr.astype(np.float32) - np.float32(128.0)) * np.float32(1.0 / 128.0)
    if kind == "c":
        raise _error(name, "has complex samples", "pass real-valued audio")
    raise _error(
        name,
        f"has samples of type {arr.dtype}, which has no agreed audio scale",
        "convert it to floating point with full scale at +-1.0, or to int16/int32 PCM codes "
        "(e.g. `x.astype(numpy.int16)` for 16-bit codes)",
    )


def float_to_pcm(x: np.ndarray, dtype: np.dtype | type) -> np.ndarray:
    """The inverse of :func:`pcm_to_float`: float samples to ``dtype``.

    Float types are cast; int8/16/32 and uint8 codes are rounded (half to even) and
    saturated at their range. ``dtype`` must be one :func:`pcm_to_float` accepts.
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return x.astype(dtype, copy=False)
    if dtype.kind == "i" and dtype.itemsize in (1, 2, 4):
        scale = 2.0 ** (8 * dtype.itemsize - 1)
        return np.clip(np.rint(np.asarray(x, np.float64) * scale), -scale, scale - 1).astype(dtype)
    if dtype == np.uint8:
        return np.clip(np.rint(np.asarray(x, np.float64) * 128 + 128), 0, 255).astype(dtype)
    raise TypeError(f"float_to_pcm: no audio scale for {dtype}")


def validate_array(audio: Any, sample_rate: Any, name: str = "input") -> np.ndarray:
    """Check in-memory audio and return it as float32 ``[channels, samples]``.

    Parameters
    ----------
    audio : np.ndarray or torch.Tensor or sequence
        ``[samples]`` (mono) or ``[channels, samples]`` with at most 8 channels. Floating point
        with full scale at +-1.0; int8/int16/int32 arrays are scaled by ``2**-(bits-1)`` and
        uint8 as ``(x - 128) / 128``. A ``[samples, channels]`` array is not transposed
        silently: it is an error that says to pass ``audio.T``.
    sample_rate : int
        Hz, in [4000, 384000].
    name : str
        How error messages refer to the audio (a file name, ``"input"``, ...).

    Returns
    -------
    np.ndarray
        float32 ``[channels, samples]``, C-contiguous. It may share memory with ``audio``
        (float32 contiguous input): copy before modifying it in place.

    Raises
    ------
    AudioInputError
        Wrong dimensions, more than 8 channels, zero samples, NaN/Inf, complex or unscaled
        integer types, sample rate not a whole number or outside [4000, 384000] Hz.
    """
    rate = check_rate(sample_rate, name)
    arr = _as_numpy(audio, name)
    if arr.dtype.kind == "c":
        raise _error(name, "has complex samples", "pass real-valued audio")
    if arr.ndim == 1:
        arr = arr[None, :]
    elif arr.ndim != 2:
        raise _error(
            name,
            f"has shape {tuple(arr.shape)}; expected [samples] or [channels, samples]",
            "squeeze batch dimensions or process the items one at a time",
        )
    channels, samples = arr.shape
    if channels > MAX_CHANNELS and 0 < samples <= MAX_CHANNELS:
        raise _error(
            name,
            f"has shape {tuple(arr.shape)}, which looks like [samples, channels]",
            "pass audio.T (shape [channels, samples])",
        )
    _check_channels(name, channels)
    _check_frames(name, samples)
    arr = np.ascontiguousarray(pcm_to_float(arr, name))
    _check_finite(name, arr, rate)
    return arr


# --------------------------------------------------------------------------------------------
# resampling


def resample(
    audio: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE, method: str = "soxr"
) -> np.ndarray:
    """Change the sample rate of float audio.

    Parameters
    ----------
    audio : np.ndarray
        ``[channels, samples]`` (or ``[samples]``), float; computed in float32.
    orig_sr, target_sr : int
        Sample rates in Hz (positive integers).
    method : {"soxr", "sinc_hann"}
        ``"soxr"`` (default): libsoxr at its very-high-quality setting (``quality="VHQ"``:
        linear phase, 28-bit precision, i.e. about 170 dB stop-band rejection; flat within
        0.01 dB up to 91 % of the lower Nyquist frequency, -3 dB at 95 %). Use it for
        everything except parity.
        ``"sinc_hann"``: a re-implementation of ``torchaudio.functional.resample`` with its
        defaults -- rates reduced by their gcd, windowed-sinc kernel with a Hann window,
        ``lowpass_filter_width=6`` zero crossings, ``rolloff=0.99`` -- computed the same way in
        torch float32 (``conv1d``), so it matches torchaudio to ~1e-7. The official AudioSR
        preprocessing uses it. Its transition band is wide (for 16 -> 48 kHz: -1.6 dB at
        7 kHz, -3 dB at 7.6 kHz) and it lets some aliasing through when downsampling. Rate
        pairs whose reduced ratio is large (e.g. 44099 -> 48000) need a huge kernel and are
        refused; use ``"soxr"`` for those.

    Returns
    -------
    np.ndarray
        float32, same number of channels (and dimensions) as ``audio``, with exactly
        :func:`audiosr_core.rates.output_length` ``(samples, orig_sr, target_sr)`` samples
        (the input's duration, rounded to the nearest sample) for both methods. Equal rates
        return a float32 copy.

    Raises
    ------
    AudioInputError
        Non-positive or non-integer rates, unknown ``method``, or a sinc_hann kernel too large.

    Examples
    --------
    >>> x = np.zeros((2, 16000), np.float32)
    >>> resample(x, 16000, 48000).shape
    (2, 48000)
    >>> resample(x[:, :1001], 44100, 48000, method="sinc_hann").shape   # 1001 * 160/147 = 1089.6
    (2, 1090)
    """
    orig, target = (check_rate(r, "resample", low=None, high=None) for r in (orig_sr, target_sr))
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim not in (1, 2):
        raise AudioInputError(
            f"resample: audio has shape {x.shape}; expected [samples] or [channels, samples]"
        )
    if method not in ("soxr", "sinc_hann"):
        raise AudioInputError(f"resample: unknown method {method!r}; use 'soxr' or 'sinc_hann'")
    if orig == target:
        return x.copy()
    x2 = x[None, :] if x.ndim == 1 else x
    if method == "soxr":
        y = _resample_soxr(x2, orig, target)
    else:
        y = _resample_sinc_hann(x2, orig, target)
    return y[0] if x.ndim == 1 else y


def _resample_soxr(x: np.ndarray, orig: int, target: int) -> np.ndarray:
    """soxr VHQ on [channels, samples] float32, padded with zeros to reach the full length."""
    channels, samples = x.shape
    n_out = output_length(samples, orig, target)
    if samples == 0:
        return np.zeros((channels, 0), np.float32)
    # soxr's one-shot length is rounded down; trailing zeros (what soxr assumes past the end
    # anyway) give it enough input for the rounded length.
    pad = -(-orig // target) + 1
    frames = np.zeros((samples + pad, channels), np.float32)
    frames[:samples] = x.T
    y = soxr.resample(frames, orig, target, quality="VHQ")[:n_out]
    out = np.zeros((channels, n_out), np.float32)
    out[:, : y.shape[0]] = y.T
    return out


def resample_blocks(blocks: Iterable[np.ndarray], orig_sr: int, target_sr: int,
                    length: int) -> Iterator[np.ndarray]:
    """Resample a signal given as consecutive ``[channels, n]`` blocks, in bounded memory.

    soxr VHQ as a stream: the output equals :func:`resample` of the whole signal (the same
    filter, continuous across blocks), cropped or zero-padded to exactly ``length`` samples
    at ``target_sr`` (:func:`audiosr_core.rates.output_length` of the source).

    Yields
    ------
    np.ndarray
        float32 ``[channels, m]`` blocks at ``target_sr``; ``length`` samples in all.
    """
    stream = None
    done = 0
    for block in blocks:
        block = np.asarray(block, np.float32)
        if stream is None:
            stream = soxr.ResampleStream(orig_sr, target_sr, block.shape[0], dtype="float32",
                                         quality="VHQ")
            channels = block.shape[0]
        out = stream.resample_chunk(np.ascontiguousarray(block.T))
        out = out.T[:, :max(0, length - done)]
        done += out.shape[1]
        if out.shape[1]:
            yield np.ascontiguousarray(out)
    if stream is None:
        return
    # flush with zeros (what soxr assumes past the end) until the length is reached
    tail = stream.resample_chunk(np.zeros((-(-orig_sr // target_sr) + 1, channels), np.float32),
                                 last=True).T[:, :max(0, length - done)]
    done += tail.shape[1]
    if done < length:
        tail = np.concatenate([tail, np.zeros((channels, length - done), np.float32)], axis=1)
    if tail.shape[1]:
        yield np.ascontiguousarray(tail)


@functools.lru_cache(maxsize=8)
def _sinc_hann_kernel(orig: int, new: int) -> tuple[Any, int]:
    """torchaudio's default resampling kernel for reduced rates: ([new, 1, taps] float32, pad).

    Phase j of the output (time j/new in input periods) gets weights for input offsets
    i/orig, i in [-pad, pad + orig): ``sinc(pi * base * dt) * cos(pi * base * dt / 12)**2 *
    base / orig`` with ``dt = i/orig - j/new`` clamped to +-6/base and ``base = 0.99 *
    min(orig, new)``. Evaluated in float32 in the same operation order as torchaudio.
    """
    import torch

    zero_crossings = 6
    base = min(orig, new) * 0.99
    pad = math.ceil(zero_crossings * orig / base)
    offsets = torch.arange(-pad, pad + orig, dtype=torch.float32)[None, None] / orig
    phases = torch.arange(0, -new, -1, dtype=torch.float32)[:, None, None] / new
    arg = (phases + offsets) * base
    arg = arg.clamp(-zero_crossings, zero_crossings)
    window = torch.cos(arg * math.pi / zero_crossings / 2) ** 2
    arg = arg * math.pi
    sinc = torch.where(arg == 0, torch.tensor(1.0, dtype=arg.dtype), arg.sin() / arg)
    return sinc * (window * (base / orig)), pad


def _resample_sinc_hann(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """torchaudio-compatible windowed-sinc resampling of [channels, samples] float32."""
    import torch

    g = math.gcd(orig_sr, target_sr)
    orig, new = orig_sr // g, target_sr // g
    taps = 2 * math.ceil(6 * orig / (0.99 * min(orig, new))) + orig
    if new * taps > _MAX_SINC_KERNEL:
        raise AudioInputError(
            f"resample: {orig_sr} -> {target_sr} Hz reduces to {orig}:{new}, whose sinc_hann "
            f"kernel would need {new * taps:,} weights; use method='soxr' for this rate pair"
        )
    kernel, pad = _sinc_hann_kernel(orig, new)
    channels, samples = x.shape
    n_out = output_length(samples, orig, new)
    with torch.no_grad():
        wave = torch.from_numpy(np.ascontiguousarray(x))
        wave = torch.nn.functional.pad(wave, (pad, pad + orig))
        y = torch.nn.functional.conv1d(wave[:, None], kernel, stride=orig)  # [ch, new, frames]
        y = y.transpose(1, 2).reshape(channels, -1)[:, :n_out]
    return np.ascontiguousarray(y.numpy())


# --------------------------------------------------------------------------------------------
# level


def official_normalize(wave: np.ndarray) -> np.ndarray:
    """The official AudioSR ``normalize_wav``, in float32: remove the mean, peak 0.5.

    ``x = x - mean(x); x = x / (max|x| + 1e-8); x = 0.5 * x``, along the last axis (so each
    channel of ``[channels, samples]`` separately; for ``[samples]`` this is exactly the
    official function).

    Parameters
    ----------
    wave : np.ndarray
        ``[samples]`` or ``[channels, samples]``.

    Returns
    -------
    np.ndarray
        float32, same shape.
    """
    x = np.asarray(wave, dtype=np.float32)
    x = x - np.mean(x, axis=-1, keepdims=True)
    x = x / (np.max(np.abs(x), axis=-1, keepdims=True) + np.float32(1e-8))
    return x * np.float32(0.5)


def _db(value: float) -> float:
    return 20.0 * math.log10(value) if value > 0 else -math.inf


def peak_dbfs(audio: np.ndarray) -> float:
    """Highest absolute sample over all channels, in dB relative to full scale (1.0).

    Returns ``-inf`` for silence; values above 0 mean samples beyond +-1.0.
    """
    x = np.asarray(audio)
    return _db(float(np.max(np.abs(x)))) if x.size else -math.inf


def rms_dbfs(audio: np.ndarray) -> float:
    """Root-mean-square level over all samples and channels, dB re full scale 1.0.

    The reference is an RMS of 1.0 (a full-scale sine measures -3.01 dBFS). ``-inf`` for
    silence. Computed in float64.
    """
    x = np.asarray(audio, dtype=np.float64)
    return _db(math.sqrt(float(np.mean(np.square(x))))) if x.size else -math.inf


# --------------------------------------------------------------------------------------------
# saving


def _resolve_subtype(subtype: str | int | None, fmt: str, name: str) -> str:
    if subtype is None:
        return DEFAULT_SUBTYPE
    key = str(subtype).upper().replace("-", "_")
    key = _SUBTYPE_ALIASES.get(key, key)
    if key not in SAVE_SUBTYPES[fmt]:
        raise _error(
            name,
            f"cannot write {fmt} with sample type {subtype!r}",
            f"use one of {', '.join(SAVE_SUBTYPES[fmt])}",
        )
    return key


def check_subtype(subtype: str, fmt: str = "wav") -> str:
    """Canonical name of a sample type :func:`save` can write into ``fmt`` (``"wav"`` or
    ``"flac"``), e.g. ``"16"`` -> ``"PCM_16"``; :class:`AudioInputError` if it cannot."""
    return _resolve_subtype(subtype, fmt.upper(), f"--subtype {subtype}")


def would_clip(audio: np.ndarray, subtype: str = DEFAULT_SUBTYPE) -> bool:
    """True if writing ``audio`` with an integer ``subtype`` would clip any sample.

    A b-bit file holds codes ``-2**(b-1) .. 2**(b-1) - 1``; a sample clips when
    ``round(x * 2**(b-1))`` falls outside that range (so ``-1.0`` fits, ``+1.0`` clips).
    ``"FLOAT"`` never clips in the file (players may still clip values beyond +-1.0).
    """
    key = _SUBTYPE_ALIASES.get(str(subtype).upper(), str(subtype).upper())
    bits = _INT_BITS.get(key)
    if bits is None:
        return False
    x = np.asarray(audio, dtype=np.float32)
    if not x.size:
        return False
    scale = np.float32(2.0 ** (bits - 1))
    hi, lo = np.rint(np.max(x) * scale), np.rint(np.min(x) * scale)
    return bool(hi > scale - 1 or lo < -scale)


def _encode(audio: np.ndarray, subtype: str) -> np.ndarray:
    """[channels, samples] float32 -> [samples, channels] array for soundfile.write.

    Integer subtypes are quantised here (round half to even, saturate at the code range), so
    a value k / 2**(b-1) is stored as exactly k whatever the libsndfile version.
    """
    frames = audio.T
    bits = _INT_BITS.get(subtype)
    if bits is None:
        return np.ascontiguousarray(frames, dtype=np.float32)
    scale = np.float32(2.0 ** (bits - 1))
    q = np.rint(frames * scale)
    np.clip(q, -scale, scale - 1, out=q)
    if bits == 16:
        return q.astype(np.int16)
    return q.astype(np.int32) << (32 - bits)  # libsndfile takes the top bits of int32


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def save(
    path: str | os.PathLike[str],
    audio: np.ndarray,
    sample_rate: int,
    subtype: str | int | None = None,
    input_paths: Iterable[str | os.PathLike[str]] = (),
    software: str | None = None,
) -> Path:
    """Write audio to WAV or FLAC atomically.

    The data goes to a hidden temporary file in the destination folder, is flushed to disk
    (fsync), and then renamed over ``path`` (``os.replace``), so ``path`` is either the old
    file or the complete new one. The temporary file is removed on any error, including
    ``KeyboardInterrupt``. Missing parent folders are created.

    Parameters
    ----------
    path : str or PathLike
        Destination; ``.wav`` or ``.flac`` (case-insensitive) picks the container.
    audio : np.ndarray or torch.Tensor
        ``[channels, samples]`` or ``[samples]``, float, full scale +-1.0 (validated with
        :func:`validate_array`).
    sample_rate : int
        Hz.
    subtype : str or int, optional
        ``"PCM_16"``, ``"PCM_24"`` (WAV and FLAC) or ``"FLOAT"`` (WAV only; 32-bit float);
        ``16``/``24`` are accepted too. Default :data:`DEFAULT_SUBTYPE` (``"PCM_24"``).
        Integer subtypes store round(x * 2**(bits-1)), saturated at the code range: nothing
        limits or rescales the level, so samples at or beyond +-1.0 are clipped only by this
        encoding. Callers manage headroom (check :func:`would_clip`, or use ``"FLOAT"``).
    input_paths : iterable of str or PathLike
        Files that must not be overwritten (the inputs this output was made from). Compared
        by identity (``os.path.samefile``, which also catches hard links and symlinks) or by
        resolved path.
    software : str, optional
        Stored in the file's "software" tag; the enhancers write :data:`SOFTWARE` there, so
        that :func:`is_enhanced_output` can tell their outputs from inputs.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    AudioInputError
        Unsupported extension or subtype, ``path`` is an input or a folder, invalid audio.
    AudioSRError
        The file could not be written (disk full, permissions, encoder error).
    """
    name = os.fspath(path)
    sub = _resolve_subtype(subtype, _save_format(Path(name)), name)
    data = validate_array(audio, sample_rate, name=name)
    with atomic_writer(path, sample_rate, data.shape[0], sub, input_paths, software) as write:
        write(data)
    return Path(name)


def _save_format(dest: Path) -> str:
    fmt = _SAVE_FORMATS.get(dest.suffix.lower())
    if fmt is None:
        raise _error(os.fspath(dest), f"cannot write extension '{dest.suffix}'",
                     "choose a file name ending in .wav or .flac")
    return fmt


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], sample_rate: int, channels: int,
                  subtype: str | int | None = None,
                  input_paths: Iterable[str | os.PathLike[str]] = (),
                  software: str | None = None) -> Iterator[Callable[[np.ndarray], None]]:
    """Write a WAV/FLAC file block by block, atomically: the rules of :func:`save`.

    Yields ``write(block)`` for float ``[channels, samples]`` blocks (quantised like
    :func:`save`). ``path`` appears, complete, only when the ``with`` block ends without an
    exception (:func:`audiosr_core.atomic.atomic_path`); on any exception
    (``KeyboardInterrupt`` included) the temporary file is removed.

    Examples
    --------
    >>> with atomic_writer("out.wav", 48000, 2) as write:       # doctest: +SKIP
    ...     for block in blocks:
    ...         write(block)
    """
    name = os.fspath(path)
    dest = Path(name)
    fmt = _save_format(dest)
    sub = _resolve_subtype(subtype, fmt, name)
    if isinstance(input_paths, (str, os.PathLike)):
        input_paths = [input_paths]
    for inp in input_paths:
        if _same_file(dest, Path(os.fspath(inp))):
            raise _error(
                name,
                f"refusing to overwrite the input file {display_path(inp)}",
                "choose another output folder or file name",
            )
    if dest.is_dir():
        raise _error(name, "is an existing folder", "give a file name ending in .wav or .flac")
    caller_failed = False
    try:
        with atomic.atomic_path(dest) as tmp, block_writer(tmp, sample_rate, channels, sub,
                                                           fmt, software) as write:
            try:
                yield write
            except BaseException:
                caller_failed = True
                raise
    except OSError as exc:      # the folder or the rename, not the caller's own errors
        if caller_failed or isinstance(exc, AudioSRError):
            raise
        raise _unwritable(name, exc) from exc


def _unwritable(name: str, exc: BaseException) -> AudioSRError:
    return AudioSRError(f"{display_path(name)}: could not be written ({exc}); check free space "
                        "and permissions of the output folder")


@contextlib.contextmanager
def block_writer(path: str | os.PathLike[str], sample_rate: int, channels: int,
                 subtype: str, fmt: str, software: str | None = None
                 ) -> Iterator[Callable[[np.ndarray], None]]:
    """Write a WAV/FLAC file block by block at ``path`` as it is (not atomic: for temporary
    files; use :func:`atomic_writer` for outputs). ``subtype`` and ``fmt`` are libsndfile
    names (``"PCM_24"``, ``"WAV"``); blocks are float ``[channels, samples]``. ``software``
    is stored in the file's "software" tag (WAV INFO ISFT, FLAC comment).

    Raises
    ------
    AudioSRError
        The file cannot be opened or written (the encoder's reason).
    """
    name = os.fspath(path)
    try:
        f = sf.SoundFile(_sf_name(name), "w", int(sample_rate), int(channels), subtype,
                         format=fmt)
        if software:
            f.software = software       # libsndfile takes strings only before the samples
    except (OSError, RuntimeError) as exc:
        raise _unwritable(name, exc) from exc

    def write(block: np.ndarray) -> None:
        try:
            f.write(_encode(np.asarray(block, np.float32), subtype))
        except (OSError, RuntimeError) as exc:
            raise _unwritable(name, exc) from exc

    try:
        yield write
    finally:
        try:
            f.close()
        except (OSError, RuntimeError) as exc:
            raise _unwritable(name, exc) from exc


class Reader48:
    """Read a file as 48 kHz float32 ``[channels, samples]`` blocks in bounded memory.

    Any span of the 48 kHz signal can be read; it is resampled (soxr VHQ) from a chunk of the
    file starting on a sample where both rates' grids meet and with :attr:`MARGIN` samples
    of context on each side, so blocks agree with resampling the whole file (up to soxr's
    chunk-edge effects, which fall inside the margin). The file is validated like
    :func:`load`: header errors on opening, NaN/Inf in the block that holds them.

    Examples
    --------
    >>> with Reader48("long.flac") as reader:                   # doctest: +SKIP
    ...     block = reader.read(0, 48000)                          # first second, 48 kHz
    """

    MARGIN = 4800
    """Resampler context on each side of a chunk, 48 kHz samples (0.1 s)."""

    def __init__(self, path: str | os.PathLike[str], *, check_extension: bool = True) -> None:
        self.meta = info(path, check_extension=check_extension)
        self.name = os.fspath(path)
        self.rate = self.meta.sample_rate
        self.channels = self.meta.channels
        self.length = output_length(self.meta.frames, self.rate)
        self._step = self.rate // math.gcd(self.rate, SAMPLE_RATE)
        self._file = sf.SoundFile(_sf_name(self.name))

    def __enter__(self) -> Reader48:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def read(self, start: int, stop: int) -> np.ndarray:
        """The 48 kHz samples ``[start, stop)`` (zeros past the end), float32."""
        out = np.zeros((self.channels, stop - start), np.float32)
        if self.rate == SAMPLE_RATE:
            block = self._source(start, min(stop, self.meta.frames))
            out[:, :block.shape[1]] = block
            return out
        first = max(0, start - self.MARGIN) * self.rate // SAMPLE_RATE
        first -= first % self._step                      # output grid: first * 48000 / rate
        last = min(self.meta.frames,
                   math.ceil((stop + self.MARGIN) * self.rate / SAMPLE_RATE) + 1)
        up = resample(self._source(first, last), self.rate, SAMPLE_RATE)
        offset = first * SAMPLE_RATE // self.rate
        part = up[:, start - offset:stop - offset]
        out[:, :part.shape[1]] = part[:, :min(part.shape[1], self.length - start)]
        return out

    def _source(self, first: int, last: int) -> np.ndarray:
        self._file.seek(first)
        block = _decode(self._file, max(0, last - first))
        _check_finite(self.name, block, self.rate)
        return block
