"""The app's Flask routes: one page, a JSON API for jobs, their audio and pictures.

Routes
------
``GET /``                                   the page
``GET /api/config``                         models, options and limits (JSON)
``POST /api/jobs``                          upload (multipart: ``audio`` + settings) -> 202
``GET /api/jobs/<id>``                      status: queued (position) / running / done / failed
``GET /api/jobs/<id>/audio/<before|after>`` the upload (or a WAV copy) and the result
``GET /api/jobs/<id>/spectrogram/<before|after>.png``
``GET /api/jobs/<id>/download``             the result as ``<stem>_48k.wav``

Jobs are found by id in memory only; the files they name were chosen by the server. Every
``/api/`` error is JSON ``{"error": message, "status": code}``.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, abort, jsonify, render_template, request, send_file
from werkzeug.exceptions import HTTPException

from .. import __version__
from ..rates import SAMPLE_RATE
from ..spectrogram import COLOUR_STOPS
from .catalogue import ModelChoice, output_rates
from .jobqueue import JobQueue, JobState, QueueFull
from .processing import FORMATS, JobRunner, ModelCache, input_file
from .spectrogram import DB_RANGE

__all__ = ["AppState", "build_app", "REQUEST_HEADER", "LOCAL_HOSTS"]

PACKAGE_DIR = Path(__file__).resolve().parent
REQUEST_HEADER = ("X-Requested-With", "audiosr-plug-app")
"""Header every POST must carry: a page of another site cannot send it without a CORS
preflight, which this server never answers, so it cannot queue jobs here."""
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""Host names a local-only app answers to (a DNS-rebinding page has another)."""
STEPS_RANGE = (1, 500)
GUIDANCE_RANGE = (0.0, 20.0)
SEED_MAX = 2**32 - 1
ROLES = ("before", "after")


@dataclass
class AppState:
    """What one app run holds: models, jobs, the temporary work folder."""

    choices: dict[str, ModelChoice]
    selected: str
    queue: JobQueue
    max_upload_bytes: int
    local_only: bool
    work: tempfile.TemporaryDirectory | None = None
    rates: tuple[int, ...] = field(default_factory=output_rates)

    def close(self) -> None:
        """Stop the workers and delete every job's files."""
        self.queue.close()
        if self.work is not None:
            self.work.cleanup()
        else:
            shutil.rmtree(self.queue.root, ignore_errors=True)

    def config(self) -> dict[str, Any]:
        """What the page needs to know (no server paths)."""
        return {"models": [c.to_json() for c in self.choices.values()],
                "selected": self.selected, "formats": list(FORMATS),
                "output_rates": list(self.rates), "max_upload_bytes": self.max_upload_bytes,
                "steps": {"default": 50, "min": STEPS_RANGE[0], "max": STEPS_RANGE[1]},
                "guidance_scale": {"default": 3.5, "min": GUIDANCE_RANGE[0],
                                   "max": GUIDANCE_RANGE[1]},
                "seed": {"default": 42, "max": SEED_MAX},
                "db_range": list(DB_RANGE), "colours": [list(c) for _, c in COLOUR_STOPS],
                "version": __version__}


