"""Train the ``lite`` model: simulate the training pairs once, then a resumable training loop.

Two sub-commands (``python -m audiosr_core.train.lite --help``)::

    # 1. simulate low-resolution inputs from the corpus (recipes/build_corpus), 4 per clip
    python -m audiosr_core.train.lite prepare --corpus corpus --out lite_data
    # 2. train (resumable: run the same command again to continue from the last checkpoint)
    python -m audiosr_core.train.lite train --data lite_data --out runs/lite-bins \\
        --head bins --steps 3000

``prepare`` draws degradations with :func:`audiosr_core.train.simulate.draw_degradation`
(cutoff 2-16 kHz capped at each clip's measured bandwidth, four filter kinds, order 2-10,
optional trip through a lower standard rate), detects the input's band edge with
:func:`audiosr_core.dsp.detect_band_edge` (what the pipeline sees at inference) and stores
inputs and references as 16-bit arrays with a per-row scale. Draws the detector calls full-band
(gentle filters that leave the high band in place) are kept out: the pipeline passes such input
through.

``train`` crops ``--crop`` seconds from random pairs (domains sampled with ``--domain-weights``,
a random gain of +-20 dB), computes the STFTs, and minimises the mean squared error of the
log10 power of every bin from the cutoff up (the squared log-spectral distance of those bins).
AdamW with a cosine learning-rate decay. Losses go to ``log.csv``; ``checkpoint.pt`` (model,
optimiser, step, random states) is written atomically every ``--save-every`` steps and at the
end, with the final model as a ``save_pretrained`` folder in ``OUT/model``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import atomic, dsp
from ..models.lite import LiteConfig, LiteModel, band_level, copy_up_index, log_power
from ..rates import fit_length
from ..seeds import derive_seed
from ..status import Status
from . import simulate

__all__ = ["prepare", "train", "export", "main"]

CLIP_SECONDS = 4.0
META_NAME = "pairs.csv"


# ----------------------------------------------------------------------------------- prepare
def _quantise(x: np.ndarray) -> tuple[np.ndarray, float]:
    scale = float(np.max(np.abs(x))) or 1.0
    return np.round(x / scale * 32767).astype(np.int16), scale


def _simulate_clip(args: tuple[int, str, float, int, int]) -> list[dict]:
    """All draws of one clip (runs in a worker process)."""
    import soundfile as sf

    index, path, bandwidth, draws, seed = args
    wave, rate = sf.read(path, dtype="float32", always_2d=True)
    if rate != dsp.SAMPLE_RATE:
        raise ValueError(f"{path}: corpus clips must be 48 kHz, got {rate} Hz")
    ref = fit_length(wave[:, 0], int(CLIP_SECONDS * dsp.SAMPLE_RATE))
    rng = np.random.default_rng(derive_seed(seed, "clip", index))
    rows = []
    for draw in range(draws):
        cap = min(16000.0, max(2000.0, 0.95 * bandwidth))
        low, _, d = simulate.simulate_pair(ref, rng, max_cutoff_hz=cap)
        edge = dsp.detect_band_edge(low)
        rows.append({"clip": index, "draw": draw, "cutoff_hz": d.cutoff_hz, "kind": d.kind,
                     "order": d.order, "zero_phase": d.zero_phase,
                     "resample_rate": d.resample_rate or 0, "edge_bin": edge.bin,
                     "edge_status": edge.status, "low": low})
    return [{"ref": ref}, *rows]


def prepare(corpus: Path, out: Path, draws: int = 4, seed: int = 0, workers: int = 2,
            limit: int | None = None) -> Path:
    """Simulate ``draws`` inputs per corpus clip into ``out`` (``refs.npy``, ``lows.npy``...)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    with open(corpus / "manifest.csv", newline="") as f:
        clips = list(csv.DictReader(f))[:limit]
    out.mkdir(parents=True, exist_ok=True)
    n = int(CLIP_SECONDS * dsp.SAMPLE_RATE)
    refs = np.lib.format.open_memmap(out / "refs.npy", "w+", np.int16, (len(clips), n))
    lows = np.lib.format.open_memmap(out / "lows.npy", "w+", np.int16, (len(clips) * draws, n))
    ref_scale = np.zeros(len(clips), np.float32)
    low_scale = np.zeros(len(clips) * draws, np.float32)
    jobs = [(i, str(corpus / c["clip"]), float(c["bandwidth_hz"]), draws, seed)
            for i, c in enumerate(clips)]
    meta = []
    # "spawn": a forked child of a process whose torch already runs OpenMP threads can hang.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = pool.map(_simulate_clip, jobs, chunksize=8)
        for i, (first, *rows) in enumerate(tqdm(results, total=len(jobs), desc="simulate",
                                               unit="clip")):
            refs[i], ref_scale[i] = _quantise(first["ref"])
            for row in rows:
                j = i * draws + row["draw"]
                lows[j], low_scale[j] = _quantise(row.pop("low"))
                meta.append({"row": j, "domain": clips[i]["domain"], **row})
    refs.flush()
    lows.flush()
    np.save(out / "ref_scale.npy", ref_scale)
    np.save(out / "low_scale.npy", low_scale)
    with open(out / META_NAME, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(meta[0]))
        writer.writeheader()
        writer.writerows(meta)
    (out / "prepare.json").write_text(json.dumps(
        {"corpus": str(corpus), "draws": draws, "seed": seed, "clips": len(clips),
         "command": " ".join(sys.argv)}, indent=2))
    return out


