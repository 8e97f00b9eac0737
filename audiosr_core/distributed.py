"""Enhance whole corpora on a Ray cluster: Ray Data batch inference, resumable, equal to the
local run.

The job is the local command's, spread over many machines::

    files (the driver lists them exactly as ``audiosr-plug enhance`` does)
      -> read, decode, resample to 48 kHz, measure and cut into windows   (CPU tasks, flat_map)
      -> the model on windows                     (actors: map_batches with a callable class
                                                   that loads the enhancer once, batch_size
                                                   windows per call, num_gpus, concurrency)
      -> join each file's windows as the local path does, one gain per file, atomic write
                                                  (the driver, as windows come back)

A file is planned once (its windows and file-level state: cutoffs, normalisation, level,
seed; :meth:`audiosr_core.enhancer.Enhancer.planner`); its windows may then run on different
actors, in any order: each window's seed comes from the file's, so the result does not
depend on placement. The output folder is the checkpoint: a file appears only complete, and
a rerun of the same command does only what is missing. Actors that die are restarted and
their windows retried by Ray; only the driver writes, so every file is written once.

Example
-------
>>> from audiosr_core.distributed import RayConfig, enhance_dataset
>>> run = enhance_dataset(["corpus/"], "corpus48", model="lite",
...                       ray=RayConfig(workers=4))                     # doctest: +SKIP
>>> run.counts                                                          # doctest: +SKIP
{'processed': 1200, 'skipped': 0, 'failed': 2}

``ray`` is an optional dependency (``pip install "audiosr-plug[ray]"``); the local path never
imports it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from . import atomic, audio
from .enhancer import (
    EnhanceOptions,
    FilePlan,
    OutputRate,
    Planner,
    WindowTask,
    save_result,
    select_channels,
    streamed_output,
    to_model_rate,
    to_output_rate,
)
from .errors import AudioSRError
from .jobs import Job, JobPlan, plan_jobs
from .rates import SAMPLE_RATE
from .status import Outcome

__all__ = ["RayConfig", "DatasetRun", "DatasetJob", "enhance_dataset", "connect",
           "iter_manifest", "RayUnavailableError"]

MANIFEST_NAME = "manifest.jsonl"
"""Default results manifest inside the output folder: one JSON line per finished file."""
HF_AUDIO_DIR = "audio"
HF_DATASET_DIR = "dataset"


class RayUnavailableError(AudioSRError):
    """Ray is not installed, or the cluster cannot be reached."""


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide the model runs.

    Attributes
    ----------
    address : str or None
        A running cluster (``"host:6379"``, ``"ray://host:10001"``, ``"auto"``); default
        ``$RAY_ADDRESS``, else a local Ray started (and stopped) for this run.
    workers : int
        Model actors (each loads the model once).
    gpus_per_worker : float
        GPUs per actor; fractions share a GPU (``0.5``: two actors per GPU).
    cpus_per_worker : float or None
        CPUs per actor (torch threads); default 1.
    """

    address: str | None = None
    workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) \
                or self.workers < 1:
            raise ValueError(f"workers must be a positive integer, got {self.workers!r}")
        if not math.isfinite(self.gpus_per_worker) or self.gpus_per_worker < 0:
            raise ValueError(f"gpus_per_worker must be >= 0, got {self.gpus_per_worker!r}")
        if self.cpus_per_worker is not None and not self.cpus_per_worker > 0:
            raise ValueError(f"cpus_per_worker must be > 0, got {self.cpus_per_worker!r}")


@dataclass
class DatasetRun:
    """What :func:`enhance_dataset` did.

    Attributes
    ----------
    files : list of dict
        One entry per input, as the local command's ``--report`` has them: ``input``,
        ``output``, ``result`` (processed, skipped, failed, interrupted) and, when processed,
        ``seconds``, ``cutoff_hz``, ``status``, ``output_gain_db``; ``reason`` when failed.
    plan : JobPlan
        The listing (refusals, earlier outputs ignored, duplicates).
    audio_seconds : float
        Input audio processed, seconds.
    wall_seconds : float
        Time the run took.
    interrupted : bool
        Stopped (Ctrl-C, SIGTERM) before every file was done.
    """

    files: list[dict]
    plan: JobPlan
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    interrupted: bool = False
    manifest: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        return {str(k): sum(e["result"] == k for e in self.files)
                for k in (Outcome.PROCESSED, Outcome.SKIPPED, Outcome.FAILED)}


