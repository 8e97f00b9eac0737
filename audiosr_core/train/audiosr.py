"""Fine-tune AudioSR on your own audio: the official objective, one GPU or many (torchrun + DDP).

Two sub-commands (``python -m audiosr_core.train.audiosr --help``)::

    # one GPU (or the CPU); run the same command again to resume from the last checkpoint
    python -m audiosr_core.train.audiosr train --data my_48k_audio --valid my_held_out \\
        --model basic --out runs/my-voice --steps 20000 --batch-size 4
    # several GPUs on one machine (or --nnodes/--rdzv-endpoint for many machines)
    torchrun --nproc_per_node 4 -m audiosr_core.train.audiosr train --data ... --out ...
    # a folder that --model and AudioSR.from_pretrained load (EMA weights by default)
    python -m audiosr_core.train.audiosr export runs/my-voice runs/my-voice/model-20000

What one step does (:mod:`audiosr_core.train.objective`, proven equal to the official code on
``../shared/reference/parity/train-dev``): crops of ``--crop-seconds`` from the training audio
are low-passed on the fly with the paper's degradations (:mod:`audiosr_core.train.data`); the
frozen first-stage VAE encodes the target log-mel, the frozen conditioning VAE the low-passed
one; the UNet learns v on the cosine schedule, the condition dropped for a whole batch with
probability 0.1. AdamW (weight decay 0.01) on the UNet, EMA of its weights with the official
``LitEma`` rule.

Where this departs from the authors' AudioLDM training loop (on purpose; each is an option):

- learning-rate warm-up starts at ``lr / warmup`` instead of 0 (``--official-warmup`` keeps the
  official ``step / warmup``, whose first step moves only Adam's moments), default 1000 steps
  instead of 5000 (fine-tuning starts from a trained model), then constant (official) or
  ``--lr-schedule cosine``;
- gradient clipping at ``--clip-grad 1.0`` (official: none; 0 turns it off);
- the random draws are per item (and the drop decision per global batch), so N GPUs with batch
  b equal one GPU with batch N b; the official code draws per batch;
- a dropped batch's condition has the shape of the batch itself (the official code reuses the
  previous conditioned batch's shape and crashes when lengths differ).

A run folder holds ``run.json`` (the settings), ``checkpoint.pt`` (UNet, EMA, optimizer,
scheduler, step; written atomically every ``--save-every`` steps and on SIGINT/SIGTERM),
``log.csv`` (step, loss, learning rate, gradient norm, speed), ``valid.csv`` (LSD overall and
above the cutoff of the held-out clips, through the real inference pipeline with the EMA
weights), ``valid/step_NNNNNNN_K.png`` (spectrograms of two validation clips: reference, input
and output side by side), ``tensorboard/`` (when tensorboard is installed) and, at the end,
``model/``.
The data stream and every draw are functions of the step number, so a resumed run continues
exactly where the checkpoint was written: a kill loses at most the steps since then.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import dataclasses
import io
import json
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn

from .. import atomic, metrics
from ..devices import resolve_device
from ..errors import AudioSRError, TrainingError
from ..models.unet import SpatialTransformer
from ..rates import SAMPLE_RATE
from ..seeds import derive_seed
from ..spectrogram import encode_png, panels_image, to_uint8
from . import data as train_data
from .model_io import export_folder, load_start
from .objective import (
    EMA,
    LR,
    P_UNCOND,
    WEIGHT_DECAY,
    Draws,
    FineTuneModel,
    make_optimizer,
    warmup_lambda,
)

__all__ = ["FineTuneSettings", "Stopped", "TrainResult", "export_run", "main", "train",
           "trainable_parameters"]

SETTINGS_NAME = "run.json"
CHECKPOINT_NAME = "checkpoint.pt"
TRAINABLE = ("all", "attention")
PRECISIONS = ("auto", "fp32", "bf16")
#: Settings that fix the data stream and the draws: a resumed run must keep them.
STREAM_SETTINGS = ("seed", "crop_seconds", "global_batch", "grad_accum", "p_uncond", "model",
                   "trainable", "data")


@dataclass
class FineTuneSettings:
    """Every setting of a fine-tuning run (saved as ``run.json`` in the run folder).

    Sizes are per device: the global batch of one optimizer step is
    ``batch_size * world_size * grad_accum`` crops.
    """

    data: list[str]
    out: str
    model: str = "basic"
    valid: list[str] = field(default_factory=list)
    crop_seconds: float = 5.12
    batch_size: int = 2
    grad_accum: int = 1
    steps: int = 10000
    lr: float = LR
    warmup_steps: int = 1000
    official_warmup: bool = False
    lr_schedule: str = "constant"
    weight_decay: float = WEIGHT_DECAY
    clip_grad: float = 1.0
    ema_decay: float = 0.9999
    p_uncond: float = P_UNCOND
    seed: int = 0
    save_every: int = 500
    valid_every: int = 500
    valid_clips: int = 8
    valid_steps: int = 10
    valid_guidance: float = 3.5
    num_workers: int = 2
    device: str | None = None
    precision: str = "auto"
    gradient_checkpointing: bool = False
    trainable: str = "all"
    pad_short: bool = False
    global_batch: int = 0
    """Filled in at start: batch_size * world_size (per micro-step)."""

    def check(self) -> None:
        """Raise :class:`TrainingError` for settings that cannot work."""
        positive = {"batch_size": self.batch_size, "grad_accum": self.grad_accum,
                    "steps": self.steps, "save_every": self.save_every,
                    "valid_every": self.valid_every, "valid_steps": self.valid_steps}
        for name, value in positive.items():
            if value < 1:
                raise TrainingError(f"--{name.replace('_', '-')} must be at least 1 (got {value}).")
        if not self.data:
            raise TrainingError("no training audio given (--data FOLDER or list file).")
        if not 0 < self.lr < 1:
            raise TrainingError(f"--lr {self.lr} is not a learning rate (try 1e-5 to 1e-4).")
        if not 0 <= self.p_uncond <= 1:
            raise TrainingError(f"--p-uncond {self.p_uncond} is not a probability.")
        if self.trainable not in TRAINABLE:
            raise TrainingError(f"--trainable {self.trainable!r}: choose {', '.join(TRAINABLE)}.")
        if self.precision not in PRECISIONS:
            raise TrainingError(f"--precision {self.precision!r}: choose {', '.join(PRECISIONS)}.")
        if self.lr_schedule not in ("constant", "cosine"):
            raise TrainingError(f"--lr-schedule {self.lr_schedule!r}: constant or cosine.")
        train_data.crop_frames(self.crop_seconds)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"


@dataclass
class TrainResult:
    """What :func:`train` did."""

    step: int
    """Optimizer steps done in total (over every resumed part)."""
    finished: bool
    """``step == settings.steps``: the final model was exported."""
    losses: list[float]
    """Training loss of every step run by this call."""
    validation: list[dict[str, float]]
    run_dir: Path


# --------------------------------------------------------------------------------- distributed
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch_dist.barrier()

    def mean(self, value: torch.Tensor) -> float:
        if self.world > 1:
            value = value.detach().clone()
            torch_dist.all_reduce(value)
            value /= self.world
        return float(value)

    def any(self, flag: bool, device: torch.device) -> bool:
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        torch_dist.all_reduce(t, op=torch_dist.ReduceOp.MAX)
        return bool(t.item())


def _setup_distributed(device_arg: str | None) -> tuple[Dist, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), resolve_device(device_arg)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available() and device_arg in (None, "cuda", "auto"):
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
        backend = "nccl"
    else:
        device = torch.device("cpu") if device_arg in (None, "cpu", "auto") else \
            resolve_device(device_arg)
        backend = "gloo"
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend=backend)
    return Dist(rank, world, local), device


# ------------------------------------------------------------------------------------- helpers
def trainable_parameters(unet: nn.Module, which: str) -> list[nn.Parameter]:
    """Set ``requires_grad`` on the chosen subset of the UNet (``"all"``, or ``"attention"``:
    its SpatialTransformer blocks) and return that subset's parameters."""
    if which == "all":
        unet.requires_grad_(True)
    else:
        unet.requires_grad_(False)
        for module in unet.modules():
            if isinstance(module, SpatialTransformer):
                module.requires_grad_(True)
    return [p for p in unet.parameters() if p.requires_grad]


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text
                                              or "can't allocate memory" in text)