def build_app(choices: list[ModelChoice], selected: str, *, device: str | None,
              max_upload_bytes: int, local_only: bool, work_dir: Path | None, loader: Any,
              keep_jobs: int, max_age_s: float) -> Flask:
    """The Flask app (see :func:`audiosr_core.app.create_app` for the parameters)."""
    by_key = {c.key: c for c in choices}
    work = None
    if work_dir is None:
        work = tempfile.TemporaryDirectory(prefix="audiosr-plug-app-")
        work_dir = Path(work.name)
    runner = JobRunner(ModelCache(by_key, device, loader))
    queue = JobQueue(Path(work_dir), runner, keep=keep_jobs, max_age_s=max_age_s)
    state = AppState(by_key, selected, queue, int(max_upload_bytes), local_only, work)
    app = Flask(__name__, template_folder=str(PACKAGE_DIR / "templates"),
                static_folder=str(PACKAGE_DIR / "static"), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = state.max_upload_bytes
    app.extensions["audiosr_app"] = state
    _register_hooks(app, state)
    _register_pages(app, state)
    _register_jobs(app, state)
    return app


# ------------------------------------------------------------------------------ helpers
def _error(status: int, message: str) -> Response:
    resp = jsonify(error=message, status=status)
    resp.status_code = status
    return resp


def _megabytes(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n / 1024:.0f} KB"


def _number(form: Any, name: str, kind: type, low: float, high: float, default: Any) -> Any:
    text = str(form.get(name, "")).strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        abort(_error(400, f"{name.replace('_', ' ')} must be a number, got {text!r}"))
    if not low <= value <= high:
        abort(_error(400, f"{name.replace('_', ' ')} must lie between {low} and {high}, "
                          f"got {text}"))
    return value


def _settings(form: Any, state: AppState) -> tuple[str, dict[str, Any]]:
    """The model key and the job settings from the upload form (400 on anything wrong)."""
    model = str(form.get("model") or state.selected)
    if model not in state.choices:
        abort(_error(400, f"unknown model {model!r}; choose one of "
                          f"{', '.join(state.choices)}"))
    fmt = str(form.get("format") or "wav").lower()
    if fmt not in FORMATS:
        abort(_error(400, f"format must be one of {', '.join(FORMATS)}, got {fmt!r}"))
    rate = _number(form, "output_rate", int, 1, 10**6, SAMPLE_RATE)
    if rate not in state.rates:
        abort(_error(400, f"output rate {rate} Hz is not offered; choose one of "
                          f"{', '.join(map(str, state.rates))}"))
    settings = {"format": fmt, "output_rate": rate,
                "steps": _number(form, "steps", int, *STEPS_RANGE, 50),
                "guidance_scale": _number(form, "guidance_scale", float, *GUIDANCE_RANGE, 3.5),
                "seed": _number(form, "seed", int, 0, SEED_MAX, None)}
    return model, settings


def _job_or_404(state: AppState, job_id: str):
    job = state.queue.get(job_id)
    if job is None:
        abort(_error(404, "no such job (finished jobs are kept for a while, then removed; "
                          "enhance the file again)"))
    return job


def _finished_file(state: AppState, job_id: str, role: str) -> Path:
    """A done job's file by role (404 for a job that is not done or a role it lacks)."""
    job = _job_or_404(state, job_id)
    if job.state is not JobState.DONE:
        abort(_error(404, f"the job is {job.state}; its files exist once it is done"))
    path = job.files.get(role)
    if path is None or not path.is_file():
        abort(_error(404, "no such file for this job"))
    return path


def _with_urls(status: dict[str, Any]) -> dict[str, Any]:
    """A done job's status plus the URLs of its files."""
    if status["state"] == str(JobState.DONE):
        base = f"/api/jobs/{status['id']}"
        status["urls"] = {"download": f"{base}/download",
                          **{f"audio_{r}": f"{base}/audio/{r}" for r in ROLES},
                          **{f"spectrogram_{r}": f"{base}/spectrogram/{r}.png" for r in ROLES}}
    return status


# ------------------------------------------------------------------------------- routes
def _register_hooks(app: Flask, state: AppState) -> None:
    @app.before_request
    def _guard() -> Response | None:
        if state.local_only and urlsplit(f"//{request.host}").hostname not in LOCAL_HOSTS:
            return _error(403, f"this app answers on localhost only, not as {request.host!r}")
        if request.method == "POST" and request.headers.get(REQUEST_HEADER[0]) != \
                REQUEST_HEADER[1]:
            return _error(403, "requests must come from the app's own page")
        return None

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self'; media-src 'self' blob:; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
        if request.endpoint != "static":
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response | tuple[str, int]:
        code = exc.code or 500
        if code == 413:
            return _error(413, f"the file is larger than the {_megabytes(state.max_upload_bytes)}"
                               " upload limit; cut or compress it (FLAC is about half the size "
                               "of WAV), or restart the app with a larger --max-upload-mb")
        if request.path.startswith("/api/"):
            message = {404: "not found", 405: f"method {request.method} is not allowed here"}
            return _error(code, message.get(code, exc.description or exc.name))
        return render_template("message.html", title=f"{code} {exc.name}",
                               message=exc.description), code


def _register_pages(app: Flask, state: AppState) -> None:
    @app.get("/")
    def index() -> str:
        return render_template("index.html", config=state.config())

    @app.get("/api/config")
    def config() -> Response:
        return jsonify(state.config())


def _register_jobs(app: Flask, state: AppState) -> None:
    @app.post("/api/jobs")
    def submit() -> tuple[Response, int]:
        upload = request.files.get("audio")
        if upload is None or not upload.filename:
            return _error(400, "choose an audio file (or record one) first"), 400
        model, settings = _settings(request.form, state)
        job = state.queue.create(model, upload.filename, settings)
        try:
            upload.save(input_file(job.folder, job.source_name))
            state.queue.submit(job)
        except QueueFull as exc:
            return _error(503, str(exc)), 503
        except OSError as exc:
            state.queue.discard(job)
            return _error(507, f"the upload could not be stored on the server "
                               f"({exc.strerror or exc}); free some disk space"), 507
        return jsonify(id=job.id, status_url=f"/api/jobs/{job.id}"), 202

    @app.get("/api/jobs/<job_id>")
    def status(job_id: str) -> Response:
        snapshot = state.queue.status(job_id)
        if snapshot is None:
            _job_or_404(state, job_id)
        return jsonify(_with_urls(snapshot))

    @app.get("/api/jobs/<job_id>/audio/<role>")
    def audio(job_id: str, role: str) -> Response:
        if role not in ROLES:
            abort(_error(404, "not found"))
        resp = send_file(_finished_file(state, job_id, role), conditional=True, max_age=0)
        resp.headers.pop("Content-Disposition", None)
        return resp

    @app.get("/api/jobs/<job_id>/spectrogram/<role>.png")
    def spectrogram(job_id: str, role: str) -> Response:
        if role not in ROLES:
            abort(_error(404, "not found"))
        return send_file(_finished_file(state, job_id, f"{role}.png"), mimetype="image/png",
                         max_age=0)

    @app.get("/api/jobs/<job_id>/download")
    def download(job_id: str) -> Response:
        path = _finished_file(state, job_id, "after")
        job = _job_or_404(state, job_id)
        return send_file(path, as_attachment=True,
                         download_name=job.result["download_name"], max_age=0)
