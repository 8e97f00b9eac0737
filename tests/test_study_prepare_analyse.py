"""Preference study: ``prepare`` (bundle of loudness-matched pairs) and ``analyse``.

``prepare`` runs offline on tiny random generators (``tests.recipe_fixtures``) with the
shipped ``lite`` enhancer. ``analyse`` runs on answer sets built here with known counts.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from audiosr_core.seeds import derive_seed
from recipes.preference_study import analyse as an
from recipes.preference_study import prepare as pp
from recipes.preference_study.bundle import (
    FORMAT,
    BundleError,
    load_bundle,
    write_manifest,
)

from conftest import kept_band_hz

REPO = Path(__file__).resolve().parents[1]

TINY_TTS = f"{REPO / 'tests' / 'recipe_fixtures.py'}:tiny_tts"
COMMON = ["--per-generator", "2", "--duration", "1.0", "--model", "lite", "--steps", "2",
          "--quiet"]


def _lufs(path: Path) -> float:
    data, rate = sf.read(path, always_2d=True)
    return float(pyloudnorm.Meter(rate).integrated_loudness(data))


@pytest.fixture(scope="module")
def tiny_ldm(tmp_path_factory: pytest.TempPathFactory) -> str:
    from recipe_fixtures import save_tiny_generator

    return save_tiny_generator("audioldm", tmp_path_factory.mktemp("tiny_ldm"))


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory, tiny_ldm: str) -> Path:
    out = tmp_path_factory.mktemp("study") / "bundle"
    code = pp.main(["-o", str(out), "--generator", f"ldm=audioldm:{tiny_ldm}",
                    "--generator", f"tts=callable:{TINY_TTS}",
                    "--load-option", "tts.sample_rate=16000", "--prompts",
                    f"tts={pp.PROMPTS_DIR / 'tts.txt'}", "--seed", "7", *COMMON])
    assert code == 0
    return out


# ---------------------------------------------------------------------------- prepare


def test_manifest_is_valid_and_records_settings(bundle_dir: Path) -> None:
    b = load_bundle(bundle_dir)
    assert b.manifest["format"] == FORMAT
    assert [g.name for g in b.generators] == ["ldm", "tts"]
    assert [g.sample_rate for g in b.generators] == [16000, 16000]
    assert [it.id for it in b.items] == ["ldm-000", "ldm-001", "tts-000", "tts-001"]
    sound_events = pp.load_prompts(pp.PROMPTS_DIR / "sound_events.txt")
    tts = pp.load_prompts(pp.PROMPTS_DIR / "tts.txt")
    assert [it.prompt for it in b.items] == sound_events[:2] + tts[:2]
    for it in b.items:
        index = int(it.id.rsplit("-", 1)[1])
        assert it.seed == derive_seed(7, it.generator, index)
        assert it["enhancer_seed"] == it.seed
    assert len({it.seed for it in b.items}) == 4
    s = b.settings
    assert s["enhancer"] == {"model": "lite", "steps": 2, "guidance_scale": 3.5, "seed": 7,
                             "seed_per_item": "the item's seed"}
    assert s["loudness_lufs"] == -23.0 and s["sample_rate"] == 48000 and s["seed"] == 7
    assert s["duration_s"] == 1.0 and s["per_generator"] == 2
    assert {"numpy", "torch", "pyloudnorm", "python"} <= set(s["versions"])
    assert b.generators[1]["load_options"] == {"sample_rate": 16000}
    assert not list(bundle_dir.parent.glob(".bundle.partial-*"))  # temporary folder removed


def test_files_are_48k_16bit_equal_length(bundle_dir: Path) -> None:
    b = load_bundle(bundle_dir)
    for it in b.items:
        infos = [sf.info(str(it.path(c))) for c in ("with", "without")]
        for info in infos:
            assert info.samplerate == 48000
            assert info.subtype == "PCM_16" and info.format == "WAV"
            assert info.channels == 1
        assert infos[0].frames == infos[1].frames
        assert it.duration_s == pytest.approx(infos[0].frames / 48000)
    # the audioldm clips are --duration long; tiny_tts makes 0.25 s per word
    assert b.item("ldm-000").duration_s == pytest.approx(1.0, abs=0.01)
    words = len(b.item("tts-000").prompt.split())
    assert b.item("tts-000").duration_s == pytest.approx(0.25 * words, abs=0.01)


def test_pairs_are_loudness_matched(bundle_dir: Path) -> None:
    b = load_bundle(bundle_dir)
    for it in b.items:
        lw, lwo = _lufs(it.path("with")), _lufs(it.path("without"))
        assert abs(lw - lwo) < 0.1, it.id
        target = -23.0 - it["level_reduction_db"]
        assert lw == pytest.approx(target, abs=0.1) and lwo == pytest.approx(target, abs=0.1)
        assert it.loudness_lufs["with"] == pytest.approx(lw, abs=0.01)
        assert it["loudness_method"] == "bs1770"
        for c in ("with", "without"):
            data, _ = sf.read(it.path(c))
            assert np.max(np.abs(data)) <= 10 ** (-1.0 / 20) + 1e-4  # the -1 dBFS limit


def test_with_keeps_the_without_band(bundle_dir: Path) -> None:
    from scipy.signal import butter, sosfiltfilt, welch

    b = load_bundle(bundle_dir)
    for it in b.items:
        rate = b.generator(it.generator).sample_rate
        w = sf.read(it.path("with"))[0] / 10 ** (it["gain_db"]["with"] / 20)
        wo = sf.read(it.path("without"))[0] / 10 ** (it["gain_db"]["without"] / 20)
        top = kept_band_hz(wo, rate, fraction=0.85)
        sos = butter(8, top, fs=48000, output="sos")
        assert np.corrcoef(sosfiltfilt(sos, w), sosfiltfilt(sos, wo))[0, 1] > 0.995, it.id
        f, pw = welch(w, 48000, nperseg=2048)
        _, pwo = welch(wo, 48000, nperseg=2048)
        band = (f > 50) & (f < top)
        assert np.mean(np.abs(10 * np.log10(pw[band] / pwo[band]))) < 0.5, it.id
        high = f > 1.05 * rate / 2  # "without" is band-limited; "with" adds content there
        assert np.sum(pwo[high]) < 1e-5 * np.sum(pwo[band])
        if it.generator == "ldm":  # broadband source (tiny_tts is pure tones below 3 kHz)
            assert np.sum(pw[high]) > 100 * np.sum(pwo[high]), it.id


def test_same_seed_same_files_and_refusal_to_overwrite(
        tmp_path: Path, bundle_dir: Path, tiny_ldm: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--generator", f"ldm=audioldm:{tiny_ldm}", "--per-generator", "1",
            "--duration", "1.0", "--model", "lite", "--steps", "2", "--seed", "7", "--quiet"]
    assert pp.main(["-o", str(tmp_path / "again"), *args]) == 0
    again = load_bundle(tmp_path / "again").item("ldm-000")
    first = load_bundle(bundle_dir).item("ldm-000")
    assert again.seed == first.seed
    for c in ("with", "without"):  # same seed and settings -> byte-identical files
        assert again.path(c).read_bytes() == first.path(c).read_bytes()

    # an existing bundle is kept unless --overwrite
    manifest = (tmp_path / "again" / "manifest.json").read_bytes()
    with pytest.raises(SystemExit):
        pp.main(["-o", str(tmp_path / "again")])  # missing --generator: argparse exits 2
    assert pp.main(["-o", str(tmp_path / "again"), *args, "--seed", "8"]) == 2
    assert (tmp_path / "again" / "manifest.json").read_bytes() == manifest
    assert again.path("with").read_bytes() == first.path("with").read_bytes()
    # --overwrite replaces it (a different seed gives a different clip)
    assert pp.main(["-o", str(tmp_path / "again"), *args, "--seed", "8", "--overwrite"]) == 0
    replaced = load_bundle(tmp_path / "again").item("ldm-000")
    assert replaced.seed == derive_seed(8, "ldm", 0) != first.seed
    assert replaced.path("without").read_bytes() != first.path("without").read_bytes()
    # a bundle holding files prepare did not write (the answers database) is kept
    (tmp_path / "again" / "responses.sqlite3").write_bytes(b"answers")
    capsys.readouterr()
    assert pp.main(["-o", str(tmp_path / "again"), *args, "--overwrite"]) == 2
    assert "also holds responses.sqlite3" in capsys.readouterr().err
    assert (tmp_path / "again" / "responses.sqlite3").read_bytes() == b"answers"
    # a folder that is not a bundle is never deleted, even with --overwrite
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    capsys.readouterr()
    assert pp.main(["-o", str(other), *args, "--overwrite"]) == 2
    assert "is not a study bundle" in capsys.readouterr().err
    assert (other / "keep.txt").read_text() == "mine"


def test_refusal_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "manifest.json").write_text("{}")
    code = pp.main(["-o", str(tmp_path / "b"), "--generator", f"t=callable:{TINY_TTS}",
                    "--load-option", "t.sample_rate=16000", "--prompts",
                    f"t={pp.PROMPTS_DIR / 'tts.txt'}", "--model", "lite", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err
    assert (tmp_path / "b" / "manifest.json").read_text() == "{}"


def test_short_clips_fall_back_to_rms(tmp_path: Path) -> None:
    prompts = tmp_path / "words.txt"
    prompts.write_text("# one word -> a 0.25 s clip\nhello\n\nworld\n")
    out = tmp_path / "short"
    assert pp.main(["-o", str(out), "--generator", f"t=callable:{TINY_TTS}",
                    "--load-option", "t.sample_rate=16000", "--prompts", f"t={prompts}",
                    "--per-generator", "3", "--model", "lite", "--quiet"]) == 0
    b = load_bundle(out)
    assert [it.prompt for it in b.items] == ["hello", "world", "hello"]  # reused in order
    assert b.settings["loudness_rms_items"] == ["t-000", "t-001", "t-002"]
    for it in b.items:
        assert it["loudness_method"] == "rms"
        assert it.duration_s == pytest.approx(0.25, abs=0.002)
        levels = []
        for c in ("with", "without"):
            data = sf.read(it.path(c))[0]
            levels.append(-0.691 + 10 * math.log10(np.mean(data**2)))
        assert abs(levels[0] - levels[1]) < 0.1
        assert levels[0] == pytest.approx(-23.0 - it["level_reduction_db"], abs=0.1)


def test_match_pair_shared_limit() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(48000) / 48000
    quiet = (0.01 * np.sin(2 * np.pi * 440 * t))[None].astype(np.float32)
    spiky = (0.001 * rng.standard_normal(48000)).astype(np.float32)[None]
    spiky[0, ::4800] = 0.9  # clicks: high peak for its loudness
    pair = pp.match_pair(quiet, spiky, 48000, -14.0, -1.0)
    assert pair.level_reduction_db > 1.0  # -14 LUFS would clip the clicks: both lowered
    peaks = [float(np.max(np.abs(x))) for x in (pair.without, pair.with_)]
    assert max(peaks) <= 10 ** (-1 / 20) + 1e-4
    target = -14.0 - pair.level_reduction_db
    for x in (pair.without, pair.with_):
        lufs = pyloudnorm.Meter(48000).integrated_loudness(x[0].astype(np.float64))
        assert lufs == pytest.approx(target, abs=0.05)
    # no reduction needed: both at the target exactly
    easy = pp.match_pair(quiet, 2 * quiet, 48000, -23.0, -1.0)
    assert easy.level_reduction_db == 0.0
    assert easy.loudness["with"] == pytest.approx(-23.0, abs=0.02)
    assert easy.gain_db["without"] - easy.gain_db["with"] == pytest.approx(6.02, abs=0.02)


def test_match_pair_with_silence() -> None:
    tone = (0.1 * np.sin(2 * np.pi * 300 * np.arange(24000) / 48000))[None].astype(np.float32)
    pair = pp.match_pair(np.zeros_like(tone), tone, 48000, -23.0, -1.0)
    assert pair.loudness["without"] is None and not np.any(pair.without)
    assert pair.loudness["with"] == pytest.approx(-23.0, abs=0.02)


GENERATORS_PY = """
import numpy as np

