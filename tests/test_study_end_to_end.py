"""The preference study end to end, offline: prepare -> invite -> serve -> raters -> export ->
analyse.

Two tiny random-weight generators (AudioLDM and FastSpeech2, saved to folders) and the shipped
``lite`` enhancer make a real bundle; ``invite`` creates three raters; the real ``serve`` command
runs as a subprocess on a free loopback port; a headless Chromium (the Debian package) plays each
rater's whole session, answering by condition (the side of "with" is looked up in the study
database) with a script per rater:

- ``fan`` always prefers the enhanced clip, passes both attention checks, rates "with" higher;
- ``sceptic`` answers without / no difference / without / with in turn, passes the checks,
  rates "without" higher, and leaves after a few trials and resumes in a fresh browser;
- ``careless`` fails one attention check, so ``analyse`` must exclude them.

``export`` and ``analyse`` then have to report exactly what the browser clicked.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import select
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from recipe_fixtures import save_tiny_generator
from study_fixtures import REPO, headless_chromium, require_chromium, run_rater_session

from recipes.preference_study import analyse, db, export, invite, prepare
from recipes.preference_study.bundle import load_bundle
from recipes.preference_study.trials import Trial

GENERATORS = ("ldm", "tts")
PER_GENERATOR = 2
CHECKS = 2
N_TRIALS = PER_GENERATOR * len(GENERATORS) * 3 + CHECKS  # A/B + checks + 2 ratings per item
SCEPTIC_PATTERN = ("without", "no_difference", "without", "with")
SERVE_TIMEOUT_S = 60.0


def _make_bundle(tmp_path: Path) -> Path:
    """``prepare`` with two tiny generators and the lite enhancer (a few seconds on a CPU)."""
    ldm = save_tiny_generator("audioldm", tmp_path / "tiny_ldm")
    fs2 = save_tiny_generator("fastspeech2", tmp_path / "tiny_fs2")
    bundle = tmp_path / "study"
    code = prepare.main(["-o", str(bundle), "--generator", f"ldm=audioldm:{ldm}",
                         "--generator", f"tts=fastspeech2:{fs2}",
                         "--per-generator", str(PER_GENERATOR), "--duration", "1.0",
                         "--model", "lite", "--steps", "2", "--seed", "5", "--quiet"])
    assert code == 0
    return bundle


def _invite(bundle: Path, n: int, capsys: pytest.CaptureFixture[str]) -> list[tuple[str, str]]:
    """``invite`` through its CLI; returns [(rater_id, url path)] from the printed links."""
    capsys.readouterr()
    code = invite.main([str(bundle), "--n", str(n), "--mos", "--attention-checks", str(CHECKS),
                        "--base-url", "http://127.0.0.1:8000"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"{N_TRIALS} trials per rater" in err
    links = [line.split("\t") for line in out.splitlines()]
    assert len(links) == n and all(len(link) == 2 for link in links), out
    for _, url in links:
        assert re.fullmatch(r"http://127\.0\.0\.1:8000/r/[A-Za-z0-9_-]{32}", url), url
    return [(rater_id, urlsplit(url).path) for rater_id, url in links]


def _start_serve(bundle: Path, log: Path, n_raters: int) -> tuple[subprocess.Popen, str]:
    """``python -m recipes.preference_study serve BUNDLE --port 0``; returns (process, base URL)
    once it prints its address."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "recipes.preference_study", "serve", str(bundle),
             "--port", "0", "--threads", "4"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], SERVE_TIMEOUT_S)
    line = proc.stdout.readline() if ready else ""
    match = re.fullmatch(r"Serving the study at (http://127\.0\.0\.1:\d+)/ "
                         rf"\({n_raters} invited raters, 0 answers so far\)\n", line)
    if not match:
        _stop(proc)
        raise AssertionError(f"serve printed {line!r}; stderr: {log.read_text()}")
    return proc, match.group(1)


