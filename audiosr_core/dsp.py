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
    """Mean over time of the feature STFT power ``|X|^2``, ``[1024]`` float32, bounded memory.

    Taken over the frames that lie wholly inside the signal (see :func:`power_sum`).
    """
    total, frames = _inner_power_sum(wave, block_frames)
    return total / max(frames, 1)


def feature_frames(num_samples: int) -> int:
    """Frames of the (centred) feature STFT of ``num_samples`` samples."""
    return 1 + num_samples // HOP


def power_sum(wave: np.ndarray, block_frames: int = 4096) -> np.ndarray:
    """Sum over time of the feature STFT power ``|X|^2``, ``[1024]`` float32, bounded memory.

    Only frames that lie wholly inside the signal are summed (all frames of a signal shorter
    than one frame, 2048 samples). The reflect padding of the feature STFT bends the signal at
    its ends, which spreads a broadband floor over the first and last frames; in a few seconds of
    bass-heavy audio that starts or ends abruptly the floor lies only 10-25 dB under the high
    band and would hide a band edge (:func:`band_edge`).
    """
    return _inner_power_sum(wave, block_frames)[0]


def _inner_power_sum(wave: np.ndarray, block_frames: int) -> tuple[np.ndarray, int]:
    """Power summed over the frames ``[f * HOP, f * HOP + N_FFT)`` of the unpadded signal, and
    their number (the padded feature frames if there is no such frame)."""
    n = wave.shape[-1]
    if n < N_FFT:
        return _spectrum_sum(wave, 2, block_frames), feature_frames(n)
    x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    n_frames = 1 + (n - N_FFT) // HOP
    total = torch.zeros(1 + N_FFT // 2, dtype=torch.float64)
    for start in range(0, n_frames, block_frames):
        stop = min(start + block_frames, n_frames)
        total += (_frames_magnitude(x[start * HOP:(stop - 1) * HOP + N_FFT]).double() ** 2).sum(1)
    return total[:-1].float().numpy(), n_frames


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


_EDGE_BIN_HZ = SAMPLE_RATE / N_FFT
"""Width of one feature STFT bin, Hz (23.4375)."""
_EDGE_DC_BINS = 2
"""Bins 0-1 hold a DC offset (periodic Hann: DC leaks into bin 1 only)."""
_EDGE_DC_RATIO = 1e-4
"""Input with less than this fraction of its power above the DC bins is DC only (-40 dB)."""
_EDGE_TAIL_RATIO = 1e-2
"""A cliff leaves at most this fraction (-20 dB) of the power under it above it: a strong tone
over broadband noise is not the edge of the band."""
_EDGE_RERISE_DB = 3.0
"""The content between a knee and a wall above it may re-rise this much (dB) and still be the
smooth top of one cliff (elliptic, Chebyshev) rather than peaks and dips under a wall."""
_EDGE_SOXR_ROLLOFF_DB = np.array([(0.93, 0.0), (0.94, 0.8), (0.945, 1.5), (0.95, 3.0),
                                  (0.955, 5.0), (0.96, 9.5), (0.965, 15.0), (0.97, 22.0)])
"""Attenuation (dB) of the soxr VHQ anti-alias filter at a fraction of the lower Nyquist
frequency, as seen in the feature STFT (measured on white noise; the same for every rate)."""


def detect_band_edge(wave: np.ndarray, max_hz: float | None = None, drop_db: float = 25.0,
                     knee_db: float = 1.0) -> Cutoff:
    """Bandwidth of a 48 kHz waveform: the knee where its spectrum starts to fall off a cliff.

    The 0.985 energy rule of :func:`detect_cutoff` lands well inside the band of full-range
    speech or bass-heavy music; this finds the edge of a low-pass filter, a resampler or a lossy
    encoder instead (the ``lite`` model's detector). It is :func:`band_edge` of the long-term
    power spectrum (:func:`power_mean`) and the peak amplitude; see there for the algorithm.

    Parameters
    ----------
    wave : np.ndarray
        ``[samples]`` float at 48 kHz.
    max_hz : float, optional
        Highest frequency that can hold content, Hz: the Nyquist frequency of the original rate
        before resampling to 48 kHz (at most 24 kHz, the default).
    drop_db, knee_db : float
        See :func:`band_edge`.

    Returns
    -------
    Cutoff
        ``bin`` is the first STFT bin above the band (the first bin to generate),
        ``hz = bin * 23.4375``.
    """
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    return band_edge(power_mean(wave), peak, max_hz, drop_db, knee_db)


def band_edge(power: np.ndarray, peak: float, max_hz: float | None = None,
              drop_db: float = 25.0, knee_db: float = 1.0) -> Cutoff:
    """Band edge of a signal from its long-term power spectrum and its peak amplitude.

    Works on ``power`` alone, at any scale (``power_sum`` of a long file accumulated block by
    block, divided by its frames, gives the edge :func:`detect_band_edge` finds in the whole
    waveform) and takes about a millisecond. Frequencies are STFT bins ``k`` of 23.4375 Hz
    (bin ``k`` is ``k * 23.4375`` Hz); only bins below ``max_hz`` are looked at; levels are dB.

    1. **Silence and DC.** A peak below :data:`SILENCE_PEAK` is ``"silent"``. If less than
       1e-4 (-40 dB) of the power lies above bins 0-1 the input is a constant (plus at most
       a trace of noise): edge at bin 2 (47 Hz), status ``"low"``. Otherwise bins 0-1 are
       left out of every reference level, so a DC offset never looks like content.
    2. **Cliff.** ``S`` is the spectrum smoothed over 5 bins, ``U(k)`` its maximum from ``k``
       up (everything above ``k``). For each bin ``b`` the reference ``R(b)`` is the mean
       power of the band ``[0.55 b, 0.7 b)`` (0.3 b, at least 2 bins, is left for the
       transition; the band is at least 4 bins wide). The cliff's foot is the lowest ``b``
       where ``S`` stays ``drop_db`` below ``R(b)`` over ``[b, 1.15 b)`` (at least 8 bins),
       everything above ``b`` is at least 15 dB below ``R(b)``, and at most 1 % of the power
       (bins 2 and up) lies above ``b`` (so a strong tone over broadband noise is not an
       edge). A slope must thus fall ``drop_db`` within about half an octave: long-term
       spectra falling up to about 24 dB/octave are no cliff; Butterworth filters of order 6
       and up are (and lower orders near the Nyquist frequency of the rate they were designed
       at, where the bilinear transform steepens them). No cliff: the content reaches
       ``max_hz``, which is the edge.
    3. **Knee.** The search starts inside the cliff, at its first fall of 10 dB within 3 % of
       the frequency or where ``U`` is ``drop_db / 2`` below ``R``, whichever is higher, and
       walks down while ``U(j)`` is more than ``knee_db`` below the mean level of the 6 % of
       bins (at least 4) under ``j``; the knee is the bin above the first one where it is not,
       i.e. where the spectrum starts to fall, not the bottom of the cliff. If a wall lies
       above the knee (a run of bins where ``S`` falls at least 300 dB/octave over +-1 % of the
       frequency, 20 dB deep in all: a brick wall, an encoder, a resampler) and the spectrum
       from the knee up to the wall is not one smooth fall (re-rising at most 3 dB, falling at
       least 6 dB: the rounded top of an elliptic or Chebyshev edge), the knee is the top of the
       wall: peaks and dips of the content just under a wall do not move it.
    4. **Resampler.** A knee in the top 10 % below ``max_hz`` may be the roll-off of the
       resampler that brought the file to 48 kHz (soxr VHQ: flat to 91 %, -3 dB at 95 % of the
       original Nyquist frequency). The search is repeated from that knee with this roll-off
       divided out (at most 20 dB), which puts content that simply ends at ``max_hz`` at about
       97 % of it; when ``max_hz`` is 24 kHz (a 48 kHz or faster source) a knee past 95 % there
       means full-band and the edge is 24 kHz.

    Status: ``"full-band"`` at or above :data:`FULL_BAND_HZ`, ``"low"`` below
    :data:`MIN_CUTOFF_HZ`, else ``"band-limited"`` (:func:`_band_status`).

    Parameters
    ----------
    power : np.ndarray
        ``[1024]`` long-term mean power of the feature STFT (:func:`power_mean`); the Nyquist
        bin is not included. Any positive scale.
    peak : float
        Peak absolute amplitude of the waveform.
    max_hz : float, optional
        Highest frequency that can hold content, Hz (the Nyquist frequency of the source rate,
        at most 24 kHz); default: all 1024 bins (24 kHz).
    drop_db : float
        Depth of a cliff, dB.
    knee_db : float
        How far under the level of the band below it the spectrum must be to count as
        falling, dB.

    Returns
    -------
    Cutoff
        ``bin``: the first bin above the band (0 for silence), ``hz = bin * 23.4375``.
    """
    if peak < SILENCE_PEAK:
        return Cutoff(0, 0.0, Status.SILENT)
    p = np.asarray(power, dtype=np.float64).ravel()
    n = p.size
    p = np.where(np.isfinite(p) & (p > 0.0), p, 0.0)
    top = n if max_hz is None else int(min(n, max(1, math.floor(max_hz / _EDGE_BIN_HZ + 1e-9))))
    p = p[:top]
    if top == 0 or p.max() <= 0.0:
        return Cutoff(0, 0.0, Status.SILENT)
    dc = p[:_EDGE_DC_BINS].sum()
    if top <= _EDGE_DC_BINS + 1 or p[_EDGE_DC_BINS:].sum() < _EDGE_DC_RATIO * dc:
        k = min(_EDGE_DC_BINS, top)
        return Cutoff(k, k * _EDGE_BIN_HZ, _band_status(k * _EDGE_BIN_HZ))
    k = _edge_bin(p, drop_db, knee_db)
    nyquist = n * _EDGE_BIN_HZ if max_hz is None else min(float(max_hz), n * _EDGE_BIN_HZ)
    if k < top and k * _EDGE_BIN_HZ >= 0.9 * nyquist:
        rel = np.arange(top) * _EDGE_BIN_HZ / nyquist
        roll = _EDGE_SOXR_ROLLOFF_DB
        gain_db = np.minimum(np.interp(rel, roll[:, 0], roll[:, 1]), 20.0)
        k = max(k, _edge_bin(p * 10.0 ** (gain_db / 10.0), drop_db, knee_db, first=k))
        if top == n and k >= 0.95 * top:
            k = top
    return Cutoff(k, k * _EDGE_BIN_HZ, _band_status(k * _EDGE_BIN_HZ))


def _edge_bin(p: np.ndarray, drop_db: float, knee_db: float, first: int = 0) -> int:
    """Steps 2-3 of :func:`band_edge` on ``p`` (``[top]`` power, positive maximum): the knee
    bin of the lowest cliff whose foot is at or above ``first``, or ``top`` if there is none."""
    top = p.size
    floor = float(p.max()) * 1e-20
    s = 10.0 * np.log10(np.maximum(scipy.ndimage.correlate1d(p, np.full(5, 0.2), mode="nearest"),
                                   floor))
    u = np.maximum.accumulate(s[::-1])[::-1]
    csum = np.concatenate([[0.0], np.cumsum(p)])
    b = np.arange(max(_EDGE_DC_BINS + 1, first), top)
    e = b - np.maximum(2, np.rint(0.3 * b).astype(int))
    a = np.maximum(_EDGE_DC_BINS, e - np.maximum(4, np.rint(0.15 * b).astype(int)))
    ok = e > a
    ref = np.where(ok, _edge_level(csum, np.minimum(a, e), np.maximum(a, e), floor), -np.inf)
    span = np.maximum(8, np.rint(0.15 * b).astype(int))
    width = int(span.max(initial=1))
    windows = np.lib.stride_tricks.sliding_window_view(
        np.concatenate([s, np.full(width, -np.inf)]), width)[b]
    near = np.where(np.arange(width) < span[:, None], windows, -np.inf).max(axis=1)
    tail = csum[top] - csum[b]
    head = csum[b] - csum[_EDGE_DC_BINS]
    hit = np.flatnonzero(ok & (near <= ref - drop_db) & (u[b] <= ref - 15.0)
                         & (tail <= _EDGE_TAIL_RATIO * head))
    if hit.size == 0:
        return top
    i = int(hit[0])
    foot, lo = int(b[i]), max(_EDGE_DC_BINS + 1, int(e[i]))
    j = np.arange(lo, foot + 1)
    mid = np.flatnonzero(u[j] <= ref[i] - drop_db / 2)
    start = int(j[mid[0]]) if mid.size else foot
    step = np.maximum(2, np.rint(0.03 * j).astype(int))
    steep = np.flatnonzero(u[j] - u[np.minimum(j + step, top - 1)] >= 10.0)
    if steep.size:
        start = max(start, int(j[steep[0]]) + 1)
    start = max(start, lo + 1)
    knee = _edge_knee(u, csum, floor, lo, start, knee_db)
    wall = _edge_wall(s, knee + 1, max(start, foot) + max(4, int(0.05 * start)))
    if wall is not None:
        fall = s[knee:wall + 1]
        smooth = (fall - np.minimum.accumulate(fall)).max() <= _EDGE_RERISE_DB and \
            s[knee] - s[wall] >= 6.0
        if not smooth:
            knee = wall
    return int(knee)


def _edge_level(csum: np.ndarray, a: np.ndarray, b: np.ndarray, floor: float) -> np.ndarray:
    """Mean power of bins ``[a, b)`` in dB, from the cumulative sum ``csum`` (``[top + 1]``)."""
    return 10.0 * np.log10(np.maximum((csum[b] - csum[a]) / np.maximum(b - a, 1), floor))


def _edge_knee(u: np.ndarray, csum: np.ndarray, floor: float, lo: int, start: int,
               knee_db: float) -> int:
    """First bin above the band: one above the highest ``j`` in ``[lo, start)`` where ``u(j)`` is
    within ``knee_db`` of the mean level of the 6 % of bins under ``j`` (``lo`` if none is)."""
    j = np.arange(lo, start)
    a = np.maximum(_EDGE_DC_BINS, j - np.maximum(4, np.rint(0.06 * j).astype(int)))
    kept = np.flatnonzero(u[j] > _edge_level(csum, a, j, floor) - knee_db)
    return int(j[kept[-1]]) + 1 if kept.size else int(lo)


def _edge_wall(s: np.ndarray, lo: int, hi: int) -> int | None:
    """Top of the first wall in ``[lo, hi)``: a run of bins where ``s`` falls at least
    300 dB/octave over +-1 % of the frequency (at least 2 bins), 20 dB deep in all."""
    top = s.size
    j = np.arange(max(lo, 3), min(hi, top - 1))
    if j.size == 0:
        return None
    d = np.maximum(2, np.rint(0.01 * j).astype(int))
    a, b = np.maximum(0, j - d), np.minimum(top - 1, j + d)
    steep = s[a] - s[b] >= 300.0 * np.log2(b / np.maximum(a, 1))
    k = 0
    while k < j.size:
        if not steep[k]:
            k += 1
            continue
        r = k
        while r + 1 < j.size and steep[r + 1]:
            r += 1
        if s[a[k]] - s[b[r]] >= 20.0:
            return int(j[k])
        k = r + 1
    return None


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
