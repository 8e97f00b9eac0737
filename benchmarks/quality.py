"""Objective quality on 48 kHz references: simulated band-limited inputs, LSD per domain and cutoff.

The protocol lives in :mod:`audiosr_core.evaluation`; this script runs it and prints tables.

For every reference clip (``--refs``, recursive ``*.wav``; domain = parent folder name) and every
cutoff (``--cutoffs``, Hz) the input is simulated as in the issue: Chebyshev type I low-pass of
order 8 (0.1 dB ripple, zero-phase) at the cutoff, then soxr down to the smallest standard rate
that holds the band (8, 16, 24 and 32 kHz for 4, 8, 12 and 16 kHz). Then these systems are
scored against the reference:

- ``unprocessed``: the input resampled back to 48 kHz (soxr), nothing added;
- ``sbr``: :func:`audiosr_core.baseline.spectral_band_replication` of that, at the cutoff;
- ``oracle``: :func:`audiosr_core.baseline.oracle_band_replication` (true high-band envelope);
- ``model``: ``audiosr_core.load(--model).enhance`` of the low-rate input, if given.

Metrics (bels, :mod:`audiosr_core.metrics`, the ``ssr_eval`` LSD): ``LSD`` full band, ``LSD-HF``
(cutoff to 24 kHz), ``LSD-LF`` (0 to the cutoff), ``LSD-cl`` (0 to the clip's ``cliff_hz`` from
the folder's ``manifest.csv``) and ``LSD-HFcl`` (cutoff to ``cliff_hz``). Clips sourced at
44.1 kHz hold nothing above about 22 kHz, where full-band LSD rewards leaving the band empty;
the ``cl`` columns leave that part out. Each value is a mean over clips of per-clip means over
frames; frames of digital silence score 12 whatever the estimate.

``--visqol`` adds a perceptual column, ``ViSQOL``: MOS-LQO of ViSQOL v3 in audio mode at 48 kHz
(``visqol-python``, offline; ``pip install "audiosr-plug[eval]"``), 1 to about 4.73, higher is
better, blind above 15 kHz; about 1.1 s per 10 s of audio and system on one core.
``--conditions cheby8,mp3`` adds a codec input after the cutoff sweep: the reference at
44.1 kHz through constant-bit-rate MP3 at 48 kb/s (LAME via libsndfile), decoded and shifted
back by the codec delay (cross-correlation); the baselines and band-split columns take the
decoded input's detected band edge as the cutoff. The delays, bit rates and edges are printed.

From the repository root::

    .venv/bin/python benchmarks/quality.py --model none                # baselines, about 4 min
    .venv/bin/python benchmarks/quality.py --model PATH --steps 50 --limit 4 --json q.json
    .venv/bin/python benchmarks/quality.py --model lite --visqol --conditions cheby8,mp3

Prints one Markdown table per domain and one over all clips (cutoff x system x metric), and a
compact "all clips" LSD table (cutoff x system) comparable with the issue's reference figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from audiosr_core.evaluation import (
    CONDITIONS,
    DEFAULT_CUTOFFS,
    baseline_systems,
    cutoff_label,
    evaluate,
    find_clips,
    markdown,
    model_system,
    summarize,
)
from audiosr_core.rates import SAMPLE_RATE

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REFS = REPO.parent / "shared" / "data" / "devset"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--refs", type=Path, default=DEFAULT_REFS,
                   help="folder of 48 kHz reference .wav files, searched recursively; domain = "
                        "parent folder name; cliff_hz from its manifest.csv (default: %(default)s)")
    p.add_argument("--cutoffs", type=float, nargs="+", default=list(DEFAULT_CUTOFFS),
                   help="simulated input bandwidths, Hz (default: 4000 8000 12000 16000)")
    p.add_argument("--model", default="none",
                   help="'none' (baselines only) or anything audiosr_core.load accepts: "
                        "basic, speech, lite, a converted folder, an official checkpoint")
    p.add_argument("--steps", type=int, default=50, help="diffusion steps (default 50)")
    p.add_argument("--guidance-scale", type=float, default=3.5, help="default 3.5")
    p.add_argument("--seed", type=int, default=42, help="default 42")
    p.add_argument("--device", default=None, help="model device (default: auto)")
    p.add_argument("--no-oracle", action="store_true", help="skip the oracle baseline")
    p.add_argument("--conditions", default="cheby8",
                   help="comma-separated input conditions: cheby8 (the --cutoffs sweep), mp3 "
                        "(44.1 kHz, 48 kb/s CBR, delay-aligned) (default: %(default)s)")
    p.add_argument("--visqol", action="store_true",
                   help="add the ViSQOL (audio mode) column; slow, needs audiosr-plug[eval]")
    p.add_argument("--limit", type=int, default=None, help="only the first N clips (sorted)")
    p.add_argument("--json", type=Path, default=None, help="write every score and the summary")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    for cut in args.cutoffs:
        if not 0 < cut < SAMPLE_RATE / 2:
            p.error(f"cutoff {cut:g} Hz must lie strictly between 0 and {SAMPLE_RATE // 2} Hz")
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be at least 1")
    args.conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    unknown = sorted(set(args.conditions) - set(CONDITIONS))
    if unknown or not args.conditions:
        p.error(f"--conditions: unknown {unknown}; choose from {', '.join(CONDITIONS)}")
    return args


def codec_report(rows: Sequence[dict]) -> str:
    """One line on the MP3 inputs: bit rate, codec delays removed, detected band edges."""
    clips = {r["clip"]: r for r in rows if r.get("condition") == "mp3"}
    if not clips:
        return ""
    delays = sorted({r["codec_delay"] for r in clips.values()})
    edges = [r["cutoff_hz"] / 1000 for r in clips.values()]
    kbps = statistics.mean(r["kbps"] for r in clips.values())
    return (f"MP3 input ({len(clips)} clips): {kbps:.2f} kb/s measured; codec delay removed "
            f"{', '.join(map(str, delays))} samples at 44.1 kHz; decoded band edge "
            f"{min(edges):.2f}-{max(edges):.2f} kHz (median {statistics.median(edges):.2f}).")


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
    rows, seconds = evaluate(clips, args.cutoffs, systems, progress=not args.no_progress,
                             conditions=args.conditions, visqol=args.visqol)
    total = time.perf_counter() - t0
    summary = summarize(rows)
    sweep = (f"cutoffs {', '.join(cutoff_label(c) for c in args.cutoffs)}"
             if "cheby8" in args.conditions else "")
    print(f"\n{len(clips)} clips from {args.refs}; inputs: "
          + ", ".join(filter(None, [sweep, "MP3 48 kb/s" if "mp3" in args.conditions else ""]))
          + f"; model: {args.model}"
          + (f" ({args.steps} steps, guidance {args.guidance_scale:g}, seed {args.seed})"
             if "model" in systems else "") + "\n")
    print(markdown(summary))
    if report := codec_report(rows):
        print(report)
    scoring = seconds.pop("visqol", None)
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
    if scoring is not None:
        timing += (f"; ViSQOL scoring {scoring:.1f} s for {len(rows)} estimates, "
                   f"{scoring / max(len(rows), 1):.2f} s each")
    print(f"Wall time {total:.1f} s (processing: {timing}; the rest is LSD scoring)"
          + (f"; model set-up {setup:.1f} s" if setup else "") + f". {platform.node()}, "
          f"{platform.processor() or platform.machine()}.")
    if args.json:
        if scoring is not None:
            seconds["visqol"] = scoring
        args.json.write_text(json.dumps({
            "refs": str(args.refs), "cutoffs_hz": args.cutoffs, "model": args.model,
            "conditions": args.conditions, "visqol": args.visqol,
            "steps": args.steps, "guidance_scale": args.guidance_scale, "seed": args.seed,
            "clips": [c.name for c in clips], "seconds": {**seconds, "total": total,
                                                          "model_setup": setup},
            "summary": summary, "rows": rows}, indent=1, allow_nan=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
