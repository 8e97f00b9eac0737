"""The evaluation protocol: simulated band-limited inputs, systems, LSD per domain and cutoff.

For every 48 kHz reference clip and every cutoff, the input is simulated: Chebyshev type I
low-pass of order 8 (0.1 dB ripple, zero-phase) at the cutoff, then soxr down to the
smallest standard rate that holds the band (8, 16, 24 and 32 kHz for 4, 8, 12 and 16 kHz).
Systems are scored against the reference:

- ``unprocessed``: the input resampled back to 48 kHz (soxr), nothing added;
- ``sbr``: :func:`audiosr_core.baseline.spectral_band_replication` of that, at the cutoff;
- ``oracle``: :func:`audiosr_core.baseline.oracle_band_replication` (true high-band envelope);
- a model: ``audiosr_core.load(name).enhance`` of the low-rate input (:func:`model_system`).

A second input condition, ``"mp3"`` (:func:`mp3_input`), is a lossy codec instead of a filter:
the reference resampled to 44.1 kHz, encoded as constant-bit-rate MP3 at 48 kb/s (LAME through
libsndfile), decoded, and shifted back by the codec delay (found by cross-correlation). That
44.1 kHz signal is the input; the encoder's own low-pass leaves a band edge of about 11 to
16 kHz, detected per clip (:func:`band_edge_hz`), which the baselines and the band-split LSD
columns take as the cutoff. The cutoff sweep is condition ``"cheby8"`` (:data:`CONDITIONS`).

Metrics (bels, :mod:`audiosr_core.metrics`, the ``ssr_eval`` LSD): ``LSD`` full band, ``LSD-HF``
(cutoff to 24 kHz), ``LSD-LF`` (0 to the cutoff), ``LSD-cl`` (0 to the clip's ``cliff_hz``
from the folder's ``manifest.csv``) and ``LSD-HFcl`` (cutoff to ``cliff_hz``). Clips sourced
at 44.1 kHz hold nothing above about 22 kHz, where full-band LSD rewards leaving the band
empty; the ``cl`` columns leave that part out. Each value is a mean over clips of per-clip
means over frames; frames of digital silence score 12 whatever the estimate. With
``visqol=True`` a perceptual column is added, ``ViSQOL``: MOS-LQO of ViSQOL's audio mode
(:func:`audiosr_core.metrics.visqol`, 1 to about 4.73, higher is better; blind above 15 kHz;
about 1.1 s per 10 s of audio and system on one core, needs ``audiosr-plug[eval]``).
``benchmarks/quality.py`` runs it from the command line.

Example
-------
>>> from audiosr_core import evaluation
>>> clips = evaluation.find_clips(Path("devset"))                        # doctest: +SKIP
>>> rows, seconds = evaluation.evaluate(clips, [4000, 8000], evaluation.baseline_systems())
>>> print(evaluation.markdown(evaluation.summarize(rows)))               # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from . import audio, baseline, dsp, metrics
from .rates import SAMPLE_RATE, fit_length
from .train import simulate

__all__ = ["DEFAULT_CUTOFFS", "METRICS", "VISQOL", "CONDITIONS", "MP3_RATE", "MP3_KBPS",
           "MP3_MAX_LAG", "System", "SimulatedInput", "input_rate", "simulate_input", "upsample",
           "cheby8_input", "mp3_compression_level", "mp3_encode", "mp3_decode", "mp3_bitrate",
           "estimate_delay", "remove_delay", "band_edge_hz", "mp3_label", "mp3_input",
           "simulated_inputs", "score", "score_channels", "visqol_channels", "baseline_systems",
           "model_system", "Clip", "find_clips", "load_reference", "evaluate", "summarize",
           "markdown", "cutoff_label"]

DEFAULT_CUTOFFS = (4000, 8000, 12000, 16000)
METRICS = ("LSD", "LSD-HF", "LSD-LF", "LSD-cl", "LSD-HFcl")
VISQOL = "ViSQOL"
DOMAIN_ORDER = ("speech", "music", "sfx")
CONDITIONS = ("cheby8", "mp3")
"""Input conditions: the Chebyshev cutoff sweep and the MP3 codec."""
MP3_RATE = 44100
"""Sample rate of the MP3 condition, Hz."""
MP3_KBPS = 48
"""Constant bit rate of the MP3 condition, kb/s."""
MP3_MAX_LAG = 4096
"""Largest codec delay searched for, samples at :data:`MP3_RATE` (LAME + mpg123: 1105)."""

System = Callable[[np.ndarray, float, np.ndarray, np.ndarray, int], np.ndarray]
"""``(input48 [C, N], cutoff_hz, reference48 [C, N], low [C, n], low_rate) -> estimate48``."""


# --------------------------------------------------------------------------------------------
# Input simulation
# --------------------------------------------------------------------------------------------
def input_rate(cutoff_hz: float) -> int:
    """Smallest standard sample rate (Hz) whose Nyquist frequency is at least ``cutoff_hz``.

    From :data:`audiosr_core.train.simulate.STANDARD_RATES` and 48000:
    4, 8, 12 and 16 kHz give 8000, 16000, 24000 and 32000.
    """
    for rate in (*simulate.STANDARD_RATES, SAMPLE_RATE):
        if rate >= 2 * cutoff_hz:
            return int(rate)
    raise ValueError(f"cutoff {cutoff_hz:g} Hz needs a rate above {SAMPLE_RATE} Hz")


def simulate_input(reference48: np.ndarray, cutoff_hz: float) -> tuple[np.ndarray, int]:
    """The band-limited input of the issue's protocol, at its own (low) sample rate.

    Chebyshev type I, order 8, 0.1 dB ripple, zero-phase (``sosfiltfilt``) at ``cutoff_hz``
    (:func:`audiosr_core.train.simulate.apply_degradation`), then soxr VHQ down to
    :func:`input_rate` (:func:`audiosr_core.audio.resample`).

    Parameters
    ----------
    reference48 : np.ndarray
        ``[samples]`` or ``[channels, samples]`` float32 at 48 kHz.
    cutoff_hz : float
        Low-pass edge, Hz (below 24000).

    Returns
    -------
    low : np.ndarray
        float32, same leading shape, ``output_length(samples, 48000, rate)`` samples.
    rate : int
        Its sample rate, Hz.
    """
    d = simulate.Degradation(float(cutoff_hz), "cheby1", 8, zero_phase=True, resample_rate=None)
    filtered = simulate.apply_degradation(np.asarray(reference48, np.float32), d)
    rate = input_rate(cutoff_hz)
    return audio.resample(filtered, SAMPLE_RATE, rate), rate


def upsample(low: np.ndarray, rate: int, length: int) -> np.ndarray:
    """``low`` at ``rate`` resampled to 48 kHz (soxr) and cut or zero-padded to ``length``."""
    return fit_length(audio.resample(low, rate, SAMPLE_RATE), length)


@dataclass(frozen=True)
class SimulatedInput:
    """One input the systems receive, made from a reference clip.

    Attributes
    ----------
    condition : str
        One of :data:`CONDITIONS`.
    label : str
        Its row in the summary: ``"4 kHz"`` (:func:`cutoff_label`) or ``"MP3 48 kb/s"``.
    cutoff_hz : float
        Band edge the baselines and band-split LSD columns use, Hz: the filter's cutoff, or
        the detected edge of a decoded MP3.
    low : np.ndarray
        ``[channels, n]`` float32 at ``rate``: what a model receives.
    rate : int
        Its sample rate, Hz.
    x48 : np.ndarray
        ``low`` at 48 kHz, the reference's length (the ``unprocessed`` system).
    delay : int or None
        Codec delay removed, samples at ``rate`` (MP3 only).
    kbps : float or None
        Bit rate of the encoded file, kb/s (MP3 only).
    """

    condition: str
    label: str
    cutoff_hz: float
    low: np.ndarray
    rate: int
    x48: np.ndarray
    delay: int | None = None
    kbps: float | None = None


def cheby8_input(reference48: np.ndarray, cutoff_hz: float) -> SimulatedInput:
    """The cutoff-sweep input (:func:`simulate_input`) of a ``[channels, samples]`` reference."""
    low, rate = simulate_input(reference48, cutoff_hz)
    return SimulatedInput("cheby8", cutoff_label(cutoff_hz), float(cutoff_hz), low, rate,
                          upsample(low, rate, reference48.shape[-1]))


# --------------------------------------------------------------------------------------------
# MP3 condition
# --------------------------------------------------------------------------------------------
def mp3_compression_level(kbps: float) -> float:
    """libsndfile's ``compression_level`` that gives a constant MPEG-1 Layer III bit rate.

    In constant-bit-rate mode libsndfile 1.2 asks LAME for ``320 - 288 * level`` kb/s, which
    LAME rounds to the nearest standard MPEG-1 rate (32 to 320 kb/s; sample rates 32, 44.1
    and 48 kHz); 48 kb/s is level 0.944. Measured with libsndfile 1.2.2: a 10 s file at
    level 0.944 holds 48.15 kb/s (frames plus headers).

    Parameters
    ----------
    kbps : float
        Bit rate, kb/s, above 32 and at most 320.
    """
    if not 32 < kbps <= 320:
        raise ValueError(f"MP3 bit rate {kbps:g} kb/s must lie in (32, 320]")
    return (320.0 - kbps) / (320.0 - 32.0)


def mp3_encode(wave: np.ndarray, rate: int, kbps: float = MP3_KBPS) -> bytes:
    """Constant-bit-rate MP3 (LAME through libsndfile) of ``[channels, samples]`` or
    ``[samples]`` float audio at ``rate`` (Hz), ``kbps`` kb/s; the file's bytes."""
    buf = io.BytesIO()
    data = np.atleast_2d(np.asarray(wave, np.float32)).T
    sf.write(buf, data, int(rate), format="MP3", subtype="MPEG_LAYER_III",
             compression_level=mp3_compression_level(kbps), bitrate_mode="CONSTANT")
    return buf.getvalue()


