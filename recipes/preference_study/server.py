"""The listening-test web app: blind A/B trials (plus optional 1-5 ratings) for invited raters.

Flask app served by waitress (threaded); SQLite (WAL) with one connection per request. Raters
reach everything through their invite URL ``/r/<token>``; audio is served by opaque per-trial
keys from the bundle only, so neither URLs nor pages reveal which clip is which.

    python -m recipes.preference_study serve BUNDLE [--db DB] [--host 127.0.0.1] [--port 8000]
"""

from __future__ import annotations

import argparse
import re
import signal
import sqlite3
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, abort, g, jsonify, redirect, render_template, request, send_file

from . import db
from .trials import StudyError, StudyItem, load_study_items

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
KEY_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
CHOICES = ("A", "B", "same")
RATING_LABELS = {1: "Bad", 2: "Poor", 3: "Fair", 4: "Good", 5: "Excellent"}
PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass
class Study:
    """What the app serves: the bundle's items and the database path."""

    items: dict[str, StudyItem]
    db_path: Path


def create_app(bundle_dir: str | Path, db_path: str | Path | None = None) -> Flask:
    """The Flask app for a bundle and its database (made by ``invite``). Raises StudyError."""
    items, sha = load_study_items(bundle_dir)
    db_path = Path(db_path) if db_path is not None else db.default_db_path(bundle_dir)
    db.open_existing(db_path, sha).close()
    study = Study(items={it.id: it for it in items}, db_path=db_path)
    app = Flask(__name__, template_folder=str(PACKAGE_DIR / "templates"),
                static_folder=str(PACKAGE_DIR / "static"), static_url_path="/static")
    app.config["STUDY"] = study
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024
    _register(app, study)
    return app


def _conn() -> sqlite3.Connection:
    if "db" not in g:
        g.db = db.connect(g.study.db_path)
    return g.db


def _json_error(status: int, message: str, **extra: object) -> Response:
    resp = jsonify(error=message, status=status, **extra)
    resp.status_code = status
    return resp


def _wants_json() -> bool:
    return request.is_json or request.accept_mimetypes.best == "application/json"


def _rater(token: str, *, api: bool = False) -> sqlite3.Row:
    row = db.rater_by_token(_conn(), token) if TOKEN_RE.match(token) else None
    if row is None:
        msg = "unknown or invalid invite token; use the exact link you were given"
        if api:
            abort(_json_error(403, msg))
        abort(Response(render_template("message.html", title="Link not valid", message=msg),
                       status=403))
    return row


def _next_url(token: str, trials: Sequence, answered: set[int]) -> str:
    for t in trials:
        if t.index not in answered:
            return f"/r/{token}/trial/{t.index}"
    return f"/r/{token}/done"


def _parse_answer(kind: str) -> dict[str, object]:
    """The answer fields from a JSON object or a form; aborts with 400 on anything malformed."""
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            abort(_json_error(400, 'the body must be a JSON object such as {"choice": "A"} '
                                   'or {"rating": 4}'))
    else:
        data = request.form.to_dict()
    if kind == "mos":
        rating = data.get("rating")
        if isinstance(rating, str) and re.fullmatch(r"\s*[1-5]\s*", rating):
            rating = int(rating)
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            abort(_json_error(400, "this trial needs a rating: an integer from 1 to 5 "
                                   f"(got {data.get('rating')!r})"))
        return {"rating": rating}
    choice = data.get("choice")
    if choice not in CHOICES:
        abort(_json_error(400, 'this trial needs a choice: "A", "B" or "same" '
                               f"(got {choice!r})"))
    return {"choice": choice}


