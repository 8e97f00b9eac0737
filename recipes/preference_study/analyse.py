"""Analyse the answers of a preference study: shares, tests, MOS, figure and report.

Input: the answers CSV written by ``export`` (one row per answer; see the study README) and,
optionally, the bundle (for generator order and a check that every answer refers to one of
its items). Output folder (default ``<csv name>_analysis/`` next to the CSV):

- ``preference.png``: one stacked horizontal bar per generator (with / no clear difference /
  without, in percent), like Figure 1 of the AudioSR paper;
- ``report.md``: tables of counts, shares with Wilson 95 % intervals, exact binomial tests,
  MOS with bootstrap intervals, exclusions; embeds the PNG;
- ``results.json``: every number of the report.

Statistics
----------
- Raters with more failed attention checks than ``--max-failed-checks`` are excluded
  entirely (all their answers).
- Shares of "with" / "without" / "no_difference" among a generator's A/B answers, each with
  a Wilson score 95 % interval.
- "With" vs "without" with ties ("no_difference") excluded: two-sided exact binomial test of
  k = #with out of n = #with + #without against p = 0.5 (the p-value sums the probabilities of
  every outcome no more likely than the one observed, as ``scipy.stats.binomtest``).
- MOS (1-5) per generator and condition, with 95 % percentile bootstrap intervals. The
  bootstrap resamples *raters* (all answers of a drawn rater come along), because one rater's
  ratings are correlated; ``--bootstrap-unit answer`` resamples single answers instead. The
  difference with - without is bootstrapped on the same draws. Seeded: ``--seed``.

Run as ``python -m recipes.preference_study analyse answers.csv [--bundle BUNDLE]``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "COLUMNS",
    "AnalyseError",
    "Answer",
    "read_answers",
    "wilson_interval",
    "binomial_test",
    "bootstrap_mos",
    "analyse",
    "plot_preference",
    "main",
]

#: Header of the answers CSV (the study contract); extra columns are ignored.
COLUMNS = ("rater_id", "trial_index", "kind", "item_id", "generator", "condition_a",
           "condition_b", "choice", "preferred", "passed", "condition", "rating",
           "submitted_at")
KINDS = ("ab", "attention", "mos")
PREFERRED = ("with", "no_difference", "without")
CONDITIONS = ("with", "without")
Z95 = 1.959963984540054  # standard normal 97.5 % quantile


class AnalyseError(ValueError):
    """The answers CSV (or bundle) cannot be analysed; the message says where and why."""


@dataclass(frozen=True)
class Answer:
    """One validated row of the answers CSV (``line`` is its line number in the file)."""

    rater_id: str
    trial_index: int
    kind: str
    item_id: str
    generator: str
    preferred: str | None
    passed: int | None
    condition: str | None
    rating: int | None
    line: int


# ---------------------------------------------------------------------------- reading


def read_answers(path: str | os.PathLike[str]) -> list[Answer]:
    """Read and validate the answers CSV; raise :class:`AnalyseError` naming line and column."""
    p = Path(path)
    if not p.is_file():
        raise AnalyseError(f"answers file {p} does not exist (write it with "
                           "`python -m recipes.preference_study export`)")
    try:
        fh = p.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise AnalyseError(f"cannot read answers file {p}: {exc}") from None
    answers: list[Answer] = []
    with fh:
        reader = csv.DictReader(fh)
        try:
            header = reader.fieldnames
        except (csv.Error, UnicodeDecodeError) as exc:
            raise AnalyseError(f"{p}: not a UTF-8 CSV file ({exc})") from None
        if not header:
            raise AnalyseError(f"{p} is empty; expected a header row: {','.join(COLUMNS)}")
        header = [h.strip() for h in header]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise AnalyseError(f"{p}: the header lacks column(s) {', '.join(missing)}; "
                               f"expected: {','.join(COLUMNS)}")
        reader.fieldnames = header
        try:
            for row in reader:
                if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                    continue
                answers.append(_parse_row(row, p, reader.line_num))
        except csv.Error as exc:
            raise AnalyseError(f"{p}, line {reader.line_num}: malformed CSV ({exc})") from None
        except UnicodeDecodeError as exc:
            raise AnalyseError(f"{p}: not UTF-8 text ({exc})") from None
    if not answers:
        raise AnalyseError(f"{p} has a header but no answers")
    return answers


def _parse_row(row: dict[str, Any], path: Path, line: int) -> Answer:
    if None in row:
        raise AnalyseError(f"{path}, line {line}: more fields than header columns")

    def bad(col: str, problem: str) -> AnalyseError:
        return AnalyseError(f"{path}, line {line}: column {col!r}: {problem}")

    def get(col: str) -> str:
        v = row.get(col)
        if v is None:
            raise bad(col, "missing (the row has fewer fields than the header)")
        return v.strip()

    def need(col: str) -> str:
        v = get(col)
        if not v:
            raise bad(col, "empty, but required for this kind of answer")
        return v

    rater = need("rater_id")
    try:
        trial = int(need("trial_index"))
    except ValueError:
        raise bad("trial_index", f"expected an integer, got {get('trial_index')!r}") from None
    kind = need("kind")
    if kind not in KINDS:
        raise bad("kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
    item, generator = get("item_id"), get("generator")
    preferred = condition = None
    passed = rating = None
    if kind == "ab":
        item, generator = need("item_id"), need("generator")
        preferred = need("preferred")
        if preferred not in PREFERRED:
            raise bad("preferred", f"expected one of {', '.join(PREFERRED)}, got {preferred!r}")
        choice, ca, cb = get("choice"), get("condition_a"), get("condition_b")
        expected = {"A": ca, "B": cb, "same": "no_difference"}.get(choice)
        if choice and expected is None:
            raise bad("choice", f"expected A, B or same, got {choice!r}")
        if choice and expected and preferred != expected:
            raise bad("preferred", f"{preferred!r} does not match choice {choice!r} with "
                      f"condition_a={ca!r}, condition_b={cb!r}")
    elif kind == "attention":
        value = need("passed")
        if value not in ("0", "1"):
            raise bad("passed", f"expected 0 or 1, got {value!r}")
        passed = int(value)
    else:
        item, generator = need("item_id"), need("generator")
        condition = need("condition")
        if condition not in CONDITIONS:
            raise bad("condition", f"expected with or without, got {condition!r}")
        value = need("rating")
        try:
            rating = int(value)
        except ValueError:
            raise bad("rating", f"expected an integer 1-5, got {value!r}") from None
        if not 1 <= rating <= 5:
            raise bad("rating", f"expected an integer 1-5, got {rating}")
    return Answer(rater_id=rater, trial_index=trial, kind=kind, item_id=item,
                  generator=generator, preferred=preferred, passed=passed,
                  condition=condition, rating=rating, line=line)


# ---------------------------------------------------------------------------- statistics


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n (``(nan, nan)`` for n = 0)."""
    if n <= 0:
        return (math.nan, math.nan)
    phat = k / n
    denom = 1.0 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def binomial_test(k: int, n: int, p: float = 0.5) -> float:
    """Two-sided exact binomial test: P(outcomes no more likely than k | n, p).

    The same definition as ``scipy.stats.binomtest(k, n, p).pvalue`` (relative tolerance
    1e-7 when comparing probabilities). Returns 1.0 for n = 0.
    """
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if n == 0:
        return 1.0
    logs = np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                     + i * math.log(p) + (n - i) * math.log1p(-p) for i in range(n + 1)])
    pmf = np.exp(logs)
    total = float(np.sum(pmf[pmf <= pmf[k] * (1 + 1e-7)]))
    return min(1.0, total)