def mp3_decode(data: bytes) -> tuple[np.ndarray, int]:
    """``([channels, n] float32, rate in Hz)`` of an MP3 file's bytes (mpg123 via libsndfile).

    libsndfile trims the codec delay only when the encoder wrote a LAME info frame, which it
    does not at 48 kb/s: ``n`` is then a whole number of 1152-sample frames and the signal
    lags by the codec delay (see :func:`estimate_delay`).
    """
    wave, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return np.ascontiguousarray(wave.T), int(rate)


def mp3_bitrate(data: bytes, seconds: float) -> float:
    """Bit rate of an encoded file of ``seconds`` of audio, kb/s (headers included)."""
    return 8.0 * len(data) / seconds / 1000.0


def estimate_delay(reference: np.ndarray, delayed: np.ndarray, max_lag: int) -> int:
    """Lag (samples) by which ``delayed`` trails ``reference``: the peak of their
    cross-correlation over ``-max_lag..max_lag`` (channels summed first).

    Positive when ``delayed[t + lag]`` lines up with ``reference[t]``; 0 when either is silent.
    """
    ref = np.atleast_2d(np.asarray(reference, np.float64)).sum(axis=0)
    dly = np.atleast_2d(np.asarray(delayed, np.float64)).sum(axis=0)
    corr = signal.correlate(dly, ref, mode="full", method="fft")
    lags = signal.correlation_lags(dly.size, ref.size, mode="full")
    keep = np.abs(lags) <= max_lag
    corr, lags = corr[keep], lags[keep]
    if not np.any(corr > 0):
        return 0
    return int(lags[np.argmax(corr)])