# ------------------------------------------------------------------------------- sources
def _is_url(text: str) -> bool:
    return "://" in text and not Path(text).exists()


@dataclass(frozen=True)
class _Source:
    """Where one input's bytes come from: a local path, a URL (pyarrow filesystem) or row
    ``index`` of a Hugging Face dataset saved on disk."""

    kind: str
    name: str
    index: int = -1

    def __str__(self) -> str:
        if self.kind == "hf":
            return f"{self.name.split(chr(0))[0]}[{self.index}]"
        return audio.display_path(self.name)

    @contextlib.contextmanager
    def local_file(self) -> Iterator[Path]:
        """A local file with the input's bytes (downloaded to a temporary folder if needed)."""
        if self.kind == "path":
            yield Path(self.name)
            return
        with tempfile.TemporaryDirectory(prefix="audiosr-plug-") as tmp:
            if self.kind == "url":
                fs, path = _filesystem(self.name)
                local = Path(tmp) / PurePosixPath(path).name
                with fs.open_input_stream(path) as src, open(local, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            else:
                data, name = _hf_audio(self.name, self.index)
                local = Path(tmp) / name
                local.write_bytes(data)
            yield local


def _filesystem(url: str):
    """``(pyarrow filesystem, path)`` of a URL (``s3://``, ``gs://``, ``file://``, ...)."""
    import pyarrow.fs

    try:
        return pyarrow.fs.FileSystem.from_uri(url)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types
        raise AudioSRError(f"{url}: cannot open this location ({exc})") from None


_HF_CACHE: dict[str, Any] = {}


def _hf_dataset(path: str, column: str | None = None):
    """A dataset saved with ``save_to_disk``, its audio column undecoded (cached per
    process)."""
    key = f"{path}\0{column}"
    if key not in _HF_CACHE:
        try:
            import datasets
        except ImportError as exc:
            raise RayUnavailableError("--hf-dataset needs the datasets package: pip install "
                                      "'audiosr-plug[ray]'") from exc
        try:
            ds = datasets.load_from_disk(path)
        except (FileNotFoundError, ValueError) as exc:
            raise AudioSRError(f"{path}: not a dataset saved with save_to_disk ({exc})") from None
        if isinstance(ds, datasets.DatasetDict):
            raise AudioSRError(f"{path}: holds several splits ({', '.join(ds)}); give the "
                               "folder of one split")
        if column is not None:
            if column not in ds.column_names:
                raise AudioSRError(f"{path}: has no column {column!r}; its columns: "
                                   f"{', '.join(ds.column_names)} (choose with --audio-column)")
            ds = ds.cast_column(column, datasets.Audio(decode=False))
        _HF_CACHE[key] = (ds, column)
    return _HF_CACHE[key][0]


def _hf_audio(spec: str, index: int) -> tuple[bytes, str]:
    path, column = spec.rsplit("\0", 1)
    cell = _hf_dataset(path, column)[index][column]
    data = cell.get("bytes")
    if data is None and cell.get("path"):
        data = Path(cell["path"]).read_bytes()
    if not data:
        raise audio.AudioInputError(f"{path}[{index}]: the {column!r} cell holds no audio")
    name = PurePosixPath(cell.get("path") or f"row{index}.wav").name
    if Path(name).suffix.lower() not in audio.SUPPORTED_EXTENSIONS:
        name = f"row{index}.wav"
    return data, name


# ------------------------------------------------------------------------------ listing
def _list_url(url: str, output: str, fmt: str, extensions: set[str]) -> list[Job]:
    """Jobs of a URL: one file, or every audio file below a prefix (hidden names skipped),
    mirrored under ``output/<last path component>/``."""
    import pyarrow.fs

    fs, path = _filesystem(url)
    info = fs.get_file_info(path)
    scheme = url.split("://", 1)[0]
    if info.type == pyarrow.fs.FileType.NotFound:
        raise AudioSRError(f"{url}: not found")
    if info.type == pyarrow.fs.FileType.File:
        return [Job(url, Path(output) / f"{PurePosixPath(path).stem}.{fmt}")]
    root = PurePosixPath(path)
    found = fs.get_file_info(pyarrow.fs.FileSelector(path, recursive=True))
    jobs = []
    for item in sorted(found, key=lambda i: i.path):
        rel = PurePosixPath(item.path).relative_to(root)
        if item.type != pyarrow.fs.FileType.File or any(p.startswith(".") for p in rel.parts):
            continue
        if rel.suffix.lower() in extensions:
            jobs.append(Job(f"{scheme}://{item.path}",
                            Path(output) / root.name / rel.with_suffix(f".{fmt}")))
    return jobs


def _plan(inputs: Sequence[str], output: str, fmt: str, extensions: Sequence[str] | None,
          hf: tuple[str, str] | None) -> tuple[JobPlan, dict[int, _Source]]:
    """The same listing as the local command, plus URLs and dataset rows: the plan and each
    job's source (by position in ``plan.jobs``)."""
    allowed = {e.lower() for e in extensions} if extensions else set(audio.SUPPORTED_EXTENSIONS)
    local = [i for i in inputs if not _is_url(i)]
    plan = plan_jobs(local, output, fmt, extensions) if local else JobPlan()
    sources = {k: _Source("path", os.fspath(job.source)) for k, job in enumerate(plan.jobs)}
    for url in (i for i in inputs if _is_url(i)):
        for job in _list_url(url, output, fmt, allowed):
            sources[len(plan.jobs)] = _Source("url", os.fspath(job.source))
            plan.jobs.append(job)
    if hf is not None:
        ds = _hf_dataset(*hf)
        width = max(5, len(str(len(ds) - 1)))
        for i in range(len(ds)):
            source = _Source("hf", f"{hf[0]}\0{hf[1]}", i)
            sources[len(plan.jobs)] = source
            plan.jobs.append(Job(Path(str(source)),
                                 Path(output) / HF_AUDIO_DIR / f"{i:0{width}d}.{fmt}"))
    seen: dict[str, int] = {}
    for k, job in enumerate(plan.jobs):
        other = seen.setdefault(os.fspath(job.output), k)
        if other != k:
            raise AudioSRError(f"{sources[k]} and {sources[other]} would both be written to "
                               f"{job.output}; enhance them separately")
    return plan, sources


# ------------------------------------------------------------------------- output store
class _Store:
    """Where outputs go: a local folder (atomic writes) or a pyarrow filesystem URL (written
    under a temporary name and moved into place)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.remote = _is_url(root)
        self._base = Path(root)             # how job outputs were joined to the root

    def name(self, output: Path) -> str:
        """The output as users know it (a path, or the URL)."""
        if not self.remote:
            return os.fspath(output)
        return self.root.rstrip("/") + "/" + output.relative_to(self._base).as_posix()

    def exists(self, output: Path) -> bool:
        if not self.remote:
            return output.exists()
        import pyarrow.fs

        fs, path = _filesystem(self.name(output))
        return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound

    @contextlib.contextmanager
    def staged(self, output: Path) -> Iterator[Path]:
        """A local path to write ``output`` to; published when the block ends."""
        if not self.remote:
            yield output
            return
        with tempfile.TemporaryDirectory(prefix="audiosr-plug-out-") as tmp:
            local = Path(tmp) / output.name
            yield local
            if local.exists():
                fs, path = _filesystem(self.name(output))
                parent = str(PurePosixPath(path).parent)
                fs.create_dir(parent, recursive=True)
                part = f"{parent}/.{PurePosixPath(path).name}.{os.urandom(4).hex()}.part"
                with open(local, "rb") as src, fs.open_output_stream(part) as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                fs.move(part, path)


# --------------------------------------------------------------------- ray: the stages
def _window_rows(job_id: int, source: _Source, planner: Planner,
                 opts: EnhanceOptions) -> Iterator[dict]:
    """Read, decode, resample, plan and cut one file (runs in a CPU task)."""
    with source.local_file() as path:
        if planner.streams_file(path, opts):
            with audio.Reader48(path) as reader:
                def read(a: int, b: int) -> np.ndarray:
                    return select_channels(reader.read(a, b), opts.channels)

                plan = planner.plan_stream(read, reader.length, reader.rate, opts)
                plan.output = OutputRate.of(reader.meta.frames, reader.rate, opts.output_rate)
                duration = reader.meta.duration_s
                blob = pickle.dumps(plan)
                for i, w in enumerate(plan.windows):
                    yield _row(job_id, i, blob, read(w.seg_start, w.seg_stop), True, duration)
            return
        samples, rate = audio.load(path)
        x48, rate, n = to_model_rate(samples, rate, opts)
        plan = planner.plan(x48, rate, opts)
        plan.output = OutputRate.of(n, rate, opts.output_rate)
        blob = pickle.dumps(plan)
        duration = samples.shape[-1] / rate
        for i, w in enumerate(plan.windows):
            yield _row(job_id, i, blob, x48[:, w.seg_start:w.seg_stop], False, duration)


def _row(job_id: int, index: int, plan: bytes, segment: np.ndarray, streamed: bool,
         duration: float, error: str = "") -> dict:
    seg = np.ascontiguousarray(segment, np.float32)
    return {"job": job_id, "index": index, "plan": plan, "segment": seg.tobytes(),
            "channels": int(seg.shape[0]) if seg.ndim == 2 else 0,
            "streamed": streamed, "duration": float(duration), "error": error,
            "seconds": 0.0}


def _cut(row: dict, *, planner: Planner, options: dict) -> list[dict]:
    """``flat_map`` body: every window of the row's file, or one row naming its error."""
    opts = EnhanceOptions(**options)
    source = _Source(row["kind"], row["name"], int(row["index"]))
    try:
        return list(_window_rows(int(row["job"]), source, planner, opts))
    except AudioSRError as exc:
        reason = _reason(exc, str(source))
    except OSError as exc:
        reason = f"cannot be read ({exc})"
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the corpus
        reason = f"could not be prepared ({type(exc).__name__}: {exc})"
    return [_row(int(row["job"]), -1, b"", np.zeros((0, 0), np.float32), False, 0.0, reason)]


def _reason(exc: BaseException, name: str) -> str:
    text = str(exc)
    for prefix in (name, audio.display_path(name)):
        if text.startswith(prefix + ": "):
            return text[len(prefix) + 2:]
    return text


class _WindowWorker:
    """The ``map_batches`` callable class: loads the enhancer once per actor and runs
    ``run_windows`` on every batch of windows (of any files)."""

    def __init__(self, model: str, options: dict, device: str | None, dtype: str,
                 threads: int) -> None:
        import torch

        from .loading import load

        torch.set_num_threads(max(1, threads))
        self.options = EnhanceOptions(**options)
        self.enhancer = load(model, device=device, dtype=getattr(torch, dtype))
        self._plans: dict[bytes, FilePlan] = {}

    def _plan(self, blob: bytes) -> FilePlan:
        plan = self._plans.get(blob)
        if plan is None:
            if len(self._plans) > 64:
                self._plans.clear()
            plan = self._plans[blob] = pickle.loads(blob)
        return plan

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        t0 = time.perf_counter()
        outputs = list(batch["segment"])
        keys, tasks = [], []
        for k, error in enumerate(batch["error"]):
            if error:
                continue
            plan = self._plan(batch["plan"][k])
            if not plan.active:
                continue                      # passes through: the segment is the output
            w = plan.windows[int(batch["index"][k])]
            seg = np.frombuffer(batch["segment"][k], np.float32).reshape(
                int(batch["channels"][k]), w.seg_stop - w.seg_start)
            keys.append(k)
            tasks.append(WindowTask(plan.state, int(batch["index"][k]), seg))
        errors = list(batch["error"])
        try:
            results = self.enhancer.run_windows(tasks, self.options)
        except Exception as exc:  # noqa: BLE001 - the batch's files fail, the run goes on
            results = []
            reason = _model_error(exc, self.options.batch_size)
            for k in keys:
                errors[k] = reason
        for k, y in zip(keys, results, strict=False):
            outputs[k] = np.ascontiguousarray(y, np.float32).tobytes()
        out = {key: batch[key] for key in ("job", "index", "plan", "channels", "streamed",
                                           "duration")}
        out["error"] = np.array(errors, dtype=object)
        out["segment"] = np.array(outputs, dtype=object)
        out["seconds"] = np.full(len(outputs), (time.perf_counter() - t0) / max(len(keys), 1))
        return out


def _model_error(exc: BaseException, batch_size: int) -> str:
    """Why the networks failed on a batch, and what to do."""
    text = f"{type(exc).__name__}: {exc}"
    if "out of memory" in str(exc).lower():
        return (f"ran out of memory with --batch-size {batch_size}; lower it (or give each "
                f"worker more GPU: --gpus-per-worker) ({text})")
    return f"the model failed on this file ({text})"


# ------------------------------------------------------------------------ the driver
class _Assembly:
    """One file being joined on the driver: windows arrive in any order and are added in
    order; the output is written when the last one is in."""

    def __init__(self, job: Job, source: _Source, entry: dict, plan: FilePlan, streamed: bool,
                 store: _Store, subtype: str | None, duration: float) -> None:
        from .chunking import WindowJoiner

        self.job, self.source, self.entry, self.plan = job, source, entry, plan
        self._rate = plan.output.rate if plan.output is not None else SAMPLE_RATE
        self.store, self.subtype, self.duration = store, subtype, duration
        self.waiting: dict[int, np.ndarray] = {}
        self.seconds = 0.0
        channels = len(plan.result.status)
        self._stack = contextlib.ExitStack()
        self._sink = None
        self.audio: np.ndarray | None = None
        if streamed:                 # long file: joined through a hidden file, bounded memory
            target = self._stack.enter_context(store.staged(job.output))
            self._sink = self._stack.enter_context(
                streamed_output(target, channels, subtype, _local_input(source), plan.output))
            write = self._sink.write
        else:
            self.audio = np.zeros((channels, plan.length), np.float32)
            filled = [0]

            def write(block: np.ndarray) -> None:
                self.audio[:, filled[0]:filled[0] + block.shape[1]] = block
                filled[0] += block.shape[1]

        self.joiner = WindowJoiner(plan.windows, write)

    def add(self, index: int, output: np.ndarray, seconds: float) -> bool:
        """Add a window's output; True once the file is written."""
        self.seconds += seconds
        self.waiting[index] = output
        while self.joiner.next in self.waiting:
            i = self.joiner.next
            self.joiner.add(i, self.waiting.pop(i))
        if not self.joiner.finished:
            return False
        if self._sink is not None:
            self._stack.close()                     # publishes the streamed output
            result = replace(self.plan.result, output_gain_db=self._sink.gain_db,
                             streamed=True, sample_rate=self._rate)
        else:
            audio = (self.audio if self.plan.output is None
                     else to_output_rate(self.audio, self.plan.output))
            result = replace(self.plan.result, audio=audio, sample_rate=self._rate)
            with self.store.staged(self.job.output) as target:
                result = save_result(result, target, self.subtype, _local_input(self.source))
        self.entry.update(result=Outcome.PROCESSED, seconds=round(self.seconds, 3),
                          cutoff_hz=result.cutoff_hz, status=result.status,
                          output_gain_db=result.output_gain_db)
        return True

    def abandon(self) -> None:
        """Drop a file that will not be finished (its temporary files go too)."""
        with contextlib.suppress(BaseException):
            self._stack.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None)


