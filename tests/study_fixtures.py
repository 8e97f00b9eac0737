"""Helpers for the preference-study tests: small bundles, invites, a live server, a rater session.

``make_bundle`` writes a bundle exactly as the study contract describes (manifest.json + 48 kHz
16-bit WAV pairs of equal length). ``run_rater_session`` drives a whole session in a Playwright
page and is meant to be reused by the end-to-end test (prepare -> serve -> browser -> analyse).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from recipes.preference_study import db
from recipes.preference_study.server import RunningServer, create_app
from recipes.preference_study.trials import load_study_items

REPO = Path(__file__).resolve().parents[1]

SR = 48000
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def require_chromium() -> None:
    """Skip without Debian's Chromium, with the command that installs it; fail under CI."""
    if CHROMIUM.is_file():
        return
    msg = (f"{CHROMIUM} not found; install it with `apt-get install chromium chromium-driver` "
           "to run the browser tests.")
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


@contextmanager
def headless_chromium() -> Iterator[Any]:
    """A headless Chromium driven by Playwright: the Debian package, never a downloaded one."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def make_bundle(root: Path, n_items: int = 3, generators: tuple[str, ...] = ("gen-a", "gen-b"),
                duration_s: float = 0.5, seed: int = 0) -> Path:
    """A study bundle under ``root``: each item's "without" clip is a band-limited tone mix and its
    "with" clip adds high-frequency content; both 16-bit PCM, same length and RMS."""
    rng = np.random.default_rng(seed)
    audio = root / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(duration_s * SR)) / SR
    items = []
    for i in range(n_items):
        gen = generators[i % len(generators)]
        item_id = f"{gen}-{i:03d}"
        base = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (220 * (i + 1), 990))
        hf = 0.3 * rng.standard_normal(t.size) * np.sin(2 * np.pi * 14000 * t)
        clips = {"without": base, "with": base + hf}
        for cond, x in clips.items():
            x = 0.2 * x / np.sqrt(np.mean(x**2))
            sf.write(audio / f"{item_id}-{cond}.wav", x.astype(np.float32), SR, subtype="PCM_16")
        items.append({"id": item_id, "generator": gen, "prompt": f"test sound number {i}",
                      "seed": 1000 + i, "with": f"audio/{item_id}-with.wav",
                      "without": f"audio/{item_id}-without.wav",
                      "loudness_lufs": {"with": -23.0, "without": -23.0},
                      "duration_s": duration_s})
    manifest = {
        "format": "audiosr-plug-study/1",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {"enhancer": {"model": "lite", "steps": 4, "guidance_scale": 3.5, "seed": 0},
                     "loudness_lufs": -23.0, "sample_rate": SR},
        "generators": [{"name": g, "kind": "callable", "model": g, "sample_rate": 16000}
                       for g in generators],
        "items": items,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return root


def invite(bundle: Path, n: int, *, mos: bool = False, attention_checks: int = 2,
           db_path: Path | None = None) -> list[tuple[str, str]]:
    """Create ``n`` raters directly through the db module; returns [(rater_id, token)]."""
    items, sha = load_study_items(bundle)
    conn = db.create_or_check(db_path or db.default_db_path(bundle), sha)
    try:
        mos_, checks = db.study_settings(conn, mos, attention_checks)
        return db.add_raters(conn, items, n, mos=mos_, attention_checks=checks)
    finally:
        conn.close()


@contextmanager
def live_server(bundle: Path, db_path: Path | None = None, threads: int = 8
                ) -> Iterator[RunningServer]:
    """A real waitress server for the bundle on a free loopback port, stopped on exit."""
    server = RunningServer(create_app(bundle, db_path), "127.0.0.1", 0, threads=threads)
    try:
        yield server
    finally:
        server.stop()
    assert not server.thread.is_alive(), "the server thread did not stop"


@dataclass
class SessionLog:
    """What ``run_rater_session`` saw: per trial, the progress text, kind and answer given."""

    trials: list[dict] = field(default_factory=list)
    instructions: str = ""
    completion_code: str = ""


def wait_audio_loaded(page, selector: str, timeout_ms: int = 10000) -> float:
    """Wait until the <audio> element has metadata (readyState >= 1) and return its duration."""
    page.wait_for_function(
        "s => { const a = document.querySelector(s); return a && a.readyState >= 1 && "
        "a.duration > 0; }", arg=selector, timeout=timeout_ms)
    return float(page.eval_on_selector(selector, "a => a.duration"))


def run_rater_session(page, url: str, answer_fn: Callable[[dict], str | int],
                      max_trials: int = 500, stop_after: int | None = None) -> SessionLog:
    """Drive one rater through the study in ``page`` (Playwright, sync API).

    Opens ``url``; on a fresh session reads the instructions and clicks Start (a resumed session
    lands on its first unanswered trial directly). For every trial it checks that each player
    loads (readyState >= 1, duration > 0), calls ``answer_fn(info)`` with info = {"index",
    "total", "kind" ("ab" for A/B trials and attention checks, which look alike, or "mos"),
    "durations", "progress"} and clicks the answer it returns ("A" | "B" | "same", or 1..5 for
    ratings), then checks that the progress moves to the next trial. Ends on the done page, or
    after ``stop_after`` answers. To answer by condition, look the trial up in the study database
    by rater and ``info["index"]``. Raises AssertionError on anything unexpected."""
    log = SessionLog()
    page.goto(url)
    if page.query_selector("#instructions"):
        log.instructions = page.inner_text("#instructions")
        page.click("#start")
    last_index = None
    for _ in range(max_trials):
        page.wait_for_selector("#progress, #done")
        if page.query_selector("#done"):
            break
        if stop_after is not None and len(log.trials) >= stop_after:
            return log
        progress = page.inner_text("#progress")
        index = int(page.get_attribute("#progress", "data-index"))
        total = int(page.get_attribute("#progress", "data-total"))
        assert progress == f"Trial {index} of {total}", progress
        assert last_index is None or index == last_index + 1, \
            f"progress went from {last_index} to {index}"
        assert page.get_attribute("#progress-bar", "value") == str(index - 1)
        kind = "mos" if page.query_selector("button[data-rating]") else "ab"
        selectors = ["#audio-a"] if kind == "mos" else ["#audio-a", "#audio-b"]
        assert len(page.query_selector_all("audio")) == len(selectors)
        durations = [wait_audio_loaded(page, s) for s in selectors]
        info = {"index": index, "total": total, "kind": kind, "durations": durations,
                "progress": progress}
        answer = answer_fn(info)
        button = (f"button[data-rating='{int(answer)}']" if kind == "mos"
                  else f"button[data-choice='{answer}']")
        with page.expect_navigation():
            page.click(button)
        log.trials.append({**info, "answer": answer})
        last_index = index
    else:
        raise AssertionError(f"no done page after {max_trials} trials")
    assert last_index is None or last_index == log.trials[-1]["total"], "session ended early"
    log.completion_code = page.inner_text("#completion-code")
    return log
