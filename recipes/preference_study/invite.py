"""Create invite links (one unguessable token per rater) and store each rater's trial plan.

    python -m recipes.preference_study invite BUNDLE --n 20 [--mos] [--attention-checks 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import db
from .trials import StudyError, load_study_items


def normalise_base_url(url: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing slash; raises StudyError otherwise."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
        raise StudyError(f"--base-url must start with http:// or https:// (got {url!r}).")
    return url


def rater_url(base_url: str, token: str) -> str:
    """A rater's personal study link."""
    return f"{normalise_base_url(base_url)}/r/{token}"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m recipes.preference_study invite",
        description="Create N rater links for a study bundle (tokens are unguessable; each "
                    "rater gets their own random trial order and A/B sides). Prints the URLs.")
    p.add_argument("bundle", type=Path, help="study bundle folder (with manifest.json)")
    p.add_argument("--n", type=int, required=True, help="number of raters to invite")
    p.add_argument("--db", type=Path, default=None,
                   help=f"study database (created if missing; default BUNDLE/{db.DEFAULT_DB_NAME})")
    p.add_argument("--mos", action="store_true", default=None,
                   help="also ask a 1-5 overall-quality rating of every clip (fixed by the first "
                        "invite of a study)")
    p.add_argument("--attention-checks", type=int, default=None, metavar="K",
                   help="identical pairs mixed into each rater's A/B trials (default 2; fixed by "
                        "the first invite)")
    p.add_argument("--base-url", default="http://127.0.0.1:8000",
                   help="public address of the server, used in the printed links "
                        "(default http://127.0.0.1:8000)")
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point. Returns an exit code."""
    args = _parser().parse_args(argv)
    if args.n < 1 or args.n > 100000:
        print(f"error: --n must be between 1 and 100000 (got {args.n}).", file=sys.stderr)
        return 2
    db_path = args.db if args.db is not None else db.default_db_path(args.bundle)
    try:
        base = normalise_base_url(args.base_url)
        items, sha = load_study_items(args.bundle)
        conn = db.create_or_check(db_path, sha)
        try:
            mos, checks = db.study_settings(conn, args.mos, args.attention_checks)
            created = db.add_raters(conn, items, args.n, mos=mos, attention_checks=checks)
            total = len(db.all_raters(conn))
        finally:
            conn.close()
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    per_rater = len(items) + checks + (2 * len(items) if mos else 0)
    print(f"Created {len(created)} invites ({total} in total) in {db_path}; {per_rater} trials per "
          f"rater ({len(items)} A/B, {checks} attention checks"
          f"{f', {2 * len(items)} ratings' if mos else ''}).", file=sys.stderr)
    for rater_id, token in created:
        print(f"{rater_id}\t{rater_url(base, token)}")
    return 0