def stereo(prompt, seed=0):
    x = np.random.default_rng(seed).standard_normal((2, 16000)).astype(np.float32) * 0.05
    x[1] *= 0.5
    return x

def broken(prompt, seed=0):
    return np.full(16000, np.nan, np.float32)
"""


def test_stereo_generator_and_generation_errors(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    module = tmp_path / "gens.py"
    module.write_text(GENERATORS_PY)
    prompts = tmp_path / "p.txt"
    prompts.write_text("noise\n")
    common = ["--load-option", "s.sample_rate=16000", "--prompts", f"s={prompts}",
              "--per-generator", "1", "--model", "lite", "--quiet"]
    assert pp.main(["-o", str(tmp_path / "st"), "--generator", f"s=callable:{module}:stereo",
                    *common]) == 0
    it = load_bundle(tmp_path / "st").items[0]
    assert it["channels"] == 2
    infos = [sf.info(str(it.path(c))) for c in ("with", "without")]
    assert [i.channels for i in infos] == [2, 2] and infos[0].frames == infos[1].frames == 48000
    assert abs(_lufs(it.path("with")) - _lufs(it.path("without"))) < 0.1

    code = pp.main(["-o", str(tmp_path / "br"), "--generator", f"s=callable:{module}:broken",
                    *common])
    assert code == 1
    err = capsys.readouterr().err
    assert "generator 's', item s-000 (prompt 'noise'): generation failed" in err
    assert "NaN" in err and "Traceback" not in err
    assert not (tmp_path / "br").exists() and not list(tmp_path.glob(".br.partial-*"))


def test_derive_seed_is_stable() -> None:
    seeds = {derive_seed(0, g, i) for g in ("a", "b") for i in range(50)}
    assert len(seeds) == 100 and all(0 <= s < 2**31 for s in seeds)
    assert derive_seed(3, "a", 1) == derive_seed(3, "a", 1) != derive_seed(4, "a", 1)


@pytest.mark.parametrize("args, message", [
    (["--generator", "bad"], "expected NAME=KIND:MODEL"),
    (["--generator", "x=nokind:m"], "unknown KIND 'nokind'"),
    (["--generator", "Bad Name=audioldm:m"], "must be lower-case"),
    (["--generator", "x=callable:m:f"], "no default prompt list; pass --prompts x=FILE"),
    (["--generator", "x=audioldm:m", "--prompts", "x=/nonexistent.txt"], "does not exist"),
    (["--generator", "x=audioldm:m", "--prompts", "y=/a.txt"], "no --generator named 'y'"),
    (["--generator", "x=audioldm:m", "--load-option", "x=1"], "expected NAME.KEY=VALUE"),
])
def test_argument_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                         message: str) -> None:
    assert pp.main(["-o", str(tmp_path / "b"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_unloadable_generator_is_reported(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code = pp.main(["-o", str(tmp_path / "b"), "--generator",
                    f"x=audioldm:{tmp_path / 'missing'}", "--model", "lite", "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    assert "cannot load generator 'x'" in err and "Traceback" not in err
    assert not (tmp_path / "b").exists() and not list(tmp_path.glob(".b.partial-*"))


def test_load_bundle_errors(tmp_path: Path) -> None:
    root = tmp_path / "b"
    (root / "audio").mkdir(parents=True)
    for name in ("a-with.wav", "a-without.wav"):
        (root / "audio" / name).write_bytes(b"x")
    gens = [{"name": "g", "kind": "callable", "model": "m", "sample_rate": 16000}]
    item = {"id": "a", "generator": "g", "prompt": "p", "seed": 1, "with": "audio/a-with.wav",
            "without": "audio/a-without.wav", "loudness_lufs": {"with": -23, "without": -23},
            "duration_s": 1.0}
    write_manifest(root, {"x": 1}, gens, [item])
    assert load_bundle(root / "manifest.json").item("a").path("with") == (
        root / "audio" / "a-with.wav").absolute()

    def bad(items: list[dict], message: str) -> None:
        with pytest.raises(BundleError, match=message):
            write_manifest(root, {}, gens, items)

    bad([item, item], "duplicate item id")
    bad([{**item, "id": "A b"}], "id must match")
    bad([{**item, "generator": "h"}], "generator 'h' is not listed")
    bad([{**item, "with": "audio/missing.wav"}], "does not exist in bundle")
    bad([{**item, "with": "../outside.wav"}], "must be relative and under 'audio/'")
    bad([{**item, "with": "/etc/passwd"}], "must be relative")
    bad([{**item, "without": item["with"]}], "is also used by")
    bad([{**item, "seed": "1"}], "'seed' must be int")
    bad([{k: v for k, v in item.items() if k != "prompt"}], "missing key 'prompt'")
    (root / "audio" / "link.wav").symlink_to(tmp_path / "elsewhere.wav")
    (tmp_path / "elsewhere.wav").write_bytes(b"x")
    bad([{**item, "with": "audio/link.wav"}], "outside bundle")

    (root / "manifest.json").write_text('{"format": "other/9"}')
    with pytest.raises(BundleError, match="unsupported format 'other/9'"):
        load_bundle(root)
    (root / "manifest.json").write_text('{"format": ')
    with pytest.raises(BundleError, match="invalid JSON at line 1"):
        load_bundle(root)
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nope")
    with pytest.raises(BundleError, match="no manifest.json"):
        load_bundle(root / "audio")
    assert issubclass(BundleError, ValueError)


# ---------------------------------------------------------------------------- analyse

ROW_KEYS = an.COLUMNS


def _ab(rater: str, t: int, gen: str, item: int, pref: str, a_is_with: bool) -> dict:
    a, b = ("with", "without") if a_is_with else ("without", "with")
    choice = "same" if pref == "no_difference" else ("A" if pref == a else "B")
    return {"rater_id": rater, "trial_index": t, "kind": "ab", "item_id": f"{gen}-{item:03d}",
            "generator": gen, "condition_a": a, "condition_b": b, "choice": choice,
            "preferred": pref, "submitted_at": "2026-01-01T00:00:00Z"}


def _attention(rater: str, t: int, ok: bool) -> dict:
    return {"rater_id": rater, "trial_index": t, "kind": "attention", "item_id": "alpha-000",
            "generator": "alpha", "condition_a": "with", "condition_b": "with",
            "choice": "same" if ok else "A", "passed": int(ok),
            "submitted_at": "2026-01-01T00:00:00Z"}


def _mos(rater: str, t: int, gen: str, cond: str, rating: int) -> dict:
    return {"rater_id": rater, "trial_index": t, "kind": "mos", "item_id": f"{gen}-000",
            "generator": gen, "condition": cond, "rating": rating,
            "submitted_at": "2026-01-01T00:00:00Z"}


# known truth: per good rater, alpha: 3 with, 1 without, 1 no_difference; beta: 2/2/1
TRUE_PREF = {"alpha": {"with": 3, "without": 1, "no_difference": 1},
             "beta": {"with": 2, "without": 2, "no_difference": 1}}
GOOD, BAD = 12, 3
#: ratings are drawn uniformly from these values: the true MOS is their mean
MOS_SUPPORT = {("alpha", "with"): (3, 4, 5), ("alpha", "without"): (2, 3, 4),
               ("beta", "with"): (3, 4), ("beta", "without"): (2, 3, 4, 5)}
TRUE_MOS = {cell: float(np.mean(values)) for cell, values in MOS_SUPPORT.items()}


def _answers_rows(seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for r in range(GOOD + BAD):
        rater, t = f"rater{r:02d}", 0
        for gen, counts in TRUE_PREF.items():
            prefs = [p for p, k in counts.items() for _ in range(k)]
            if r >= GOOD:
                prefs = ["without"] * len(prefs)  # careless raters: excluded below
            for i, pref in enumerate(prefs):
                rows.append(_ab(rater, t, gen, i, pref, a_is_with=bool((r + i) % 2)))
                t += 1
        for (gen, cond), support in MOS_SUPPORT.items():
            for _ in range(6):
                value = int(rng.choice(support))
                rows.append(_mos(rater, t, gen, cond, value if r < GOOD else 1))
                t += 1
        rows.append(_attention(rater, t, ok=r < GOOD))
        if r == 0 or r >= GOOD:  # rater00: one failure (kept with --max-failed-checks 1)
            rows.append(_attention(rater, t + 1, ok=False))
    return rows


def _write_csv(path: Path, rows: list[dict], columns: tuple[str, ...] = ROW_KEYS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def _wilson_closed_form(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    root = z * math.sqrt(z * z + 4 * n * p * (1 - p))
    return ((2 * n * p + z * z - root) / (2 * (n + z * z)),
            (2 * n * p + z * z + root) / (2 * (n + z * z)))


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    folder = tmp_path_factory.mktemp("answers")
    csv_path = _write_csv(folder / "answers.csv", _answers_rows())
    assert an.main([str(csv_path), "--bootstrap", "1000", "--max-failed-checks", "1"]) == 0
    out = folder / "answers_analysis"
    results = json.loads((out / "results.json").read_text())
    return out, results, (out / "report.md").read_text()


def test_counts_shares_and_exclusions(analysed: tuple[Path, dict, str]) -> None:
    _, res, _ = analysed
    good = GOOD  # rater00 failed one check: kept with --max-failed-checks 1
    assert res["raters"] == {**res["raters"], "total": GOOD + BAD, "excluded": BAD,
                             "kept": good}
    assert res["raters"]["excluded_ids"] == [f"rater{r:02d}" for r in range(GOOD, GOOD + BAD)]
    assert res["raters"]["attention_failed"] == 2 * BAD + 1
    assert res["generators"] == ["alpha", "beta"]
    for gen, counts in TRUE_PREF.items():
        e = res["preference"][gen]
        n = good * sum(counts.values())
        assert e["n"] == n and e["n_raters"] == good
        for key, k in counts.items():
            assert e[key]["count"] == good * k
            assert e[key]["share"] == pytest.approx(k / sum(counts.values()))
            lo, hi = _wilson_closed_form(good * k, n)
            assert e[key]["ci95"] == pytest.approx([lo, hi], abs=1e-12)
    assert res["preference"]["all"]["n"] == good * 10


def test_binomial_p_values_equal_scipy(analysed: tuple[Path, dict, str]) -> None:
    from scipy.stats import binomtest

    _, res, _ = analysed
    for gen, counts in TRUE_PREF.items():
        t = res["preference"][gen]["test"]
        k, n = GOOD * counts["with"], GOOD * (counts["with"] + counts["without"])
        assert (t["k_with"], t["n_decided"]) == (k, n)
        assert t["p_value"] == pytest.approx(binomtest(k, n, 0.5).pvalue, rel=1e-9)
    assert res["preference"]["beta"]["test"]["p_value"] == pytest.approx(1.0)
    for k, n, p in [(0, 1, 0.5), (7, 7, 0.5), (3, 20, 0.5), (12, 19, 0.5), (3, 10, 0.3),
                    (40, 100, 0.37), (500, 1000, 0.5), (430, 1000, 0.5)]:
        assert an.binomial_test(k, n, p) == pytest.approx(binomtest(k, n, p).pvalue, rel=1e-9)
    assert an.binomial_test(0, 0) == 1.0
    with pytest.raises(ValueError, match="0 <= k <= n"):
        an.binomial_test(5, 3)


def test_mos_means_and_bootstrap_intervals(analysed: tuple[Path, dict, str]) -> None:
    _, res, _ = analysed
    rows = [r for r in _answers_rows() if r["kind"] == "mos" and r["rater_id"] < f"rater{GOOD}"]
    for (gen, cond), truth in TRUE_MOS.items():
        m = res["mos"][gen][cond]
        values = [r["rating"] for r in rows if (r["generator"], r["condition"]) == (gen, cond)]
        assert m["n_ratings"] == len(values) == GOOD * 6 and m["n_raters"] == GOOD
        assert m["mean"] == pytest.approx(np.mean(values), abs=1e-12)
        lo, hi = m["ci95"]
        assert lo < truth < hi and lo < m["mean"] < hi
        # width close to the normal approximation over rater means (clustered SE)
        per_rater = [np.mean([r["rating"] for r in rows if r["rater_id"] == rid
                              and (r["generator"], r["condition"]) == (gen, cond)])
                     for rid in sorted({r["rater_id"] for r in rows})]
        se = np.std(per_rater, ddof=1) / math.sqrt(len(per_rater))
        assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.35)
    d = res["mos"]["alpha"]["difference"]
    assert d["mean"] == pytest.approx(res["mos"]["alpha"]["with"]["mean"]
                                      - res["mos"]["alpha"]["without"]["mean"])
    assert d["ci95"][0] < 1.0 < d["ci95"][1] and d["ci95"][0] > 0


def test_bootstrap_is_seeded_and_unit_documented(tmp_path: Path) -> None:
    answers = an.read_answers(_write_csv(tmp_path / "a.csv", _answers_rows()))
    one = an.analyse(answers, n_boot=500, seed=3)
    assert one == an.analyse(answers, n_boot=500, seed=3)
    other = an.analyse(answers, n_boot=500, seed=4)
    assert one["mos"]["alpha"]["with"]["ci95"] != other["mos"]["alpha"]["with"]["ci95"]
    by_answer = an.analyse(answers, n_boot=500, seed=3, unit="answer")
    assert by_answer["settings"]["bootstrap_unit"] == "answer"
    assert by_answer["mos"]["alpha"]["with"]["mean"] == one["mos"]["alpha"]["with"]["mean"]
    # default exclusion threshold 0: rater00 (one failed check) is excluded too
    assert one["raters"]["excluded"] == BAD + 1


def test_png_and_report(analysed: tuple[Path, dict, str]) -> None:
    import matplotlib.image

    out, res, report = analysed
    png = out / "preference.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(str(png))
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 400
    blue = np.all(np.abs(img[..., :3] - np.array([0x2B, 0x7B, 0xBA]) / 255) < 0.02, axis=-1)
    assert blue.sum() > 1000  # the "with" segments are drawn
    assert "![Preference per generator](preference.png)" in report
    assert f"excluded: **{BAD}**" in report
    for gen in ("alpha", "beta"):
        e = res["preference"][gen]
        assert f"| {gen} | {e['n']} | {e['with']['count']} (" in report
        assert an.format_p(e["test"]["p_value"]) in report
        m = res["mos"][gen]["with"]
        assert f"{m['mean']:.2f} [{m['ci95'][0]:.2f}, {m['ci95'][1]:.2f}]" in report
    assert "resamples of raters" in report


def test_analyse_with_bundle(tmp_path: Path, bundle_dir: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    rows = [_ab("r1", 0, "tts", 0, "with", True), _ab("r1", 1, "ldm", 1, "without", False),
            _mos("r1", 2, "ldm", "with", 4)]
    good = _write_csv(tmp_path / "ok.csv", rows)
    assert an.main([str(good), "--bundle", str(bundle_dir), "-o", str(tmp_path / "o")]) == 0
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["generators"] == ["ldm", "tts"]  # the bundle's order
    bad = _write_csv(tmp_path / "bad.csv", rows + [_ab("r1", 3, "ldm", 9, "with", True)])
    assert an.main([str(bad), "--bundle", str(bundle_dir), "-o", str(tmp_path / "p")]) == 1
    assert "item 'ldm-009' is not in the bundle" in capsys.readouterr().err
    # outputs are not replaced without --overwrite
    assert an.main([str(good), "-o", str(tmp_path / "o")]) == 2
    assert "--overwrite" in capsys.readouterr().err


def _replace(rows: list[dict], index: int, **changes: object) -> list[dict]:
    rows = [dict(r) for r in rows]
    rows[index].update(changes)
    return rows


@pytest.mark.parametrize("mutate, message", [
    (lambda rows: _replace(rows, 2, rating=6), "line 4: column 'rating': expected an integer 1-5"),
    (lambda rows: _replace(rows, 2, rating="good"), "line 4: column 'rating'"),
    (lambda rows: _replace(rows, 0, kind="xy"), "line 2: column 'kind': expected one of"),
    (lambda rows: _replace(rows, 1, preferred="maybe"), "line 3: column 'preferred'"),
    (lambda rows: _replace(rows, 1, preferred="with", choice="same"),
     "line 3: column 'preferred': 'with' does not match choice 'same'"),
    (lambda rows: _replace(rows, 3, passed="yes"), "line 5: column 'passed': expected 0 or 1"),
    (lambda rows: _replace(rows, 0, rater_id=""), "line 2: column 'rater_id': empty"),
    (lambda rows: _replace(rows, 0, trial_index="x"), "line 2: column 'trial_index'"),
    (lambda rows: _replace(rows, 2, condition="both"), "line 4: column 'condition'"),
])
def test_malformed_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str], mutate, message):
    rows = [_ab("r", 0, "g", 0, "with", True), _ab("r", 1, "g", 0, "without", True),
            _mos("r", 2, "g", "with", 3), _attention("r", 3, True)]
    path = _write_csv(tmp_path / "a.csv", mutate(rows))
    with pytest.raises(an.AnalyseError, match=message.replace("(", r"\(")):
        an.read_answers(path)
    assert an.main([str(path)]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err


def test_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(an.AnalyseError, match="does not exist"):
        an.read_answers(tmp_path / "none.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(an.AnalyseError, match="is empty"):
        an.read_answers(tmp_path / "empty.csv")
    cols = tuple(c for c in ROW_KEYS if c not in ("rating", "passed"))
    _write_csv(tmp_path / "cols.csv", [_mos("r", 0, "g", "with", 3)], cols)
    with pytest.raises(an.AnalyseError, match="lacks column.s. passed, rating"):
        an.read_answers(tmp_path / "cols.csv")
    _write_csv(tmp_path / "header.csv", [])
    with pytest.raises(an.AnalyseError, match="no answers"):
        an.read_answers(tmp_path / "header.csv")
    text = ",".join(ROW_KEYS) + "\n" + "r,0,mos,g-000,g,,,,,,with,3,x,extra\n"
    (tmp_path / "extra.csv").write_text(text)
    with pytest.raises(an.AnalyseError, match="line 2: more fields than header"):
        an.read_answers(tmp_path / "extra.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(an.AnalyseError, match="UTF-8"):
        an.read_answers(tmp_path / "bin.csv")


def test_all_raters_excluded_is_an_error(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    rows = [_ab("r", 0, "g", 0, "with", True), _attention("r", 1, False)]
    path = _write_csv(tmp_path / "a.csv", rows)
    assert an.main([str(path)]) == 1
    assert "no A/B or MOS answers left after excluding 1 rater" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "a_analysis" / "report.md")