def remove_delay(wave: np.ndarray, delay: int, length: int) -> np.ndarray:
    """``wave`` (``[..., samples]``) advanced by ``delay`` samples (delayed when negative,
    zeros shifted in), then cut or zero-padded to ``length`` samples."""
    if delay >= 0:
        shifted = wave[..., delay:]
    else:
        shifted = np.pad(wave, [(0, 0)] * (wave.ndim - 1) + [(-delay, 0)])
    return fit_length(shifted, length)


def band_edge_hz(x48: np.ndarray, max_hz: float) -> float:
    """Band edge (Hz) of ``[channels, samples]`` 48 kHz audio whose content ends below
    ``max_hz``: :func:`audiosr_core.dsp.band_edge` of the channels' mean power spectrum, at
    least 1 kHz (so that silence still gives a cutoff the baselines accept)."""
    x48 = np.atleast_2d(x48)
    power = np.mean([dsp.power_mean(c) for c in x48], axis=0)
    edge = dsp.band_edge(power, float(np.max(np.abs(x48))), max_hz)
    return max(float(edge.hz), 1000.0)


def mp3_label(kbps: float = MP3_KBPS) -> str:
    """``48`` -> ``"MP3 48 kb/s"``, the summary's key of the MP3 condition."""
    return f"MP3 {kbps:g} kb/s"


