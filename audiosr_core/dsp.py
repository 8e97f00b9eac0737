"""The AudioSR signal chain: features, cutoff detection, low-pass pre-processing, band replacement.

Small pure functions, numpy in / numpy out, float32 waveforms at 48 kHz (:data:`SAMPLE_RATE`)
unless a sample rate is given. Every number here is the official AudioSR one; where we deviate
on purpose the function says so.

Examples
--------
>>> import numpy as np
>>> from audiosr_core import dsp
>>> wave = np.random.default_rng(0).standard_normal(48000).astype(np.float32)
>>> feats = dsp.mel_features(wave)                    # log-mel [100, 256], magnitude [100, 1024]
>>> cut = dsp.detect_cutoff(wave)                     # 0.985 cumulative-energy rule
>>> low = dsp.lowpass(wave, cut.hz, kind="cheby1")    # official pre-processing filter
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.ndimage
import scipy.signal
import torch

from .rates import SAMPLE_RATE, fit_length
from .status import Status

N_FFT = 2048
HOP = 480
"""Mel/STFT hop, samples (10 ms at 48 kHz): 100 frames per second."""
N_MELS = 256
FMIN, FMAX = 20.0, 24000.0
LOG_FLOOR = 1e-5
"""Magnitude floor before the natural log of the mel feature."""
CUTOFF_PERCENTILE = 0.985
"""Share of cumulative spectral energy below the detected bandwidth."""
SEGMENT_S = 5.12
"""The official model works on lengths that are multiples of 5.12 s (512 frames)."""
POST_N_FFT, POST_HOP = 2048, 512
"""STFT of the waveform low-band replacement (librosa defaults in the official code)."""
RATIO_CLAMP = (0.8, 1.2)
FILTER_KINDS = ("cheby1", "butter", "ellip", "bessel")
MIN_CUTOFF_HZ = 1000.0
"""Below this the official code declares the input full-band (and then crashes)."""
SILENCE_PEAK = 1e-4
"""Peak amplitude (-80 dBFS) under which input counts as near-silent and passes through."""
FULL_BAND_HZ = 23000.0
"""A detected bandwidth at or above this is already full-band: nothing to add."""


# --------------------------------------------------------------------------------------------
# Lengths
# --------------------------------------------------------------------------------------------
def padded_duration(num_samples: int, sample_rate: int) -> float:
    """Duration in seconds rounded up to a multiple of 5.12 s, as the official reader does."""
    duration = num_samples / sample_rate
    rem = duration % SEGMENT_S
    return duration + (SEGMENT_S - rem) if rem != 0 else duration


def padded_frames(num_samples: int, sample_rate: int) -> int:
    """Mel frames of the padded input (a multiple of 512).

    The official code takes ``int(pad_duration * 100)``, which truncates to 511 for some short
    inputs and then crashes on a 511/512 mismatch; we round instead.
    """
    return int(round(padded_duration(num_samples, sample_rate) * 100))


# --------------------------------------------------------------------------------------------
# Spectral features
# --------------------------------------------------------------------------------------------
def hz_to_mel(freq: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale (linear below 1 kHz, logarithmic above), as librosa with ``htk=False``."""
    freq = np.asarray(freq, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    mels = freq / f_sp
    high = freq >= min_log_hz
    return np.where(high, min_log_mel + np.log(np.maximum(freq, min_log_hz) / min_log_hz) / logstep,
                    mels)


def mel_to_hz(mels: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mels = np.asarray(mels, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)),
                    f_sp * mels)


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS,
                   fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """Triangular Slaney-normalised mel filterbank ``[n_mels, 1 + n_fft // 2]`` (float32).

    Same definition as ``librosa.filters.mel`` (``htk=False``, ``norm="slaney"``).
    """
    fft_freqs = np.linspace(0.0, sample_rate / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=1)
def _mel_basis_tensor() -> torch.Tensor:
    return torch.tensor(mel_filterbank())