def _oom_error(settings: FineTuneSettings, dist: Dist, device: torch.device) -> TrainingError:
    global_batch = settings.batch_size * dist.world * settings.grad_accum
    smaller = max(1, settings.batch_size // 2)
    hint = (f"lower --batch-size (e.g. {smaller}) and raise --grad-accum to "
            f"{math.ceil(global_batch / (smaller * dist.world))} to keep the global batch of "
            f"{global_batch}")
    if not settings.gradient_checkpointing:
        hint += ", or add --gradient-checkpointing"
    return TrainingError(f"out of memory on {device} at --batch-size {settings.batch_size} per "
                         f"device ({settings.crop_seconds} s crops, precision "
                         f"{settings.precision}): {hint}.")


class Stopped(Exception):
    """The run stopped on SIGINT/SIGTERM after saving a checkpoint (``signum``: the signal)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


class _StopFlag:
    """SIGINT/SIGTERM ask the loop to stop after the current step and save a checkpoint."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:        # not the main thread: leave the handlers alone
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:               # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _Logs:
    """``log.csv`` and ``valid.csv`` (appended, so a resumed run continues them) and
    TensorBoard when installed. Rows past the resumed step are dropped first."""

    LOG = ("step", "loss", "lr", "grad_norm", "seconds", "items_per_s")
    VALID = ("step", "lsd", "lsd_above_cutoff", "clips")

    def __init__(self, run: Path, step: int) -> None:
        self.run = run
        for name, columns in (("log.csv", self.LOG), ("valid.csv", self.VALID)):
            path = run / name
            rows = []
            if path.is_file():
                with path.open(newline="") as f:
                    rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
            text = io.StringIO()
            writer = csv.DictWriter(text, columns)
            writer.writeheader()
            writer.writerows(rows)
            atomic.write_text(path, text.getvalue())
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run / "tensorboard"), purge_step=step + 1)
        except ImportError:
            self.tb = None

    def row(self, name: str, values: dict[str, float]) -> None:
        columns = self.LOG if name == "log.csv" else self.VALID
        with (self.run / name).open("a", newline="") as f:
            csv.DictWriter(f, columns).writerow({k: values.get(k, "") for k in columns})
        if self.tb is not None:
            prefix = "train" if name == "log.csv" else "valid"
            for key, value in values.items():
                if key != "step":
                    self.tb.add_scalar(f"{prefix}/{key}", value, int(values["step"]))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


