"""Throughput and scheduling overhead of ``--engine ray`` against the local run, with ``lite``.

Three measurements on a local Ray (the machine's CPUs) and in-process:

1. **Throughput**: a corpus of ``--files`` clips of ``--seconds`` s (16 kHz mono speech-like
   noise) enhanced locally (``audiosr-plug enhance``'s path, one process) and on Ray with 1 and
   2 workers; audio-seconds per wall-second, with and without the Ray start-up.
2. **Per-file overhead**: ``--tiny-files`` clips of 0.2 s, where the model's work is nothing:
   (Ray wall - local wall) / files.
3. **Per-window overhead**: one file cut into ``--windows`` windows of 4 s (lite's streamed
   plan with short windows), on Ray and locally: (Ray wall - local wall) / windows.

Run from the repository root (needs the ``ray`` extra)::

    .venv/bin/python benchmarks/distributed.py                 # about 3 minutes on 2 cores

Prints a Markdown table (paste it into the README with the machine named).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
from engine_speed import cpu_model  # a sibling script: the one CPU-name helper


def write_corpus(folder: Path, files: int, seconds: float, rate: int = 16000) -> float:
    """``files`` band-limited noise clips; returns their total duration, seconds."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    n = int(rate * seconds)
    for i in range(files):
        spec = np.fft.rfft(rng.standard_normal(n))
        spec[np.fft.rfftfreq(n, 1 / rate) > 3800] = 0
        x = np.fft.irfft(spec, n)
        sf.write(folder / f"clip{i:04d}.wav", 0.3 * x / np.abs(x).max(), rate, subtype="PCM_16")
    return files * n / rate


def run_local(src: Path, out: Path, planner=None) -> float:
    """Wall seconds of the local engine over ``src`` (in-process, as the command does)."""
    import audiosr_core
    from audiosr_core.jobs import plan_jobs

    sr = audiosr_core.load("lite")
    if planner is not None:
        sr.stream_above_s, sr.window_s = planner.stream_above_s, planner.window_s
    t0 = time.perf_counter()
    for job in plan_jobs([str(src)], out, "wav").jobs:
        sr.enhance_file(job.source, job.output, overwrite=True)
    return time.perf_counter() - t0


def run_ray(src: Path, out: Path, workers: int, planner=None, batch_size: int = 1) -> float:
    """Wall seconds of ``enhance_dataset`` over ``src`` on the running Ray."""
    from audiosr_core.distributed import RayConfig, enhance_dataset
    from audiosr_core.enhancer import EnhanceOptions

    t0 = time.perf_counter()
    run = enhance_dataset([str(src)], out, ray=RayConfig(workers=workers), overwrite=True,
                          planner=planner, progress=False, manifest=out.parent / "m.jsonl",
                          options=EnhanceOptions(batch_size=batch_size))
    if run.counts["failed"]:
        raise RuntimeError(f"{run.counts['failed']} files failed")
    return time.perf_counter() - t0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=24, help="clips of the throughput corpus")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each clip, s")
    p.add_argument("--tiny-files", type=int, default=60, help="0.2 s clips (per-file cost)")
    p.add_argument("--windows", type=int, default=60, help="windows of the long file")
    args = p.parse_args(argv)
    import ray

    from audiosr_core.chunking import plan_windows
    from audiosr_core.dsp import POST_HOP
    from audiosr_core.lite_pipeline import LitePlanner, LiteSR
    from audiosr_core.loading import load_planner
    from audiosr_core.rates import SAMPLE_RATE

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        audio_s = write_corpus(root / "corpus", args.files, args.seconds)
        t_local = run_local(root / "corpus", root / "out-local")
        t0 = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        t_start = time.perf_counter() - t0
        rows.append(("local (one process)", audio_s, t_local, t_local))
        for workers, batch in ((1, 1), (2, 1), (2, 8)):
            t_ray = run_ray(root / "corpus", root / f"out-ray{workers}", workers,
                            batch_size=batch)
            rows.append((f"ray, {workers} worker{'s' if workers > 1 else ''}, --batch-size "
                         f"{batch}", audio_s, t_ray, t_ray + t_start))
        tiny_s = write_corpus(root / "tiny", args.tiny_files, 0.2)
        t_tiny_local = run_local(root / "tiny", root / "tiny-local")
        t_tiny_ray = run_ray(root / "tiny", root / "tiny-ray", 2)
        floor = load_planner("lite").floor
        planner = LitePlanner(floor, window_s=4.0, stream_above_s=0.0)
        step_s = (4.0 * SAMPLE_RATE - 2 * LiteSR.CONTEXT - LiteSR.CROSSFADE) / SAMPLE_RATE
        long_s = write_corpus(root / "long", 1, step_s * args.windows)
        windows = len(plan_windows(round(long_s * SAMPLE_RATE), int(4.0 * SAMPLE_RATE),
                                   LiteSR.CONTEXT, LiteSR.CROSSFADE, align=POST_HOP))
        t_long_local = run_local(root / "long", root / "long-local", planner)
        t_long_ray = run_ray(root / "long", root / "long-ray", 2, planner)
        ray.shutdown()
    print(f"\nlite, 16 kHz mono in; {cpu_model()}, "
          f"{os.cpu_count()} CPUs, local Ray; Ray start-up {t_start:.1f} s\n")
    print("| run | audio | wall (s) | audio-s / wall-s | with Ray start-up |")
    print("|---|---:|---:|---:|---:|")
    for name, audio, wall, with_start in rows:
        print(f"| {name} | {audio / 60:.1f} min | {wall:.1f} | {audio / wall:.1f} | "
              f"{audio / with_start:.1f} |")
    per_file = (t_tiny_ray - t_tiny_local) / args.tiny_files
    per_window = (t_long_ray - t_long_local) / windows
    print(f"\nScheduling overhead: {per_file * 1000:.0f} ms per file ({args.tiny_files} files "
          f"of 0.2 s: {t_tiny_ray:.1f} s on Ray, {t_tiny_local:.1f} s locally; "
          f"{tiny_s:.0f} s of audio), {per_window * 1000:.0f} ms per window (one "
          f"{long_s / 60:.1f}-minute file in {windows} windows of 4 s: {t_long_ray:.1f} s "
          f"on Ray, {t_long_local:.1f} s locally).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
