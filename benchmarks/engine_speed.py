"""Stage-by-stage CPU speed and peak memory of one AudioSR enhancement (full-size, random weights).

Builds the full-size ``basic`` architecture (about 672 M parameters) with random weights, enhances
one synthetic 16 kHz speech-like clip to 48 kHz with :meth:`AudioSR.enhance` and times every
stage: pre-processing (resample, normalise, cutoff, low-pass, mel), conditioning VAE encode,
each UNet call, VAE decode, mel low-band replacement, vocoder, STFT low-band replacement and
level, and the whole call. Each configuration runs in its own child process so that its peak
RSS (``getrusage(RUSAGE_SELF).ru_maxrss``) is its own; the parent collects one JSON line per
child and prints a Markdown table with ratios to the official anchor (about 280 s and 8.1 GB
for a 10.24 s clip at 50 DDIM steps on these 2-core CPUs).

Full benchmark (about 10-15 minutes on 2 cores), from the repository root::

    .venv/bin/python benchmarks/engine_speed.py --json benchmarks/engine_speed.json

Quick check (under a minute)::

    .venv/bin/python benchmarks/engine_speed.py --duration 2.56 --configs ddim10-fp32 \\
        --steps-override 2

Stages are timed by forward hooks on the four networks around one unmodified
``AudioSR.enhance`` call, so the measured flow is exactly the pipeline's. Weights are random
(no checkpoint is loaded): the cost does not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The official anchor: audiosr 0.0.7 on these 2-core CPUs, random full-size weights, one
#: 10.24 s clip, DDIM 50 steps (see the footnote printed under the table).
ANCHOR_SECONDS = 280.0
ANCHOR_RSS_GB = 8.1
ANCHOR_DURATION = 10.24
ANCHOR_SOURCE = (
    "official audiosr 0.0.7 measured on this machine type (2 shared cores, random full-size "
    "weights, 10.24 s 16 kHz clip, DDIM 50 steps, guidance 3.5; uncontended estimate 105 s "
    "+ 3.5 s x steps; peak RSS from `time -v`)"
)
INPUT_RATE = 16000


@dataclass(frozen=True)
class Config:
    """One benchmark configuration: sampler, steps and network dtype (guidance 3.5, eta 1)."""

    sampler: str
    steps: int
    dtype: str


CONFIGS = {
    "ddim50-fp32": Config("ddim", 50, "float32"),
    "ddim50-bf16": Config("ddim", 50, "bfloat16"),
    "dpmpp20-fp32": Config("dpmpp_2m", 20, "float32"),
    "dpmpp20-bf16": Config("dpmpp_2m", 20, "bfloat16"),
    "ddim10-fp32": Config("ddim", 10, "float32"),
}

#: Stage rows of the table: (key in a child's result, label).
STAGE_ROWS = [
    ("preprocess", "pre-processing (resample, normalise, cutoff, low-pass, mel)"),
    ("vae_encode", "conditioning VAE encode"),
    ("sampling", "diffusion sampling (all UNet calls + sampler)"),
    ("unet_total", "  UNet calls, total"),
    ("unet_mean", "  UNet call, mean"),
    ("unet_min", "  UNet call, min"),
    ("unet_first", "  UNet call, first"),
    ("vae_decode", "VAE decode"),
    ("mel_replace", "post: mel low-band replacement"),
    ("vocoder", "vocoder (HiFi-GAN 48 kHz)"),
    ("stft_replace", "post: STFT low-band replacement + level"),
]


# ------------------------------------------------------------------------------------ machine
def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def native_bf16() -> bool:
    """True if oneDNN can run bfloat16 natively (AVX512-BF16 or AMX-BF16)."""
    import torch

    return torch.backends.mkldnn.is_available() and bool({"avx512_bf16", "amx_bf16"}
                                                        & cpu_flags())


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def rss_gb() -> float:
    """Current resident set size of this process, GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e9
    return float("nan")


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far, GB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def reset_peak_rss() -> bool:
    """Restart the peak-RSS count from the current RSS (Linux ``clear_refs`` 5); True if done."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# -------------------------------------------------------------------------------------- input
def speech_like(duration: float, rate: int = INPUT_RATE, seed: int = 0) -> np.ndarray:
    """A mono speech-like clip: gliding harmonic voice with formants, syllable envelope, noise.

    Band-limited by its 16 kHz rate (content up to 8 kHz), so the pipeline enhances it.
    """
    rng = np.random.default_rng(seed)
    n = int(round(duration * rate))
    t = np.arange(n) / rate
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t) + 15 * np.sin(2 * np.pi * 2.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    formants = ((700, 130), (1200, 200), (2600, 300), (3500, 400))
    voice = np.zeros(n)
    for k in range(1, 40):
        fk = k * f0
        gain = sum(np.exp(-0.5 * ((fk - fc) / bw) ** 2) for fc, bw in formants) + 0.02
        voice += np.where(fk < rate / 2 - 200, gain / k, 0.0) * np.sin(k * phase)
    syllables = np.clip(np.sin(2 * np.pi * 3.0 * t) * 1.5, 0.0, 1.0) ** 2
    noise = rng.standard_normal(n) * 0.05
    x = syllables * voice + noise
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


# ------------------------------------------------------------------------------------ model
def build_model(seed: int = 0):
    """Full-size ``basic`` AudioSRModel with random weights, built fast.

    Built on the meta device and materialised with ``to_empty``; Linear/Conv weights are drawn
    from N(0, 1/fan_in) (keeps activations bounded through the residual stacks, so the vocoder
    output is finite), biases 0, norm scales 1.
    """
    import torch
    from torch import nn

    from audiosr_core.models.audiosr import AudioSRConfig, AudioSRModel

    config = AudioSRConfig.basic()
    with torch.device("meta"):
        model = AudioSRModel(config)
    model = model.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            weight = getattr(module, "weight", None)
            bias = getattr(module, "bias", None)
            if isinstance(module, (nn.GroupNorm, nn.LayerNorm)):
                weight.fill_(1.0)
            elif isinstance(weight, nn.Parameter):
                if isinstance(module, nn.ConvTranspose1d):  # [in, out, k]: in * k / stride
                    fan_in = weight.shape[0] * weight.shape[2] / module.stride[0]
                else:
                    fan_in = weight[0].numel()
                weight.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=gen)
            if isinstance(bias, nn.Parameter):
                bias.zero_()
        model.scale_factor.fill_(config.scale_factor)
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if not torch.isfinite(tensor).all():
            raise RuntimeError(f"uninitialised tensor {name}")
    return model.eval()


# ------------------------------------------------------------------------------------- child
class StageClock:
    """Forward hooks on the four networks recording start/end times of every call."""

    def __init__(self, model) -> None:
        self.events: dict[str, list[tuple[float, float]]] = {}
        self.vocoder_peak = float("nan")
        self._start: dict[str, float] = {}
        self._handles = []
        for name in ("vae_encoder", "unet", "vae_decoder", "vocoder"):
            module = getattr(model, name)
            self.events[name] = []
            self._handles.append(module.register_forward_pre_hook(self._pre(name)))
            self._handles.append(module.register_forward_hook(self._post(name)))

    def _pre(self, name: str):
        def hook(module, args):
            self._start[name] = time.perf_counter()

        return hook

    def _post(self, name: str):
        def hook(module, args, output):
            self.events[name].append((self._start.pop(name), time.perf_counter()))
            if name == "vocoder":
                self.vocoder_peak = float(output.float().abs().max())  # NaN propagates

        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def stages(self, t0: float, t_end: float) -> dict[str, float]:
        """Seconds per stage of one enhancement (one call of each network but the UNet)."""
        (enc0, enc1), = self.events["vae_encoder"]
        (dec0, dec1), = self.events["vae_decoder"]
        (voc0, voc1), = self.events["vocoder"]
        unet = [b - a for a, b in self.events["unet"]]
        return {
            "preprocess": enc0 - t0,
            "vae_encode": enc1 - enc0,
            "sampling": dec0 - enc1,
            "unet_calls": len(unet),
            "unet_total": sum(unet),
            "unet_mean": sum(unet) / len(unet),
            "unet_min": min(unet),
            "unet_first": unet[0],
            "vae_decode": dec1 - dec0,
            "mel_replace": voc0 - dec1,
            "vocoder": voc1 - voc0,
            "stft_replace": t_end - voc1,
            "end_to_end": t_end - t0,
        }


def run_child(name: str, config: Config, duration: float, threads: int) -> dict:
    """Build, enhance once, return the measurements (runs inside the child process)."""
    import torch

    from audiosr_core import AudioSR
    from audiosr_core.enhancer import EnhanceOptions

    torch.set_num_threads(threads)
    dtype = getattr(torch, config.dtype)

    def log(message: str) -> None:
        print(f"[{name}] {message}", file=sys.stderr, flush=True)

    log(f"building full-size model ({config.dtype}, {threads} threads)")
    t = time.perf_counter()
    model = build_model()
    sr = AudioSR(model, "cpu", dtype=dtype)
    setup_s, model_rss, setup_peak = time.perf_counter() - t, rss_gb(), peak_rss_gb()
    log(f"model ready in {setup_s:.1f} s, RSS {model_rss:.2f} GB")

    audio = speech_like(duration)
    options = EnhanceOptions(steps=config.steps, sampler=config.sampler, guidance_scale=3.5,
                             eta=1.0, seed=42)
    clock = StageClock(sr.model)
    enhance_peak_known = reset_peak_rss()  # the set-up peak (fp32 before a cast) is kept above
    log(f"enhancing {duration:.2f} s: {config.sampler}, {config.steps} steps")
    t0 = time.perf_counter()
    result = sr.enhance(audio, INPUT_RATE, options)
    t_end = time.perf_counter()
    clock.remove()
    if result.status != ["enhanced"]:
        raise RuntimeError(f"input was not enhanced: {result.status}")
    stages = clock.stages(t0, t_end)
    log(f"end to end {stages['end_to_end']:.1f} s")
    return {
        "config": name, "sampler": config.sampler, "steps": config.steps,
        "dtype": config.dtype, "guidance_scale": 3.5, "eta": 1.0,
        "duration_s": duration, "threads": threads, "setup_s": setup_s,
        "model_rss_gb": model_rss, "peak_rss_gb": max(setup_peak, peak_rss_gb()),
        "enhance_peak_rss_gb": peak_rss_gb() if enhance_peak_known else None,
        "vocoder_max_abs": clock.vocoder_peak,
        "output_finite": bool(np.isfinite(result.audio).all()),
        "output_samples": int(result.audio.shape[-1]),
        "load_average_end": os.getloadavg()[0],
        **stages,
    }


# ------------------------------------------------------------------------------------ parent
def launch(name: str, config: Config, args: argparse.Namespace) -> dict:
    """Run one configuration in a fresh interpreter and parse its JSON line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name,
           "--steps", str(config.steps), "--duration", str(args.duration),
           "--threads", str(args.threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
           "MKL_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"config": name, "error": f"child exited with code {proc.returncode}"}
    return json.loads(lines[-1])


def machine_info(threads: int) -> dict:
    import torch

    return {
        "cpu": cpu_model(), "cores": usable_cores(), "torch": torch.__version__,
        "threads": threads, "native_bf16": native_bf16(), "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }


def fmt(value: float | int | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


def table(results: list[dict], machine: dict, duration: float, skipped: list[str]) -> str:
    """Markdown table: stages as rows, configurations as columns (seconds)."""
    def column(r: dict) -> str:
        if "error" in r or CONFIGS[r["config"]].steps == r["steps"]:
            return r["config"]
        return f"{r['config']} (steps={r['steps']})"

    head = "| stage (s) | " + " | ".join(column(r) for r in results) + " |"
    lines = [head, "|---|" + "---:|" * len(results)]

    def row(label: str, cell) -> None:
        cells = ("failed" if "error" in r else cell(r) for r in results)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    def get(key: str, digits: int = 2):
        return lambda r: fmt(r[key], digits)

    row("model set-up (build, init, cast; not in end to end)", get("setup_s", 1))
    row("UNet calls (count)", get("unet_calls"))
    for key, label in STAGE_ROWS:
        row(label, get(key))
    row("**end to end**", lambda r: f"**{r['end_to_end']:.1f}**")
    row("RSS after model set-up (GB)", get("model_rss_gb"))
    row("peak RSS during `enhance` (GB)", get("enhance_peak_rss_gb"))
    row("**peak RSS, whole process (GB)**", lambda r: f"**{r['peak_rss_gb']:.2f}**")
    row("end to end / official 280 s [1]", lambda r: f"{r['end_to_end'] / ANCHOR_SECONDS:.3f}")
    row("peak RSS / official 8.1 GB [1]", lambda r: f"{r['peak_rss_gb'] / ANCHOR_RSS_GB:.3f}")
    row("load average at end (1 min; > 2 means contended)",
        lambda r: f"{r['load_average_end']:.2f}")
    row("output finite (vocoder max abs)",
        lambda r: f"{r['output_finite']} ({r['vocoder_max_abs']:.2f})")

    notes = [
        "",
        f"Input: {duration:.2f} s synthetic speech-like clip, 16 kHz mono -> 48 kHz; guidance "
        "3.5, DDIM eta 1, seed 42; random full-size `basic` weights; one `AudioSR.enhance` "
        "call per configuration, each in its own process (cold: no warm-up run).",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}, "
        f"{machine['threads']} threads, native bf16: {machine['native_bf16']}, load average "
        f"at start {machine['load_average'][0]:.2f}.",
        f"[1] Anchor: {ANCHOR_SOURCE}.",
    ]
    if skipped:
        notes.append(f"Skipped (no native bfloat16 on this CPU): {', '.join(skipped)}.")
    if abs(duration - ANCHOR_DURATION) > 1e-9:
        notes.append(f"Note: the anchor is for a {ANCHOR_DURATION} s clip; at {duration:.2f} s "
                     "the ratios are not comparable with it.")
    return "\n".join(lines + notes)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"comma-separated subset of {', '.join(CONFIGS)} (default: all)")
    parser.add_argument("--duration", type=float, default=ANCHOR_DURATION,
                        help="clip length in seconds (default 10.24, the anchor's)")
    parser.add_argument("--threads", type=int, default=usable_cores(),
                        help="torch threads (default: all usable cores)")
    parser.add_argument("--steps-override", type=int, default=None, metavar="N",
                        help="use N steps in every configuration (quick checks)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT",
                        help="also write machine info and all results to this JSON file")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is None:
        names = [c.strip() for c in args.configs.split(",") if c.strip()]
        unknown = [c for c in names if c not in CONFIGS]
        if unknown or not names:
            parser.error(f"unknown configuration(s) {unknown}; choose from {', '.join(CONFIGS)}")
        args.configs = names
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        base = CONFIGS[args.child]
        config = Config(base.sampler, args.steps or base.steps, base.dtype)
        print(json.dumps(run_child(args.child, config, args.duration, args.threads)),
              flush=True)
        return 0

    machine = machine_info(args.threads)
    results, skipped = [], []
    for name in args.configs:
        config = CONFIGS[name]
        if args.steps_override:
            config = Config(config.sampler, args.steps_override, config.dtype)
        if config.dtype == "bfloat16" and not machine["native_bf16"]:
            print(f"[{name}] skipped: no native bfloat16 on this CPU", file=sys.stderr)
            skipped.append(name)
            continue
        results.append(launch(name, config, args))
    print(table(results, machine, args.duration, skipped))
    if args.json:
        anchor = {"seconds": ANCHOR_SECONDS, "peak_rss_gb": ANCHOR_RSS_GB,
                  "duration_s": ANCHOR_DURATION, "source": ANCHOR_SOURCE}
        args.json.write_text(json.dumps({"machine": machine, "anchor": anchor,
                                         "results": results}, indent=2) + "\n")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
