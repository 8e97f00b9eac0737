"""What one app job does: enhance the upload, draw both spectrograms, describe the result.

:class:`JobRunner` is the queue's ``run`` function. It loads each model once
(:class:`ModelCache`), runs :meth:`Enhancer.enhance_file` (long uploads stream from disk to
disk) through :class:`WindowCounter`, which reports the fraction of the planned windows done
(an honest fraction: a short clip is a single window, reported as running without a
percentage), and draws the before/after spectrograms on one axis and one dB scale.

Every message shown in the page names the upload by the user's file name, never by a path
of the server.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from .. import atomic
from ..enhancer import EnhanceOptions, Enhancer, FilePlan, Planner, WindowTask
from ..errors import AudioSRError
from .catalogue import ModelChoice
from .jobqueue import Job, JobFailed, Reporter
from .spectrogram import DB_RANGE, columns_for, render_spectrogram

__all__ = ["ModelCache", "WindowCounter", "JobRunner", "input_file", "download_name",
           "make_options", "rate_tag", "BROWSER_PLAYABLE", "FORMATS"]

BROWSER_PLAYABLE = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3"})
"""Upload extensions a browser's <audio> plays as they are; others get a WAV copy."""
FORMATS = ("wav", "flac")
"""Output containers offered."""
Loader = Callable[[str, str | None], Enhancer]


def _default_loader(source: str, device: str | None) -> Enhancer:
    from ..loading import load

    return load(source, device=device)


class ModelCache:
    """Each model loaded once, on first use, and kept for the app's lifetime."""

    def __init__(self, choices: Mapping[str, ModelChoice], device: str | None = None,
                 loader: Loader | None = None) -> None:
        self.choices = dict(choices)
        self.device = device
        self._loader = loader or _default_loader
        self._models: dict[str, Enhancer] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Enhancer:
        """The model for ``key`` (loading it the first time; a slow load, such as a first
        download, holds up that model only). Raises AudioSRError."""
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._models:
                self._models[key] = self._loader(self.choices[key].source, self.device)
            return self._models[key]


class _CountingPlanner(Planner):
    """A model's planner that tells :class:`WindowCounter` how many windows a file has."""

    def __init__(self, inner: Planner, on_plan: Callable[[FilePlan], None]) -> None:
        self._inner = inner
        self._on_plan = on_plan
        self.stream_above_s = inner.stream_above_s

    def plan(self, x48: np.ndarray, rate: int, opts: EnhanceOptions) -> FilePlan:
        plan = self._inner.plan(x48, rate, opts)
        self._on_plan(plan)
        return plan

    def plan_stream(self, read: Callable[[int, int], np.ndarray], length: int, rate: int,
                    opts: EnhanceOptions) -> FilePlan:
        plan = self._inner.plan_stream(read, length, rate, opts)
        self._on_plan(plan)
        return plan

    def streams(self, opts: EnhanceOptions) -> bool:
        return self._inner.streams(opts)

    def streams_file(self, path: str | os.PathLike[str], opts: EnhanceOptions) -> bool:
        return self._inner.streams_file(path, opts)


class WindowCounter(Enhancer):
    """Another enhancer, unchanged, that calls ``on_progress(done, planned)`` after each group
    of windows the networks finish (the public planner / run_windows seam of
    :class:`Enhancer`)."""

    def __init__(self, inner: Enhancer, on_progress: Callable[[int, int], None]) -> None:
        self._inner = inner
        self._on_progress = on_progress
        self.stream_above_s = inner.stream_above_s
        self.planned = 0
        self.done = 0

    def planner(self) -> Planner:
        return _CountingPlanner(self._inner.planner(), self._planned)

    def _planned(self, plan: FilePlan) -> None:
        self.planned += len(plan.windows) if plan.active else 0
        self._on_progress(self.done, self.planned)

    def run_windows(self, tasks: Sequence[WindowTask], options: EnhanceOptions, *,
                    progress: bool = False) -> list[np.ndarray]:
        outputs = self._inner.run_windows(tasks, options, progress=progress)
        self.done += len(tasks)
        self._on_progress(self.done, self.planned)
        return outputs


# ------------------------------------------------------------------------------ names
def _suffix(name: str) -> str:
    suffix = Path(name.replace("\\", "/")).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ""


def input_file(folder: Path, source_name: str) -> Path:
    """Where a job's upload is stored: ``input`` plus the upload's extension (which tells
    the engine what the file claims to be), inside the job's folder."""
    return folder / f"input{_suffix(source_name)}"


def rate_tag(rate: int) -> str:
    """``48000 -> "48k"``, ``44100 -> "44k1"``, ``96000 -> "96k"``."""
    whole, rest = divmod(int(rate), 1000)
    return f"{whole}k" + f"{rest:03d}".rstrip("0")


def download_name(source_name: str, rate: int, fmt: str) -> str:
    """``<stem>_48k.wav``: the upload's name without folders or extension, unsafe characters
    replaced, at most 80 characters (``audio`` when nothing is left)."""
    base = source_name.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base[: -len(Path(base).suffix)] if Path(base).suffix else base
    stem = re.sub(r"[^\w.\- ]+", "_", stem).strip(" ._")[:80] or "audio"
    return f"{stem}_{rate_tag(rate)}.{fmt}"