def _register(app: Flask, study: Study) -> None:
    """The routes and request hooks."""
    @app.before_request
    def _attach() -> None:
        g.study = study

    @app.teardown_appcontext
    def _close(_exc: BaseException | None) -> None:
        conn = g.pop("db", None)
        if conn is not None:
            conn.close()

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Content-Security-Policy"] = (
            "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
        if not resp.mimetype.startswith("audio/") and request.endpoint != "static":
            resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.errorhandler(404)
    def _not_found(_e: Exception) -> tuple[Response | str, int]:
        if request.path.startswith("/r/") and ("/audio/" in request.path or _wants_json()
                                               or request.method == "POST"):
            return _json_error(404, "not found"), 404
        return render_template("message.html", title="Not found",
                               message="This page does not exist."), 404

    @app.errorhandler(405)
    def _bad_method(_e: Exception) -> tuple[Response, int]:
        return _json_error(405, f"method {request.method} is not allowed here"), 405

    @app.errorhandler(413)
    def _too_large(_e: Exception) -> tuple[Response, int]:
        return _json_error(413, "the answer is too large"), 413

    @app.get("/")
    def index() -> str:
        return render_template("message.html", title="Listening test",
                               message="This test is by invitation. Please open the personal "
                                       "link you were given.")

    @app.get("/healthz")
    def healthz() -> Response:
        _conn().execute("SELECT 1")
        return jsonify(ok=True)

    @app.get("/r/<token>")
    def start(token: str) -> Response | str:
        rater = _rater(token)
        conn = _conn()
        trials = db.trials_of(conn, rater["rater_id"])
        answered = db.answered_indices(conn, rater["rater_id"])
        if not answered:
            return instructions(token)
        return redirect(_next_url(token, trials, answered), code=303)

    @app.get("/r/<token>/instructions")
    def instructions(token: str) -> str:
        rater = _rater(token)
        conn = _conn()
        trials = db.trials_of(conn, rater["rater_id"])
        answered = db.answered_indices(conn, rater["rater_id"])
        return render_template("instructions.html", total=len(trials),
                               has_mos=any(t.kind == "mos" for t in trials),
                               has_ab=any(t.kind != "mos" for t in trials),
                               next_url=_next_url(token, trials, answered),
                               started=bool(answered))

    @app.get("/r/<token>/trial/<int:index>")
    def trial_page(token: str, index: int) -> Response | str:
        rater = _rater(token)
        conn = _conn()
        rid = rater["rater_id"]
        trials = db.trials_of(conn, rid)
        answered = db.answered_indices(conn, rid)
        if not 1 <= index <= len(trials):
            abort(404)
        nxt = _next_url(token, trials, answered)
        if nxt != f"/r/{token}/trial/{index}":  # answered already, or ahead of the first open one
            return redirect(nxt, code=303)
        trial = trials[index - 1]
        keys = conn.execute("SELECT key_a, key_b FROM trials WHERE rater_id = ? AND "
                            "trial_index = ?", (rid, index)).fetchone()
        item = study.items.get(trial.item_id)
        return render_template(
            "trial.html", trial=trial, total=len(trials), done=len(answered),
            prompt=item.prompt if item else "", action=f"/r/{token}/trial/{index}/answer",
            audio_a=f"/r/{token}/audio/{keys['key_a']}",
            audio_b=f"/r/{token}/audio/{keys['key_b']}" if keys["key_b"] else None,
            instructions_url=f"/r/{token}/instructions", rating_labels=RATING_LABELS)

    @app.post("/r/<token>/trial/<int:index>/answer")
    def answer(token: str, index: int) -> Response:
        rater = _rater(token, api=True)
        conn = _conn()
        rid = rater["rater_id"]
        row = conn.execute("SELECT kind FROM trials WHERE rater_id = ? AND trial_index = ?",
                           (rid, index)).fetchone()
        if row is None:
            return _json_error(404, f"trial {index} does not exist for this rater")
        fields = _parse_answer(row["kind"])
        stored = db.record_answer(conn, rid, index, **fields)
        trials = db.trials_of(conn, rid)
        answered = db.answered_indices(conn, rid)
        nxt = _next_url(token, trials, answered)
        if not stored:
            if not _wants_json() and request.form:
                return redirect(nxt, code=303)
            return _json_error(409, f"trial {index} was already answered; an answer cannot be "
                                    "changed", next=nxt)
        if not request.is_json:
            return redirect(nxt, code=303)
        resp = jsonify(ok=True, trial=index, answered=len(answered), total=len(trials), next=nxt)
        resp.status_code = 201
        return resp

    @app.get("/r/<token>/audio/<key>")
    def audio(token: str, key: str) -> Response:
        rater = _rater(token, api=True)
        if not KEY_RE.match(key):
            abort(404)
        row = _conn().execute(
            "SELECT kind, item_id, condition_a, condition_b, condition, key_a, key_b "
            "FROM trials WHERE rater_id = ? AND (key_a = ? OR key_b = ?)",
            (rater["rater_id"], key, key)).fetchone()
        if row is None:
            abort(404)
        if row["kind"] == "mos":
            condition = row["condition"]
        else:
            condition = row["condition_a"] if key == row["key_a"] else row["condition_b"]
        item = study.items.get(row["item_id"])
        if item is None:
            abort(404)
        resp = send_file(item.paths[condition], mimetype="audio/wav", conditional=True,
                         etag=False, max_age=0)
        # neither the file name nor its time may reach the rater: both could tell the clips apart
        resp.headers.pop("Content-Disposition", None)
        resp.headers.pop("Last-Modified", None)
        resp.headers["Cache-Control"] = "private, no-cache"
        return resp

    @app.get("/r/<token>/done")
    def done(token: str) -> Response | str:
        rater = _rater(token)
        conn = _conn()
        trials = db.trials_of(conn, rater["rater_id"])
        answered = db.answered_indices(conn, rater["rater_id"])
        nxt = _next_url(token, trials, answered)
        if nxt != f"/r/{token}/done":
            return redirect(nxt, code=303)
        return render_template("done.html", total=len(trials), code=rater["completion_code"])