def mp3_input(reference48: np.ndarray, kbps: float = MP3_KBPS, rate: int = MP3_RATE,
              max_lag: int = MP3_MAX_LAG) -> SimulatedInput:
    """The codec input: 48 kHz reference -> soxr to ``rate`` -> MP3 at ``kbps`` -> decoded ->
    advanced by the codec delay.

    The delay is :func:`estimate_delay` of the decoded signal against the ``rate`` original
    (1105 samples at 44.1 kHz and 48 kb/s: LAME's 576 plus the decoder's 529); the aligned
    signal keeps the original's length. Its band edge (:func:`band_edge_hz`, at most
    ``rate / 2``) is the condition's cutoff.

    Parameters
    ----------
    reference48 : np.ndarray
        ``[channels, samples]`` float32 at 48 kHz.
    kbps : float
        Constant bit rate, kb/s (default 48).
    rate : int
        Codec sample rate, Hz (default 44100).
    max_lag : int
        Largest delay searched for, samples at ``rate``.

    Returns
    -------
    SimulatedInput
        ``low`` at ``rate``, the delay found and the measured bit rate.
    """
    reference48 = np.atleast_2d(np.asarray(reference48, np.float32))
    original = audio.resample(reference48, SAMPLE_RATE, rate)
    data = mp3_encode(original, rate, kbps)
    decoded, _ = mp3_decode(data)
    delay = estimate_delay(original, decoded, max_lag)
    low = remove_delay(decoded, delay, original.shape[-1])
    x48 = upsample(low, rate, reference48.shape[-1])
    return SimulatedInput("mp3", mp3_label(kbps), band_edge_hz(x48, rate / 2), low, rate, x48,
                          delay, mp3_bitrate(data, original.shape[-1] / rate))


def simulated_inputs(reference48: np.ndarray, cutoffs: Sequence[float],
                     conditions: Sequence[str] = ("cheby8",)) -> list[SimulatedInput]:
    """Every input of one ``[channels, samples]`` reference: one per cutoff for ``"cheby8"``
    and one for ``"mp3"``, in :data:`CONDITIONS` order."""
    unknown = sorted(set(conditions) - set(CONDITIONS))
    if unknown:
        raise ValueError(f"unknown condition(s) {unknown}; choose from {list(CONDITIONS)}")
    out = []
    if "cheby8" in conditions:
        out += [cheby8_input(reference48, cut) for cut in cutoffs]
    if "mp3" in conditions:
        out.append(mp3_input(reference48))
    return out


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------
def score(reference: np.ndarray, estimate: np.ndarray, cutoff_hz: float,
          cliff_hz: float | None) -> dict[str, float]:
    """The five LSD figures of one mono estimate (bels); ``cl`` ones are NaN without a cliff."""
    inf = math.inf
    cliff = inf if cliff_hz is None or cliff_hz >= SAMPLE_RATE / 2 else float(cliff_hz)
    out = {
        "LSD": metrics.lsd(reference, estimate),
        "LSD-HF": metrics.lsd_band(reference, estimate, cutoff_hz, inf),
        "LSD-LF": metrics.lsd_band(reference, estimate, 0.0, cutoff_hz),
        "LSD-cl": math.nan,
        "LSD-HFcl": math.nan,
    }
    if cliff_hz is not None:
        out["LSD-cl"] = metrics.lsd_band(reference, estimate, 0.0, cliff)
        if cliff > cutoff_hz:
            out["LSD-HFcl"] = metrics.lsd_band(reference, estimate, cutoff_hz, cliff)
    return out


def score_channels(reference: np.ndarray, estimate: np.ndarray, cutoff_hz: float,
                   cliff_hz: float | None) -> dict[str, float]:
    """:func:`score` of ``[channels, samples]`` arrays, averaged over channels."""
    rows = [score(r, e, cutoff_hz, cliff_hz) for r, e in zip(reference, estimate, strict=True)]
    return {k: float(np.mean([r[k] for r in rows])) for k in METRICS}


def visqol_channels(reference: np.ndarray, estimate: np.ndarray) -> float:
    """ViSQOL MOS-LQO (audio mode, :func:`audiosr_core.metrics.visqol`) of ``[channels,
    samples]`` 48 kHz arrays, averaged over channels; about 1.1 s per 10 s channel."""
    return float(np.mean([metrics.visqol(r, e, SAMPLE_RATE)
                          for r, e in zip(reference, estimate, strict=True)]))