@dataclass(frozen=True)
class MelFeatures:
    """Model input features of a 48 kHz waveform.

    Attributes
    ----------
    log_mel : np.ndarray
        ``[frames, 256]`` natural-log mel magnitude, floor ``log(1e-5)``.
    magnitude : np.ndarray
        ``[frames, 1024]`` linear STFT magnitude (the Nyquist bin dropped, as official).
    """

    log_mel: np.ndarray
    magnitude: np.ndarray


def _reflect_padded(wave: np.ndarray) -> torch.Tensor:
    """The waveform reflect-padded by ``(2048 - 480) / 2`` samples each side, as official.

    A reflection needs more samples than it pads: signals of at most 784 samples (16 ms)
    are first extended with zeros to 785, so even one sample has a spectrum.
    """
    pad = (N_FFT - HOP) // 2
    wave = np.asarray(wave, dtype=np.float32)
    if wave.shape[-1] <= pad:
        wave = fit_length(wave, pad + 1)
    x = torch.from_numpy(np.ascontiguousarray(wave))[None, None]
    return torch.nn.functional.pad(x, (pad, pad), mode="reflect")[0, 0]


def _magnitude(wave: np.ndarray) -> torch.Tensor:
    """``[1025, frames]`` magnitude of the official feature STFT (reflect pad, ``center=False``)."""
    return _frames_magnitude(_reflect_padded(wave))


def _frames_magnitude(padded: torch.Tensor) -> torch.Tensor:
    return torch.stft(padded, N_FFT, hop_length=HOP, win_length=N_FFT,
                      window=torch.hann_window(N_FFT), center=False, normalized=False,
                      onesided=True, return_complex=True).abs()


def mel_features(wave: np.ndarray, frames: int | None = None) -> MelFeatures:
    """The official 48 kHz log-mel and STFT magnitude of a waveform.

    Reflect-pad by ``(2048 - 480) / 2`` samples each side, ``torch.stft`` (n_fft 2048, hop 480,
    periodic Hann, ``center=False``), magnitude, Slaney mel (256 bins, 20 Hz-24 kHz), natural log
    of ``max(mel, 1e-5)``. Frames are zero-padded or cropped to ``frames`` (default: as computed).

    Parameters
    ----------
    wave : np.ndarray
        ``[samples]`` float32 at 48 kHz.
    frames : int, optional
        Number of output frames.
    """
    spec = _magnitude(wave)
    mel = torch.log(torch.clamp(_mel_basis_tensor() @ spec, min=LOG_FLOOR))
    log_mel, magnitude = mel.T.numpy(), spec.T.numpy()
    if frames is not None:
        log_mel, magnitude = fit_length(log_mel, frames, 0), fit_length(magnitude, frames, 0)
    return MelFeatures(np.ascontiguousarray(log_mel), np.ascontiguousarray(magnitude[:, :-1]))


def magnitude_sum(wave: np.ndarray, block_frames: int = 4096) -> np.ndarray:
    """Sum over time of the feature STFT magnitude, ``[1024]`` float32, in bounded memory.

    Equal to ``mel_features(wave).magnitude.sum(0)`` but computed ``block_frames`` frames at a
    time, so hour-long signals need no more memory than a minute.
    """
    return _spectrum_sum(wave, 1, block_frames)


def power_mean(wave: np.ndarray, block_frames: int = 4096) -> np.ndarray:
    """Mean over time of the feature STFT power ``|X|^2``, ``[1024]`` float32, bounded memory."""
    return _spectrum_sum(wave, 2, block_frames) / max(feature_frames(wave.shape[-1]), 1)


def feature_frames(num_samples: int) -> int:
    """Frames of the (centred) feature STFT of ``num_samples`` samples."""
    return 1 + num_samples // HOP


def power_sum(wave: np.ndarray, block_frames: int = 4096) -> np.ndarray:
    """Sum over time of the feature STFT power ``|X|^2``, ``[1024]`` float32, bounded memory."""
    return _spectrum_sum(wave, 2, block_frames)


