"""The evaluation protocol: simulated band-limited inputs, systems, LSD per domain and cutoff.

For every 48 kHz reference clip and every cutoff, the input is simulated: Chebyshev type I
low-pass of order 8 (0.1 dB ripple, zero-phase) at the cutoff, then soxr down to the
smallest standard rate that holds the band (8, 16, 24 and 32 kHz for 4, 8, 12 and 16 kHz).
Systems are scored against the reference:

- ``unprocessed``: the input resampled back to 48 kHz (soxr), nothing added;
- ``sbr``: :func:`audiosr_core.baseline.spectral_band_replication` of that, at the cutoff;
- ``oracle``: :func:`audiosr_core.baseline.oracle_band_replication` (true high-band envelope);
- a model: ``audiosr_core.load(name).enhance`` of the low-rate input (:func:`model_system`).

Metrics (bels, :mod:`audiosr_core.metrics`, the ``ssr_eval`` LSD): ``LSD`` full band, ``LSD-HF``
(cutoff to 24 kHz), ``LSD-LF`` (0 to the cutoff), ``LSD-cl`` (0 to the clip's ``cliff_hz``
from the folder's ``manifest.csv``) and ``LSD-HFcl`` (cutoff to ``cliff_hz``). Clips sourced
at 44.1 kHz hold nothing above about 22 kHz, where full-band LSD rewards leaving the band
empty; the ``cl`` columns leave that part out. Each value is a mean over clips of per-clip
means over frames; frames of digital silence score 12 whatever the estimate.
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
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import audio, baseline, metrics
from .rates import SAMPLE_RATE, fit_length
from .train import simulate

__all__ = ["DEFAULT_CUTOFFS", "METRICS", "System", "input_rate", "simulate_input", "upsample",
           "score", "score_channels", "baseline_systems", "model_system", "Clip", "find_clips",
           "load_reference", "evaluate", "summarize", "markdown", "cutoff_label"]

DEFAULT_CUTOFFS = (4000, 8000, 12000, 16000)
METRICS = ("LSD", "LSD-HF", "LSD-LF", "LSD-cl", "LSD-HFcl")
DOMAIN_ORDER = ("speech", "music", "sfx")

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
             progress: bool = True) -> tuple[list[dict], dict[str, float]]:
    """Score every system on every clip and cutoff.

    Returns
    -------
    rows : list of dict
        One per clip, cutoff and system: ``clip``, ``domain``, ``cutoff_hz``, ``system`` and
        the :data:`METRICS`.
    seconds : dict
        Processing time per system (scoring excluded) and ``"simulation"``.
    """
    from tqdm.auto import tqdm

    rows: list[dict] = []
    seconds = dict.fromkeys(["simulation", *systems], 0.0)
    for clip in tqdm(clips, desc="clips", unit="clip", disable=not progress):
        ref = load_reference(clip.path)
        for cut in cutoffs:
            t0 = time.perf_counter()
            low, rate = simulate_input(ref, cut)
            x48 = upsample(low, rate, ref.shape[-1])
            seconds["simulation"] += time.perf_counter() - t0
            for name, system in systems.items():
                t0 = time.perf_counter()
                est = system(x48, float(cut), ref, low, rate)
                seconds[name] += time.perf_counter() - t0
                rows.append({"clip": clip.name, "domain": clip.domain, "cutoff_hz": float(cut),
                             "system": name,
                             **score_channels(ref, est, float(cut), clip.cliff_hz)})
    return rows, seconds


def summarize(rows: Sequence[dict]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """Means over clips: ``{group: {cutoff: {system: {metric: value}}}}``, group = domain or
    ``"all"``; NaN values (no cliff) are left out of their mean."""
    groups = ["all", *sorted({r["domain"] for r in rows}, key=_domain_key)]
    out: dict = {}
    for group in groups:
        sel = [r for r in rows if group == "all" or r["domain"] == group]
        out[group] = {}
        for cut in sorted({r["cutoff_hz"] for r in sel}):
            out[group][cutoff_label(cut)] = {}
            for system in dict.fromkeys(r["system"] for r in sel):
                part = [r for r in sel if r["cutoff_hz"] == cut and r["system"] == system]
                out[group][cutoff_label(cut)][system] = {
                    m: _nanmean([r[m] for r in part]) for m in METRICS}
                out[group][cutoff_label(cut)][system]["clips"] = len(part)
    return out


def markdown(summary: dict) -> str:
    """The per-group tables and the compact all-clips LSD table, as Markdown."""
    lines: list[str] = []
    for group, by_cut in summary.items():
        first = next(iter(next(iter(by_cut.values())).values()))
        title = "all clips" if group == "all" else group
        lines += [f"### {title} ({first['clips']} clips)", "",
                  "| cutoff | system | " + " | ".join(METRICS) + " |",
                  "|---|---|" + "---:|" * len(METRICS)]
        for cut, by_system in by_cut.items():
            for system, vals in by_system.items():
                cells = " | ".join(_fmt(vals[m]) for m in METRICS)
                lines.append(f"| {cut} | {system} | {cells} |")
        lines.append("")
    systems = list(next(iter(summary["all"].values())))
    lines += ["### all clips, full-band LSD", "", "| input cutoff | " + " | ".join(systems)
              + " |", "|---|" + "---:|" * len(systems)]
    for cut, by_system in summary["all"].items():
        lines.append(f"| {cut} | " + " | ".join(_fmt(by_system[s]["LSD"]) for s in systems)
                     + " |")
    return "\n".join(lines) + "\n"


def cutoff_label(cut: float) -> str:
    """``4000.0`` -> ``"4 kHz"``, the summary's keys."""
    return f"{cut / 1000:g} kHz"


def _domain_key(domain: str) -> tuple[int, str]:
    return (DOMAIN_ORDER.index(domain) if domain in DOMAIN_ORDER else len(DOMAIN_ORDER), domain)


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _fmt(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"