def _local_input(source: _Source) -> str | None:
    """The input file an output must never overwrite (local inputs only)."""
    return source.name if source.kind == "path" else None


def connect(config: RayConfig) -> bool:
    """Join the cluster of ``config.address`` (or ``$RAY_ADDRESS``), or start a local one.

    Returns True when a local Ray was started here (and must be shut down).

    Raises
    ------
    RayUnavailableError
        Ray not installed, or an address that does not answer (checked within 5 s, so a
        wrong address is an error, not a hang).
    """
    try:
        import ray
    except ImportError:
        raise RayUnavailableError("the Ray engine needs Ray: pip install 'audiosr-plug[ray]' "
                                  "(or pip install 'ray[data]')") from None
    address = config.address or os.environ.get("RAY_ADDRESS") or None
    if address is not None and address != "auto":
        _check_reachable(address)
    if ray.is_initialized():            # this process is connected already (ray.init)
        return False
    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if address is None:
        ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
        return True
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayUnavailableError(f"cannot join the Ray cluster at {address}: {exc}") from None
    return False


def _check_reachable(address: str) -> None:
    """A TCP connection to the address within 5 s, or :class:`RayUnavailableError`."""
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port or 6379)), timeout=5):
            pass
    except (OSError, ValueError) as exc:
        raise RayUnavailableError(
            f"cannot reach the Ray cluster at {address} ({exc}); start one with "
            "`ray start --head`, fix --ray-address, or leave it out to run on a local "
            "Ray") from None


