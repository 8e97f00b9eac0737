"""The study bundle: a folder with ``manifest.json`` and ``audio/*.wav`` pairs.

``prepare`` writes it (:func:`write_manifest`), the listening server reads it
(:func:`load_bundle`). The format (``"audiosr-plug-study/1"``)::

    bundle/manifest.json
    {"format": "audiosr-plug-study/1", "created": "2026-01-01T00:00:00Z",
     "settings": {"enhancer": {...}, "loudness_lufs": -23.0, "sample_rate": 48000, ...},
     "generators": [{"name": "audioldm", "kind": "audioldm", "model": "...", "sample_rate": 16000}],
     "items": [{"id": "audioldm-000", "generator": "audioldm", "prompt": "a dog barks",
                "seed": 1234, "with": "audio/audioldm-000-with.wav",
                "without": "audio/audioldm-000-without.wav",
                "loudness_lufs": {"with": -23.0, "without": -23.0}, "duration_s": 5.0}]}

Paths are relative to the bundle folder, POSIX, under ``audio/``; item ids match
``^[a-z0-9][a-z0-9_-]*$`` and are unique. Items may carry further keys (kept in
:attr:`Item.extra`).

>>> b = load_bundle("study_bundle")                       # doctest: +SKIP
>>> b.items[0].path("with")                                # absolute Path of the "with" file
>>> b.item("audioldm-000")["prompt"]                       # dict-style access works too
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from audiosr_core.atomic import write_text

__all__ = [
    "FORMAT",
    "MANIFEST_NAME",
    "AUDIO_DIR",
    "CONDITIONS",
    "ID_PATTERN",
    "BundleError",
    "GeneratorInfo",
    "Item",
    "Bundle",
    "load_bundle",
    "write_manifest",
    "validate_manifest",
]

#: Value of the manifest's ``"format"`` key.
FORMAT = "audiosr-plug-study/1"
#: File name of the manifest inside the bundle folder.
MANIFEST_NAME = "manifest.json"
#: Folder (inside the bundle) that holds every audio file.
AUDIO_DIR = "audio"
#: The two conditions of a pair, in the order the manifest lists them.
CONDITIONS: tuple[str, str] = ("with", "without")
#: Item ids (and generator names) must match this.
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class BundleError(ValueError):
    """A study bundle is missing, malformed or inconsistent (the message says where)."""


class _Entry:
    """Read access to a manifest entry by key, through ``to_dict()``."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)