# ---------------------------------------------------------------------------------- validation
class _Validator:
    """Enhances the held-out clips with the EMA weights through :class:`AudioSR` itself."""

    def __init__(self, dataset: train_data.PairDataset, settings: FineTuneSettings,
                 device: torch.device) -> None:
        self.dataset, self.settings, self.device = dataset, settings, device
        self.count = min(settings.valid_clips, len(dataset))
        self.items = [dataset[i] for i in range(self.count)]
        self.model = None

    def __call__(self, model: FineTuneModel, ema: EMA, step: int, run: Path) -> dict[str, float]:
        from ..pipeline import AudioSR

        if self.model is None:            # a copy: the pipeline changes layouts and modes
            self.model = copy.deepcopy(model.model)
        self.model.unet.load_state_dict(model.unet.state_dict())
        ema.copy_to(self.model.unet)
        sr = AudioSR(self.model, device=self.device)
        scores, highs = [], []
        for i, item in enumerate(self.items):
            low = _numpy(item["waveform_lowpass"])
            ref = _numpy(item["waveform"])
            result = sr.enhance(low, 48000, steps=self.settings.valid_steps,
                                guidance_scale=self.settings.valid_guidance,
                                seed=derive_seed(self.settings.seed, "valid", i))
            out = result.audio[0]
            cutoff = float(item["cutoff_hz"])
            scores.append(metrics.lsd(ref, out))
            highs.append(metrics.lsd_band(ref, out, cutoff, math.inf))
            if i < 2:
                _spectrogram_png(run / "valid" / f"step_{step:07d}_{i}.png", [ref, low, out])
        return {"step": step, "lsd": float(np.mean(scores)),
                "lsd_above_cutoff": float(np.mean(highs)), "clips": self.count}