def _progress(total: int, total_audio: float, enabled: bool):
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="files", unit="file", disable=not enabled)
    start = time.perf_counter()

    def update(done_audio: float) -> None:
        elapsed = max(time.perf_counter() - start, 1e-9)
        speed = done_audio / elapsed
        left = (total_audio - done_audio) / speed if speed > 0 and total_audio else math.nan
        eta = "?" if not math.isfinite(left) else time.strftime("%H:%M:%S", time.gmtime(left))
        bar.set_postfix_str(f"{done_audio / 3600:.2f} h audio, {speed:.1f}x real time, "
                            f"ETA {eta}")
        bar.update(1)

    return bar, update


def _audio_seconds(source: _Source) -> float:
    """Duration of an input from its header (0 if it cannot be read here)."""
    if source.kind != "path":
        return 0.0
    try:
        return audio.info(source.name).duration_s
    except AudioSRError:
        return 0.0


class DatasetJob:
    """One distributed run: the listing is done (and checked) on construction, the work by
    :meth:`run`; :attr:`result` holds what is known so far, also after an interruption.
    :func:`enhance_dataset` is the one-call form; the parameters are the same."""

    def __init__(self, inputs: Sequence[str | os.PathLike[str]],
                 output_dir: str | os.PathLike[str], *, model: str = "lite",
                 options: EnhanceOptions | None = None, fmt: str = "wav",
                 subtype: str | None = None, overwrite: bool = False,
                 extensions: Sequence[str] | None = None, ray: RayConfig | None = None,
                 device: str | None = None, dtype: str = "float32",
                 manifest: str | os.PathLike[str] | None = None,
                 hf_dataset: str | os.PathLike[str] | None = None,
                 audio_column: str = "audio", planner: Planner | None = None,
                 progress: bool = True, on_file: Callable[[dict], None] | None = None) -> None:
        from .loading import load_planner

        self.config = ray or RayConfig()
        self.model, self.options = model, options or EnhanceOptions()
        self.subtype, self.device, self.dtype = subtype, device, dtype
        self.progress, self.on_file = progress, on_file
        self.out = os.fspath(output_dir)
        self.store = _Store(self.out)
        self.hf = (os.fspath(hf_dataset), audio_column) if hf_dataset is not None else None
        if self.hf is not None and self.store.remote:
            raise AudioSRError("a dataset is written into a local output folder; give -o a "
                               "local path with --hf-dataset")
        self.plan, self.sources = _plan([os.fspath(i) for i in inputs], self.out, fmt,
                                        extensions, self.hf)
        self.planner = planner or load_planner(model)
        self.manifest = None if self.store.remote and manifest is None else Path(
            manifest or Path(self.out) / MANIFEST_NAME)
        entries = [{"input": os.fspath(r.source), "output": _name(self.store, r.output),
                    "result": Outcome.FAILED, "reason": r.reason} for r in self.plan.refused]
        self.todo: list[tuple[int, Job, _Source, dict]] = []
        for k, job in enumerate(self.plan.jobs):
            entry = {"input": str(self.sources[k]) if self.sources[k].kind == "hf"
                     else os.fspath(job.source), "output": self.store.name(job.output)}
            entries.append(entry)
            if not overwrite and self.store.exists(job.output):
                entry["result"] = Outcome.SKIPPED
            else:
                self.todo.append((k, job, self.sources[k], entry))
        self.result = DatasetRun(entries, self.plan, manifest=os.fspath(self.manifest)
                                 if self.manifest else None)

    def run(self) -> DatasetRun:
        """Do the work (a local Ray is started and stopped if no cluster is given)."""
        import ray as ray_module

        if not self.store.remote:
            for path in atomic.sweep(self.out):
                print(f"audiosr-plug: removed {audio.display_path(path)}, left by an "
                      "interrupted run", file=sys.stderr)
        run = self.result
        t_start = time.perf_counter()
        if self.todo:
            started = connect(self.config)
            try:
                _run_on_ray(ray_module, self.todo, self.model, self.options, self.planner,
                            self.config, self.store, self.subtype, self.device, self.dtype,
                            self.manifest, self.progress, run, self.on_file)
            except KeyboardInterrupt:
                run.interrupted = True
                raise
            finally:
                for entry in run.files:
                    entry.setdefault("result", Outcome.INTERRUPTED)
                if started:
                    ray_module.shutdown()
                run.wall_seconds = time.perf_counter() - t_start
        if self.hf is not None:
            _write_hf_dataset(self.hf, self.plan, self.sources, self.out, run,
                              self.options.output_rate)
        return run