# ------------------------------------------------------------------------------------- train
@dataclass
class TrainData:
    """Simulated pairs held in memory (int16 with per-row scales)."""

    refs: np.ndarray
    ref_scale: np.ndarray
    lows: np.ndarray
    low_scale: np.ndarray
    rows: list[dict]

    @classmethod
    def load(cls, folder: Path) -> TrainData:
        with open(folder / META_NAME, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["edge_status"] == Status.BAND_LIMITED]
        return cls(np.load(folder / "refs.npy", mmap_mode="r"), np.load(folder / "ref_scale.npy"),
                   np.load(folder / "lows.npy", mmap_mode="r"), np.load(folder / "low_scale.npy"),
                   rows)


def _sampling_weights(rows: list[dict], domain_weights: dict[str, float]) -> np.ndarray:
    domains = np.array([r["domain"] for r in rows])
    w = np.zeros(len(rows))
    for name, weight in domain_weights.items():
        mask = domains == name
        if mask.any():
            w[mask] = weight / mask.sum()
    if w.sum() == 0:
        w[:] = 1.0
    return w / w.sum()


def make_batch(data: TrainData, picks: np.ndarray, rng: np.random.Generator, crop: int,
               guard: float, max_gain_db: float = 20.0
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(low [B, crop], ref [B, crop], kc [B], source_index [B, 1025])`` float32 tensors."""
    n = data.refs.shape[1]
    lows, refs, kcs, index = [], [], [], []
    for p in picks:
        row = data.rows[p]
        j, clip = int(row["row"]), int(row["clip"])
        start = int(rng.integers(0, n - crop + 1))
        gain = 10 ** (rng.uniform(-max_gain_db, max_gain_db) / 20) / 32767
        lows.append(data.lows[j, start:start + crop] * (data.low_scale[j] * gain))
        refs.append(data.refs[clip, start:start + crop] * (data.ref_scale[clip] * gain))
        kc = int(row["edge_bin"])
        kcs.append(kc)
        index.append(copy_up_index(kc, guard))
    as_tensor = lambda rows: torch.from_numpy(np.stack(rows).astype(np.float32))  # noqa: E731
    return (as_tensor(lows), as_tensor(refs), torch.tensor(kcs),
            torch.from_numpy(np.stack(index)))


def spectrogram(wave: torch.Tensor) -> torch.Tensor:
    """Complex STFT ``[B, 1025, T]`` equal to :func:`audiosr_core.dsp.stft`."""
    window = torch.hann_window(dsp.POST_N_FFT, periodic=True, dtype=wave.dtype)
    return torch.stft(wave, dsp.POST_N_FFT, dsp.POST_HOP, window=window, center=True,
                      pad_mode="constant", return_complex=True)


def high_band_loss(model: LiteModel, low: torch.Tensor, ref: torch.Tensor, kc: torch.Tensor,
                   source_index: torch.Tensor) -> torch.Tensor:
    """Mean squared log10-power error over bins ``>= kc`` (all frames)."""
    floor = model.config.floor
    lp_in = log_power(spectrogram(low), floor)
    level = band_level(lp_in, kc)[:, None, None]
    pred = model(lp_in - level, kc, source_index) + level
    target = log_power(spectrogram(ref), floor)
    mask = (torch.arange(pred.shape[1])[None, :] >= kc[:, None]).to(pred.dtype)[..., None]
    return ((pred - target) ** 2 * mask).sum() / (mask.sum() * pred.shape[-1])


def _save_atomic(obj: dict, path: Path) -> None:
    with atomic.atomic_path(path) as tmp:
        torch.save(obj, tmp)


def train(data_dir: Path, out: Path, config: LiteConfig, steps: int = 3000, batch: int = 16,
          crop_s: float = 1.5, lr: float = 2e-3, seed: int = 0, save_every: int = 200,
          domain_weights: dict[str, float] | None = None, threads: int | None = None) -> Path:
    """Train (or resume) a lite model into ``out``; returns the saved model folder."""
    from tqdm.auto import tqdm

    if threads:
        torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    data = TrainData.load(data_dir)
    weights = _sampling_weights(data.rows, domain_weights or {"speech": 0.4, "music": 0.35,
                                                              "sfx": 0.25})
    torch.manual_seed(seed)
    model = LiteModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * min(s, steps)
                                                                      / steps)))
    rng = np.random.default_rng(seed)
    start = 0
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False)
        if LiteConfig.from_dict(ckpt["config"]) != config:
            raise ValueError(f"{ckpt_path} was trained with another config; use a new --out")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        rng.bit_generator.state = ckpt["numpy_rng"]
        torch.set_rng_state(ckpt["torch_rng"])
        start = ckpt["step"]
    crop = int(crop_s * dsp.SAMPLE_RATE)
    log_path = out / "log.csv"
    new_log = not log_path.exists()
    log = open(log_path, "a", newline="")
    writer = csv.writer(log)
    if new_log:
        writer.writerow(["step", "loss", "lr", "seconds"])
    model.train()
    t0, running = time.perf_counter(), []

    def checkpoint(step: int) -> None:
        _save_atomic({"config": config.to_dict(), "model": model.state_dict(),
                      "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                      "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                      "step": step}, ckpt_path)

    bar = tqdm(range(start, steps), initial=start, total=steps, desc="train", unit="step")
    for step in bar:
        picks = rng.choice(len(data.rows), size=batch, p=weights)
        low, ref, kc, index = make_batch(data, picks, rng, crop, config.guard)
        loss = high_band_loss(model, low, ref, kc, index)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running.append(loss.item())
        if (step + 1) % 25 == 0:
            mean = float(np.mean(running))
            running.clear()
            writer.writerow([step + 1, f"{mean:.5f}", f"{sched.get_last_lr()[0]:.6g}",
                             f"{time.perf_counter() - t0:.1f}"])
            log.flush()
            bar.set_postfix(loss=f"{mean:.4f}")
        if (step + 1) % save_every == 0 or step + 1 == steps:
            checkpoint(step + 1)
    log.close()
    model.eval()
    return model.save_pretrained(out / "model")


def export(checkpoint: Path, out: Path) -> Path:
    """Save the model of a training checkpoint as a ``save_pretrained`` folder."""
    ckpt = torch.load(checkpoint, weights_only=False)
    model = LiteModel(LiteConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.save_pretrained(out)


# --------------------------------------------------------------------------------------- CLI
def _domain_weights(text: str) -> dict[str, float]:
    try:
        return {k: float(v) for k, v in (item.split("=") for item in text.split(","))}
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected name=weight,... got {text!r}") from err


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audiosr_core.train.lite",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="simulate low-resolution inputs from a corpus")
    p.add_argument("--corpus", type=Path, required=True, help="folder with manifest.csv")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--draws", type=int, default=4, help="inputs per clip (4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="first N clips only")
    t = sub.add_parser("train", help="train or resume a lite model")
    t.add_argument("--data", type=Path, required=True, help="folder written by prepare")
    t.add_argument("--out", type=Path, required=True, help="run folder (resumed if present)")
    t.add_argument("--head", choices=("bins", "envelope"), default="bins")
    t.add_argument("--hidden", type=int, default=LiteConfig.hidden)
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--crop", type=float, default=1.5, help="seconds per example (1.5)")
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--save-every", type=int, default=200)
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--domain-weights", type=_domain_weights,
                   default={"speech": 0.4, "music": 0.35, "sfx": 0.25})
    e = sub.add_parser("export", help="write a run's latest checkpoint as a model folder")
    e.add_argument("run", type=Path, help="run folder (with checkpoint.pt)")
    e.add_argument("out", type=Path, help="model folder to write")
    args = parser.parse_args(argv)
    if args.command == "export":
        print(f"saved {export(args.run / 'checkpoint.pt', args.out)}")
    elif args.command == "prepare":
        prepare(args.corpus, args.out, args.draws, args.seed, args.workers, args.limit)
    else:
        config = LiteConfig(head=args.head, hidden=args.hidden)
        folder = train(args.data, args.out, config, args.steps, args.batch, args.crop, args.lr,
                       args.seed, args.save_every, args.domain_weights, args.threads)
        print(f"saved {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
