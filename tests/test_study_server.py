"""Preference-study server: HTTP behaviour against a real waitress server on loopback, the
database under concurrent raters, the CLI commands (invite, serve, export, crowd-export)."""

from __future__ import annotations

import csv
import http.client
import io
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import requests
from study_fixtures import REPO, invite, live_server, make_bundle

from recipes.preference_study import __main__ as dispatcher
from recipes.preference_study import crowd, db, export
from recipes.preference_study import invite as invite_cmd
from recipes.preference_study.server import create_app
from recipes.preference_study.trials import StudyError, load_study_items, make_plan

TIMEOUT = 10  # seconds per HTTP request


# ---------------------------------------------------------------- fixtures and small helpers


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A 3-item bundle, 4 raters with ratings and 2 attention checks, served on loopback."""
    bundle = make_bundle(tmp_path_factory.mktemp("study") / "bundle", n_items=3)
    raters = invite(bundle, 4, mos=True, attention_checks=2)
    with live_server(bundle) as server:
        yield {"bundle": bundle, "raters": raters, "url": server.url, "port": server.port,
               "db": db.default_db_path(bundle)}


def _trials(db_path: Path, rater_id: str) -> list[sqlite3.Row]:
    conn = db.connect(db_path)
    try:
        return conn.execute("SELECT * FROM trials WHERE rater_id = ? ORDER BY trial_index",
                            (rater_id,)).fetchall()
    finally:
        conn.close()


def _answers(db_path: Path) -> dict[tuple[str, int], tuple]:
    conn = db.connect(db_path)
    try:
        rows = conn.execute("SELECT rater_id, trial_index, choice, rating FROM answers")
        return {(r[0], r[1]): (r[2], r[3]) for r in rows}
    finally:
        conn.close()


def _raw_get(port: int, path: str) -> tuple[int, bytes]:
    """GET a path exactly as written (no client-side normalisation of ``..`` or escapes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _post(url: str, body: object = None, **kw) -> requests.Response:
    return requests.post(url, json=body, timeout=TIMEOUT, allow_redirects=False, **kw)


def _valid_answer(kind: str, rng: random.Random) -> dict:
    return {"rating": rng.randint(1, 5)} if kind == "mos" else {"choice": rng.choice("AB") if
                                                               rng.random() < 0.7 else "same"}


# ---------------------------------------------------------------- trial plans


def test_plan_is_reproducible_per_seed_and_random_across_raters(tmp_path):
    items, _ = load_study_items(make_bundle(tmp_path / "b", n_items=6))
    plans = [make_plan(items, seed, mos=True, attention_checks=3) for seed in range(16)]
    assert make_plan(items, 5, mos=True, attention_checks=3) == plans[5]
    for plan in plans:
        kinds = [t.kind for t in plan]
        assert [t.index for t in plan] == list(range(1, len(plan) + 1))
        assert kinds.count("ab") == 6 and kinds.count("attention") == 3
        assert kinds.count("mos") == 12 and kinds[-12:] == ["mos"] * 12  # ratings come last
        assert sorted(t.item_id for t in plan if t.kind == "ab") == sorted(i.id for i in items)
        assert sorted((t.item_id, t.condition) for t in plan if t.kind == "mos") == sorted(
            (i.id, c) for i in items for c in ("with", "without"))
        for t in plan:
            if t.kind == "ab":
                assert {t.condition_a, t.condition_b} == {"with", "without"}
            elif t.kind == "attention":
                assert t.condition_a == t.condition_b in ("with", "without")
    orders = {tuple(t.item_id for t in p if t.kind == "ab") for p in plans}
    assert len(orders) >= 10  # 720 possible orders: 16 raters almost never share one
    sides = [t.condition_a for p in plans for t in p if t.kind == "ab"]
    assert 0.25 < sides.count("with") / len(sides) < 0.75  # 96 fair coin flips
    with pytest.raises(StudyError, match="attention_checks"):
        make_plan(items, 0, attention_checks=-1)


def test_invite_stores_the_seeded_plan(tmp_path):
    bundle = make_bundle(tmp_path / "b", n_items=4)
    created = invite(bundle, 3, mos=False, attention_checks=1)
    items, _ = load_study_items(bundle)
    conn = db.connect(db.default_db_path(bundle))
    try:
        for rater_id, token in created:
            row = db.rater_by_token(conn, token)
            assert row["rater_id"] == rater_id and token not in rater_id
            assert db.trials_of(conn, rater_id) == make_plan(items, row["seed"], mos=False,
                                                             attention_checks=1)
        keys = [k for r in conn.execute("SELECT key_a, key_b FROM trials") for k in r]
        assert len(keys) == len(set(keys)) == 3 * 5 * 2  # every side of every trial: own key
    finally:
        conn.close()
    assert len({t for _, t in created}) == 3 and all(len(t) >= 32 for _, t in created)


# ---------------------------------------------------------------- HTTP error cases


def test_unknown_token_is_403(study):
    base, real = study["url"], study["raters"][0][1]
    for token in ("x" * 32, real[:-1] + ("A" if real[-1] != "A" else "B"), "short", "a.b"):
        r = _post(f"{base}/r/{token}/trial/1/answer", {"choice": "A"})
        assert r.status_code == 403, token
        assert "unknown or invalid invite token" in r.json()["error"]
        page = requests.get(f"{base}/r/{token}", timeout=TIMEOUT)
        assert page.status_code == 403 and "Link not valid" in page.text
        assert requests.get(f"{base}/r/{token}/audio/{'k' * 22}",
                            timeout=TIMEOUT).status_code == 403


def test_unknown_trial_is_404(study):
    base, (_, token) = study["url"], study["raters"][0]
    n = len(_trials(study["db"], study["raters"][0][0]))
    for index in (0, n + 1, 999):
        r = _post(f"{base}/r/{token}/trial/{index}/answer", {"choice": "A"})
        assert r.status_code == 404
        assert r.json()["error"] == f"trial {index} does not exist for this rater"
        assert requests.get(f"{base}/r/{token}/trial/{index}", timeout=TIMEOUT).status_code == 404
    assert _post(f"{base}/r/{token}/trial/-1/answer", {"choice": "A"}).status_code == 404
    assert requests.get(f"{base}/r/{token}/trial/1/answer", timeout=TIMEOUT).status_code == 405


def test_malformed_answers_are_400_and_not_stored(study):
    base, (rater_id, token) = study["url"], study["raters"][1]
    trials = _trials(study["db"], rater_id)
    ab = next(t["trial_index"] for t in trials if t["kind"] != "mos")
    mos = next(t["trial_index"] for t in trials if t["kind"] == "mos")
    url_ab, url_mos = (f"{base}/r/{token}/trial/{i}/answer" for i in (ab, mos))
    hdr = {"Content-Type": "application/json"}
    cases = [
        (url_ab, {"data": "{not json", "headers": hdr}, "must be a JSON object"),
        (url_ab, {"data": "[\"A\"]", "headers": hdr}, "must be a JSON object"),
        (url_ab, {"json": {}}, "needs a choice"),
        (url_ab, {"json": {"choice": "C"}}, "needs a choice"),
        (url_ab, {"json": {"choice": "a"}}, "needs a choice"),
        (url_ab, {"json": {"rating": 3}}, "needs a choice"),
        (url_ab, {"data": {"choice": "both"}}, "needs a choice"),
        (url_mos, {"json": {"choice": "A"}}, "needs a rating"),
        (url_mos, {"json": {"rating": 0}}, "needs a rating"),
        (url_mos, {"json": {"rating": 6}}, "needs a rating"),
        (url_mos, {"json": {"rating": 2.5}}, "needs a rating"),
        (url_mos, {"json": {"rating": True}}, "needs a rating"),
        (url_mos, {"data": {"rating": "five"}}, "needs a rating"),
        (url_mos, {"data": {"rating": "\u0663"}}, "needs a rating"),  # a non-ASCII digit
    ]
    for url, kwargs, message in cases:
        r = requests.post(url, timeout=TIMEOUT, allow_redirects=False, **kwargs)
        assert r.status_code == 400, (kwargs, r.text)
        assert message in r.json()["error"], r.json()
    assert not [k for k in _answers(study["db"]) if k[0] == rater_id]


def test_replayed_answer_is_409_and_keeps_the_first(study):
    base, (rater_id, token) = study["url"], study["raters"][2]
    first = _trials(study["db"], rater_id)[0]
    assert first["kind"] != "mos"
    url = f"{base}/r/{token}/trial/1/answer"
    r = _post(url, {"choice": "B"})
    assert r.status_code == 201 and r.json()["next"] == f"/r/{token}/trial/2"
    assert r.json()["answered"] == 1
    again = _post(url, {"choice": "A"})
    assert again.status_code == 409
    assert again.json()["error"] == "trial 1 was already answered; an answer cannot be changed"
    assert _answers(study["db"])[(rater_id, 1)] == ("B", None)
    # the plain form replays to the next page instead of an error
    form = requests.post(url, data={"choice": "A"}, timeout=TIMEOUT, allow_redirects=False)
    assert form.status_code == 303 and form.headers["Location"].endswith(f"/r/{token}/trial/2")
    assert _answers(study["db"])[(rater_id, 1)] == ("B", None)


def test_audio_cannot_be_reached_by_path(study):
    port, (rater_id, token) = study["port"], study["raters"][0]
    other_rater, other_token = study["raters"][3]
    other_key = _trials(study["db"], other_rater)[0]["key_a"]
    own_key = _trials(study["db"], rater_id)[0]["key_a"]
    assert _raw_get(port, f"/r/{token}/audio/{own_key}")[0] == 200
    item = json.loads((study["bundle"] / "manifest.json").read_text())["items"][0]
    wav = item["with"]
    attempts = [
        f"/r/{token}/audio/..%2fmanifest.json", f"/r/{token}/audio/..%2F..%2Fmanifest.json",
        f"/r/{token}/audio/%2e%2e%2fmanifest.json", f"/r/{token}/audio/..%252fmanifest.json",
        f"/r/{token}/audio/../../manifest.json", f"/r/{token}/audio/{wav}",
        f"/r/{token}/audio/{wav.replace('/', '%2f')}", f"/r/{token}/audio/{Path(wav).name}",
        f"/r/{token}/audio//etc/passwd", f"/r/{token}/audio/%2fetc%2fpasswd",
        f"/r/{token}/audio/{study['bundle'] / wav}",
        f"/r/{token}/audio/..%5c..%5cmanifest.json", f"/r/{token}/audio/%c0%ae%c0%ae%2fx",
        f"/r/{token}/audio/{other_key}",  # another rater's clip key with this token
        f"/r/{token}/audio/{own_key}%2f..%2f..%2fmanifest.json",
        f"/static/..%2f{db.DEFAULT_DB_NAME}", "/static/..%2fserver.py", "/static/../server.py",
        f"/{wav}", "/manifest.json", f"/{db.DEFAULT_DB_NAME}",
    ]
    for path in attempts:
        status, body = _raw_get(port, path)
        assert status == 404, (path, status)
        assert not body.startswith(b"RIFF") and b"audiosr-plug-study" not in body, path
        assert b"import" not in body, path
    assert _raw_get(port, f"/r/{other_token}/audio/{other_key}")[0] == 200


# ---------------------------------------------------------------- audio, blindness, resume


def test_audio_bytes_equal_the_bundle_files(study):
    base, (rater_id, token) = study["url"], study["raters"][3]
    manifest = json.loads((study["bundle"] / "manifest.json").read_text())
    files = {it["id"]: {c: (study["bundle"] / it[c]).read_bytes() for c in ("with", "without")}
             for it in manifest["items"]}
    kinds = set()
    for t in _trials(study["db"], rater_id):
        kinds.add(t["kind"])
        got_a = requests.get(f"{base}/r/{token}/audio/{t['key_a']}", timeout=TIMEOUT)
        assert got_a.status_code == 200 and got_a.headers["Content-Type"] == "audio/wav"
        assert "Last-Modified" not in got_a.headers and "ETag" not in got_a.headers
        assert "Content-Disposition" not in got_a.headers
        if t["kind"] == "mos":
            assert t["key_b"] is None
            assert got_a.content == files[t["item_id"]][t["condition"]]
            continue
        got_b = requests.get(f"{base}/r/{token}/audio/{t['key_b']}", timeout=TIMEOUT)
        assert got_a.content == files[t["item_id"]][t["condition_a"]]
        assert got_b.content == files[t["item_id"]][t["condition_b"]]
        assert (got_a.content == got_b.content) == (t["kind"] == "attention")
        assert len(got_a.content) == len(got_b.content)  # the size cannot tell them apart
    assert kinds == {"ab", "attention", "mos"}
    part = requests.get(f"{base}/r/{token}/audio/{t['key_a']}", timeout=TIMEOUT,
                        headers={"Range": "bytes=44-99"})
    assert part.status_code == 206 and part.content == got_a.content[44:100]


def test_pages_do_not_reveal_the_condition(study):
    base, (rater_id, token) = study["url"], study["raters"][3]
    manifest = json.loads((study["bundle"] / "manifest.json").read_text())
    secrets_ = ["with", "enhanc", ".wav", "gen-a", "gen-b", rater_id]
    secrets_ += [it["id"] for it in manifest["items"]]
    pages = [f"/r/{token}", f"/r/{token}/instructions", "/static/study.js", "/static/study.css",
             "/"]
    pages += [f"/r/{token}/trial/1"]  # this rater has not answered yet: trial 1 is open
    for path in pages:
        r = requests.get(base + path, timeout=TIMEOUT)
        assert r.status_code == 200, path
        text = r.text.lower()
        for s in secrets_:
            assert s.lower() not in text, (path, s)
        for value in r.headers.values():
            assert "with" not in value.lower() and ".wav" not in value.lower()
    html = requests.get(f"{base}/r/{token}/trial/1", timeout=TIMEOUT).text
    srcs = re.findall(r'src="([^"]+)"', html)
    audio_srcs = [s for s in srcs if "/audio/" in s]
    assert len(audio_srcs) == 2 and all(re.fullmatch(rf"/r/{token}/audio/[\w-]{{22}}", s)
                                        for s in audio_srcs)


def test_resume_continues_at_the_first_unanswered_trial(study):
    base, (rater_id, token) = study["url"], study["raters"][0]
    trials = _trials(study["db"], rater_id)
    n = len(trials)
    first = requests.get(f"{base}/r/{token}", timeout=TIMEOUT)
    assert first.status_code == 200 and "Start the test" in first.text
    assert f"<strong>{n}</strong> short trials" in first.text
    rng = random.Random(1)
    for t in trials[:3]:
        assert _post(f"{base}/r/{token}/trial/{t['trial_index']}/answer",
                     _valid_answer(t["kind"], rng)).status_code == 201
    for path in (f"/r/{token}", f"/r/{token}/trial/1", f"/r/{token}/trial/6",
                 f"/r/{token}/done"):
        r = requests.get(base + path, timeout=TIMEOUT, allow_redirects=False)
        assert r.status_code == 303 and r.headers["Location"] == f"/r/{token}/trial/4", path
    page = requests.get(f"{base}/r/{token}", timeout=TIMEOUT)
    assert page.url.endswith("/trial/4") and f"Trial 4 of {n}" in page.text
    assert re.search(rf'<progress id="progress-bar" value="3" max="{n}"', page.text)
    assert "Continue the test" in requests.get(f"{base}/r/{token}/instructions",
                                               timeout=TIMEOUT).text
    for t in trials[3:]:  # answer the rest through the plain HTML form
        r = requests.post(f"{base}/r/{token}/trial/{t['trial_index']}/answer",
                          data=_valid_answer(t["kind"], rng), timeout=TIMEOUT,
                          allow_redirects=False)
        assert r.status_code == 303
        nxt = f"/r/{token}/trial/{t['trial_index'] + 1}" if t["trial_index"] < n else \
            f"/r/{token}/done"
        assert r.headers["Location"] == nxt
    done = requests.get(f"{base}/r/{token}", timeout=TIMEOUT)
    assert done.url.endswith("/done") and f"All {n} trials are complete" in done.text
    conn = db.connect(study["db"])
    code = conn.execute("SELECT completion_code FROM raters WHERE rater_id = ?",
                        (rater_id,)).fetchone()[0]
    conn.close()
    assert code in done.text
    assert len([k for k in _answers(study["db"]) if k[0] == rater_id]) == n


# ---------------------------------------------------------------- concurrency


def test_concurrent_raters_and_racing_replays_store_each_answer_once(tmp_path):
    bundle = make_bundle(tmp_path / "b", n_items=3)
    raters = invite(bundle, 16, mos=True, attention_checks=2)
    db_path = db.default_db_path(bundle)
    rng = random.Random(7)
    jobs = []  # (rater_id, token, index, body); every trial twice, with different answers
    for rater_id, token in raters:
        for t in _trials(db_path, rater_id):
            jobs += [(rater_id, token, t["trial_index"], _valid_answer(t["kind"], rng))
                     for _ in range(2)]
    rng.shuffle(jobs)

    def submit(job):
        rater_id, token, index, body = job
        with requests.Session() as s:
            r = s.post(f"{url}/r/{token}/trial/{index}/answer", json=body, timeout=30)
        return job, r.status_code, r.json()

    with live_server(bundle, threads=8) as server, ThreadPoolExecutor(max_workers=16) as pool:
        url = server.url
        started = time.monotonic()
        results = [f.result(timeout=60) for f in [pool.submit(submit, j) for j in jobs]]
        elapsed = time.monotonic() - started
    assert elapsed < 60
    accepted: dict[tuple[str, int], dict] = {}
    for (rater_id, _, index, body), status, payload in results:
        assert status in (201, 409), payload
        if status == 201:
            assert (rater_id, index) not in accepted, "an answer was accepted twice"
            accepted[(rater_id, index)] = body
        else:
            assert "already answered" in payload["error"]
    n_trials = len(jobs) // 2
    assert len(accepted) == n_trials == 16 * (3 + 2 + 6)
    stored = _answers(db_path)
    assert len(stored) == n_trials
    for key, body in accepted.items():
        assert stored[key] == (body.get("choice"), body.get("rating"))


# ---------------------------------------------------------------- export and CLI commands


def test_export_csv_matches_the_stored_answers(tmp_path, capsys):
    bundle = make_bundle(tmp_path / "b", n_items=3)
    raters = invite(bundle, 3, mos=True, attention_checks=2)
    db_path = db.default_db_path(bundle)
    rng = random.Random(3)
    given = {}
    with live_server(bundle) as server:
        for rater_id, token in raters[:2]:  # the third rater never starts
            for t in _trials(db_path, rater_id):
                body = _valid_answer(t["kind"], rng)
                assert _post(f"{server.url}/r/{token}/trial/{t['trial_index']}/answer",
                             body).status_code == 201
                given[(rater_id, t["trial_index"])] = (dict(t), body)
    out = tmp_path / "answers.csv"
    assert export.main([str(bundle), "-o", str(out)]) == 0
    assert f"Wrote {len(given)} answers from 2 raters" in capsys.readouterr().err
    text = out.read_text(encoding="utf-8")
    assert text.splitlines()[0] == ("rater_id,trial_index,kind,item_id,generator,condition_a,"
                                    "condition_b,choice,preferred,passed,condition,rating,"
                                    "submitted_at")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(given)
    seen = set()
    for row in rows:
        key = (row["rater_id"], int(row["trial_index"]))
        seen.add(key)
        trial, body = given[key]
        assert (row["kind"], row["item_id"], row["generator"]) == (
            trial["kind"], trial["item_id"], trial["generator"])
        stamp = datetime.fromisoformat(row["submitted_at"].replace("Z", "+00:00"))
        assert stamp.utcoffset().total_seconds() == 0
        if trial["kind"] == "mos":
            assert (row["condition"], row["rating"]) == (trial["condition"], str(body["rating"]))
            assert row["choice"] == row["preferred"] == row["passed"] == row["condition_a"] == ""
            continue
        assert (row["condition_a"], row["condition_b"], row["choice"]) == (
            trial["condition_a"], trial["condition_b"], body["choice"])
        assert row["condition"] == row["rating"] == ""
        if trial["kind"] == "ab":
            side = {"A": trial["condition_a"], "B": trial["condition_b"]}
            assert row["preferred"] == side.get(body["choice"], "no_difference")
            assert row["passed"] == ""
        else:
            assert row["passed"] == ("1" if body["choice"] == "same" else "0")
            assert row["preferred"] == ""
    assert seen == set(given)
    # never replaces a file unless asked; stdout works
    assert export.main([str(bundle), "-o", str(out)]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert export.main([str(bundle), "-o", str(out), "--force"]) == 0
    assert out.read_text(encoding="utf-8") == text
    capsys.readouterr()
    assert export.main([str(bundle), "-o", "-"]) == 0
    assert capsys.readouterr().out == text


def test_invite_cli_prints_links_and_keeps_settings_fixed(tmp_path, capsys):
    bundle = make_bundle(tmp_path / "b", n_items=2)
    assert invite_cmd.main([str(bundle), "--n", "3", "--mos", "--attention-checks", "1",
                            "--base-url", "https://study.example.org/"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 3 and "7 trials per rater" in captured.err
    conn = db.connect(db.default_db_path(bundle))
    tokens = {r["rater_id"]: r["token"] for r in conn.execute("SELECT * FROM raters")}
    conn.close()
    for line in lines:
        rater_id, url = line.split("\t")
        assert url == f"https://study.example.org/r/{tokens[rater_id]}"
    assert invite_cmd.main([str(bundle), "--n", "1", "--attention-checks", "4"]) == 2
    assert "fixed by its first invite" in capsys.readouterr().err
    assert invite_cmd.main([str(bundle), "--n", "2"]) == 0  # inherits mos + 1 check
    assert "(5 in total)" in capsys.readouterr().err
    assert invite_cmd.main([str(bundle), "--n", "0"]) == 2
    assert invite_cmd.main([str(tmp_path / "nowhere"), "--n", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(tmp_path / "nowhere") in err
    assert invite_cmd.main([str(bundle), "--n", "1", "--base-url", "ftp://x"]) == 2


def test_database_is_tied_to_its_bundle(tmp_path):
    bundle = make_bundle(tmp_path / "b", n_items=2)
    with pytest.raises(StudyError, match="invite links first"):
        create_app(bundle)
    invite(bundle, 1)
    manifest = bundle / "manifest.json"
    data = json.loads(manifest.read_text())
    data["items"] = data["items"][:1]
    manifest.write_text(json.dumps(data))
    with pytest.raises(StudyError, match="created for a different bundle"):
        create_app(bundle)
    other = tmp_path / "not-a-study.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE x (y)").connection.commit()
    with pytest.raises(StudyError, match="is not a study database"):
        create_app(bundle, other)


def test_bundle_paths_must_stay_inside_the_bundle(tmp_path):
    bundle = make_bundle(tmp_path / "b", n_items=1)
    manifest = bundle / "manifest.json"
    original = json.loads(manifest.read_text())
    (tmp_path / "outside.wav").write_bytes((bundle / original["items"][0]["with"]).read_bytes())
    for bad in ("../outside.wav", str(tmp_path / "outside.wav"), "audio/missing.wav"):
        data = json.loads(json.dumps(original))
        data["items"][0]["with"] = bad
        manifest.write_text(json.dumps(data))
        with pytest.raises(StudyError) as err:
            load_study_items(bundle)
        assert Path(bad).name in str(err.value)  # the message names the offending file


def test_crowd_export_writes_links_and_template(tmp_path, capsys):
    bundle = make_bundle(tmp_path / "b", n_items=2)
    raters = invite(bundle, 4)
    out = tmp_path / "crowd"
    base = "https://study.example.org/prefix"
    assert crowd.main([str(bundle), "--base-url", base + "/", "-o", str(out)]) == 0
    rows = list(csv.DictReader((out / "crowd_urls.csv").open(encoding="utf-8")))
    assert sorted((r["rater_id"], r["url"]) for r in rows) == sorted(
        (rid, f"{base}/r/{tok}") for rid, tok in raters)
    template = (out / "mturk_task.html").read_text(encoding="utf-8")
    assert 'href="${url}"' in template and "crowd-form" in template
    assert 'name="completion_code"' in template and "4 trials" in template
    conn = db.connect(db.default_db_path(bundle))
    codes = {r["rater_id"]: r["completion_code"] for r in conn.execute("SELECT * FROM raters")}
    conn.close()
    code_rows = list(csv.DictReader((out / "completion_codes.csv").open(encoding="utf-8")))
    assert {r["rater_id"]: r["completion_code"] for r in code_rows} == codes
    assert {(r["answered"], r["trials"]) for r in code_rows} == {("0", "4")}
    assert not any(code in template or code in (out / "crowd_urls.csv").read_text()
                   for code in codes.values())
    assert crowd.main([str(bundle), "--base-url", base, "-o", str(out)]) == 2
    assert "pass --force" in capsys.readouterr().err
    db_path = db.default_db_path(bundle)
    with live_server(bundle) as server:
        assert _post(f"{server.url}/r/{raters[0][1]}/trial/1/answer",
                     {"choice": "same"}).status_code == 201
    assert crowd.main([str(bundle), "--base-url", base, "-o", str(out), "--force",
                       "--only-unstarted", "--db", str(db_path)]) == 0
    rows = list(csv.DictReader((out / "crowd_urls.csv").open(encoding="utf-8")))
    assert sorted(r["rater_id"] for r in rows) == sorted(rid for rid, _ in raters[1:])
    assert crowd.main([str(bundle), "--base-url", "study.example.org", "-o", str(out),
                       "--force"]) == 2
    assert "must start with http://" in capsys.readouterr().err


def test_dispatcher_lists_commands_and_rejects_unknown(capsys):
    assert dispatcher.main(["--help"]) == 0
    usage = capsys.readouterr().out
    for name in ("prepare", "invite", "serve", "export", "crowd-export", "analyse"):
        assert f"  {name} " in usage
    assert dispatcher.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err
    assert dispatcher.main([]) == 2
    with pytest.raises(SystemExit) as exit_:
        dispatcher.main(["export", "--help"])
    assert exit_.value.code == 0 and "--force" in capsys.readouterr().out


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_serve_cli_prints_its_url_and_stops_cleanly(tmp_path, stop_signal):
    bundle = make_bundle(tmp_path / "b", n_items=2)
    (_, token), = invite(bundle, 1)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    missing = subprocess.run([sys.executable, "-m", "recipes.preference_study", "serve",
                              str(tmp_path / "nowhere")], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and str(tmp_path / "nowhere") in missing.stderr
    assert "Traceback" not in missing.stderr
    proc = subprocess.Popen([sys.executable, "-m", "recipes.preference_study", "serve",
                             str(bundle), "--port", "0"], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline()
        match = re.match(r"Serving the study at (http://127\.0\.0\.1:\d+)/ \(1 invited", line)
        assert match, line + proc.stderr.read() if proc.poll() is not None else line
        r = requests.get(f"{match.group(1)}/r/{token}", timeout=TIMEOUT)
        assert r.status_code == 200 and "Start the test" in r.text
        proc.send_signal(stop_signal)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Server stopped" in out and "Traceback" not in err