# --------------------------------------------------------------------------------------------
# Systems
# --------------------------------------------------------------------------------------------
def baseline_systems() -> dict[str, System]:
    """The systems that need no model: unprocessed input, SBR baseline, oracle."""
    return {
        "unprocessed": lambda x48, cut, ref, low, rate: x48,
        "sbr": lambda x48, cut, ref, low, rate: baseline.spectral_band_replication(x48, cut),
        "oracle": lambda x48, cut, ref, low, rate: baseline.oracle_band_replication(x48, cut,
                                                                                    ref),
    }


def model_system(name: str, steps: int, guidance_scale: float, seed: int,
                 device: str | None) -> System:
    """``audiosr_core.load(name).enhance`` of the low-rate input, as a :data:`System`."""
    from .loading import load

    sr = load(name, device=device)

    def run(x48: np.ndarray, cut: float, ref: np.ndarray, low: np.ndarray,
            rate: int) -> np.ndarray:
        res = sr.enhance(low, rate, steps=steps, guidance_scale=guidance_scale, seed=seed)
        return fit_length(res.audio, x48.shape[-1])

    return run


# --------------------------------------------------------------------------------------------
# Clips
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Clip:
    """One reference file: path, name relative to the folder, domain, ``cliff_hz`` if known."""

    path: Path
    name: str
    domain: str
    cliff_hz: float | None


