"""Crowd-sourcing export: a CSV of rater links (one row per invite) and an MTurk task template.

    python -m recipes.preference_study crowd-export BUNDLE \
        --base-url https://study.example.org -o crowd/

Writes ``crowd_urls.csv`` (columns ``url,rater_id``: upload it as the batch input of an MTurk
project, or hand the links out on Prolific/any platform one per participant) and
``mturk_task.html`` (the task layout; MTurk fills ``${url}`` from the CSV's ``url`` column), and
``completion_codes.csv`` (for you, not for upload: each rater's completion code and progress, to
check the codes workers submit).
"""

from __future__ import annotations

import argparse
import csv
import html
import io
import sys
from pathlib import Path

from . import db
from .export import write_text_atomic
from .invite import normalise_base_url, rater_url
from .trials import StudyError

URLS_NAME = "crowd_urls.csv"
TEMPLATE_NAME = "mturk_task.html"
CODES_NAME = "completion_codes.csv"

TEMPLATE = """<!-- Listening test task layout for Amazon Mechanical Turk.
     MTurk replaces ${{url}} with the `url` column of {urls}. -->
<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form answer-format="flatten-objects">
  <h2>{title}</h2>
  <p>Listen to short audio clips and tell us which one sounds better. About {minutes} minutes;
     please use headphones in a quiet room.</p>
  <ol>
    <li>Open your personal test page: <a href="${{url}}" target="_blank"
        rel="noopener noreferrer">${{url}}</a> (opens in a new tab).</li>
    <li>Answer all {n_trials} trials. At the end the page shows a completion code.</li>
    <li>Paste the completion code here and submit.</li>
  </ol>
  <crowd-input name="completion_code" label="Completion code" required></crowd-input>
</crowd-form>
"""


def crowd_files(raters: list, base_url: str, *, title: str) -> tuple[str, str]:
    """(CSV text, HTML template text) for the given raters rows."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["url", "rater_id"])
    for r in raters:
        writer.writerow([rater_url(base_url, r["token"]), r["rater_id"]])
    n_trials = max((r["n_trials"] for r in raters), default=0)
    template = TEMPLATE.format(urls=URLS_NAME, title=html.escape(title), n_trials=n_trials,
                               minutes=max(1, round(n_trials * 0.75)))
    return buf.getvalue(), template


def codes_csv(raters: list) -> str:
    """CSV of rater_id, completion_code, answered, trials (for checking submitted codes)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["rater_id", "completion_code", "answered", "trials"])
    for r in raters:
        writer.writerow([r["rater_id"], r["completion_code"], r["n_answers"], r["n_trials"]])
    return buf.getvalue()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m recipes.preference_study crowd-export",
        description="Write the rater links as a CSV (one row per invite token) plus an MTurk "
                    "task template that links to the study, plus the raters' completion codes.")
    p.add_argument("bundle", type=Path, help="study bundle folder (locates the default database)")
    p.add_argument("--base-url", required=True,
                   help="public address where raters reach the server, e.g. "
                        "https://study.example.org")
    p.add_argument("-o", "--out", type=Path, required=True,
                   help=f"output folder for {URLS_NAME} and {TEMPLATE_NAME}")
    p.add_argument("--db", type=Path, default=None,
                   help=f"study database (default BUNDLE/{db.DEFAULT_DB_NAME})")
    p.add_argument("--only-unstarted", action="store_true",
                   help="only links whose rater has not answered anything yet")
    p.add_argument("--title", default="Audio quality listening test", help="task title")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point. Returns an exit code."""
    args = _parser().parse_args(argv)
    db_path = args.db if args.db is not None else db.default_db_path(args.bundle)
    try:
        base = normalise_base_url(args.base_url)
        conn = db.open_existing(db_path)
        try:
            raters = db.all_raters(conn)
        finally:
            conn.close()
        if args.only_unstarted:
            raters = [r for r in raters if r["n_answers"] == 0]
        if not raters:
            raise StudyError(f"no invites to export from {db_path}; create some with "
                             "`python -m recipes.preference_study invite BUNDLE --n 20`.")
        if args.out.exists() and not args.out.is_dir():
            raise StudyError(f"--out {args.out} is a file; give a folder.")
        csv_text, template = crowd_files(raters, base, title=args.title)
        write_text_atomic(args.out / URLS_NAME, csv_text, force=args.force)
        write_text_atomic(args.out / TEMPLATE_NAME, template, force=args.force)
        write_text_atomic(args.out / CODES_NAME, codes_csv(raters), force=args.force)
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Wrote {len(raters)} links to {args.out / URLS_NAME}, the task template to "
          f"{args.out / TEMPLATE_NAME} and the completion codes (keep them to yourself) to "
          f"{args.out / CODES_NAME}.", file=sys.stderr)
    return 0
