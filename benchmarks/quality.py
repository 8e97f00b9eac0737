"""Objective quality on 48 kHz references: simulated band-limited inputs, LSD per domain and cutoff.

For every reference clip (``--refs``, recursive ``*.wav``; domain = parent folder name) and every
cutoff (``--cutoffs``, Hz) the input is simulated as in the issue: Chebyshev type I low-pass of
order 8 (0.1 dB ripple, zero-phase) at the cutoff, then soxr down to the smallest standard rate
that holds the band (8, 16, 24 and 32 kHz for 4, 8, 12 and 16 kHz). Then these systems are
scored against the reference:

- ``unprocessed``: the input resampled back to 48 kHz (soxr), nothing added;
- ``sbr``: :func:`audiosr_core.baseline.spectral_band_replication` of that, at the cutoff;
- ``oracle``: :func:`audiosr_core.baseline.oracle_band_replication` (true high-band envelope);
- ``model``: ``AudioSR.from_pretrained(--model).enhance`` of the low-rate input, if given.

Metrics (bels, :mod:`audiosr_core.metrics`, the ``ssr_eval`` LSD): ``LSD`` full band, ``LSD-HF``
(cutoff to 24 kHz), ``LSD-LF`` (0 to the cutoff), ``LSD-cl`` (0 to the clip's ``cliff_hz`` from
the folder's ``manifest.csv``) and ``LSD-HFcl`` (cutoff to ``cliff_hz``). Clips sourced at
44.1 kHz hold nothing above about 22 kHz, where full-band LSD rewards leaving the band empty;
the ``cl`` columns leave that part out. Each value is a mean over clips of per-clip means over
frames; frames of digital silence score 12 whatever the estimate.

From the repository root::

    .venv/bin/python benchmarks/quality.py --model none                # baselines, about 4 min
    .venv/bin/python benchmarks/quality.py --model PATH --steps 50 --limit 4 --json q.json

Prints one Markdown table per domain and one over all clips (cutoff x system x metric), and a
compact "all clips" LSD table (cutoff x system) comparable with the issue's reference figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from audiosr_core import audio, baseline, dsp, metrics  # noqa: E402
from audiosr_core.train import simulate  # noqa: E402

DEFAULT_REFS = REPO.parent / "shared" / "data" / "devset"
DEFAULT_CUTOFFS = (4000, 8000, 12000, 16000)
RATE = dsp.SAMPLE_RATE
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
    for rate in (*simulate.STANDARD_RATES, RATE):
        if rate >= 2 * cutoff_hz:
            return int(rate)
    raise ValueError(f"cutoff {cutoff_hz:g} Hz needs a rate above {RATE} Hz")


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
        float32, same leading shape, ``ceil(samples * rate / 48000)`` samples.
    rate : int
        Its sample rate, Hz.
    """
    d = simulate.Degradation(float(cutoff_hz), "cheby1", 8, zero_phase=True, resample_rate=None)
    filtered = simulate.apply_degradation(np.asarray(reference48, np.float32), d)
    rate = input_rate(cutoff_hz)
    return audio.resample(filtered, RATE, rate), rate


def upsample(low: np.ndarray, rate: int, length: int) -> np.ndarray:
    """``low`` at ``rate`` resampled to 48 kHz (soxr) and cut or zero-padded to ``length``."""
    up = audio.resample(low, rate, RATE)
    if up.shape[-1] >= length:
        return np.ascontiguousarray(up[..., :length])
    return np.pad(up, [(0, 0)] * (up.ndim - 1) + [(0, length - up.shape[-1])])


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------
def score(reference: np.ndarray, estimate: np.ndarray, cutoff_hz: float,
          cliff_hz: float | None) -> dict[str, float]:
    """The five LSD figures of one mono estimate (bels); ``cl`` ones are NaN without a cliff."""
    inf = math.inf
    cliff = inf if cliff_hz is None or cliff_hz >= RATE / 2 else float(cliff_hz)
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
    """``AudioSR.from_pretrained(name).enhance`` of the low-rate input, as a :data:`System`."""
    from audiosr_core import AudioSR

    sr = AudioSR.from_pretrained(name, device=device)

    def run(x48: np.ndarray, cut: float, ref: np.ndarray, low: np.ndarray,
            rate: int) -> np.ndarray:
        res = sr.enhance(low, rate, steps=steps, guidance_scale=guidance_scale, seed=seed)
        out = res.audio
        if out.shape[-1] >= x48.shape[-1]:
            return out[..., :x48.shape[-1]]
        return np.pad(out, [(0, 0), (0, x48.shape[-1] - out.shape[-1])])

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
    if rate != RATE:
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
            out[group][_cut_key(cut)] = {}
            for system in dict.fromkeys(r["system"] for r in sel):
                part = [r for r in sel if r["cutoff_hz"] == cut and r["system"] == system]
                out[group][_cut_key(cut)][system] = {
                    m: _nanmean([r[m] for r in part]) for m in METRICS}
                out[group][_cut_key(cut)][system]["clips"] = len(part)
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