def _stop(proc: subprocess.Popen) -> int:
    """SIGTERM (as Ctrl-C) and wait; kill only if it does not stop."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)
    return proc.returncode


def _side(trial: Trial, condition: str) -> str:
    return "A" if trial.condition_a == condition else "B"


def _scripts(plans: dict[str, dict[int, Trial]], ids: dict[str, str]):
    """answer_fn per rater name; each answers by the trial's stored conditions."""
    state: Counter[str] = Counter()

    def item_no(trial: Trial) -> int:
        return int(trial.item_id.rsplit("-", 1)[1])

    def fan(info: dict) -> str | int:
        t = plans[ids["fan"]][info["index"]]
        if t.kind == "mos":
            return (5 if t.condition == "with" else 2) - item_no(t) * (t.generator == "tts")
        return "same" if t.kind == "attention" else _side(t, "with")

    def sceptic(info: dict) -> str | int:
        t = plans[ids["sceptic"]][info["index"]]
        if t.kind == "mos":
            return (3 if t.condition == "without" else 2) + item_no(t)
        if t.kind == "attention":
            return "same"
        wanted = SCEPTIC_PATTERN[state["sceptic"] % len(SCEPTIC_PATTERN)]
        state["sceptic"] += 1
        return "same" if wanted == "no_difference" else _side(t, wanted)

    def careless(info: dict) -> str | int:
        t = plans[ids["careless"]][info["index"]]
        if t.kind == "mos":
            return 1
        if t.kind == "attention":
            state["careless-checks"] += 1
            return "A" if state["careless-checks"] == 1 else "same"  # fails the first check
        return _side(t, "with")

    return {"fan": fan, "sceptic": sceptic, "careless": careless}


def _expected_rows(rater_id: str, plan: dict[int, Trial], trials: list[dict]) -> list[dict]:
    """The CSV rows the clicks must give (all columns except submitted_at)."""
    rows = []
    for logged in trials:
        t = plan[logged["index"]]
        row = {"rater_id": rater_id, "trial_index": str(t.index), "kind": t.kind,
               "item_id": t.item_id, "generator": t.generator, "condition_a": "",
               "condition_b": "", "choice": "", "preferred": "", "passed": "", "condition": "",
               "rating": ""}
        if t.kind == "mos":
            row.update(condition=t.condition, rating=str(logged["answer"]))
        else:
            choice = logged["answer"]
            row.update(condition_a=t.condition_a, condition_b=t.condition_b, choice=choice)
            if t.kind == "ab":
                row["preferred"] = {"A": t.condition_a, "B": t.condition_b,
                                    "same": "no_difference"}[choice]
            else:
                row["passed"] = "1" if choice == "same" else "0"
        rows.append(row)
    return rows


