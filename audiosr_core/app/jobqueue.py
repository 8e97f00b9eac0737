"""The app's jobs: one FIFO queue and one worker thread per model, old jobs cleaned away.

A job is addressed by a random id only (:data:`JOB_ID`); its files live in its own folder
under the queue's root, which the server chose. Each model has a *lane*: a worker thread
that runs that model's jobs one at a time, in the order they came, so a model is never
used by two jobs at once and is loaded only once (by the function the queue is given).
Jobs of different models run side by side.

Finished jobs are kept for :attr:`JobQueue.max_age_s` seconds and at most
:attr:`JobQueue.keep` of them; older ones, their files included, are removed.

Example
-------
>>> q = JobQueue(root, run=lambda job, report: ({"ok": True}, {}))  # doctest: +SKIP
>>> job = q.create("lite", "song.wav", settings={})                # doctest: +SKIP
>>> q.submit(job); q.status(job.id)["state"]                       # doctest: +SKIP
'queued'
"""

from __future__ import annotations

import re
import secrets
import shutil
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

__all__ = ["JOB_ID", "JobState", "Job", "Reporter", "RunOutput", "JobQueue", "JobFailed",
           "QueueFull"]

JOB_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
"""What a job id looks like (``secrets.token_urlsafe(16)``); anything else is unknown."""


class JobState(str, Enum):
    """Where a job is."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


class JobFailed(Exception):
    """A job that cannot finish, with the message to show (raised by the run function)."""


class QueueFull(Exception):
    """Too many jobs are waiting already (:attr:`JobQueue.max_pending`)."""


@dataclass
class Job:
    """One upload and what became of it. Fields change under the queue's lock only."""

    id: str
    folder: Path
    model: str
    source_name: str
    settings: dict[str, Any]
    state: JobState = JobState.QUEUED
    stage: str = "waiting for the model"
    fraction: float | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    files: dict[str, Path] = field(default_factory=dict)
    """The job's files by role (server side only; the page names roles, never paths)."""
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None


Reporter = Callable[..., None]
"""``report(stage=..., fraction=...)``: what a running job tells the queue."""
RunOutput = tuple[dict[str, Any], dict[str, Path]]
"""What a run function returns: the result for the page and the job's files by role."""


@dataclass
class _Lane:
    pending: deque[Job] = field(default_factory=deque)
    thread: threading.Thread | None = None


