"""Speed of the ``lite`` model on this CPU: seconds of 48 kHz output per second of compute.

Enhances synthetic speech-like clips (16 kHz input, see ``engine_speed.speech_like``) of a few
durations with ``audiosr_core.load(--model)`` and prints a Markdown table: wall time of
``enhance`` (resampling, band-edge detection, STFT, network, inverse STFT), times real time,
and how much of it is the network. Each duration is run ``--repeats`` times; the best run is
reported (the machine is shared).

    .venv/bin/python benchmarks/lite_speed.py                     # packaged lite, 2 threads
    .venv/bin/python benchmarks/lite_speed.py --threads 1 --durations 10 60
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Sequence

import torch
from engine_speed import INPUT_RATE, cpu_model, speech_like


def measure(model: str, duration: float, repeats: int) -> dict[str, float]:
    import audiosr_core

    sr = audiosr_core.load(model)
    network = {"s": 0.0}
    inner = sr.model.forward

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        out = inner(*args, **kwargs)
        network["s"] += time.perf_counter() - t0
        return out

    sr.model.forward = timed
    clip = speech_like(duration)
    best, best_net = float("inf"), 0.0
    for _ in range(repeats):
        network["s"] = 0.0
        t0 = time.perf_counter()
        result = sr.enhance(clip, INPUT_RATE)
        wall = time.perf_counter() - t0
        if result.status != ["enhanced"]:
            raise RuntimeError(f"the clip was not enhanced: {result.status}")
        if wall < best:
            best, best_net = wall, network["s"]
    return {"duration": duration, "wall": best, "network": best_net}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="lite", help="lite or a lite model folder")
    p.add_argument("--durations", type=float, nargs="+", default=[10.0, 60.0],
                   help="input durations, seconds (default: 10 60)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [measure(args.model, d, args.repeats) for d in args.durations]
    print(f"\nModel {args.model}; {cpu_model()}, {args.threads} threads, torch "
          f"{torch.__version__}; 16 kHz speech-like input -> 48 kHz; best of {args.repeats}.\n")
    print("| input (s) | enhance (s) | x real time | network share |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['duration']:.0f} | {r['wall']:.2f} | {r['duration'] / r['wall']:.0f} | "
              f"{100 * r['network'] / r['wall']:.0f} % |")
    print(f"\n{platform.node()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