def _numpy(x: Any) -> np.ndarray:
    return x.numpy() if torch.is_tensor(x) else np.asarray(x)


def _spectrogram_png(path: Path, waves: list[np.ndarray]) -> None:
    """Reference, input and output spectrograms side by side (0-24 kHz, one dB scale)."""
    image = panels_image([(w, SAMPLE_RATE) for w in waves])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path, encode_png(to_uint8(image)))


# ---------------------------------------------------------------------------------- the run
def _check_out_folder(run: Path) -> None:
    """Refuse to write a run into a folder that holds something else (never clobber)."""
    if run.exists() and not run.is_dir():
        raise TrainingError(f"--out {run} is a file; give a folder for the run.")
    if run.is_dir() and not (run / SETTINGS_NAME).is_file() and any(
            not p.name.startswith(".") for p in run.iterdir()):
        raise TrainingError(f"--out {run} already holds files that are not a fine-tuning run; "
                            "choose a new or empty folder.")


def _check_resume(run: Path, settings: FineTuneSettings) -> None:
    saved_path = run / SETTINGS_NAME
    if not saved_path.is_file():
        return
    saved = json.loads(saved_path.read_text())
    changed = [k for k in STREAM_SETTINGS if k in saved and saved[k] != getattr(settings, k)]
    if changed:
        details = ", ".join(f"{k}: {saved[k]!r} -> {getattr(settings, k)!r}" for k in changed)
        raise TrainingError(f"{run} holds a run with other settings ({details}); resuming would "
                            "not continue it. Use another --out folder, or the saved settings.")


def _save_checkpoint(path: Path, step: int, unet: nn.Module, ema: EMA,
                     optimizer: torch.optim.Optimizer, scheduler: Any,
                     settings: FineTuneSettings) -> None:
    state = {"step": step, "unet": {k: v.detach().cpu() for k, v in unet.state_dict().items()},
             "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "settings": dataclasses.asdict(settings),
             "torch_rng": torch.get_rng_state()}
    with atomic.atomic_path(path) as tmp:
        torch.save(state, tmp)


