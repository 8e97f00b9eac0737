"""Fine-tuning speed and memory: optimizer steps per second and peak memory per batch size.

Each configuration runs the real trainer (``audiosr_core.train.audiosr.train``: data loading,
the official objective, backward, clipping, AdamW, EMA) in a child process, from a
random-weight starting folder of that architecture (no download), on synthetic 48 kHz clips.
The first step (allocation, warm-up) is not counted. Peak memory: the child's peak RSS on CPU,
``torch.cuda.max_memory_allocated`` on a GPU. Prints a Markdown table.

    .venv/bin/python benchmarks/train_speed.py                              # tiny and basic, CPU
    .venv/bin/python benchmarks/train_speed.py --configs basic --batch-sizes 1,2,4,8 \\
        --device cuda --steps 20                                            # on a GPU (bf16)

``tiny`` is the parity fixture's architecture (``AudioSRConfig.tiny()``, about 4 M
parameters); ``basic`` is the official one (UNet 258 M parameters trained; 672 M + the 90 M
first-stage encoder loaded).
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from engine_speed import cpu_model  # a sibling script: the one CPU-name helper


def make_corpus(folder: Path, clips: int, seconds: float, seed: int = 0) -> None:
    """Synthetic full-band 48 kHz clips: harmonic tones with noise."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(clips):
        t = np.arange(int(seconds * 48000)) / 48000
        x = sum(np.sin(2 * np.pi * k * (110 + 20 * i) * t) / k for k in range(1, 40))
        x = 0.2 * x / np.abs(x).max() + 0.02 * rng.standard_normal(t.size)
        sf.write(folder / f"clip{i:03d}.wav", x.astype(np.float32), 48000)


def make_start(config: str, folder: Path) -> None:
    import torch

    from audiosr_core.models.audiosr import AudioSRConfig
    from audiosr_core.train.model_io import export_folder
    from audiosr_core.train.objective import FineTuneModel

    torch.manual_seed(0)
    cfg = AudioSRConfig.tiny() if config == "tiny" else AudioSRConfig.basic()
    export_folder(FineTuneModel.random(cfg), folder)


def child(args: argparse.Namespace) -> None:
    """Runs in the child: one short training run, then a JSON line on stdout."""
    import torch

    from audiosr_core.train.audiosr import FineTuneSettings, train

    settings = FineTuneSettings(
        data=[args.data], out=args.out, model=args.start, crop_seconds=args.crop,
        batch_size=args.batch_size, steps=args.steps + 1, warmup_steps=1,
        save_every=10**9, valid_every=10**9, num_workers=args.num_workers,
        device=args.device, precision=args.precision,
        gradient_checkpointing=args.gradient_checkpointing)
    t0 = time.perf_counter()
    train(settings, progress=False)
    wall = time.perf_counter() - t0
    with open(Path(args.out) / "log.csv", newline="") as f:
        seconds = [float(r["seconds"]) for r in csv.DictReader(f)][1:]
    peak = (torch.cuda.max_memory_allocated() if args.device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(json.dumps({"step_s": float(np.mean(seconds)), "wall_s": wall, "peak_bytes": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="tiny,basic")
    parser.add_argument("--batch-sizes", default="1,2")
    parser.add_argument("--crop", type=float, default=5.12, help="crop seconds (official 5.12)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--start", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    import torch

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_corpus(root / "data", clips=16, seconds=max(12.0, 2 * args.crop))
        for config in args.configs.split(","):
            start = root / f"start-{config}"
            make_start(config, start)
            for batch in (int(b) for b in args.batch_sizes.split(",")):
                out = root / f"run-{config}-{batch}"
                cmd = [sys.executable, __file__, "--child", "--data", str(root / "data"),
                       "--start", str(start), "--out", str(out), "--batch-size", str(batch),
                       "--crop", str(args.crop), "--steps", str(args.steps), "--device",
                       args.device, "--precision", args.precision, "--num-workers",
                       str(args.num_workers)] + (["--gradient-checkpointing"]
                                                 if args.gradient_checkpointing else [])
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    tail = proc.stderr.strip().splitlines()[-1:] or ["?"]
                    rows.append((config, batch, None, tail[0]))
                    continue
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append((config, batch, result, ""))
                print(f"{config} batch {batch}: {result}", file=sys.stderr)
            import shutil

            shutil.rmtree(start)
    memory = "peak GPU memory" if args.device.startswith("cuda") else "peak RSS"
    print(f"\nFine-tuning speed, {args.crop} s crops, device {args.device}, precision "
          f"{args.precision}{', gradient checkpointing' if args.gradient_checkpointing else ''}"
          f"; mean of {args.steps} steps after one warm-up step; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {cpu_model()}"
          + (f", {torch.cuda.get_device_name()}" if args.device.startswith("cuda") else "")
          + "\n")
    print(f"| model | batch | s / step | steps / s | crops / s | {memory} |")
    print("|---|---:|---:|---:|---:|---:|")
    for config, batch, r, error in rows:
        if r is None:
            print(f"| {config} | {batch} | failed: {error} | | | |")
            continue
        print(f"| {config} | {batch} | {r['step_s']:.2f} | {1 / r['step_s']:.3f} | "
              f"{batch / r['step_s']:.2f} | {r['peak_bytes'] / 2**30:.2f} GiB |")


if __name__ == "__main__":
    main()