# ---------------------------------------------------------------------------- options
def make_options(settings: Mapping[str, Any], diffusion: bool) -> EnhanceOptions:
    """The engine's options for a job: steps, guidance scale and seed for diffusion models,
    the output rate when the engine has that option."""
    values: dict[str, Any] = {}
    if diffusion:
        values.update(steps=settings["steps"], guidance_scale=settings["guidance_scale"],
                      seed=settings["seed"])
    if "output_rate" in {f.name for f in fields(EnhanceOptions)}:
        values["output_rate"] = settings["output_rate"]
    return EnhanceOptions(**values)


# ------------------------------------------------------------------------------- runner
class JobRunner:
    """The queue's ``run(job, report)``: returns ``(result for the page, files by role)``."""

    def __init__(self, models: ModelCache) -> None:
        self.models = models

    def __call__(self, job: Job, report: Reporter) -> tuple[dict[str, Any], dict[str, Path]]:
        source = input_file(job.folder, job.source_name)
        choice = self.models.choices[job.model]
        report(stage=f"loading the {choice.label} model")
        try:
            model = self.models.get(job.model)
        except AudioSRError as exc:
            raise JobFailed(_scrub(str(exc), job, source)) from None
        fmt = job.settings["format"]
        output = job.folder / f"output.{fmt}"
        counter = WindowCounter(model, lambda done, planned: report(**_progress(done, planned)))
        report(stage="reading the audio")
        started = time.perf_counter()
        try:
            options = make_options(job.settings, choice.diffusion)
            res = counter.enhance_file(source, output, options, overwrite=True)
        except (AudioSRError, ValueError) as exc:  # bad audio; settings a model refuses
            raise JobFailed(_scrub(str(exc), job, source)) from None
        seconds = time.perf_counter() - started
        report(stage="drawing the spectrograms", fraction=None)
        files = {"after": output, "before": _playable(source, job.folder)}
        meta_in, meta_out = sf.info(os.fspath(source)), sf.info(os.fspath(output))
        files.update(_spectrograms(source, output, job.folder, meta_out))
        result = {
            "model": job.model, "seconds": round(seconds, 3),
            "input": _describe(meta_in), "output": _describe(meta_out),
            "bands": [{"channel": c + 1, "edge_hz": round(float(hz), 1), "status": str(s),
                       "description": s.describe()}
                      for c, (hz, s) in enumerate(zip(res.cutoff_hz, res.status, strict=True))],
            "output_gain_db": round(float(res.output_gain_db), 2), "seed": res.seed,
            "diffusion": choice.diffusion, "streamed": res.streamed,
            "download_name": download_name(job.source_name, int(meta_out.samplerate), fmt),
            "spectrogram": {"top_hz": meta_out.samplerate / 2, "db_range": list(DB_RANGE)},
        }
        return result, files


def _progress(done: int, planned: int) -> dict[str, Any]:
    """Stage and fraction for ``done`` of ``planned`` windows (no fraction for one window:
    nothing finer than "running" can be said honestly)."""
    if planned <= 1:
        return {"stage": "enhancing", "fraction": None}
    return {"stage": f"enhancing: window {min(done + 1, planned)} of {planned}",
            "fraction": done / planned}


def _scrub(message: str, job: Job, source: Path) -> str:
    """The engine's message with the server's paths replaced by the user's file name."""
    return message.replace(os.fspath(source), job.source_name).replace(
        os.fspath(job.folder) + os.sep, "").replace(os.fspath(job.folder), "the work folder")


def _describe(meta: Any) -> dict[str, Any]:
    return {"sample_rate": int(meta.samplerate), "channels": int(meta.channels),
            "duration_s": round(float(meta.duration), 3), "format": str(meta.format),
            "subtype": str(meta.subtype)}


def _playable(source: Path, folder: Path) -> Path:
    """The upload itself when a browser plays its format, else a 16-bit WAV copy of it."""
    if source.suffix.lower() in BROWSER_PLAYABLE:
        return source
    copy = folder / "before.wav"
    with sf.SoundFile(os.fspath(source)) as src, atomic.atomic_path(copy) as tmp, \
            sf.SoundFile(os.fspath(tmp), "w", int(src.samplerate), int(src.channels),
                         "PCM_16", format="WAV") as dst:
        for block in src.blocks(blocksize=1 << 16, dtype="float32", always_2d=True):
            dst.write(np.clip(block, -1.0, 1.0))
    return copy


def _spectrograms(source: Path, output: Path, folder: Path, meta_out: Any) -> dict[str, Path]:
    """Both pictures on the output's frequency axis, with the same number of columns."""
    top = float(meta_out.samplerate) / 2
    columns = columns_for(float(meta_out.duration))
    return {"before.png": render_spectrogram(source, folder / "before.png", top, columns),
            "after.png": render_spectrogram(output, folder / "after.png", top, columns)}

