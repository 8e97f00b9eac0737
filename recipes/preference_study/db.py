"""The study database: SQLite in WAL mode, one connection per thread/request.

Tables: ``meta`` (format, bundle fingerprint, study settings), ``raters`` (opaque id, invite token,
seed, completion code), ``trials`` (each rater's stored plan, with opaque per-side audio keys) and
``answers`` (UNIQUE(rater_id, trial_index): an answer is stored once and never replaced).
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from .trials import StudyError, StudyItem, Trial, make_plan

DB_FORMAT = "audiosr-plug-study-db/1"
DEFAULT_DB_NAME = "responses.sqlite3"
BUSY_TIMEOUT_S = 30.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS raters (
    rater_id TEXT PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    seed INTEGER NOT NULL,
    completion_code TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    rater_id TEXT NOT NULL REFERENCES raters(rater_id),
    trial_index INTEGER NOT NULL CHECK (trial_index >= 1),
    kind TEXT NOT NULL CHECK (kind IN ('ab', 'attention', 'mos')),
    item_id TEXT NOT NULL,
    generator TEXT NOT NULL,
    condition_a TEXT,
    condition_b TEXT,
    condition TEXT,
    key_a TEXT NOT NULL UNIQUE,
    key_b TEXT UNIQUE,
    PRIMARY KEY (rater_id, trial_index)
);
CREATE TABLE IF NOT EXISTS answers (
    rater_id TEXT NOT NULL,
    trial_index INTEGER NOT NULL,
    choice TEXT CHECK (choice IS NULL OR choice IN ('A', 'B', 'same')),
    rating INTEGER CHECK (rating IS NULL OR rating BETWEEN 1 AND 5),
    submitted_at TEXT NOT NULL,
    UNIQUE (rater_id, trial_index),
    FOREIGN KEY (rater_id, trial_index) REFERENCES trials(rater_id, trial_index)
);
"""