def train(settings: FineTuneSettings, *, stop_after: int | None = None,
          progress: bool = True) -> TrainResult:
    """Run (or resume) a fine-tuning run; see the module docstring.

    Parameters
    ----------
    settings
        The run's settings; ``settings.out`` is the run folder (resumed when it holds a
        checkpoint).
    stop_after
        Stop (with a checkpoint) after this many steps of this call, even before
        ``settings.steps``; for time-sliced jobs and tests.
    progress
        Progress bar and messages on stderr (rank 0 only).

    Raises
    ------
    TrainingError
        Unusable settings or data, a starting model without the first-stage encoder, or out of
        memory (the message says what to change).
    """
    settings.check()
    dist, device = _setup_distributed(settings.device)
    settings.global_batch = settings.batch_size * dist.world
    run = Path(settings.out)
    say = (lambda msg: print(f"finetune: {msg}", file=sys.stderr, flush=True)) \
        if (progress and dist.main) else (lambda msg: None)
    try:
        return _train(settings, dist, device, run, stop_after, progress, say)
    finally:
        if dist.world > 1 and torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def _train(settings: FineTuneSettings, dist: Dist, device: torch.device, run: Path,
           stop_after: int | None, progress: bool, say: Any) -> TrainResult:
    crop = settings.crop_seconds
    _check_out_folder(run)
    train_files = train_data.list_audio(settings.data, what="training")
    valid_files = train_data.list_audio(settings.valid, what="validation") if settings.valid \
        else []
    train_data.check_disjoint(train_files, valid_files)
    corpus = train_data.AudioCorpus(train_files, crop, pad_short=settings.pad_short)
    say(f"training audio: {corpus.summary()}")
    valid_set = None
    if valid_files:
        vcorpus = train_data.AudioCorpus(valid_files, crop, pad_short=True, what="validation")
        valid_set = train_data.PairDataset(vcorpus, crop, settings.seed, kinds=("cheby1",),
                                           order_range=(8, 8), validation=True)
        say(f"validation audio: {vcorpus.summary()}")

    checkpoint_path = run / CHECKPOINT_NAME
    resume = checkpoint_path.is_file()
    if resume:
        _check_resume(run, settings)
    start = load_start(settings.model, progress=progress and dist.main)
    model = start.model.to(device)
    unet = model.unet
    unet.gradient_checkpointing = settings.gradient_checkpointing
    params = trainable_parameters(unet, settings.trainable)
    ema = EMA(unet, settings.ema_decay, start.ema_updates, start.ema_shadows)
    del start
    optimizer = make_optimizer(params, settings.lr, settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_lambda(
        settings.warmup_steps, settings.steps, settings.lr_schedule, settings.official_warmup))
    step = 0
    if resume:
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        unet.load_state_dict(state["unet"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = int(state["step"])
        del state
        say(f"resuming {run} at step {step}" if step < settings.steps else
            f"{run} is complete ({step} steps); raise --steps to train on")
    if dist.main:
        run.mkdir(parents=True, exist_ok=True)
        atomic.write_text(run / SETTINGS_NAME, settings.to_json())
    dist.barrier()
    logs = _Logs(run, step) if dist.main else None

    ddp: nn.Module = unet
    if dist.world > 1:
        ddp = nn.parallel.DistributedDataParallel(
            unet, device_ids=[device.index] if device.type == "cuda" else None)
    dataset = train_data.PairDataset(corpus, crop, settings.seed)
    sampler = train_data.ShardSampler(settings.batch_size, rank=dist.rank,
                                      world_size=dist.world, start_step=step,
                                      grad_accum=settings.grad_accum)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=settings.batch_size, sampler=sampler,
        num_workers=settings.num_workers, worker_init_fn=_worker_init,
        persistent_workers=settings.num_workers > 0, pin_memory=device.type == "cuda")
    validator = _Validator(valid_set, settings, device) if (valid_set and dist.main) else None
    autocast = _autocast_dtype(settings.precision, device)
    frames = train_data.crop_frames(crop)
    target = settings.steps if stop_after is None else min(settings.steps, step + stop_after)
    losses: list[float] = []
    validation: list[dict[str, float]] = []

    bar = None
    if progress and dist.main:
        from tqdm.auto import tqdm

        bar = tqdm(total=settings.steps, initial=step, unit="step", desc="fine-tuning",
                   dynamic_ncols=True)
    batches = iter(loader)
    model.train()
    try:
        with _StopFlag() as stop:
            while step < target:
                began = time.perf_counter()
                optimizer.zero_grad(set_to_none=True)
                step_loss = torch.zeros((), device=device)
                try:
                    for k in range(settings.grad_accum):
                        batch = next(batches)
                        g = step * settings.grad_accum + k
                        indices = [int(i) for i in batch["index"]]
                        draws = Draws.per_item(
                            model.latent_shape(len(indices), frames),
                            [derive_seed(settings.seed, "draws", i) for i in indices],
                            derive_seed(settings.seed, "drop", g), settings.p_uncond,
                            model.timesteps, device)
                        sync = (ddp.no_sync() if dist.world > 1 and k < settings.grad_accum - 1
                                else contextlib.nullcontext())
                        with sync:
                            out = model.loss(batch["log_mel_spec"].to(device),
                                             batch["lowpass_mel"].to(device), draws,
                                             settings.p_uncond, unet=ddp, autocast_dtype=autocast)
                            (out.loss / settings.grad_accum).backward()
                        step_loss += out.loss.detach() / settings.grad_accum
                except (RuntimeError, torch.OutOfMemoryError) as exc:
                    if _is_oom(exc):
                        raise _oom_error(settings, dist, device) from exc
                    raise
                if settings.clip_grad > 0:
                    grad_norm = torch.nn.utils.clip_grad_norm_(params, settings.clip_grad)
                else:
                    grad_norm = torch.nn.utils.clip_grad_norm_(params, math.inf)
                lr = optimizer.param_groups[0]["lr"]
                optimizer.step()
                scheduler.step()
                ema.update(unet)
                step += 1
                loss_value = dist.mean(step_loss)
                if not math.isfinite(loss_value):
                    raise TrainingError(f"the loss became {loss_value} at step {step}; lower "
                                        f"--lr ({settings.lr}) or keep --clip-grad on.")
                losses.append(loss_value)
                seconds = time.perf_counter() - began
                if logs is not None:
                    logs.row("log.csv", {
                        "step": step, "loss": loss_value, "lr": lr,
                        "grad_norm": float(grad_norm), "seconds": seconds,
                        "items_per_s": settings.global_batch * settings.grad_accum / seconds})
                if bar is not None:
                    bar.update()
                    bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
                stopping = dist.any(stop.signal is not None, device)
                last = step == target or stopping
                if validator is not None and (step % settings.valid_every == 0
                                              or step == settings.steps):
                    row = validator(model, ema, step, run)
                    validation.append(row)
                    logs.row("valid.csv", row)
                    say(f"step {step}: validation LSD {row['lsd']:.3f}, above the cutoff "
                        f"{row['lsd_above_cutoff']:.3f} ({row['clips']} clips)")
                if dist.main and (step % settings.save_every == 0 or last):
                    _save_checkpoint(run / CHECKPOINT_NAME, step, unet, ema, optimizer,
                                     scheduler, settings)
                dist.barrier()
                if stopping:
                    say(f"stopped by signal at step {step}; the checkpoint is saved, run the "
                        "same command to go on")
                    break
    finally:
        if bar is not None:
            bar.close()
        if logs is not None:
            logs.close()
    finished = step >= settings.steps
    if finished and dist.main and (losses or not (run / "model" / "config.json").is_file()):
        export_folder(model, run / "model", ema.shadows)
        say(f"done: {run / 'model'} (EMA weights; --model {run / 'model'})")
    dist.barrier()
    if stop.signal is not None:
        raise Stopped(stop.signal)
    return TrainResult(step, finished, losses, validation, run)


def _worker_init(worker_id: int) -> None:
    torch.set_num_threads(1)


def export_run(run: str | os.PathLike[str], out: str | os.PathLike[str],
               weights: str = "ema") -> Path:
    """Export a run's last checkpoint as a model folder (``--model OUT`` loads it).

    Parameters
    ----------
    run
        Run folder (``run.json`` + ``checkpoint.pt``).
    out
        Folder to write; must not exist yet.
    weights
        ``"ema"`` (the averaged weights, what validation scores) or ``"raw"``.
    """
    run, out = Path(run), Path(out)
    checkpoint = run / CHECKPOINT_NAME
    if not checkpoint.is_file() or not (run / SETTINGS_NAME).is_file():
        raise TrainingError(f"{run}: not a fine-tuning run folder (expected {SETTINGS_NAME} and "
                            f"{CHECKPOINT_NAME}).")
    if out.exists():
        raise TrainingError(f"{out} already exists; choose a new folder.")
    settings = json.loads((run / SETTINGS_NAME).read_text())
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = load_start(settings["model"]).model
    model.unet.load_state_dict(state["unet"])
    unet_state = state["ema"]["shadows"] if weights == "ema" else None
    return export_folder(model, out, unet_state)


# ------------------------------------------------------------------------------------------ CLI
def _parser() -> argparse.ArgumentParser:
    d = FineTuneSettings(data=[], out="")
    parser = argparse.ArgumentParser(
        prog="python -m audiosr_core.train.audiosr",
        description="Fine-tune AudioSR (basic, speech or an exported folder) on your own "
                    "high-resolution audio with the official training objective. Multi-GPU: "
                    "launch the same command with torchrun --nproc_per_node N -m "
                    "audiosr_core.train.audiosr train ...",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train or resume a run", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--data", action="append", required=True, metavar="PATH",
                   help="training audio: folder (recursive; hidden files skipped), file, or "
                        "list file (.txt/.lst: one path per line); repeatable. Use audio with "
                        "real content up to 24 kHz (48 kHz recordings).")
    t.add_argument("--valid", action="append", default=[], metavar="PATH",
                   help="held-out audio for validation (must not share files with --data)")
    t.add_argument("--out", required=True, help="run folder (resumed when it has a checkpoint)")
    t.add_argument("--model", default=d.model,
                   help="starting model: basic, speech, an official .bin/.ckpt or an exported "
                        "folder")
    t.add_argument("--crop-seconds", type=float, default=d.crop_seconds,
                   help="crop length (official: 5.12 or 10.24; a multiple of 0.64)")
    t.add_argument("--pad-short", action="store_true",
                   help="zero-pad files shorter than a crop (official pad_wav) instead of "
                        "skipping them")
    t.add_argument("--batch-size", type=int, default=d.batch_size, help="crops per device")
    t.add_argument("--grad-accum", type=int, default=d.grad_accum,
                   help="micro-batches per optimizer step")
    t.add_argument("--steps", type=int, default=d.steps, help="optimizer steps in total")
    t.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (official 1e-4)")
    t.add_argument("--warmup-steps", type=int, default=d.warmup_steps,
                   help="linear warm-up (official 5000, from 0)")
    t.add_argument("--official-warmup", action="store_true",
                   help="warm up exactly as the official loop (its first step has lr 0)")
    t.add_argument("--lr-schedule", choices=("constant", "cosine"), default=d.lr_schedule)
    t.add_argument("--weight-decay", type=float, default=d.weight_decay)
    t.add_argument("--clip-grad", type=float, default=d.clip_grad,
                   help="max gradient norm (0: no clipping, as official)")
    t.add_argument("--ema-decay", type=float, default=d.ema_decay)
    t.add_argument("--p-uncond", type=float, default=d.p_uncond,
                   help="probability of dropping a batch's condition (classifier-free guidance)")
    t.add_argument("--trainable", choices=TRAINABLE, default=d.trainable,
                   help="UNet parameters trained: all, or only the attention blocks")
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--save-every", type=int, default=d.save_every, help="checkpoint interval")
    t.add_argument("--valid-every", type=int, default=d.valid_every)
    t.add_argument("--valid-clips", type=int, default=d.valid_clips)
    t.add_argument("--valid-steps", type=int, default=d.valid_steps,
                   help="DDIM steps of the validation enhancement")
    t.add_argument("--num-workers", type=int, default=d.num_workers,
                   help="data-loading processes per device")
    t.add_argument("--device", default=None, help="cuda, cuda:1, cpu, mps (default: best)")
    t.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                   help="auto: bf16 autocast on GPUs that support it, fp32 elsewhere")
    t.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute activations in the backward pass (less memory)")
    t.add_argument("--stop-after", type=int, default=None, metavar="N",
                   help="stop with a checkpoint after N steps of this invocation")
    e = sub.add_parser("export", help="write a run's checkpoint as a model folder")
    e.add_argument("run", help="run folder")
    e.add_argument("out", help="new model folder")
    e.add_argument("--weights", choices=("ema", "raw"), default="ema")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "export":
            path = export_run(args.run, args.out, args.weights)
            print(f"exported {path} (load it with --model {path})")
            return 0
        names = {f.name for f in dataclasses.fields(FineTuneSettings)}
        settings = FineTuneSettings(**{k: v for k, v in vars(args).items() if k in names})
        result = train(settings, stop_after=args.stop_after)
        return 0 if result.finished or args.stop_after else 1
    except Stopped as exc:
        return 128 + exc.signum
    except KeyboardInterrupt:
        return 130
    except AudioSRError as exc:
        print(f"finetune: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