def _percentile_ci(draws: np.ndarray) -> tuple[float, float]:
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return (math.nan, math.nan)
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return (float(lo), float(hi))


def bootstrap_mos(ratings: dict[str, dict[str, list[int]]], *, n_boot: int = 2000,
                  seed: int = 0, unit: str = "rater") -> dict[str, Any]:
    """MOS with 95 % percentile bootstrap intervals for one generator.

    ``ratings[condition][rater_id]`` lists that rater's ratings. ``unit="rater"`` resamples
    raters (with all their ratings, the same draws for both conditions, so the difference
    keeps the pairing); ``unit="answer"`` resamples ratings independently per condition.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    raters = sorted({r for cond in CONDITIONS for r in ratings.get(cond, {})})
    sums = {c: np.array([sum(ratings.get(c, {}).get(r, [])) for r in raters], float)
            for c in CONDITIONS}
    counts = {c: np.array([len(ratings.get(c, {}).get(r, [])) for r in raters], float)
              for c in CONDITIONS}
    draws: dict[str, np.ndarray] = {}
    if unit == "rater" and raters:
        idx = rng.integers(0, len(raters), size=(n_boot, len(raters)))
        for c in CONDITIONS:
            with np.errstate(invalid="ignore", divide="ignore"):
                draws[c] = sums[c][idx].sum(axis=1) / counts[c][idx].sum(axis=1)
    elif unit == "answer":
        for c in CONDITIONS:
            flat = np.array([v for r in raters for v in ratings.get(c, {}).get(r, [])], float)
            if flat.size:
                pick = rng.integers(0, flat.size, size=(n_boot, flat.size))
                draws[c] = flat[pick].mean(axis=1)
            else:
                draws[c] = np.full(n_boot, np.nan)
    elif unit != "rater":
        raise ValueError(f"unit must be 'rater' or 'answer', got {unit!r}")
    for c in CONDITIONS:
        n = int(counts[c].sum())
        mean = float(sums[c].sum() / n) if n else math.nan
        ci = _percentile_ci(draws[c]) if n and c in draws else (math.nan, math.nan)
        out[c] = {"mean": mean, "ci95": list(ci), "n_ratings": n,
                  "n_raters": int(np.count_nonzero(counts[c]))}
    if all(out[c]["n_ratings"] for c in CONDITIONS):
        diff = out["with"]["mean"] - out["without"]["mean"]
        ci = _percentile_ci(draws["with"] - draws["without"])
        out["difference"] = {"mean": diff, "ci95": list(ci)}
    else:
        out["difference"] = {"mean": math.nan, "ci95": [math.nan, math.nan]}
    return out


# ---------------------------------------------------------------------------- analysis


def _bundle_info(bundle: str | os.PathLike[str] | None) -> tuple[list[str], dict[str, str]]:
    if bundle is None:
        return [], {}
    from .bundle import BundleError, load_bundle

    try:
        b = load_bundle(bundle)
    except BundleError as exc:
        raise AnalyseError(f"--bundle: {exc}") from None
    return b.generator_names, {it.id: it.generator for it in b.items}


def analyse(answers: Sequence[Answer], *, max_failed_checks: int = 0, n_boot: int = 2000,
            seed: int = 0, unit: str = "rater", generator_order: Sequence[str] = (),
            item_generators: dict[str, str] | None = None) -> dict[str, Any]:
    """All numbers of the report, as a JSON-ready dict (NaN where undefined)."""
    if item_generators:
        for a in answers:
            if a.kind == "attention":
                continue
            gen = item_generators.get(a.item_id)
            if gen is None:
                raise AnalyseError(f"line {a.line}: item {a.item_id!r} is not in the bundle; "
                                   "are these answers from another study?")
            if gen != a.generator:
                raise AnalyseError(f"line {a.line}: item {a.item_id!r} belongs to generator "
                                   f"{gen!r} in the bundle, but the answer says "
                                   f"{a.generator!r}")
    failed: Counter[str] = Counter()
    checks: Counter[str] = Counter()
    raters_all = sorted({a.rater_id for a in answers})
    for a in answers:
        if a.kind == "attention":
            checks[a.rater_id] += 1
            failed[a.rater_id] += 1 - int(a.passed or 0)
    excluded = sorted(r for r in raters_all if failed[r] > max_failed_checks)
    kept = [a for a in answers if a.rater_id not in set(excluded)]
    raters_kept = sorted({a.rater_id for a in kept})

    found = [a.generator for a in kept if a.kind != "attention"]
    order = [g for g in generator_order if g in set(found)]
    order += sorted(set(found) - set(order))

    preference: dict[str, Any] = {}
    for gen in order + ["all"]:
        ab = [a for a in kept if a.kind == "ab" and (gen == "all" or a.generator == gen)]
        counts = Counter(a.preferred for a in ab)
        n = len(ab)
        entry: dict[str, Any] = {"n": n, "n_raters": len({a.rater_id for a in ab}),
                                 "n_items": len({a.item_id for a in ab})}
        for key in PREFERRED:
            k = counts.get(key, 0)
            entry[key] = {"count": k, "share": k / n if n else math.nan,
                          "ci95": list(wilson_interval(k, n))}
        kw, kwo = counts.get("with", 0), counts.get("without", 0)
        decided = kw + kwo
        entry["test"] = {"k_with": kw, "n_decided": decided,
                         "share_with_of_decided": kw / decided if decided else math.nan,
                         "ci95": list(wilson_interval(kw, decided)),
                         "p_value": binomial_test(kw, decided) if decided else math.nan,
                         "test": "two-sided exact binomial, ties excluded, p0 = 0.5"}
        if gen == "all" and len(order) < 2:
            continue
        preference[gen] = entry

    mos: dict[str, Any] = {}
    for gen in order:
        ratings: dict[str, dict[str, list[int]]] = {c: defaultdict(list) for c in CONDITIONS}
        for a in kept:
            if a.kind == "mos" and a.generator == gen:
                ratings[a.condition][a.rater_id].append(int(a.rating))
        if not any(ratings[c] for c in CONDITIONS):
            continue
        cell_seed = int.from_bytes(hashlib.sha256(f"{seed}/{gen}".encode()).digest()[:4], "big")
        mos[gen] = bootstrap_mos(ratings, n_boot=n_boot, seed=cell_seed, unit=unit)

    n_checks = sum(checks.values())
    return {
        "format": "audiosr-plug-study-analysis/1",
        "settings": {"max_failed_checks": max_failed_checks, "bootstrap": n_boot,
                     "bootstrap_unit": unit, "seed": seed, "confidence": 0.95,
                     "share_interval": "Wilson score",
                     "mos_interval": "percentile bootstrap"},
        "raters": {"total": len(raters_all), "excluded": len(excluded), "kept": len(raters_kept),
                   "excluded_ids": excluded,
                   "with_attention_checks": sum(1 for r in raters_all if checks[r]),
                   "attention_checks": n_checks,
                   "attention_failed": sum(failed.values())},
        "answers": {"total": len(answers), "kept": len(kept),
                    "excluded": len(answers) - len(kept),
                    "by_kind": dict(Counter(a.kind for a in kept))},
        "generators": order,
        "preference": preference,
        "mos": mos,
    }


# ---------------------------------------------------------------------------- outputs


def plot_preference(results: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Stacked horizontal bars (with / no clear difference / without, %), one per generator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gens = [g for g in results["generators"] if results["preference"].get(g, {}).get("n")]
    if not gens:
        raise AnalyseError("no A/B answers to plot (after exclusions)")
    labels = {"with": "With super-resolution", "no_difference": "No clear difference",
              "without": "Without super-resolution"}
    colours = {"with": "#2b7bba", "no_difference": "#bdbdbd", "without": "#e8772e"}
    fig, ax = plt.subplots(figsize=(8.0, 1.0 + 0.6 * len(gens)), dpi=120)
    ys = np.arange(len(gens))[::-1]
    left = np.zeros(len(gens))
    for key in PREFERRED:
        shares = np.array([results["preference"][g][key]["share"] * 100 for g in gens])
        ax.barh(ys, shares, left=left, color=colours[key], label=labels[key], height=0.6,
                edgecolor="white")
        for y, x0, w in zip(ys, left, shares, strict=True):
            if w >= 6:
                ax.text(x0 + w / 2, y, f"{w:.0f}%", ha="center", va="center", fontsize=9,
                        color="black" if key == "no_difference" else "white")
        left += shares
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{g} (n={results['preference'][g]['n']})" for g in gens])
    ax.set_xlim(0, 100)
    ax.set_xlabel("Share of answers (%)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False,
              fontsize=9)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, format="png")
    plt.close(fig)
    return out


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.1f}%"


def _ci_pct(ci: Sequence[float]) -> str:
    if not all(math.isfinite(v) for v in ci):
        return ""
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _share_ci(share: float, ci: Sequence[float]) -> str:
    return f"{_pct(share)} {_ci_pct(ci)}".strip()


def format_p(p: float) -> str:
    """p-value as written in the report."""
    if not math.isfinite(p):
        return "n/a"
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.2e}"


def _num(x: float, digits: int = 2) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"


def _preference_table(preference: dict[str, Any], png_name: str) -> list[str]:
    lines = [f"![Preference per generator]({png_name})", "",
             "| Generator | n | With | No clear difference | Without | With among decided | "
             "p (exact binomial, two-sided) |",
             "|---|---:|---|---|---|---|---:|"]
    for gen, e in preference.items():
        cells = [f"{e[k]['count']} ({_share_ci(e[k]['share'], e[k]['ci95'])})"
                 for k in PREFERRED]
        t = e["test"]
        decided = (f"{t['k_with']}/{t['n_decided']} "
                   f"({_share_ci(t['share_with_of_decided'], t['ci95'])})")
        sig = " *" if math.isfinite(t["p_value"]) and t["p_value"] < 0.05 else ""
        name = "**all generators**" if gen == "all" else gen
        lines.append(f"| {name} | {e['n']} | {' | '.join(cells)} | {decided} | "
                     f"{format_p(t['p_value'])}{sig} |")
    lines += ["", "Counts (share [Wilson 95% interval]). \"With among decided\" and the p-value "
              "leave out \"no clear difference\" answers; the test is a two-sided exact "
              "binomial test against 50%. * p < 0.05 (not corrected for multiple "
              "generators). The \"all\" row pools answers and ignores rater clustering.", ""]
    return lines


def write_report(results: dict[str, Any], path: str | os.PathLike[str], png_name: str,
                 source: str) -> Path:
    """The Markdown report (tables, p-values, exclusions; embeds the PNG)."""
    r, s = results["raters"], results["settings"]
    lines = [
        "# Preference study: with vs without super-resolution", "",
        f"Answers: `{source}`. Analysed {results['created']}.", "",
        "## Raters and exclusions", "",
        f"- Raters: {r['total']}; excluded: **{r['excluded']}** (more than "
        f"{s['max_failed_checks']} failed attention check(s)); kept: {r['kept']}.",
        f"- Attention checks: {r['attention_checks']} answered, {r['attention_failed']} failed; "
        f"{r['with_attention_checks']} rater(s) had at least one.",
        f"- Answers: {results['answers']['total']} in the file, "
        f"{results['answers']['excluded']} excluded with their raters, "
        f"{results['answers']['kept']} analysed.", "",
    ]
    if not r["attention_checks"]:
        lines[-1:] = ["- The answers hold no attention checks, so no rater could be excluded.",
                      ""]
    lines += ["## Preference (A/B)", ""]
    if any(v["n"] for v in results["preference"].values()):
        lines += _preference_table(results["preference"], png_name)
    else:
        lines += ["No A/B answers.", ""]
    lines += ["## Overall quality (MOS, 1-5)", ""]
    if results["mos"]:
        lines += ["| Generator | Without | With | With - without |", "|---|---|---|---|"]
        for gen, m in results["mos"].items():
            cells = []
            for c in ("without", "with"):
                ci = m[c]["ci95"]
                cells.append(f"{_num(m[c]['mean'])} [{_num(ci[0])}, {_num(ci[1])}] "
                             f"(n={m[c]['n_ratings']}, raters={m[c]['n_raters']})")
            d = m["difference"]
            cells.append(f"{_num(d['mean'], 2)} [{_num(d['ci95'][0])}, {_num(d['ci95'][1])}]")
            lines.append(f"| {gen} | {' | '.join(cells)} |")
        unit = ("raters (each draw takes all ratings of the drawn raters, the same draw for "
                "both conditions)" if s["bootstrap_unit"] == "rater" else "single answers")
        lines += ["", f"Mean [95% percentile bootstrap interval, {s['bootstrap']} resamples of "
                  f"{unit}, seed {s['seed']}].", ""]
    else:
        lines += ["No MOS answers.", ""]
    Path(path).write_text("\n".join(lines), encoding="utf-8")
    return Path(path)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


# ---------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m recipes.preference_study analyse",
        description="Analyse a preference study's answers CSV: shares with Wilson intervals, "
                    "exact binomial tests, MOS with bootstrap intervals, a Figure-1-style PNG, "
                    "a Markdown report and a JSON of all numbers.")
    p.add_argument("answers", type=Path, help="answers CSV written by `export`")
    p.add_argument("--bundle", type=Path, default=None,
                   help="study bundle: generator order, and checks that answers match it")
    p.add_argument("-o", "--out", type=Path, default=None,
                   help="output folder (default: <answers name>_analysis next to the CSV)")
    p.add_argument("--max-failed-checks", type=int, default=0, metavar="N",
                   help="exclude raters with more than N failed attention checks (default 0)")
    p.add_argument("--bootstrap", type=int, default=2000, metavar="N",
                   help="bootstrap resamples for MOS intervals (default 2000)")
    p.add_argument("--bootstrap-unit", choices=("rater", "answer"), default="rater",
                   help="what the bootstrap resamples (default: rater)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace report.md/results.json/preference.png in the output folder")
    return p


OUTPUT_FILES = ("report.md", "results.json", "preference.png")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; 0 ok, 1 bad data, 2 bad arguments."""
    args = build_parser().parse_args(argv)
    if args.max_failed_checks < 0 or args.bootstrap < 100:
        print("analyse: error: --max-failed-checks must be >= 0 and --bootstrap >= 100",
              file=sys.stderr)
        return 2
    out = args.out or args.answers.with_name(f"{args.answers.stem}_analysis")
    existing = [f for f in OUTPUT_FILES if (out / f).exists()]
    if existing and not args.overwrite:
        print(f"analyse: error: {out} already has {', '.join(existing)}; pass --overwrite or "
              "choose another -o", file=sys.stderr)
        return 2
    try:
        answers = read_answers(args.answers)
        order, item_gens = _bundle_info(args.bundle)
        results = analyse(answers, max_failed_checks=args.max_failed_checks,
                          n_boot=args.bootstrap, seed=args.seed, unit=args.bootstrap_unit,
                          generator_order=order, item_generators=item_gens)
        if not results["preference"] and not results["mos"]:
            raise AnalyseError(f"{args.answers}: no A/B or MOS answers left after excluding "
                               f"{results['raters']['excluded']} rater(s)")
    except AnalyseError as exc:
        print(f"analyse: error: {exc}", file=sys.stderr)
        return 1
    results["created"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    results["inputs"] = {"answers": str(args.answers),
                         "answers_sha256": hashlib.sha256(args.answers.read_bytes()).hexdigest(),
                         "bundle": str(args.bundle) if args.bundle else None}
    out.mkdir(parents=True, exist_ok=True)
    png = out / "preference.png"
    png.unlink(missing_ok=True)
    if any(v["n"] for v in results["preference"].values()):
        plot_preference(results, png)
    write_report(results, out / "report.md", png.name, str(args.answers))
    (out / "results.json").write_text(
        json.dumps(_jsonable(results), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    r = results["raters"]
    print(f"{r['kept']} rater(s) analysed, {r['excluded']} excluded; wrote {out}/report.md, "
          "results.json" + (", preference.png" if png.exists() else ""))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
