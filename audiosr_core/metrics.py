"""Objective quality metrics: log-spectral distance (the ``ssr_eval`` definition), SI-SDR and
ViSQOL (audio mode, optional: ``pip install "audiosr-plug[eval]"``).

Examples
--------
>>> import numpy as np
>>> from audiosr_core.metrics import lsd
>>> ref = np.random.default_rng(0).standard_normal(48000).astype(np.float32)
>>> round(lsd(ref, 0.5 * ref), 3)          # a pure gain a gives 2 |log10 a|
0.602
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import audio
from .dsp import stft
from .rates import SAMPLE_RATE

LSD_EPS = 1e-12
VISQOL_RATE = SAMPLE_RATE
"""Sample rate (Hz) of ViSQOL's audio mode: its SVR quality model was fitted on 48 kHz audio."""
VISQOL_INSTALL = 'pip install "audiosr-plug[eval]"'
_VISQOL_APIS: dict[type, Any] = {}


def lsd_stft_params(sample_rate: int) -> tuple[int, int]:
    """``(n_fft, hop)`` of ``ssr_eval``: ``int(2048 / (44100 / sr))`` and ``int(sr / 100)``.

    2229 and 480 at 48 kHz.
    """
    return int(2048 / (44100 / sample_rate)), int(sample_rate / 100)


