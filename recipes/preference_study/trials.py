"""Study items from a bundle and the per-rater trial plan (order, A/B sides, attention checks, MOS).

The plan is a pure function of the bundle's items, the rater's seed and the study settings, so a
rater always gets the same order and sides. The server stores it in the database when the rater
is invited, so a resumed session sees exactly the same trials.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .bundle import CONDITIONS, MANIFEST_NAME, BundleError, load_bundle

KINDS = ("ab", "attention", "mos")


class StudyError(ValueError):
    """A problem with the study's inputs (bundle, database, options); the message is for users."""


@dataclass(frozen=True)
class StudyItem:
    """One prompt of the bundle: the two clips of the pair as absolute paths inside the bundle."""

    id: str
    generator: str
    prompt: str
    paths: dict[str, Path]  # condition ("with" | "without") -> file


@dataclass(frozen=True)
class Trial:
    """One trial of a rater's plan. ``index`` counts from 1 (it is shown as "trial 3 of 20")."""

    index: int
    kind: str  # "ab" | "attention" | "mos"
    item_id: str
    generator: str
    condition_a: str | None = None  # ab / attention: what plays on side A
    condition_b: str | None = None
    condition: str | None = None  # mos: the single clip's condition


def load_study_items(bundle_dir: str | Path) -> tuple[list[StudyItem], str]:
    """Load and validate a study bundle (``bundle.load_bundle``): its items with absolute,
    resolved paths checked to lie inside the bundle, and the SHA-256 of its manifest (which ties
    a database to one bundle). Raises StudyError with the bundle's message."""
    try:
        bundle = load_bundle(bundle_dir)
    except BundleError as exc:
        raise StudyError(str(exc)) from None
    root = Path(bundle.root).resolve()
    manifest = root / MANIFEST_NAME
    items = []
    for item in bundle.items:
        paths = {}
        for cond in CONDITIONS:
            path = Path(item.path(cond)).resolve()
            if not path.is_relative_to(root) or not path.is_file():  # load_bundle checks too
                raise StudyError(f"{manifest}: item {item.id!r} {cond!r} file is missing or "
                                 "outside the bundle folder.")
            paths[cond] = path
        items.append(StudyItem(id=item.id, generator=item.generator, prompt=item.prompt,
                               paths=paths))
    return items, hashlib.sha256(manifest.read_bytes()).hexdigest()


def make_plan(items: Sequence[StudyItem], seed: int, *, mos: bool = False,
              attention_checks: int = 2) -> list[Trial]:
    """A rater's trials: one A/B trial per item (random side) with ``attention_checks`` identical
    pairs mixed in at random positions, then (``mos``) one 1-5 rating trial per clip, shuffled.
    Deterministic for a given seed."""
    if attention_checks < 0:
        raise StudyError(f"attention_checks must be >= 0, got {attention_checks}.")
    if not items:
        raise StudyError("the study has no items.")
    rng = random.Random(seed)
    ab: list[tuple] = []
    for item in items:
        a, b = CONDITIONS if rng.random() < 0.5 else CONDITIONS[::-1]
        ab.append(("ab", item.id, item.generator, a, b, None))
    rng.shuffle(ab)
    for _ in range(attention_checks):
        item = rng.choice(list(items))
        cond = rng.choice(CONDITIONS)
        ab.insert(rng.randint(0, len(ab)), ("attention", item.id, item.generator, cond, cond, None))
    block = list(ab)
    if mos:
        ratings = [("mos", item.id, item.generator, None, None, c) for item in items
                   for c in CONDITIONS]
        rng.shuffle(ratings)
        block += ratings
    return [Trial(i + 1, *t) for i, t in enumerate(block)]