def utc_now() -> str:
    """The current time as ISO-8601 UTC with a ``Z`` suffix (millisecond precision)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def default_db_path(bundle_dir: str | Path) -> Path:
    """Where the study's database lives unless --db says otherwise: beside the manifest."""
    return Path(bundle_dir) / DEFAULT_DB_NAME


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection in autocommit mode (use :func:`transaction`), WAL, busy timeout, FK checks.

    One connection per thread: never share it between threads."""
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = FULL")  # an acknowledged answer survives a crash
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): takes the write lock up front."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def create_or_check(path: str | Path, bundle_sha256: str) -> sqlite3.Connection:
    """Open (creating if needed) the database for a bundle; refuse one made for another bundle."""
    if Path(path).is_file() and Path(path).stat().st_size > 0:
        return open_existing(path, bundle_sha256)  # never add tables to someone else's file
    conn = connect(path)
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(SCHEMA)  # idempotent (IF NOT EXISTS)
    with transaction(conn):
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (DB_FORMAT,))
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('bundle_sha256', ?)", (bundle_sha256,))
    _check_meta(conn, path, bundle_sha256)
    return conn


def open_existing(path: str | Path, bundle_sha256: str | None = None) -> sqlite3.Connection:
    """Open a database created by ``invite``; raise StudyError if missing or for another bundle."""
    if not Path(path).is_file():
        raise StudyError(f"no study database at {path}; create invite links first: "
                         "python -m recipes.preference_study invite BUNDLE --n 10")
    conn = connect(path)
    try:
        _check_meta(conn, path, bundle_sha256)
    except BaseException:
        conn.close()
        raise
    return conn


def _check_meta(conn: sqlite3.Connection, path: str | Path, bundle_sha256: str | None) -> None:
    try:
        meta = get_meta(conn)
    except sqlite3.DatabaseError as exc:
        raise StudyError(f"{path} is not a study database ({exc}).") from exc
    if meta.get("format") != DB_FORMAT:
        raise StudyError(f"{path} is not a study database (format {meta.get('format')!r}, "
                         f"expected {DB_FORMAT!r}).")
    if bundle_sha256 is not None and meta.get("bundle_sha256") != bundle_sha256:
        raise StudyError(f"{path} was created for a different bundle (its manifest.json has "
                         "changed since the invites were made); use the original bundle or a "
                         "new --db.")


def get_meta(conn: sqlite3.Connection) -> dict[str, str]:
    """All meta key/values."""
    return {r["key"]: r["value"] for r in conn.execute("SELECT key, value FROM meta")}


def study_settings(conn: sqlite3.Connection, mos: bool | None,
                   attention_checks: int | None) -> tuple[bool, int]:
    """The study's settings: fixed by the first invite, defaults (no MOS, 2 checks) otherwise.

    Later invites inherit them; asking for different values raises StudyError so all raters of
    one study get comparable plans."""
    meta = get_meta(conn)
    if "mos" in meta:
        stored = (meta["mos"] == "1", int(meta["attention_checks"]))
        asked = (stored[0] if mos is None else mos,
                 stored[1] if attention_checks is None else attention_checks)
        if asked != stored:
            raise StudyError(f"this study's settings are fixed by its first invite: "
                             f"mos={stored[0]}, attention_checks={stored[1]}; "
                             "use a new --db for other settings.")
        return stored
    settings = (bool(mos), 2 if attention_checks is None else int(attention_checks))
    if settings[1] < 0:
        raise StudyError(f"--attention-checks must be >= 0, got {settings[1]}.")
    with transaction(conn):
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('mos', ?)", ("1" if settings[0] else "0",))
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('attention_checks', ?)",
                     (str(settings[1]),))
    return study_settings(conn, mos, attention_checks)


def add_raters(conn: sqlite3.Connection, items: Sequence[StudyItem], n: int, *, mos: bool,
               attention_checks: int) -> list[tuple[str, str]]:
    """Create ``n`` raters with unguessable invite tokens and their stored trial plans.

    Returns [(rater_id, token)]. Everything happens in one transaction."""
    created = []
    with transaction(conn):
        for _ in range(n):
            rater_id = "r-" + secrets.token_hex(5)
            token = secrets.token_urlsafe(24)
            seed = secrets.randbits(63)
            conn.execute("INSERT INTO raters VALUES (?, ?, ?, ?, ?)",
                         (rater_id, token, seed, secrets.token_hex(4).upper(), utc_now()))
            for t in make_plan(items, seed, mos=mos, attention_checks=attention_checks):
                key_b = None if t.kind == "mos" else secrets.token_urlsafe(16)
                conn.execute("INSERT INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (rater_id, t.index, t.kind, t.item_id, t.generator, t.condition_a,
                              t.condition_b, t.condition, secrets.token_urlsafe(16), key_b))
            created.append((rater_id, token))
    return created


def rater_by_token(conn: sqlite3.Connection, token: str) -> sqlite3.Row | None:
    """The raters row for an invite token, or None."""
    return conn.execute("SELECT * FROM raters WHERE token = ?", (token,)).fetchone()


def trials_of(conn: sqlite3.Connection, rater_id: str) -> list[Trial]:
    """A rater's stored plan in trial order."""
    rows = conn.execute("SELECT * FROM trials WHERE rater_id = ? ORDER BY trial_index",
                        (rater_id,))
    return [Trial(r["trial_index"], r["kind"], r["item_id"], r["generator"], r["condition_a"],
                  r["condition_b"], r["condition"]) for r in rows]


def answered_indices(conn: sqlite3.Connection, rater_id: str) -> set[int]:
    """Trial indices the rater has answered."""
    rows = conn.execute("SELECT trial_index FROM answers WHERE rater_id = ?", (rater_id,))
    return {r[0] for r in rows}


def record_answer(conn: sqlite3.Connection, rater_id: str, trial_index: int, *,
                  choice: str | None = None, rating: int | None = None) -> bool:
    """Store an answer; False if this trial was already answered (nothing is changed)."""
    try:
        with transaction(conn):
            conn.execute("INSERT INTO answers VALUES (?, ?, ?, ?, ?)",
                         (rater_id, trial_index, choice, rating, utc_now()))
    except sqlite3.IntegrityError as exc:
        if "UNIQUE" in str(exc):
            return False
        raise
    return True


def answer_rows(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Every stored answer joined with its trial, ordered by rater and trial."""
    return conn.execute(
        "SELECT a.rater_id, a.trial_index, t.kind, t.item_id, t.generator, t.condition_a, "
        "t.condition_b, t.condition, a.choice, a.rating, a.submitted_at "
        "FROM answers a JOIN trials t USING (rater_id, trial_index) "
        "ORDER BY a.rater_id, a.trial_index").fetchall()


def all_raters(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """raters rows with their answer counts, in creation order."""
    return conn.execute(
        "SELECT r.*, (SELECT COUNT(*) FROM answers a WHERE a.rater_id = r.rater_id) AS n_answers, "
        "(SELECT COUNT(*) FROM trials t WHERE t.rater_id = r.rater_id) AS n_trials "
        "FROM raters r ORDER BY r.created_at, r.rater_id").fetchall()
