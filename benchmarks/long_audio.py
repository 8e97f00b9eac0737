"""Peak memory of ``enhance_file`` on long files: it must stay flat as the duration grows.

For each duration, writes a synthetic 16 kHz stereo (``--channels 1``: mono) FLAC of that
length (block by block, so the parent never holds it), then enhances it in a child process
that reports its own peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``). Prints a Markdown table:
duration, wall time, times real time, peak RSS, and whether the file was streamed.

    .venv/bin/python benchmarks/long_audio.py                        # lite: 1, 10, 60 minutes
    .venv/bin/python benchmarks/long_audio.py --model tiny --steps 1 --guidance-scale 1 \
        --channels 1 --stream-above 30                                 # tiny random diffusion

``--model tiny`` is the official architecture at the parity fixture's widths with random
weights (``AudioSRConfig.tiny()``), saved to a temporary folder: it runs every stage of the
diffusion pipeline cheaply, which is what the memory profile depends on.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

RATE = 16000


def write_input(path: Path, minutes: float, channels: int = 2, seed: int = 0) -> None:
    """A speech-like stereo (or mono: left only) file: gliding tones with syllable envelopes
    and noise."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * RATE)
    block = RATE * 30
    with sf.SoundFile(path, "w", RATE, channels, "PCM_16", format="FLAC") as f:
        for start in range(0, n, block):
            t = np.arange(start, min(start + block, n)) / RATE
            f0 = 150 + 40 * np.sin(2 * np.pi * 0.2 * t)
            voice = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 12))
            env = np.clip(np.sin(2 * np.pi * 3 * t), 0, 1)
            left = 0.1 * env * voice + 0.01 * rng.standard_normal(t.size)
            right = 0.08 * env * voice + 0.01 * rng.standard_normal(t.size)
            f.write(np.stack([left, right][:channels], axis=1))


def child(model: str, src: str, dst: str, options: dict, stream_above_s: float) -> None:
    """Runs in the child: enhance one file and print a JSON line."""
    import audiosr_core

    sr = audiosr_core.load(model)
    sr.stream_above_s = stream_above_s
    t0 = time.perf_counter()
    res = sr.enhance_file(src, dst, overwrite=True, **options)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    print(json.dumps({"seconds": time.perf_counter() - t0, "streamed": res.streamed,
                      "status": res.status, "peak_gb": peak_gb}))


def tiny_model(folder: Path) -> str:
    """A random-weight AudioSR at the parity fixture's widths, saved in ``folder``."""
    import torch

    from audiosr_core.models.audiosr import AudioSRConfig, AudioSRModel

    torch.manual_seed(0)
    return str(AudioSRModel(AudioSRConfig.tiny()).save_pretrained(folder / "tiny"))


def measure(model: str, minutes: float, folder: Path, options: dict,
            stream_above_s: float, channels: int = 2) -> dict:
    src, dst = folder / f"in_{minutes:g}.flac", folder / f"out_{minutes:g}.wav"
    write_input(src, minutes, channels)
    proc = subprocess.run([sys.executable, __file__, "--child", model, str(src), str(dst),
                           json.dumps(options), str(stream_above_s)],
                          capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    src.unlink()
    dst.unlink()
    return {"minutes": minutes, **result}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="lite", help="lite, tiny, or a model name/folder")
    p.add_argument("--steps", type=int, default=50, help="diffusion steps (diffusion models)")
    p.add_argument("--guidance-scale", type=float, default=3.5,
                   help="1 runs one UNet pass per step instead of two (diffusion models)")
    p.add_argument("--batch-size", type=int, default=1, help="windows per network call")
    p.add_argument("--channels", type=int, choices=(1, 2), default=2,
                   help="input channels (default 2)")
    p.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0, 60.0])
    p.add_argument("--stream-above", type=float, default=300.0, metavar="SECONDS",
                   help="stream files longer than this (the library default, 300)")
    p.add_argument("--child", nargs=5, metavar=("MODEL", "SRC", "DST", "OPTIONS", "STREAM"),
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(*args.child[:3], json.loads(args.child[3]), float(args.child[4]))
        return 0
    options = {"steps": args.steps, "guidance_scale": args.guidance_scale,
               "batch_size": args.batch_size}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_model(Path(tmp)) if args.model == "tiny" else args.model
        for minutes in sorted(args.minutes):
            rows.append(measure(model, minutes, Path(tmp), options, args.stream_above,
                                args.channels))
            print(f"{minutes:g} min done", file=sys.stderr)
    print(f"\nModel {args.model} (diffusion: {args.steps} steps, guidance "
          f"{args.guidance_scale:g}, batch {args.batch_size}); 16 kHz "
          f"{'stereo' if args.channels == 2 else 'mono'} FLAC -> "
          f"48 kHz 24-bit WAV; {platform.node()}.\n")
    print("| input | enhance_file (s) | x real time | peak RSS (GB) | streamed |")
    print("|---:|---:|---:|---:|:---:|")
    for r in rows:
        print(f"| {r['minutes']:g} min | {r['seconds']:.1f} | "
              f"{r['minutes'] * 60 / r['seconds']:.0f} | {r['peak_gb']:.2f} | "
              f"{'yes' if r['streamed'] else 'no'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