class JobQueue:
    """Jobs by id, a FIFO lane per model, cleanup of old jobs.

    Parameters
    ----------
    root : Path
        Folder holding one sub-folder per job (the server's own temporary folder).
    run : callable
        ``run(job, report) -> (result, files)``, called in the model's worker thread: a
        JSON-ready result for the page and the job's files by role. Raise
        :class:`JobFailed` (or any exception) to fail the job with a message.
    keep : int
        Finished jobs kept at most.
    max_age_s : float
        Finished jobs older than this are removed.
    max_pending : int
        Jobs waiting at most (all models together); :meth:`submit` refuses more.
    """

    def __init__(self, root: Path, run: Callable[[Job, Reporter], RunOutput],
                 keep: int = 20, max_age_s: float = 3600.0, max_pending: int = 50) -> None:
        self.root = Path(root)
        self.keep = keep
        self.max_age_s = max_age_s
        self.max_pending = max_pending
        self._run = run
        self._jobs: dict[str, Job] = {}
        self._lanes: dict[str, _Lane] = {}
        self._cond = threading.Condition()
        self._closed = False

    # ------------------------------------------------------------------------- public
    def discard(self, job: Job) -> None:
        """Remove the folder of a job that was created but will not be submitted."""
        shutil.rmtree(job.folder, ignore_errors=True)

    def create(self, model: str, source_name: str, settings: dict[str, Any]) -> Job:
        """A new job with a fresh id and an empty folder (not queued yet: :meth:`submit`)."""
        job_id = secrets.token_urlsafe(16)
        folder = self.root / job_id
        folder.mkdir(parents=True)
        return Job(job_id, folder, model, source_name, dict(settings))

    def submit(self, job: Job) -> None:
        """Queue ``job`` at the end of its model's lane (starting the lane's worker).

        Raises
        ------
        QueueFull
            :attr:`max_pending` jobs are waiting already (the job's folder is removed).
        """
        with self._cond:
            if self._closed:
                raise RuntimeError("the job queue is closed")
            if sum(len(lane.pending) for lane in self._lanes.values()) >= self.max_pending:
                shutil.rmtree(job.folder, ignore_errors=True)
                raise QueueFull(f"{self.max_pending} jobs are waiting already; try again when "
                                "some are done")
            self._jobs[job.id] = job
            lane = self._lanes.setdefault(job.model, _Lane())
            lane.pending.append(job)
            if lane.thread is None:
                lane.thread = threading.Thread(target=self._work, args=(job.model,),
                                               name=f"audiosr-app-{job.model}", daemon=True)
                lane.thread.start()
            self._cond.notify_all()
        self.prune()

    def get(self, job_id: str) -> Job | None:
        """The job with this id, or None (also for anything that is not an id)."""
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            return None
        with self._cond:
            return self._jobs.get(job_id)

    def status(self, job_id: str) -> dict[str, Any] | None:
        """A JSON-ready snapshot of a job, or None when unknown."""
        self.prune()
        job = self.get(job_id)
        if job is None:
            return None
        with self._cond:
            out: dict[str, Any] = {
                "id": job.id, "state": str(job.state), "model": job.model,
                "filename": job.source_name, "stage": job.stage, "fraction": job.fraction,
                "error": job.error, "result": job.result,
                "position": None, "queue_length": None,
            }
            if job.state is JobState.QUEUED:
                pending = self._lanes[job.model].pending
                out["position"] = pending.index(job) + 1
                out["queue_length"] = len(pending)
            if job.started is not None:
                out["waited_s"] = round(job.started - job.created, 3)
            if job.finished is not None and job.started is not None:
                out["seconds"] = round(job.finished - job.started, 3)
        return out

    def prune(self, now: float | None = None) -> list[str]:
        """Remove finished jobs beyond :attr:`keep` or older than :attr:`max_age_s`, files
        included; returns their ids."""
        now = time.time() if now is None else now
        with self._cond:
            finished = sorted((j for j in self._jobs.values() if j.finished is not None),
                              key=lambda j: j.finished, reverse=True)
            gone = [j for i, j in enumerate(finished)
                    if i >= self.keep or now - j.finished > self.max_age_s]
            for job in gone:
                del self._jobs[job.id]
        for job in gone:
            shutil.rmtree(job.folder, ignore_errors=True)
        return [j.id for j in gone]

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the workers once their current job is done; queued jobs are dropped."""
        with self._cond:
            self._closed = True
            threads = [lane.thread for lane in self._lanes.values() if lane.thread]
            self._cond.notify_all()
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout_s)

    # ------------------------------------------------------------------------ workers
    def _next(self, model: str) -> Job | None:
        with self._cond:
            lane = self._lanes[model]
            while not lane.pending and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            job = lane.pending.popleft()
            job.state, job.started, job.stage = JobState.RUNNING, time.time(), "starting"
            return job

    def _work(self, model: str) -> None:
        while (job := self._next(model)) is not None:
            self._execute(job)

    def _report(self, job: Job) -> Reporter:
        def report(**changes: Any) -> None:
            with self._cond:
                for name in ("stage", "fraction"):
                    if name in changes:
                        setattr(job, name, changes[name])
        return report

    def _execute(self, job: Job) -> None:
        try:
            result, files = self._run(job, self._report(job))
        except JobFailed as exc:
            self._finish(job, JobState.FAILED, error=str(exc))
        except Exception as exc:  # one job's bug must not stop the lane
            traceback.print_exc(file=sys.stderr)
            self._finish(job, JobState.FAILED,
                         error=f"internal error ({type(exc).__name__}: {exc}); see the "
                               "server's console")
        else:
            self._finish(job, JobState.DONE, result=result, files=files)

    def _finish(self, job: Job, state: JobState, **fields_: Any) -> None:
        with self._cond:
            job.state, job.finished = state, time.time()
            job.stage = "done" if state is JobState.DONE else "failed"
            job.fraction = 1.0 if state is JobState.DONE else job.fraction
            for name, value in fields_.items():
                setattr(job, name, value)
        self.prune()