def enhance_dataset(inputs: Sequence[str | os.PathLike[str]], output_dir: str | os.PathLike[str],
                    **kwargs: Any) -> DatasetRun:
    """Enhance files, folders, URLs or a saved Hugging Face dataset on a Ray cluster.

    Parameters
    ----------
    inputs : sequence of str or PathLike
        Files and folders (listed exactly as ``audiosr-plug enhance`` lists them) and URLs
        any pyarrow filesystem reads (``s3://bucket/prefix``, ``gs://...``, ``file:///...``;
        a prefix is searched recursively).
    output_dir : str or PathLike
        A local folder or a URL; outputs mirror the inputs as in the local command.
    model : str
        Anything :func:`audiosr_core.load` takes; every actor loads it once.
    options : EnhanceOptions, optional
        As for the local run; ``batch_size`` windows go to an actor per call.
    fmt, subtype, overwrite, extensions
        As the command's ``--format``, ``--subtype``, ``--overwrite``, ``--ext``.
    ray : RayConfig, optional
        Cluster address, actors, GPUs per actor.
    device, dtype
        Where and at which precision actors run the networks (default: CUDA when the actor
        has a GPU, else CPU; float32).
    manifest : str or PathLike, optional
        JSON-lines results manifest, one line per finished file as it finishes; default
        ``OUTDIR/manifest.jsonl`` (local output folders only).
    hf_dataset : str or PathLike, optional
        A dataset saved with ``datasets.save_to_disk``: every row's ``audio_column`` (read
        undecoded and decoded with soundfile) becomes ``OUTDIR/audio/NNNNN.<fmt>``, and
        ``OUTDIR/dataset`` is the same dataset with that column at 48 kHz.
    planner : Planner, optional
        How files are cut (default: the model's, from its config alone).
    on_file : callable, optional
        Called with each file's entry when it is finished (progress hooks, tests).

    Returns
    -------
    DatasetRun
    """
    return DatasetJob(inputs, output_dir, **kwargs).run()