def _spectrum_sum(wave: np.ndarray, exponent: int, block_frames: int) -> np.ndarray:
    x = _reflect_padded(wave)
    n_frames = 1 + (x.shape[0] - N_FFT) // HOP
    total = torch.zeros(1 + N_FFT // 2, dtype=torch.float64)
    for start in range(0, n_frames, block_frames):
        stop = min(start + block_frames, n_frames)
        block = _frames_magnitude(x[start * HOP:(stop - 1) * HOP + N_FFT]).double()
        total += (block if exponent == 1 else block**exponent).sum(dim=1)
    return total[:-1].float().numpy()


def stft(wave: np.ndarray, n_fft: int = POST_N_FFT, hop: int = POST_HOP) -> np.ndarray:
    """Centred STFT ``[1 + n_fft // 2, frames]`` with a periodic Hann window and zero padding.

    Same definition as ``librosa.stft`` with its defaults (``center=True``,
    ``pad_mode="constant"``); complex64 for float32 input.
    """
    window = scipy.signal.get_window("hann", n_fft, fftbins=True).astype(wave.dtype)
    padded = np.pad(wave, n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    return np.fft.rfft(frames * window, axis=-1).T


def istft(spec: np.ndarray, length: int, n_fft: int = POST_N_FFT,
          hop: int = POST_HOP) -> np.ndarray:
    """Inverse of :func:`stft` by windowed overlap-add, trimmed or zero-padded to ``length``.

    Same definition as ``librosa.istft(spec, length=length)`` with its defaults.
    """
    n_frames = min(spec.shape[1], math.ceil((length + 2 * (n_fft // 2)) / hop))
    window = scipy.signal.get_window("hann", n_fft, fftbins=True)
    frames = np.fft.irfft(spec[:, :n_frames].T, n=n_fft, axis=-1)
    dtype = frames.dtype if spec.dtype == np.complex128 else np.float32
    frames = (frames * window).astype(dtype)
    total = n_fft + hop * (n_frames - 1)
    out = np.zeros(total, dtype=dtype)
    norm = np.zeros(total, dtype=np.float64)
    win_sq = window**2
    for i in range(n_frames):
        out[i * hop:i * hop + n_fft] += frames[i]
        norm[i * hop:i * hop + n_fft] += win_sq
    nonzero = norm > np.finfo(np.float32).tiny
    out[nonzero] /= norm[nonzero].astype(dtype)
    out = out[n_fft // 2:n_fft // 2 + length]
    return np.pad(out, (0, length - out.shape[0])) if out.shape[0] < length else out


# --------------------------------------------------------------------------------------------
# Cutoff detection
# --------------------------------------------------------------------------------------------
def energy_cutoff_bin(spectrum: np.ndarray, percentile: float = CUTOFF_PERCENTILE) -> int:
    """Highest bin whose cumulative energy is below ``percentile`` of the total.

    Parameters
    ----------
    spectrum : np.ndarray
        ``[frames, bins]`` non-negative magnitudes, or ``[bins]`` already summed over frames.

    Returns
    -------
    int
        Bin index in ``[1, bins - 1]``, or 0 when no bin qualifies (silence). This is the
        official search (scan down from the top bin), done in float32 like the original.
    """
    spectrum = np.asarray(spectrum, dtype=np.float32)
    if spectrum.ndim == 2:
        spectrum = spectrum.sum(axis=0, dtype=np.float32)
    energy = np.cumsum(spectrum, dtype=np.float32)
    below = np.nonzero(energy[1:] < np.float32(percentile) * energy[-1])[0]
    return int(below[-1]) + 1 if below.size else 0


@dataclass(frozen=True)
class Cutoff:
    """Detected bandwidth of a 48 kHz signal.

    Attributes
    ----------
    bin : int
        STFT bin (of 1024, 23.4375 Hz each) from the 0.985 rule.
    hz : float
        ``bin / 1024 * 24000``, Hz.
    status : Status
        ``BAND_LIMITED`` (enhance), ``SILENT`` (peak below -80 dBFS), ``FULL_BAND``
        (bandwidth at or above 23 kHz) or ``LOW`` (below 1 kHz, where the official code
        gives up). Only band-limited input is processed; the rest passes through. Plain
        strings (``"silent"``) are accepted and converted.
    """

    bin: int
    hz: float
    status: Status

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))

    @property
    def enhance(self) -> bool:
        """Whether this input gets a generated high band."""
        return self.status is Status.BAND_LIMITED


def detect_cutoff(wave: np.ndarray, percentile: float = CUTOFF_PERCENTILE) -> Cutoff:
    """Bandwidth of a 48 kHz waveform by the official 0.985 cumulative-energy rule.

    Uses the STFT magnitude of :func:`mel_features` summed over time (:func:`magnitude_sum`).
    The official code normalises the input (peak 0.5) first; the rule is scale-free, so any
    level gives the same bin, but silence is judged on the level given here.

    Parameters
    ----------
    wave : np.ndarray
        ``[samples]`` float32 at 48 kHz.
    """
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    return energy_cutoff(magnitude_sum(wave), peak, percentile)


def energy_cutoff(magnitude: np.ndarray, peak: float,
                  percentile: float = CUTOFF_PERCENTILE) -> Cutoff:
    """:func:`detect_cutoff` from the summed magnitude spectrum ``[1024]`` and the peak
    amplitude (so long files can be measured block by block)."""
    k = energy_cutoff_bin(magnitude, percentile)
    hz = k / 1024 * (SAMPLE_RATE / 2)
    return Cutoff(k, hz, Status.SILENT if peak < SILENCE_PEAK or k == 0 else _band_status(hz))


def _band_status(hz: float) -> Status:
    """Status of a non-silent input whose band ends at ``hz``."""
    if hz >= FULL_BAND_HZ:
        return Status.FULL_BAND
    if hz < MIN_CUTOFF_HZ:
        return Status.LOW
    return Status.BAND_LIMITED


def detect_band_edge(wave: np.ndarray, max_hz: float | None = None, drop_db: float = 30.0,
                     steep_db: float = 8.0) -> Cutoff:
    """Bandwidth of a 48 kHz waveform as the frequency where its spectrum falls off a cliff.

    The 0.985 energy rule of :func:`detect_cutoff` lands well inside the band of full-range
    speech or bass-heavy music; this finds the edge of a low-pass filter or a resampler
    instead (the ``lite`` model's detector). On the long-term power spectrum ``S`` (dB,
    :func:`power_mean`, 23.4375 Hz bins, smoothed over 5 bins):

    1. ``k_stop`` is the lowest bin above 1 kHz where everything from it up to ``max_hz`` is at
       least ``drop_db`` below the median level of the 1.5 kHz under it;
    2. from ``k_stop`` down, the cliff goes on while ``S`` falls by more than ``steep_db`` over
       8 bins (187.5 Hz, steeper than natural long-term spectra); the band ends where that
       fall stops, so the edge sits at the top of the cliff.

    No such cliff below 23 kHz means the input is full-band; gentle filters (a few dB per
    100 Hz) are not cliffs and their input counts as full-band.

    Parameters
    ----------
    wave : np.ndarray
        ``[samples]`` float at 48 kHz.
    max_hz : float, optional
        Highest frequency that can hold content (e.g. the Nyquist frequency of the original
        rate before resampling to 48 kHz); default 24 kHz.
    drop_db, steep_db : float
        Depth of the cliff, and the fall over 8 bins that counts as steep, dB.

    Returns
    -------
    Cutoff
        ``bin`` is the first STFT bin above the band (the first bin to generate).
    """
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    return band_edge(power_mean(wave), peak, max_hz, drop_db, steep_db)


def band_edge(power: np.ndarray, peak: float, max_hz: float | None = None,
              drop_db: float = 30.0, steep_db: float = 8.0) -> Cutoff:
    """:func:`detect_band_edge` from a long-term power spectrum ``[1024]`` and the peak
    amplitude (so long files can be measured block by block)."""
    if peak < SILENCE_PEAK:
        return Cutoff(0, 0.0, "silent")
    bin_hz = SAMPLE_RATE / N_FFT
    power = scipy.ndimage.uniform_filter1d(np.asarray(power, np.float64), 5, mode="nearest")
    db = 10 * np.log10(power + 1e-20)
    top = len(db) if max_hz is None else max(1, min(len(db), int(max_hz / bin_hz)))
    db = db[:top]
    suffix_max = np.maximum.accumulate(db[::-1])[::-1]
    span = int(round(1500 / bin_hz))
    kc = top
    for k in range(int(np.ceil(MIN_CUTOFF_HZ / bin_hz)), top):
        if suffix_max[k] <= float(np.median(db[max(0, k - span):k])) - drop_db:
            kc = k
            while kc - 4 > 0 and db[kc - 4] - db[min(kc + 4, top - 1)] > steep_db:
                kc -= 1
            break
    return Cutoff(kc, kc * bin_hz, _band_status(kc * bin_hz))


def mel_cutoff_bin(log_mel: np.ndarray, percentile: float = CUTOFF_PERCENTILE) -> int:
    """Mel bin below which the input's band lies: the 0.985 rule on ``exp(log_mel)``.

    Parameters
    ----------
    log_mel : np.ndarray
        ``[frames, 256]`` log-mel of the low-passed input.
    """
    return energy_cutoff_bin(np.exp(np.asarray(log_mel, dtype=np.float32)), percentile)


# --------------------------------------------------------------------------------------------
# Low-pass pre-processing
# --------------------------------------------------------------------------------------------
def design_lowpass(cutoff_hz: float, kind: str = "cheby1", order: int = 8,
                   sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Second-order sections of the official pre-processing filter.

    ``Wn = int(cutoff_hz) / nyquist``; cheby1 has 0.1 dB ripple, ellip 0.1 dB ripple and 60 dB
    stop-band attenuation. Raises ``ValueError`` unless ``0 < Wn < 1`` (the official code
    designs ``Wn = 1`` for full-band input and crashes; we never do).
    """
    wn = int(cutoff_hz) / (sample_rate / 2)
    if not 0.0 < wn < 1.0:
        raise ValueError(f"low-pass cutoff {cutoff_hz} Hz must lie strictly between 0 Hz and "
                         f"the Nyquist frequency {sample_rate / 2:g} Hz")
    if kind == "butter":
        return scipy.signal.butter(order, wn, output="sos")
    if kind == "cheby1":
        return scipy.signal.cheby1(order, 0.1, wn, output="sos")
    if kind == "ellip":
        return scipy.signal.ellip(order, 0.1, 60, wn, output="sos")
    if kind == "bessel":
        return scipy.signal.bessel(order, wn, output="sos")
    raise ValueError(f"unknown filter kind {kind!r}; choose one of {', '.join(FILTER_KINDS)}")


def hard_lowpass_rate(cutoff_hz: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Intermediate rate of the official resampling low-pass: ``int(int(cutoff)/nyq * sr)``.

    In float64 this is sometimes ``2 * int(cutoff) - 1`` rather than ``2 * int(cutoff)``
    (e.g. 3656 Hz gives 7311 Hz); we keep the quirk for parity.
    """
    return int(int(cutoff_hz) / (sample_rate / 2) * sample_rate)


def lowpass(wave: np.ndarray, cutoff_hz: float, kind: str = "cheby1", order: int = 8,
            sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The official pre-processing low-pass: zero-phase IIR, resampling brick wall, IIR again.

    1. ``sosfiltfilt`` with :func:`design_lowpass`;
    2. ``resample_poly`` down to :func:`hard_lowpass_rate` and back up (a near-brick wall);
    3. ``sosfiltfilt`` again.

    Parameters
    ----------
    wave : np.ndarray
        ``[samples]`` at ``sample_rate``.
    cutoff_hz : float
        Pass-band edge, Hz; must be below the Nyquist frequency.

    Returns
    -------
    np.ndarray
        ``[samples]`` float32, same length.
    """
    sos = design_lowpass(cutoff_hz, kind, order, sample_rate)
    n = wave.shape[-1]
    y = fit_length(scipy.signal.sosfiltfilt(sos, wave), n)
    low_rate = hard_lowpass_rate(cutoff_hz, sample_rate)
    y = scipy.signal.resample_poly(y, low_rate, sample_rate)
    y = fit_length(scipy.signal.resample_poly(y, sample_rate, low_rate), n)
    y = fit_length(scipy.signal.sosfiltfilt(sos, y), n)
    return y.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Low-band replacement
# --------------------------------------------------------------------------------------------
def replace_mel_low_band(generated: np.ndarray, reference: np.ndarray,
                         cutoff_bin: int) -> np.ndarray:
    """Copy mel bins ``< cutoff_bin`` of ``reference`` into ``generated`` (log domain, all frames).

    Both ``[..., frames, 256]``; returns a new array.
    """
    out = np.array(generated, dtype=np.float32, copy=True)
    out[..., :cutoff_bin] = reference[..., :cutoff_bin]
    return out


@dataclass(frozen=True)
class BandReplacement:
    """Result of :func:`replace_low_band`.

    Attributes
    ----------
    wave : np.ndarray
        ``[samples]`` float32, the generated waveform with the reference's low band.
    cutoff_bin : int
        STFT bin (of 1025, n_fft 2048) below which the reference was copied.
    ratio_raw, ratio : float
        Reference/generated magnitude ratio at the cutoff bin, before and after clamping to
        [0.8, 1.2].
    """

    wave: np.ndarray
    cutoff_bin: int
    ratio_raw: float
    ratio: float


def replace_low_band(generated: np.ndarray, reference: np.ndarray, cutoff_bin: int | None = None,
                     preserve_reference: bool = False) -> BandReplacement:
    """Waveform low-band replacement in the STFT domain (official ``postprocessing``).

    STFTs of both (n_fft 2048, hop 512, centred), ``cutoff_bin`` from the 0.985 rule on the
    reference unless given, ``ratio = sum|R[kc]| / sum|G[kc]|`` clamped to [0.8, 1.2], then bins
    ``< kc`` of the output are the reference's (complex, so phase too).

    Parameters
    ----------
    generated : np.ndarray
        ``[samples]`` vocoder output; the result has its length.
    reference : np.ndarray
        ``[samples']`` the band-limited input (official: its low-passed version).
    preserve_reference : bool
        False (official): the copied low band is divided by the ratio. True (ours): the low
        band is copied unchanged and the generated high band is multiplied by the ratio
        instead, which is the same spectrum up to one overall gain but keeps the input's band
        exactly at its own level.
    """
    ref_spec = stft(np.asarray(reference, dtype=np.float32))
    gen_spec = stft(np.asarray(generated, dtype=np.float32))
    if cutoff_bin is None:
        cutoff_bin = energy_cutoff_bin(np.abs(ref_spec).T)
    ratio_raw = float(np.sum(np.abs(ref_spec[cutoff_bin])) / np.sum(np.abs(gen_spec[cutoff_bin])))
    ratio = min(max(ratio_raw, RATIO_CLAMP[0]), RATIO_CLAMP[1])
    frames = min(ref_spec.shape[1], gen_spec.shape[1])
    if preserve_reference:
        gen_spec[cutoff_bin:] *= ratio
        gen_spec[:cutoff_bin, :frames] = ref_spec[:cutoff_bin, :frames]
    else:
        gen_spec[:cutoff_bin, :frames] = ref_spec[:cutoff_bin, :frames] / ratio
    wave = istft(gen_spec, length=generated.shape[-1])
    return BandReplacement(wave.astype(np.float32), int(cutoff_bin), ratio_raw, ratio)


def official_output_level(wave: np.ndarray) -> np.ndarray:
    """The official final level: peak 0.5 over the last axis, then the mean removed."""
    wave = 0.5 * wave / np.max(np.abs(wave), axis=-1, keepdims=True)
    return (wave - np.mean(wave, axis=-1, keepdims=True)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Fades
# --------------------------------------------------------------------------------------------
def raised_cosine(n: int) -> np.ndarray:
    """Fade-in curve of ``n`` samples, 0 -> 1 (half a Hann window); ``1 - curve`` fades out."""
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)
