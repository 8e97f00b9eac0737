"""Preference study in a real headless browser (Playwright + the system Chromium): a whole rater
session from the invite link to the done page, then export; a screenshot of a trial page."""

from __future__ import annotations

import csv
import io
import random

import numpy as np
import pytest
from study_fixtures import (
    headless_chromium,
    invite,
    live_server,
    make_bundle,
    run_rater_session,
)

from recipes.preference_study import db, export


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 900, "height": 760})
    pg = context.new_page()
    pg.set_default_timeout(15000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_full_rater_session_then_export(tmp_path, page, capsys):
    bundle = make_bundle(tmp_path / "bundle", n_items=3, duration_s=0.4)
    (rater_id, token), = invite(bundle, 1, mos=True, attention_checks=1)
    rng = random.Random(11)
    given: dict[int, object] = {}

    def answer(info: dict) -> str | int:
        value = rng.randint(1, 5) if info["kind"] == "mos" else rng.choice(["A", "B", "same"])
        given[info["index"]] = value
        return value

    with live_server(bundle) as server:
        first = run_rater_session(page, f"{server.url}/r/{token}", answer, stop_after=3)
        assert "headphones" in first.instructions and len(first.trials) == 3
        page.goto("about:blank")  # leave, then come back through the same link: resumes at 4
        rest = run_rater_session(page, f"{server.url}/r/{token}", answer)
        assert rest.instructions == "" and rest.trials[0]["index"] == 4
        log = first
        log.trials += rest.trials
        log.completion_code = rest.completion_code
        # reopening the link after the end shows the done page again
        page.goto(f"{server.url}/r/{token}")
        assert page.inner_text("#done") == "Thank you!"
    n = 3 + 1 + 6
    assert [t["index"] for t in log.trials] == list(range(1, n + 1))
    assert [t["progress"] for t in log.trials] == [f"Trial {i} of {n}" for i in range(1, n + 1)]
    assert [t["kind"] for t in log.trials].count("mos") == 6
    for t in log.trials:  # every player loaded the 0.4 s clip
        assert len(t["durations"]) == (1 if t["kind"] == "mos" else 2)
        assert all(abs(d - 0.4) < 0.01 for d in t["durations"]), t
    conn = db.connect(db.default_db_path(bundle))
    code = conn.execute("SELECT completion_code FROM raters").fetchone()[0]
    conn.close()
    assert log.completion_code == code

    out = tmp_path / "answers.csv"
    assert export.main([str(bundle), "-o", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == n and {r["rater_id"] for r in rows} == {rater_id}
    for row in rows:
        value = given[int(row["trial_index"])]
        if row["kind"] == "mos":
            assert row["rating"] == str(value) and row["choice"] == ""
        else:
            assert row["choice"] == value and row["rating"] == ""


def test_trial_page_screenshot_shows_players_and_buttons(tmp_path, page):
    bundle = make_bundle(tmp_path / "bundle", n_items=2, duration_s=0.4)
    (_, token), = invite(bundle, 1)
    with live_server(bundle) as server:
        page.goto(f"{server.url}/r/{token}/trial/1")
        for selector in ("#audio-a", "#audio-b"):
            page.wait_for_function("s => document.querySelector(s).readyState >= 1",
                                   arg=selector)
        png = page.screenshot(full_page=True)
        boxes = {}
        for selector in ("#audio-a", "#audio-b", "#choice-a", "#choice-b", "#choice-same",
                         "#progress"):
            element = page.locator(selector)
            assert element.is_visible(), selector
            box = element.bounding_box()
            assert box and box["width"] > 10 and box["height"] > 10, (selector, box)
            boxes[selector] = box
        labels = [page.inner_text(s) for s in ("#choice-a", "#choice-same", "#choice-b")]
    assert labels == ["A is better", "No clear difference", "B is better"]
    assert boxes["#audio-a"]["x"] < boxes["#audio-b"]["x"]  # A left of B
    (tmp_path / "trial.png").write_bytes(png)
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert image.shape[0] >= 400 and image.shape[1] == 900
    colours = np.unique(image.reshape(-1, 3), axis=0)
    assert len(colours) > 20, "the screenshot is (nearly) a single colour"
    # the button row is drawn where the browser laid it out: its pixels are not all background
    b = boxes["#choice-a"]
    patch = image[int(b["y"]):int(b["y"] + b["height"]), int(b["x"]):int(b["x"] + b["width"])]
    assert patch.std() > 5