def _cut_key(cut: float) -> str:
    return f"{cut / 1000:g} kHz"


def _domain_key(domain: str) -> tuple[int, str]:
    return (DOMAIN_ORDER.index(domain) if domain in DOMAIN_ORDER else len(DOMAIN_ORDER), domain)


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _fmt(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--refs", type=Path, default=DEFAULT_REFS,
                   help="folder of 48 kHz reference .wav files, searched recursively; domain = "
                        "parent folder name; cliff_hz from its manifest.csv (default: %(default)s)")
    p.add_argument("--cutoffs", type=float, nargs="+", default=list(DEFAULT_CUTOFFS),
                   help="simulated input bandwidths, Hz (default: 4000 8000 12000 16000)")
    p.add_argument("--model", default="none",
                   help="'none' (baselines only) or anything AudioSR.from_pretrained accepts: "
                        "basic, speech, lite, a converted folder, an official checkpoint")
    p.add_argument("--steps", type=int, default=50, help="diffusion steps (default 50)")
    p.add_argument("--guidance-scale", type=float, default=3.5, help="default 3.5")
    p.add_argument("--seed", type=int, default=42, help="default 42")
    p.add_argument("--device", default=None, help="model device (default: auto)")
    p.add_argument("--no-oracle", action="store_true", help="skip the oracle baseline")
    p.add_argument("--limit", type=int, default=None, help="only the first N clips (sorted)")
    p.add_argument("--json", type=Path, default=None, help="write every score and the summary")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    for cut in args.cutoffs:
        if not 0 < cut < RATE / 2:
            p.error(f"cutoff {cut:g} Hz must lie strictly between 0 and {RATE // 2} Hz")
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    clips = find_clips(args.refs, args.limit)
    systems = baseline_systems()
    if args.no_oracle:
        del systems["oracle"]
    setup = 0.0
    if args.model.lower() != "none":
        t0 = time.perf_counter()
        systems["model"] = model_system(args.model, args.steps, args.guidance_scale, args.seed,
                                        args.device)
        setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows, seconds = evaluate(clips, args.cutoffs, systems, progress=not args.no_progress)
    total = time.perf_counter() - t0
    summary = summarize(rows)
    print(f"\n{len(clips)} clips from {args.refs}, cutoffs "
          f"{', '.join(_cut_key(c) for c in args.cutoffs)}; model: {args.model}"
          + (f" ({args.steps} steps, guidance {args.guidance_scale:g}, seed {args.seed})"
             if "model" in systems else "") + "\n")
    print(markdown(summary))
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
    print(f"Wall time {total:.1f} s (processing: {timing}; the rest is scoring)"
          + (f"; model set-up {setup:.1f} s" if setup else "") + f". {platform.node()}, "
          f"{platform.processor() or platform.machine()}.")
    if args.json:
        args.json.write_text(json.dumps({
            "refs": str(args.refs), "cutoffs_hz": args.cutoffs, "model": args.model,
            "steps": args.steps, "guidance_scale": args.guidance_scale, "seed": args.seed,
            "clips": [c.name for c in clips], "seconds": {**seconds, "total": total,
                                                          "model_setup": setup},
            "summary": summary, "rows": rows}, indent=1, allow_nan=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