def _spectrograms(reference: np.ndarray, estimate: np.ndarray,
                  sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    reference = np.asarray(reference, dtype=np.float32)
    estimate = np.asarray(estimate, dtype=np.float32)
    if reference.ndim != 1 or estimate.ndim != 1:
        raise ValueError(f"lsd takes two 1-D waveforms, got shapes {reference.shape} and "
                         f"{estimate.shape}; score each channel separately")
    if abs(reference.shape[0] - estimate.shape[0]) >= 100:
        raise ValueError(f"reference and estimate lengths differ by "
                         f"{abs(reference.shape[0] - estimate.shape[0])} samples (ssr_eval "
                         "allows fewer than 100); are they at the same sample rate?")
    n = min(reference.shape[0], estimate.shape[0])
    n_fft, hop = lsd_stft_params(sample_rate)
    # The FFT runs in float64 as in ssr_eval's numpy-1 era: a float32 FFT leaves a rounding
    # floor near -140 dB in empty bands, which lowers the LSD of band-limited estimates.
    ref = np.abs(stft(reference[:n].astype(np.float64), n_fft, hop))
    est = np.abs(stft(estimate[:n].astype(np.float64), n_fft, hop))
    return ref, est


def lsd_per_frame(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = 48000,
                  band_hz: tuple[float, float] | None = None) -> np.ndarray:
    """Per-frame log-spectral distance (bels), the ``ssr_eval`` definition.

    ``sqrt(mean_f((log10(T**2 / (E + 1e-12)**2 + 1e-12))**2))`` for each frame, with ``T`` and
    ``E`` the STFT magnitudes of reference and estimate (librosa-default centred STFT, periodic
    Hann, n_fft ``int(2048 / (44100 / sr))``, hop ``sr / 100``; 2229 and 480 at 48 kHz), after
    trimming both to the shorter length. ``band_hz=(lo, hi)`` restricts the mean to bins with
    ``lo <= f < hi`` (the full band, 0 Hz to Nyquist inclusive, when None).

    Parameters
    ----------
    reference, estimate : np.ndarray
        ``[samples]`` at ``sample_rate``; lengths may differ by fewer than 100 samples.
    """
    ref, est = _spectrograms(reference, estimate, sample_rate)
    if band_hz is not None:
        n_fft = lsd_stft_params(sample_rate)[0]
        freqs = np.arange(ref.shape[0]) * sample_rate / n_fft
        keep = (freqs >= band_hz[0]) & (freqs < band_hz[1])
        if not keep.any():
            raise ValueError(f"band {band_hz} Hz holds no STFT bin at {sample_rate} Hz")
        ref, est = ref[keep], est[keep]
    dist = np.log10(ref**2 / (est + LSD_EPS) ** 2 + LSD_EPS) ** 2
    return np.sqrt(dist.mean(axis=0))


def lsd(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = 48000) -> float:
    """Full-band log-spectral distance (bels), exactly as ``ssr_eval.AudioMetrics.lsd``.

    Mean over frames of :func:`lsd_per_frame`. Not symmetric; a pure gain ``a`` on the estimate
    gives ``2 |log10 a|``; a frame of digital silence in the reference scores 12.

    See Also
    --------
    lsd_band : the same over a frequency band (e.g. above or below an input's cutoff).
    """
    return float(lsd_per_frame(reference, estimate, sample_rate).mean())


def lsd_band(reference: np.ndarray, estimate: np.ndarray, low_hz: float, high_hz: float,
             sample_rate: int = 48000) -> float:
    """Log-spectral distance over the bins with ``low_hz <= f < high_hz`` (bels).

    ``lsd_band(r, e, cutoff, inf)`` is LSD-HF and ``lsd_band(r, e, 0, cutoff)`` is LSD-LF.
    """
    return float(lsd_per_frame(reference, estimate, sample_rate, (low_hz, high_hz)).mean())


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019).

    Both are made zero-mean; ``s = <e, r> r / |r|^2``, ``SI-SDR = 10 log10(|s|^2 / |e - s|^2)``.
    Lengths are trimmed to the shorter one.
    """
    n = min(len(reference), len(estimate))
    r = np.asarray(reference[:n], dtype=np.float64)
    e = np.asarray(estimate[:n], dtype=np.float64)
    r, e = r - r.mean(), e - e.mean()
    energy = np.dot(r, r)
    if energy == 0:
        raise ValueError("si_sdr: the reference is silent (zero energy after removing the mean)")
    target = np.dot(e, r) / energy * r
    noise = e - target
    return float(10 * np.log10(np.dot(target, target) / max(np.dot(noise, noise), 1e-30)))


def visqol(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """ViSQOL v3 MOS-LQO of ``estimate`` against ``reference`` in audio mode (1 to about 4.73).

    The pure-Python port ``visqol-python`` (Google's ViSQOL: gammatone spectrograms, NSIM of
    aligned patches, the bundled libsvm nu-SVR quality model, so it runs offline). Audio mode
    expects :data:`VISQOL_RATE` (48 kHz): other rates are resampled to it first (soxr VHQ).
    Its 32 gammatone bands span 50 Hz to 15 kHz, so it is nearly blind to the band between
    16 and 24 kHz (use LSD-HF there). The estimate is globally aligned to the reference by
    ViSQOL itself; both are trimmed to the shorter length. A signal against itself scores
    about 4.73, the model's ceiling; a silent estimate gives NaN.

    Cost per 10 s mono clip at 48 kHz on one core: about 1.1 s with numba installed (which
    ``visqol-python`` then uses; the first call of a fresh install compiles for about 9 s and
    caches the result), about 7.3 s without numba.

    Parameters
    ----------
    reference, estimate : np.ndarray
        ``[samples]`` at ``sample_rate``, Hz.
    sample_rate : int
        Their sample rate, Hz (default 48000).

    Returns
    -------
    float
        MOS-LQO.

    Raises
    ------
    ImportError
        ``visqol-python`` is not installed (``pip install "audiosr-plug[eval]"``).
    ValueError
        Not two 1-D waveforms.
    """
    api = _visqol_audio_api()
    reference = np.asarray(reference, dtype=np.float32)
    estimate = np.asarray(estimate, dtype=np.float32)
    if reference.ndim != 1 or estimate.ndim != 1:
        raise ValueError(f"visqol takes two 1-D waveforms, got shapes {reference.shape} and "
                         f"{estimate.shape}; score each channel separately")
    n = min(reference.shape[0], estimate.shape[0])
    ref, est = reference[:n], estimate[:n]
    if sample_rate != VISQOL_RATE:
        ref = audio.resample(ref, sample_rate, VISQOL_RATE)
        est = audio.resample(est, sample_rate, VISQOL_RATE)
    result = api.measure_from_arrays(ref.astype(np.float64), est.astype(np.float64), VISQOL_RATE)
    return float(result.moslqo)


def _visqol_audio_api() -> Any:
    """A ``visqol.VisqolApi`` created in audio mode, made once per session (import is lazy)."""
    try:
        from visqol import VisqolApi
    except ImportError as err:
        raise ImportError("the ViSQOL metric needs the visqol-python package: "
                          f"{VISQOL_INSTALL}") from err
    if VisqolApi not in _VISQOL_APIS:
        api = VisqolApi()
        api.create(mode="audio")
        _VISQOL_APIS[VisqolApi] = api
    return _VISQOL_APIS[VisqolApi]