def _check_analysis(out: Path, rows: list[dict], excluded: set[str], n_raters: int) -> dict:
    """results.json, report.md and preference.png agree with the expected answer rows."""
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    kept = [r for r in rows if r["rater_id"] not in excluded]
    assert res["raters"]["total"] == n_raters
    assert res["raters"]["excluded"] == len(excluded)
    assert set(res["raters"]["excluded_ids"]) == excluded
    assert res["raters"]["kept"] == n_raters - len(excluded)
    assert res["raters"]["attention_checks"] == n_raters * CHECKS
    assert res["raters"]["attention_failed"] == sum(r["passed"] == "0" for r in rows)
    assert res["answers"] == {"total": len(rows), "kept": len(kept),
                              "excluded": len(rows) - len(kept),
                              "by_kind": dict(Counter(r["kind"] for r in kept))}
    assert res["generators"] == list(GENERATORS)  # the bundle's order
    assert set(res["preference"]) == {*GENERATORS, "all"}
    for gen in (*GENERATORS, "all"):
        ab = [r for r in kept if r["kind"] == "ab" and gen in ("all", r["generator"])]
        counts = Counter(r["preferred"] for r in ab)
        e = res["preference"][gen]
        assert e["n"] == len(ab) == sum(e[k]["count"] for k in analyse.PREFERRED)
        assert e["n_raters"] == n_raters - len(excluded)
        for key in analyse.PREFERRED:
            assert e[key]["count"] == counts[key], (gen, key)
            assert math.isclose(e[key]["share"], counts[key] / len(ab), abs_tol=1e-12)
            lo, hi = e[key]["ci95"]
            assert 0 <= lo <= e[key]["share"] + 1e-12 and e[key]["share"] <= hi + 1e-12 <= 1 + 1e-12
        decided = counts["with"] + counts["without"]
        assert (e["test"]["k_with"], e["test"]["n_decided"]) == (counts["with"], decided)
        assert 0 < e["test"]["p_value"] <= 1
    for gen in GENERATORS:
        m = res["mos"][gen]
        means = {}
        for cond in ("with", "without"):
            ratings = [int(r["rating"]) for r in kept
                       if r["kind"] == "mos" and r["generator"] == gen and r["condition"] == cond]
            assert m[cond]["n_ratings"] == len(ratings) == PER_GENERATOR * (
                n_raters - len(excluded))
            means[cond] = sum(ratings) / len(ratings)
            assert math.isclose(m[cond]["mean"], means[cond], abs_tol=1e-12), (gen, cond)
            assert m[cond]["ci95"][0] <= m[cond]["mean"] <= m[cond]["ci95"][1]
        assert math.isclose(m["difference"]["mean"], means["with"] - means["without"],
                            abs_tol=1e-12)

    report = (out / "report.md").read_text(encoding="utf-8")
    assert f"excluded: **{len(excluded)}**" in report
    assert "![Preference per generator](preference.png)" in report
    for gen in GENERATORS:
        e = res["preference"][gen]
        assert f"| {gen} | {e['n']} | {e['with']['count']} (" in report
        assert f"| {gen} | {res['mos'][gen]['without']['mean']:.2f} [" in report
    png = out / "preference.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bars = _bar_shares(png)
    assert len(bars) == len(GENERATORS)
    for gen, bar in zip(GENERATORS, bars, strict=True):  # the figure shows these shares
        want = [res["preference"][gen][k]["share"] for k in analyse.PREFERRED]
        assert bar == pytest.approx(want, abs=0.01), gen
    return res


def _bar_shares(png: Path) -> list[list[float]]:
    """Per bar of the figure (top to bottom), the with / no difference / without shares read
    from the pixels of the bar's colours (rows away from the percentage labels)."""
    import matplotlib.image
    import numpy as np

    image = matplotlib.image.imread(str(png))[..., :3]
    assert image.shape[0] > 100 and image.shape[1] > 400
    colours = ("#2b7bba", "#bdbdbd", "#e8772e")  # with, no clear difference, without
    masks = [np.all(np.abs(image - np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)]) / 255)
                    < 0.02, axis=-1) for c in colours]
    total = sum(m.sum(axis=1) for m in masks)
    rows = np.flatnonzero(total > 0.3 * image.shape[1])  # bar rows, not the legend's patches
    bands = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1) if rows.size else []
    shares = []
    for band in bands:
        row = band[0] + (band[-1] - band[0]) // 5
        shares.append([float(m[row].sum() / total[row]) for m in masks])
    return shares


