"""Export the stored answers as the answers CSV of the study contract (read by ``analyse``).

    python -m recipes.preference_study export BUNDLE -o answers.csv
"""

from __future__ import annotations

import argparse
import csv
import io
import sqlite3
import sys
from collections.abc import Iterable
from pathlib import Path

from audiosr_core import atomic

from . import db
from .trials import StudyError

COLUMNS = ("rater_id", "trial_index", "kind", "item_id", "generator", "condition_a",
           "condition_b", "choice", "preferred", "passed", "condition", "rating", "submitted_at")


def answer_record(row: sqlite3.Row) -> dict[str, str]:
    """One CSV row (all strings; empty where a field does not apply to the trial kind)."""
    out = {c: "" for c in COLUMNS}
    for c in ("rater_id", "trial_index", "kind", "item_id", "generator", "submitted_at"):
        out[c] = str(row[c])
    kind = row["kind"]
    if kind in ("ab", "attention"):
        out["condition_a"], out["condition_b"], out["choice"] = (
            row["condition_a"], row["condition_b"], row["choice"])
        if kind == "ab":
            out["preferred"] = {"A": row["condition_a"], "B": row["condition_b"],
                                "same": "no_difference"}[row["choice"]]
        else:
            out["passed"] = "1" if row["choice"] == "same" else "0"
    else:
        out["condition"], out["rating"] = row["condition"], str(row["rating"])
    return out


def answers_csv(rows: Iterable[sqlite3.Row]) -> str:
    """The CSV text (header + one line per answer)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(answer_record(row))
    return buf.getvalue()


def write_text_atomic(path: Path, text: str, *, force: bool) -> None:
    """Write via a temporary file + rename; refuse to replace an existing file unless ``force``."""
    if path.exists() and not force:
        raise StudyError(f"{path} already exists; pass --force to replace it.")
    if path.exists() and path.is_dir():
        raise StudyError(f"{path} is a folder; give a file name.")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, text)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m recipes.preference_study export",
        description="Write every stored answer to a CSV (one row per answer; the format "
                    "`analyse` reads). Safe to run while the server is running.")
    p.add_argument("bundle", type=Path, help="study bundle folder (locates the default database)")
    p.add_argument("-o", "--out", type=Path, required=True, help="CSV file to write ('-' = stdout)")
    p.add_argument("--db", type=Path, default=None,
                   help=f"study database (default BUNDLE/{db.DEFAULT_DB_NAME})")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point. Returns an exit code."""
    args = _parser().parse_args(argv)
    db_path = args.db if args.db is not None else db.default_db_path(args.bundle)
    try:
        conn = db.open_existing(db_path)
        try:
            rows = db.answer_rows(conn)
            n_raters = len({r["rater_id"] for r in rows})
        finally:
            conn.close()
        text = answers_csv(rows)
        if str(args.out) == "-":
            sys.stdout.write(text)
        else:
            write_text_atomic(args.out, text, force=args.force)
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    where = "stdout" if str(args.out) == "-" else str(args.out)
    print(f"Wrote {len(rows)} answers from {n_raters} raters to {where}.", file=sys.stderr)
    return 0