def find_clips(folder: Path, limit: int | None = None) -> list[Clip]:
    """``*.wav`` under ``folder`` (sorted, recursive), with ``cliff_hz`` from ``manifest.csv``.

    Raises
    ------
    FileNotFoundError
        ``folder`` does not exist or holds no ``.wav`` file.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"reference folder {folder} does not exist")
    cliffs: dict[str, float] = {}
    manifest = folder / "manifest.csv"
    if manifest.is_file():
        with manifest.open(newline="") as f:
            for row in csv.DictReader(f):
                if row.get("clip") and row.get("cliff_hz"):
                    cliffs[row["clip"]] = float(row["cliff_hz"])
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())
    if not paths:
        raise FileNotFoundError(f"no .wav files under {folder}")
    clips = []
    for p in paths[:limit] if limit else paths:
        name = p.relative_to(folder).as_posix()
        clips.append(Clip(p, name, p.parent.name, cliffs.get(name)))
    return clips


def load_reference(path: Path) -> np.ndarray:
    """``[channels, samples]`` float32 of a 48 kHz file; other rates are refused."""
    wave, rate = audio.load(path)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{path}: references must be 48 kHz, this one is {rate} Hz")
    return np.atleast_2d(wave).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Run and report
# --------------------------------------------------------------------------------------------
def evaluate(clips: Sequence[Clip], cutoffs: Sequence[float], systems: dict[str, System],
             progress: bool = True, *, conditions: Sequence[str] = ("cheby8",),
             visqol: bool = False) -> tuple[list[dict], dict[str, float]]:
    """Score every system on every clip and input (:func:`simulated_inputs`).

    Parameters
    ----------
    conditions : sequence of str
        Of :data:`CONDITIONS`: ``"cheby8"`` (one input per cutoff) and/or ``"mp3"``.
    visqol : bool
        Add the :data:`VISQOL` column (about 1.1 s per 10 s of audio and system on one core).

    Returns
    -------
    rows : list of dict
        One per clip, input and system: ``clip``, ``domain``, ``condition``, ``input`` (the
        summary's label), ``cutoff_hz``, ``system``, the :data:`METRICS` (and ``ViSQOL``);
        MP3 rows add ``codec_delay`` (samples at 44.1 kHz) and ``kbps``.
    seconds : dict
        Processing time per system (scoring excluded) and ``"simulation"``; with ``visqol``
        also ``"visqol"``, the time spent scoring it.
    """
    from tqdm.auto import tqdm

    rows: list[dict] = []
    seconds = dict.fromkeys(["simulation", *systems, *(["visqol"] if visqol else [])], 0.0)
    for clip in tqdm(clips, desc="clips", unit="clip", disable=not progress):
        ref = load_reference(clip.path)
        t0 = time.perf_counter()
        inputs = simulated_inputs(ref, cutoffs, conditions)
        seconds["simulation"] += time.perf_counter() - t0
        for inp in inputs:
            extra = {} if inp.delay is None else {"codec_delay": inp.delay, "kbps": inp.kbps}
            for name, system in systems.items():
                t0 = time.perf_counter()
                est = system(inp.x48, inp.cutoff_hz, ref, inp.low, inp.rate)
                seconds[name] += time.perf_counter() - t0
                row = {"clip": clip.name, "domain": clip.domain, "condition": inp.condition,
                       "input": inp.label, "cutoff_hz": inp.cutoff_hz, "system": name,
                       **score_channels(ref, est, inp.cutoff_hz, clip.cliff_hz), **extra}
                if visqol:
                    t0 = time.perf_counter()
                    row[VISQOL] = visqol_channels(ref, est)
                    seconds["visqol"] += time.perf_counter() - t0
                rows.append(row)
    return rows, seconds


def summarize(rows: Sequence[dict]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """Means over clips: ``{group: {input: {system: {metric: value}}}}``, group = domain or
    ``"all"``, input = the row's label (``"4 kHz"``, ``"MP3 48 kb/s"``; the cutoff's when a
    row has none); NaN values (no cliff) are left out of their mean."""
    groups = ["all", *sorted({r["domain"] for r in rows}, key=_domain_key)]
    columns = [m for m in (*METRICS, VISQOL) if any(m in r for r in rows)]
    out: dict = {}
    for group in groups:
        sel = sorted((r for r in rows if group == "all" or r["domain"] == group), key=_input_key)
        out[group] = {}
        for label in dict.fromkeys(_input_label(r) for r in sel):
            out[group][label] = {}
            for system in dict.fromkeys(r["system"] for r in sel):
                part = [r for r in sel if _input_label(r) == label and r["system"] == system]
                out[group][label][system] = {
                    m: _nanmean([r.get(m, math.nan) for r in part]) for m in columns}
                out[group][label][system]["clips"] = len(part)
    return out


def markdown(summary: dict) -> str:
    """The per-group tables and the compact all-clips LSD (and ViSQOL) tables, as Markdown."""
    lines: list[str] = []
    for group, by_input in summary.items():
        first = next(iter(next(iter(by_input.values())).values()))
        columns = [m for m in first if m != "clips"]
        title = "all clips" if group == "all" else group
        lines += [f"### {title} ({first['clips']} clips)", "",
                  "| input | system | " + " | ".join(columns) + " |",
                  "|---|---|" + "---:|" * len(columns)]
        for label, by_system in by_input.items():
            for system, vals in by_system.items():
                cells = " | ".join(_fmt(vals[m]) for m in columns)
                lines.append(f"| {label} | {system} | {cells} |")
        lines.append("")
    lines += _compact_table(summary["all"], "LSD", "full-band LSD")
    first = next(iter(next(iter(summary["all"].values())).values()))
    if VISQOL in first:
        lines += ["", *_compact_table(summary["all"], VISQOL, "ViSQOL MOS-LQO")]
    return "\n".join(lines) + "\n"


def _compact_table(by_input: dict, metric: str, title: str) -> list[str]:
    """Markdown lines of one metric over all clips, input x system."""
    systems = list(next(iter(by_input.values())))
    lines = [f"### all clips, {title}", "", "| input | " + " | ".join(systems) + " |",
             "|---|" + "---:|" * len(systems)]
    for label, by_system in by_input.items():
        lines.append(f"| {label} | " + " | ".join(_fmt(by_system[s][metric]) for s in systems)
                     + " |")
    return lines


def cutoff_label(cut: float) -> str:
    """``4000.0`` -> ``"4 kHz"``, the summary's keys."""
    return f"{cut / 1000:g} kHz"


def _input_label(row: dict) -> str:
    return row.get("input") or cutoff_label(row["cutoff_hz"])


def _input_key(row: dict) -> tuple[int, float]:
    """Cutoff-sweep rows first, by cutoff; then the other conditions in CONDITIONS order."""
    condition = row.get("condition", "cheby8")
    return CONDITIONS.index(condition), row["cutoff_hz"] if condition == "cheby8" else 0.0


def _domain_key(domain: str) -> tuple[int, str]:
    return (DOMAIN_ORDER.index(domain) if domain in DOMAIN_ORDER else len(DOMAIN_ORDER), domain)


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _fmt(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"