@dataclass(frozen=True)
class GeneratorInfo(_Entry):
    """One generator of the study (``name`` is what answers and reports use)."""

    name: str
    kind: str
    model: str
    sample_rate: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The manifest entry (``extra`` keys merged in)."""
        out = dict(self.extra)
        out.update(name=self.name, kind=self.kind, model=self.model,
                   sample_rate=self.sample_rate)
        return out


@dataclass(frozen=True)
class Item(_Entry):
    """One pair: the same generated clip without and with super-resolution.

    ``files`` maps ``"with"``/``"without"`` to the manifest's relative POSIX paths;
    :meth:`path` gives absolute paths. ``item["with"]`` etc. read the manifest entry.
    """

    id: str
    generator: str
    prompt: str
    seed: int
    files: dict[str, str]
    loudness_lufs: dict[str, float | None]
    duration_s: float
    root: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def path(self, condition: str) -> Path:
        """Absolute path of the file for ``condition`` (``"with"`` or ``"without"``)."""
        if condition not in CONDITIONS:
            raise KeyError(f"condition must be 'with' or 'without', got {condition!r}")
        return self.root / self.files[condition]

    @property
    def with_path(self) -> Path:
        return self.path("with")

    @property
    def without_path(self) -> Path:
        return self.path("without")

    def to_dict(self) -> dict[str, Any]:
        """The manifest entry (relative paths; ``extra`` keys merged in)."""
        out = dict(self.extra)
        out.update(id=self.id, generator=self.generator, prompt=self.prompt, seed=self.seed,
                   loudness_lufs=dict(self.loudness_lufs), duration_s=self.duration_s)
        out.update(self.files)
        return out


@dataclass(frozen=True)
class Bundle:
    """A loaded, validated bundle. ``root`` is the absolute bundle folder."""

    root: Path
    settings: dict[str, Any]
    generators: list[GeneratorInfo]
    items: list[Item]
    created: str = ""
    manifest: dict[str, Any] = field(default_factory=dict)

    def item(self, item_id: str) -> Item:
        """The item with this id (``KeyError`` naming the bundle if there is none)."""
        for it in self.items:
            if it.id == item_id:
                return it
        raise KeyError(f"bundle {self.root} has no item {item_id!r}")

    def generator(self, name: str) -> GeneratorInfo:
        """The generator with this name."""
        for g in self.generators:
            if g.name == name:
                return g
        raise KeyError(f"bundle {self.root} has no generator {name!r}")

    @property
    def generator_names(self) -> list[str]:
        """Generator names in manifest order (the order reports use)."""
        return [g.name for g in self.generators]

    def items_of(self, generator: str) -> list[Item]:
        """The items of one generator, in manifest order."""
        return [it for it in self.items if it.generator == generator]

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


# --------------------------------------------------------------------------- validation


def _as_dict(obj: Any, where: str) -> dict[str, Any]:
    if isinstance(obj, (GeneratorInfo, Item)):
        return obj.to_dict()
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    raise BundleError(f"{where}: expected an object (dict), got {type(obj).__name__}")


def _need(entry: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    if key not in entry:
        raise BundleError(f"{where}: missing key {key!r}")
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, types):
        names = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
        raise BundleError(f"{where}: {key!r} must be {names}, got {value!r}")
    return value


def _check_relpath(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BundleError(f"{where}: expected a relative path string, got {value!r}")
    if "\\" in value:
        raise BundleError(f"{where}: path {value!r} must use '/' (POSIX), not '\\'")
    p = PurePosixPath(value)
    if p.is_absolute() or ".." in p.parts or p.parts[:1] != (AUDIO_DIR,) or len(p.parts) < 2:
        raise BundleError(f"{where}: path {value!r} must be relative and under '{AUDIO_DIR}/' "
                          "(no '..', not absolute)")
    return value


def _check_file(root: Path, rel: str, where: str) -> None:
    path = root / rel
    try:
        real = path.resolve(strict=True)
    except (FileNotFoundError, RuntimeError, OSError):
        raise BundleError(f"{where}: file {rel!r} does not exist in bundle {root}") from None
    if not real.is_file():
        raise BundleError(f"{where}: {rel!r} in bundle {root} is not a regular file")
    try:
        real.relative_to(root.resolve())
    except ValueError:
        raise BundleError(f"{where}: {rel!r} resolves outside bundle {root} "
                          f"(to {real}); bundles must be self-contained") from None


def validate_manifest(manifest: Any, root: str | os.PathLike[str] | None = None, *,
                      check_files: bool = True) -> tuple[dict[str, Any],
                                                         list[GeneratorInfo], list[Item]]:
    """Check a parsed manifest; return ``(settings, generators, items)`` or raise BundleError.

    With ``root`` and ``check_files``, every referenced file must exist inside ``root``.
    """
    where = f"{Path(root) / MANIFEST_NAME}" if root is not None else "manifest"
    if not isinstance(manifest, Mapping):
        raise BundleError(f"{where}: the top level must be a JSON object")
    fmt = manifest.get("format")
    if fmt != FORMAT:
        raise BundleError(f"{where}: unsupported format {fmt!r}; expected {FORMAT!r} "
                          "(prepare the bundle again with this version of the recipe)")
    settings = _need(manifest, "settings", dict, where)
    gens_raw = _need(manifest, "generators", list, where)
    items_raw = _need(manifest, "items", list, where)
    if not gens_raw:
        raise BundleError(f"{where}: 'generators' is empty")
    if not items_raw:
        raise BundleError(f"{where}: 'items' is empty")
    base = Path(root).absolute() if root is not None else Path(".").absolute()

    generators: list[GeneratorInfo] = []
    names: set[str] = set()
    for i, g in enumerate(gens_raw):
        w = f"{where}: generators[{i}]"
        g = _as_dict(g, w)
        name = _need(g, "name", str, w)
        if not ID_PATTERN.match(name):
            raise BundleError(f"{w}: name {name!r} must match {ID_PATTERN.pattern}")
        if name in names:
            raise BundleError(f"{w}: duplicate generator name {name!r}")
        names.add(name)
        rate = _need(g, "sample_rate", int, w)
        if rate <= 0:
            raise BundleError(f"{w}: sample_rate must be positive, got {rate}")
        extra = {k: v for k, v in g.items() if k not in ("name", "kind", "model", "sample_rate")}
        generators.append(GeneratorInfo(name=name, kind=_need(g, "kind", str, w),
                                        model=_need(g, "model", str, w), sample_rate=rate,
                                        extra=extra))

    items: list[Item] = []
    ids: set[str] = set()
    paths: dict[str, str] = {}
    known = {"id", "generator", "prompt", "seed", "with", "without", "loudness_lufs",
             "duration_s"}
    for i, it in enumerate(items_raw):
        w = f"{where}: items[{i}]"
        it = _as_dict(it, w)
        item_id = _need(it, "id", str, w)
        w = f"{where}: item {item_id!r}"
        if not ID_PATTERN.match(item_id):
            raise BundleError(f"{w}: id must match {ID_PATTERN.pattern}")
        if item_id in ids:
            raise BundleError(f"{w}: duplicate item id")
        ids.add(item_id)
        gen = _need(it, "generator", str, w)
        if gen not in names:
            raise BundleError(f"{w}: generator {gen!r} is not listed in 'generators' "
                              f"({', '.join(sorted(names))})")
        files: dict[str, str] = {}
        for cond in CONDITIONS:
            rel = _check_relpath(it.get(cond), f"{w}: {cond!r}")
            if rel in paths:
                raise BundleError(f"{w}: {cond!r} file {rel!r} is also used by {paths[rel]}")
            paths[rel] = f"item {item_id!r}"
            if check_files and root is not None:
                _check_file(base, rel, f"{w}: {cond!r}")
            files[cond] = rel
        loud = it.get("loudness_lufs", {})
        if not isinstance(loud, Mapping):
            raise BundleError(f"{w}: 'loudness_lufs' must be an object with 'with'/'without'")
        loudness: dict[str, float | None] = {}
        for cond in CONDITIONS:
            v = loud.get(cond)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise BundleError(f"{w}: loudness_lufs[{cond!r}] must be a number or null")
            loudness[cond] = None if v is None else float(v)
        dur = _need(it, "duration_s", (int, float), w)
        if not math.isfinite(dur) or dur <= 0:
            raise BundleError(f"{w}: duration_s must be positive, got {dur!r}")
        items.append(Item(id=item_id, generator=gen, prompt=_need(it, "prompt", str, w),
                          seed=_need(it, "seed", int, w), files=files, loudness_lufs=loudness,
                          duration_s=float(dur), root=base,
                          extra={k: v for k, v in it.items() if k not in known}))
    return dict(settings), generators, items


# --------------------------------------------------------------------------- read / write


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Read and validate a bundle folder (or its ``manifest.json``).

    Raises :class:`BundleError` if the folder or manifest is missing, the JSON is invalid,
    the format is unknown, ids are not unique, or a file is missing or outside the bundle.
    """
    p = Path(path)
    if p.name == MANIFEST_NAME and p.is_file():
        p = p.parent
    if not p.exists():
        raise BundleError(f"study bundle {p} does not exist (create it with "
                          f"`python -m recipes.preference_study prepare -o {p} ...`)")
    if not p.is_dir():
        raise BundleError(f"study bundle {p} is not a folder (pass the bundle folder)")
    mpath = p / MANIFEST_NAME
    if not mpath.is_file():
        raise BundleError(f"{p} is not a study bundle: it has no {MANIFEST_NAME}")
    try:
        text = mpath.read_text(encoding="utf-8")
        manifest = json.loads(text)
    except UnicodeDecodeError as exc:
        raise BundleError(f"{mpath}: not UTF-8 text ({exc})") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{mpath}: invalid JSON at line {exc.lineno}, column {exc.colno}: "
                          f"{exc.msg}") from None
    root = p.absolute()
    settings, generators, items = validate_manifest(manifest, root)
    created = manifest.get("created", "")
    return Bundle(root=root, settings=settings, generators=generators, items=items,
                  created=created if isinstance(created, str) else "", manifest=manifest)


def _jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, Paths and tuples so ``json`` can write them."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "shape", None) == ():
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_manifest(root: str | os.PathLike[str], settings: Mapping[str, Any],
                   generators: Iterable[Any], items: Iterable[Any], *,
                   created: str | None = None) -> Path:
    """Validate and write ``root/manifest.json`` atomically; return its path.

    ``generators`` and ``items`` are dicts (or :class:`GeneratorInfo`/:class:`Item`) in the
    manifest layout. The audio files must already exist under ``root/audio/``.
    """
    root = Path(root)
    if not root.is_dir():
        raise BundleError(f"bundle folder {root} does not exist")
    manifest = {
        "format": FORMAT,
        "created": created or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "settings": _jsonable(dict(settings)),
        "generators": [_jsonable(_as_dict(g, f"generators[{i}]"))
                       for i, g in enumerate(generators)],
        "items": [_jsonable(_as_dict(it, f"items[{i}]")) for i, it in enumerate(items)],
    }
    validate_manifest(manifest, root)
    text = json.dumps(manifest, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return write_text(root / MANIFEST_NAME, text)