@pytest.mark.slow  # tiny generators, a live server and rater sessions in Chromium
def test_prepare_serve_browser_export_analyse(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    require_chromium()
    bundle = _make_bundle(tmp_path)
    manifest = load_bundle(bundle)
    assert manifest.generator_names == list(GENERATORS)
    durations = {it.id: float(it.duration_s) for it in manifest.items}
    assert len(durations) == PER_GENERATOR * len(GENERATORS)

    names = ("fan", "sceptic", "careless")
    links = dict(zip(names, _invite(bundle, len(names), capsys), strict=True))
    ids = {name: rater_id for name, (rater_id, _) in links.items()}
    conn = db.connect(db.default_db_path(bundle))
    try:
        plans = {rid: {t.index: t for t in db.trials_of(conn, rid)} for rid in ids.values()}
        codes = {r["rater_id"]: r["completion_code"]
                 for r in conn.execute("SELECT rater_id, completion_code FROM raters")}
    finally:
        conn.close()
    assert all(len(plan) == N_TRIALS for plan in plans.values())
    scripts = _scripts(plans, ids)

    proc, base = _start_serve(bundle, tmp_path / "serve.stderr", len(names))
    logs: dict[str, list[dict]] = {}
    errors: list[str] = []
    try:
        with headless_chromium() as browser:
            def session(name: str, stop_after: int | None = None):
                context = browser.new_context()
                try:
                    page = context.new_page()
                    page.set_default_timeout(15000)
                    page.on("pageerror", lambda exc: errors.append(f"{name}: {exc}"))
                    return run_rater_session(page, base + links[name][1], scripts[name],
                                             stop_after=stop_after)
                finally:
                    context.close()

            for name in names:
                if name == "sceptic":  # leaves after 5 trials, resumes in a fresh browser
                    first = session(name, stop_after=5)
                    assert "headphones" in first.instructions
                    rest = session(name)
                    assert rest.instructions == "" and rest.trials[0]["index"] == 6
                    log = first
                    log.trials += rest.trials
                    log.completion_code = rest.completion_code
                else:
                    log = session(name)
                assert log.completion_code == codes[ids[name]]
                logs[name] = log.trials
        # a snapshot while the server runs ...
        live_csv = tmp_path / "answers_live.csv"
        assert export.main([str(bundle), "-o", str(live_csv)]) == 0
    finally:
        code = _stop(proc)
    stdout = proc.stdout.read()
    proc.stdout.close()
    assert code == 0, (tmp_path / "serve.stderr").read_text()
    assert "Server stopped; all answers are in the database." in stdout
    assert not errors, f"JavaScript errors on the pages: {errors}"

    # every trial of every rater was shown once, in order, with the prepared clips playing
    for name, trials in logs.items():
        assert [t["index"] for t in trials] == list(range(1, N_TRIALS + 1)), name
        for t in trials:
            trial = plans[ids[name]][t["index"]]
            assert t["kind"] == ("mos" if trial.kind == "mos" else "ab")
            assert len(t["durations"]) == (1 if trial.kind == "mos" else 2)
            assert all(abs(d - durations[trial.item_id]) < 0.01 for d in t["durations"]), t

    # export: one row per click, with the conditions behind the sides
    answers = tmp_path / "answers.csv"
    assert export.main([str(bundle), "-o", str(answers)]) == 0
    assert answers.read_bytes() == live_csv.read_bytes()
    got = list(csv.DictReader(io.StringIO(answers.read_text(encoding="utf-8"))))
    expected = [row for name in names
                for row in _expected_rows(ids[name], plans[ids[name]], logs[name])]
    key = lambda r: (r["rater_id"], int(r["trial_index"]))  # noqa: E731
    assert [{k: v for k, v in r.items() if k != "submitted_at"} for r in sorted(got, key=key)] \
        == sorted(expected, key=key)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)",
                            r["submitted_at"]) for r in got)
    # the scripts did what they say (so the numbers below test something)
    by_rater: dict[str, Counter[str]] = defaultdict(Counter)
    for r in expected:
        if r["kind"] != "mos":
            by_rater[r["rater_id"]][r["preferred"] or r["passed"]] += 1
    assert by_rater[ids["fan"]] == Counter({"with": 4, "1": 2})
    assert by_rater[ids["sceptic"]] == Counter({"without": 2, "no_difference": 1, "with": 1,
                                                "1": 2})
    assert by_rater[ids["careless"]] == Counter({"with": 4, "0": 1, "1": 1})

    # analyse: the careless rater is excluded by default ...
    capsys.readouterr()
    out = tmp_path / "report"
    assert analyse.main([str(answers), "--bundle", str(bundle), "-o", str(out),
                         "--bootstrap", "500"]) == 0
    assert "2 rater(s) analysed, 1 excluded" in capsys.readouterr().out
    res = _check_analysis(out, expected, {ids["careless"]}, len(names))
    assert res["preference"]["ldm"]["without"]["count"] + \
        res["preference"]["tts"]["without"]["count"] == 2
    # ... and kept (with all their answers) when one failed check is allowed
    loose = tmp_path / "report_loose"
    assert analyse.main([str(answers), "--bundle", str(bundle), "-o", str(loose),
                         "--bootstrap", "500", "--max-failed-checks", "1"]) == 0
    res_loose = _check_analysis(loose, expected, set(), len(names))
    assert res_loose["preference"]["all"]["with"]["count"] == \
        res["preference"]["all"]["with"]["count"] + 4