def _name(store: _Store, output: Path | None) -> str | None:
    return None if output is None else store.name(output)


def _run_on_ray(ray_module: Any, todo: list[tuple[int, Job, _Source, dict]], model: str,
                opts: EnhanceOptions, planner: Planner, config: RayConfig, store: _Store,
                subtype: str | None, device: str | None, dtype: str,
                manifest_path: Path | None, progress: bool, run: DatasetRun,
                on_file: Callable[[dict], None] | None) -> None:
    import logging
    import warnings

    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # Ray Data's advice on small inputs ("received 1 input(s)...") is noise for this job.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"ray\.data\..*")
    resources = ray_module.cluster_resources()
    if config.gpus_per_worker > 0 and resources.get("GPU", 0.0) < config.gpus_per_worker:
        raise RayUnavailableError(
            f"--gpus-per-worker {config.gpus_per_worker:g} needs GPUs, and the cluster has "
            f"{resources.get('GPU', 0.0):g}; run without it (CPU actors) or on a cluster with "
            "GPUs")
    cpus = config.cpus_per_worker or 1.0
    rows = [{"job": k, "kind": src.kind, "name": src.name, "index": src.index}
            for k, _job, src, _entry in todo]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    # Reading and cutting asks for no CPU of its own, so it always fits beside the actors;
    # its concurrency is capped at the cluster's CPUs.
    ds = ds.flat_map(_cut, fn_kwargs={"planner": planner, "options": asdict(opts)},
                     num_cpus=0,
                     compute=ray.data.TaskPoolStrategy(size=max(1, int(resources.get("CPU", 1)))))
    worker_device = device or ("cuda" if config.gpus_per_worker > 0 else "cpu")
    ds = ds.map_batches(
        _WindowWorker, batch_size=opts.batch_size, batch_format="numpy",
        fn_constructor_kwargs={"model": model, "options": asdict(opts), "device": worker_device,
                               "dtype": dtype, "threads": int(max(1, cpus))},
        compute=ray.data.ActorPoolStrategy(size=config.workers), num_cpus=cpus,
        num_gpus=config.gpus_per_worker or None)
    jobs = {k: (job, src, entry) for k, job, src, entry in todo}
    total_audio = sum(_audio_seconds(src) for _k, _job, src, _entry in todo)
    bar, tick = _progress(len(todo), total_audio, progress)
    assemblies: dict[int, _Assembly] = {}
    done_audio = 0.0
    manifest = None
    if manifest_path is not None:
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        manifest = open(manifest_path, "a", encoding="utf-8")  # noqa: SIM115 - closed below
    ended: set[int] = set()
    try:
        for row in ds.iter_rows():
            k = int(row["job"])
            if k in ended:
                continue                     # a file that failed already: its other windows
            job, src, entry = jobs[k]
            duration = float(row["duration"])
            if row["error"]:
                entry.update(result=Outcome.FAILED, reason=row["error"])
                if k in assemblies:
                    assemblies.pop(k).abandon()
            else:
                assembly = assemblies.get(k)
                if assembly is None:
                    assembly = assemblies[k] = _Assembly(
                        job, src, entry, pickle.loads(row["plan"]), bool(row["streamed"]),
                        store, subtype, duration)
                w = assembly.plan.windows[int(row["index"])]
                seg = np.frombuffer(row["segment"], np.float32).reshape(
                    int(row["channels"]), w.seg_stop - w.seg_start)
                try:
                    if not assembly.add(int(row["index"]), seg, float(row["seconds"])):
                        continue
                except AudioSRError as exc:
                    assembly.abandon()
                    entry.update(result=Outcome.FAILED, reason=str(exc))
                del assemblies[k]
            ended.add(k)
            if entry["result"] == Outcome.FAILED:
                bar.write(f"audiosr-plug: error: {src}: {entry['reason']}", file=sys.stderr)
            else:
                done_audio += duration
                run.audio_seconds += duration
            if manifest is not None:
                manifest.write(json.dumps(_manifest_line(entry, duration)) + "\n")
                manifest.flush()
            if on_file is not None:
                on_file(entry)
            tick(done_audio)
    finally:
        for assembly in assemblies.values():
            assembly.abandon()
        bar.close()
        if manifest is not None:
            manifest.close()