class RunningServer:
    """A waitress server on a background thread (for tests and embedding); ``stop()`` ends it."""

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0, threads: int = 8):
        from waitress import create_server

        self.server = create_server(app, host=host, port=port, threads=threads,
                                    ident="preference-study")
        self.host = host
        self.port = int(self.server.effective_port)
        self.thread = threading.Thread(target=self.server.run, name="study-server", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """Base URL without a trailing slash."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout_s: float = 10.0) -> None:
        """Close the listening socket and connections from inside the server's own loop (which
        then ends), let running tasks finish, join the thread."""
        from waitress import wasyncore

        if self.thread.is_alive():
            self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self.server._map))
            self.thread.join(timeout_s)
        self.server.task_dispatcher.shutdown()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m recipes.preference_study serve",
        description="Serve the blind listening test for a study bundle. Raters open the "
                    "personal links printed by `invite`.")
    p.add_argument("bundle", type=Path, help="study bundle folder (with manifest.json)")
    p.add_argument("--db", type=Path, default=None,
                   help=f"study database made by `invite` (default: BUNDLE/{db.DEFAULT_DB_NAME})")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1, this machine only; use 0.0.0.0 "
                        "behind a reverse proxy to accept remote raters)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free)")
    p.add_argument("--threads", type=int, default=8, help="worker threads (default 8)")
    return p


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: serve until Ctrl-C. Returns an exit code."""
    args = _parser().parse_args(argv)
    if not 0 <= args.port <= 65535 or args.threads < 1:
        print("error: --port must be 0..65535 and --threads >= 1", file=sys.stderr)
        return 2
    try:
        app = create_app(args.bundle, args.db)
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from waitress import create_server

    try:
        server = create_server(app, host=args.host, port=args.port, threads=args.threads,
                               ident="preference-study")
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); "
              "choose another --port.", file=sys.stderr)
        return 2
    host = f"[{args.host}]" if ":" in args.host else args.host
    conn = db.connect(app.config["STUDY"].db_path)
    try:
        raters = db.all_raters(conn)
    finally:
        conn.close()
    print(f"Serving the study at http://{host}:{server.effective_port}/ "
          f"({len(raters)} invited raters, {sum(r['n_answers'] for r in raters)} answers so far)",
          flush=True)
    print("Raters open their links from `invite` (/r/<token>). Press Ctrl-C to stop.", flush=True)
    if threading.current_thread() is threading.main_thread():  # stop on SIGTERM as on Ctrl-C
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    print("Server stopped; all answers are in the database.", flush=True)
    return 0