def _manifest_line(entry: dict, duration: float) -> dict:
    """One line of the results manifest."""
    return {"input": entry["input"], "output": entry["output"], "status": str(entry["result"]),
            "reason": entry.get("reason"), "duration_s": round(duration, 4),
            "detected_band_hz": entry.get("cutoff_hz"),
            "channel_status": [str(s) for s in entry.get("status", [])],
            "seconds": entry.get("seconds")}


def _write_hf_dataset(hf: tuple[str, str], plan: JobPlan, sources: dict[int, _Source], out: str,
                      run: DatasetRun, rate: int = SAMPLE_RATE) -> None:
    """``OUTDIR/dataset``: the input dataset with its audio column replaced by the enhanced
    files at ``rate`` Hz (rows that failed keep no audio: ``None``), written atomically."""
    import datasets

    ds = _hf_dataset(*hf)
    column = hf[1]
    by_index = {sources[k].index: job.output for k, job in enumerate(plan.jobs)
                if sources[k].kind == "hf"}
    results = {e["output"]: e["result"] for e in run.files}
    cells = []
    for i in range(len(ds)):
        target = by_index.get(i)
        ok = target is not None and results.get(os.fspath(target)) in (Outcome.PROCESSED,
                                                                       Outcome.SKIPPED)
        cells.append({"bytes": Path(target).read_bytes(), "path": Path(target).name}
                     if ok else None)
    new = ds.remove_columns(column).add_column(column, cells)
    new = new.cast_column(column, datasets.Audio(sampling_rate=rate, decode=False))
    dest = Path(out) / HF_DATASET_DIR
    if dest.exists():
        shutil.rmtree(dest)
    with atomic.atomic_folder(dest) as tmp:
        new.save_to_disk(os.fspath(tmp))


def iter_manifest(path: str | os.PathLike[str]) -> Iterable[dict]:
    """The lines of a results manifest (``manifest.jsonl``), oldest first."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)
