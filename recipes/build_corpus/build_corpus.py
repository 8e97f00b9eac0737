"""Build the ``lite`` model's training corpus from real recorded audio in Debian packages.

Reproducible from a clean Debian 12 machine: ``apt-get download`` + ``dpkg -x`` into a cache
(nothing is installed), then a deterministic pass over the unpacked files that writes 48 kHz
mono PCM_24 clips and ``manifest.csv``. Files listed in ``../shared/data/eval-reserved.txt``
(the evaluation sets' sources) are never read; see ``README.md`` beside this file.

Stages, each usable on its own:

1. :func:`fetch_packages` -- download and unpack the packages the sources need.
2. :func:`walk_sources` -- list candidate files in sorted order, dropping reserved ones.
3. :func:`build_corpus` -- load, resample to 48 kHz, measure bandwidth, cut/pack clips, write.

Example (from the repository root)::

    .venv/bin/python -m recipes.build_corpus --out corpus --cache corpus_cache --jobs 2
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import hashlib
import json
import multiprocessing
import os
import posixpath
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import scipy.signal

from audiosr_core import atomic, audio
from audiosr_core.errors import AudioInputError
from audiosr_core.rates import SAMPLE_RATE as TARGET_SR

REPO_ROOT = Path(__file__).resolve().parents[2]
#: ``../shared/data/eval-reserved.txt`` relative to the repository root.
DEFAULT_RESERVED = REPO_ROOT.parent / "shared" / "data" / "eval-reserved.txt"
#: Sources below this rate are skipped: their 48 kHz version would be upsampled, not real.
MIN_NATIVE_SR = 44100
LOSSY_SUBTYPES = frozenset({"VORBIS", "OPUS", "MPEG_LAYER_I", "MPEG_LAYER_II", "MPEG_LAYER_III"})
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff"})
MANIFEST_COLUMNS = (
    "clip", "domain", "subset", "package", "package_version", "source_files", "source_start_s",
    "license", "source_codec", "source_sr", "lossless_source", "duration_s", "bandwidth_hz",
    "cliff_hz", "bw60_hz", "bw80_hz",
)  # fmt: skip


class CorpusError(ValueError):
    """A problem the user can fix: missing reserved list, unknown source, busy output folder."""


# --------------------------------------------------------------------------------------------
# sources


@dataclass(frozen=True)
class Source:
    """One slice of one Debian package that becomes a corpus subset.

    Attributes
    ----------
    name : str
        Subset name (also the clip folder and file prefix).
    package : str
        Debian package (bookworm ``main``).
    domain : str
        ``"speech"``, ``"music"`` or ``"sfx"``.
    include : tuple of str
        ``fnmatch`` patterns on the path inside the package (``*`` crosses ``/``).
    exclude : tuple of str
        Regular expressions (``re.search``) on that path; a match drops the file.
    license : str
        Licence from ``debian/copyright``; per-file stanzas there override it (see
        :func:`license_for`).
    licenses : tuple of (pattern, licence)
        Per-file licences (``fnmatch`` on the path) that take precedence over everything else.
    optional : bool
        Not in the ``default`` selection (large download, or excluded by the coarse rules).
    note : str
        Why this source, what its audio is.
    """

    name: str
    package: str
    domain: str
    include: tuple[str, ...]
    license: str
    exclude: tuple[str, ...] = ()
    licenses: tuple[tuple[str, str], ...] = ()
    optional: bool = False
    note: str = ""


_TP = "usr/share/tuxpaint/stamps/"
_SPI = "usr/share/sonic-pi/samples/"
_SPI_MUSIC = ("loop_", "ambi_", "bass_", "guit_", "tabla_")
#: Localised spoken names (``7_de.ogg``, ``cat_en_GB.ogg``) and the spoken symbols folder.
_TP_SPOKEN = (r"_desc", r"_[a-z]{2}(_[A-Za-z]{2})?\.ogg$", r"^usr/share/tuxpaint/stamps/symbols/")

SOURCES: tuple[Source, ...] = (
    *(
        Source(
            f"tuxpaint_{lang}", "tuxpaint-stamps-default", "speech", (f"{_TP}*_desc_{lang}.ogg",),
            "GPL-2",
            note="spoken stamp descriptions, Vorbis 44.1 kHz; es/da/be/fr/ru have their Vorbis "
            "low-pass at 19.5-21 kHz (en/nl/ca are cut at 14-15 kHz and are not used)",
        )
        for lang in ("es", "da", "be", "fr", "ru")
    ),
    Source(
        "klettres", "klettres-data", "speech", ("usr/share/klettres/*.ogg",), "GPL-2+",
        note="spoken letters and syllables, Vorbis 44.1 kHz (cliff median 19.9 kHz); "
        "en/it/de/ml are eval languages (coarse rule)",
    ),
    Source(
        "tuxpaint_stamps_sfx", "tuxpaint-stamps-default", "sfx", (f"{_TP}*.ogg",), "GPL-2",
        exclude=_TP_SPOKEN, note="stamp sound effects (animals, household...), Vorbis",
    ),
    Source(
        "sonicpi_music", "sonic-pi-samples", "music",
        tuple(f"{_SPI}{p}*.flac" for p in _SPI_MUSIC), "MIT",
        note="loops, ambient, bass, guitar, tabla; FLAC 44.1 kHz; CC0 or MIT per file",
    ),
    Source(
        "sonicpi_sfx", "sonic-pi-samples", "sfx", (f"{_SPI}*.flac",), "MIT",
        exclude=tuple(f"/{p}" for p in _SPI_MUSIC),
        note="drums, electronic, percussion, glitch, vinyl; FLAC 44.1 kHz; CC0 or MIT per file",
    ),
    Source(
        "hydrogen_drumkits", "hydrogen-drumkits", "music",
        ("usr/share/hydrogen/data/drumkits/*",), "GPL-2+",
        note="11 acoustic/electronic drum kits, lossless one-shots at 44.1/48 kHz; "
        "licence per kit from debian/copyright",
    ),
    Source(
        "hydrogen_tr808", "hydrogen-data", "sfx", ("usr/share/hydrogen/data/drumkits/*",),
        "GPL-2+", note="TR808EmulationKit FLAC one-shots (GMRockKit is an eval kit)",
    ),
    Source(
        "openttd_opensfx", "openttd-opensfx", "sfx", ("wav/opensfx_*.wav",), "CC-BY-SA-3.0",
        note="73 WAVs at 44.1 kHz packed in opensfx.cat; extracted as wav/opensfx_NN.wav "
        "(0-based catalogue index, the naming eval-reserved.txt uses)",
    ),
    Source(
        "tuxpaint_ui", "tuxpaint-data", "sfx", ("usr/share/tuxpaint/sounds/*.wav",), "GPL-2+",
        note="UI sounds, WAV (the 11 kHz ones are skipped)",
    ),
    Source(
        "freedesktop", "sound-theme-freedesktop", "sfx",
        ("usr/share/sounds/freedesktop/stereo/*.oga",), "CC-BY-SA-3.0 / CC-BY-3.0 / GPL-2+",
        note="desktop event sounds, Vorbis 8-96 kHz",
    ),
    Source(
        "warzone2100", "warzone2100-music", "music",
        ("usr/share/games/warzone2100/music/*.opus",),
        "GPL-2+",
        licenses=(("*/albums/aftermath_soundtrack/*", "CC-BY-SA-3.0+ or GPL-2+"),
                  ("*/albums/legacy_soundtrack/*", "CC-BY-SA-3.0+ or GPL-2+")),
        optional=True, note="4 h of game music, Opus 48 kHz cut at about 20.5 kHz (86 MB)",
    ),
    Source(
        "wesnoth", "wesnoth-1.16-music", "music", ("usr/share/games/*.ogg",), "GPL-2+",
        optional=True, note="2.1 h Vorbis (153 MB); all of it is 'wesnoth core music', which "
        "the coarse rules reserve: only usable with --no-coarse-exclusions",
    ),
    Source(
        "guitar_strums_96k", "hydrogen-drumkits-effects", "music",
        ("usr/share/hydrogen/data/drumkits/belofilms_GuitarStrums/*.flac",), "CC-BY-3.0",
        optional=True, note="belofilms guitar strums at 96 kHz/24-bit (141 MB); the coarse "
        "rules reserve the kit: only usable with --no-coarse-exclusions",
    ),
)
SOURCES_BY_NAME = {s.name: s for s in SOURCES}


def select_sources(spec: str) -> list[Source]:
    """Sources from a comma list of names and the keywords ``default`` and ``all``."""
    chosen: list[Source] = []
    for word in (w.strip() for w in spec.split(",")):
        if not word:
            continue
        if word == "default":
            group = [s for s in SOURCES if not s.optional]
        elif word == "all":
            group = list(SOURCES)
        elif word in SOURCES_BY_NAME:
            group = [SOURCES_BY_NAME[word]]
        else:
            names = ", ".join(["default", "all", *SOURCES_BY_NAME])
            raise CorpusError(f"unknown source {word!r}; choose from: {names}")
        chosen += [s for s in group if s not in chosen]
    if not chosen:
        raise CorpusError("no sources selected")
    return chosen


# --------------------------------------------------------------------------------------------
# reserved (evaluation) files


class ReservedFileError(RuntimeError):
    """Something tried to read or add a file reserved for evaluation."""


@dataclass(frozen=True)
class CoarseRule:
    """A whole group of files the eval README says to keep out of training."""

    package: str
    pattern: str  # fnmatch on the path inside the package (``*`` crosses ``/``)
    reason: str


#: The coarser rule of ``shared/data/devset/README.md`` ("Training data"): alsa-utils sounds,
#: klettres en/it/de/ml, belofilms_GuitarStrums, GMRockKit, the mma examples, wesnoth core
#: music. (Its tuxpaint ``*_desc_*`` and SFX items are the exact files of the list.)
COARSE_RULES: tuple[CoarseRule, ...] = (
    CoarseRule("alsa-utils", "usr/share/sounds/alsa/*", "alsa-utils sounds"),
    *(
        CoarseRule("klettres-data", f"usr/share/klettres/{lang}/*", f"klettres {lang}")
        for lang in ("en", "it", "de", "ml")
    ),
    CoarseRule(
        "hydrogen-drumkits-effects", "usr/share/hydrogen/data/drumkits/belofilms_GuitarStrums/*",
        "belofilms_GuitarStrums",
    ),
    CoarseRule("hydrogen-data", "usr/share/hydrogen/data/drumkits/GMRockKit/*", "GMRockKit"),
    CoarseRule("mma", "usr/share/doc/mma/examples/*", "mma examples"),
    CoarseRule(
        "wesnoth-1.16-music", "usr/share/games/wesnoth/*/data/core/music/*", "wesnoth core music"
    ),
)


@dataclass(frozen=True)
class ReservedList:
    """Parsed ``eval-reserved.txt``.

    Attributes
    ----------
    exact : frozenset of (package, path)
        Entries with a folder in the path: matched exactly.
    basenames : frozenset of (package, file name)
        Entries without a folder (hydrogen-data lists GMRockKit sample names): they match that
        file name anywhere in the package.
    coarse : tuple of CoarseRule
        Group exclusions applied on top (empty with ``--no-coarse-exclusions``).
    origin : str
        Where the list came from.
    sha256 : str
        Of the list's text.
    """

    exact: frozenset[tuple[str, str]]
    basenames: frozenset[tuple[str, str]]
    coarse: tuple[CoarseRule, ...] = COARSE_RULES
    origin: str = "<string>"
    sha256: str = ""

    def __len__(self) -> int:
        return len(self.exact) + len(self.basenames)


def normalize_path(path: str) -> str:
    """Path inside a package as the list writes it: ``/``-separated, no leading ``./`` or ``/``."""
    p = posixpath.normpath(path.replace("\\", "/"))
    while p.startswith(("./", "/")):
        p = p[1:] if p.startswith("/") else p[2:]
    return "" if p == "." else p


def parse_reserved(text: str, origin: str = "<string>", coarse: bool = True) -> ReservedList:
    """Parse ``<package>\\t<path inside the package>`` lines (``#`` comments, blank lines ok).

    Raises
    ------
    ValueError
        A line that is not two tab-separated fields, or a list without entries.
    """
    exact: set[tuple[str, str]] = set()
    names: set[tuple[str, str]] = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 2 or not fields[0].strip() or not normalize_path(fields[1].strip()):
            raise CorpusError(
                f"{origin}:{number}: expected '<debian package><TAB><path inside the package>', "
                f"got {line!r}"
            )
        package, path = fields[0].strip(), normalize_path(fields[1].strip())
        (exact if "/" in path else names).add((package, path))
    if not exact and not names:
        raise CorpusError(f"{origin}: no entries; refusing to build without the reserved list")
    return ReservedList(
        frozenset(exact), frozenset(names), COARSE_RULES if coarse else (), origin,
        hashlib.sha256(text.encode()).hexdigest(),
    )


def load_reserved(path: str | os.PathLike[str] = DEFAULT_RESERVED,
                  coarse: bool = True) -> ReservedList:
    """Read the reserved list; a missing file is an error (never build without it)."""
    p = Path(path)
    if not p.is_file():
        raise CorpusError(
            f"reserved list not found: {p}\n"
            "It is ../shared/data/eval-reserved.txt beside the repository: every source file of "
            "the evaluation sets (DEV and HIDDEN), which must never be used for training. "
            "Get that folder, or pass its location with --reserved PATH."
        )
    return parse_reserved(p.read_text(encoding="utf-8"), str(p), coarse)


def reserved_reason(package: str, path: str, reserved: ReservedList) -> str | None:
    """Why ``(package, path)`` is reserved, or None if it may be used for training."""
    p = normalize_path(path)
    if (package, p) in reserved.exact:
        return "listed in the reserved list"
    if (package, posixpath.basename(p)) in reserved.basenames:
        return "file name listed in the reserved list"
    for rule in reserved.coarse:
        if rule.package == package and fnmatch.fnmatchcase(p, rule.pattern):
            return f"coarse rule: {rule.reason}"
    return None


def is_reserved(package: str, path: str, reserved: ReservedList) -> bool:
    """True if the file at ``path`` inside Debian ``package`` must not be used for training."""
    return reserved_reason(package, path, reserved) is not None


def ensure_not_reserved(package: str, path: str, reserved: ReservedList) -> None:
    """Raise :class:`ReservedFileError` if ``(package, path)`` is reserved."""
    why = reserved_reason(package, path, reserved)
    if why is not None:
        raise ReservedFileError(
            f"{package}: {normalize_path(path)} is reserved for evaluation ({why}; "
            f"{reserved.origin}); it must never enter the training corpus"
        )


# --------------------------------------------------------------------------------------------
# bandwidth measurement


@dataclass(frozen=True)
class Bandwidth:
    """Measured bandwidth of a signal, Hz (Welch PSD; see :func:`measure_bandwidth`).

    Attributes
    ----------
    bw60_hz, bw80_hz : float
        Highest frequency whose Welch PSD is within 60 / 80 dB of the peak PSD bin.
    cliff_hz : float
        Brick-wall low-pass edge (codec or resampler), the Nyquist frequency if none.
    """

    bw60_hz: float
    bw80_hz: float
    cliff_hz: float

    @property
    def cap_hz(self) -> float:
        """Highest frequency with genuine content: ``min(cliff_hz, bw80_hz)``."""
        return min(self.cliff_hz, self.bw80_hz)


def measure_bandwidth(wave: np.ndarray, sample_rate: int, nperseg: int = 4096,
                      band_bins: int = 16, min_drop_db: float = 20.0) -> Bandwidth:
    """Bandwidth of a mono signal from its Welch PSD (Hann, 50 % overlap).

    ``bw60``/``bw80``: highest bin within 60/80 dB of the largest bin (DC excluded).
    ``cliff``: PSD averaged in dB over bands of ``band_bins`` bins; at each band edge the drop is
    (mean level of the 3 bands below) - (max level of all bands above); the edge with the largest
    drop is a cliff if that drop is at least ``min_drop_db``.

    Parameters
    ----------
    wave : np.ndarray
        ``[samples]`` float, at least 256 samples.
    sample_rate : int
        Hz.
    """
    x = np.asarray(wave, dtype=np.float64)
    n = min(nperseg, x.size)
    freqs, psd = scipy.signal.welch(x, sample_rate, window="hann", nperseg=n, noverlap=n // 2)
    db = 10.0 * np.log10(psd + 1e-30)
    peak = db[1:].max()
    nyquist = sample_rate / 2

    def highest(threshold: float) -> float:
        idx = np.nonzero(db[1:] >= peak - threshold)[0]
        return float(freqs[idx[-1] + 1]) if idx.size else 0.0

    bands = (db.size - 1) // band_bins
    levels = db[1 : 1 + bands * band_bins].reshape(bands, band_bins).mean(axis=1)
    cliff = nyquist
    if bands >= 4:
        above = np.maximum.accumulate(levels[::-1])[::-1]  # max of bands k..end
        below = np.convolve(levels, np.ones(3) / 3, mode="valid")  # mean of bands k..k+2
        drops = below[: bands - 3] - above[3:]  # edge between band k+2 and band k+3
        k = int(np.argmax(drops))
        if drops[k] >= min_drop_db:
            cliff = float(freqs[1 + (k + 3) * band_bins])
    return Bandwidth(highest(60.0), highest(80.0), min(cliff, nyquist))


# --------------------------------------------------------------------------------------------
# packages: download and unpack (the only stage that needs apt and the network)


@dataclass(frozen=True)
class Package:
    """An unpacked Debian package: its name, version and the folder it was unpacked into."""

    name: str
    version: str
    root: Path
    license_text: str = ""


def _run(cmd: Sequence[str], cwd: Path | None = None) -> str:
    done = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def deb_field(deb: Path, name: str) -> str:
    """A control field of a ``.deb`` (``dpkg-deb -f``)."""
    return _run(["dpkg-deb", "-f", str(deb), name]).strip()


def find_deb(debs: Path, package: str) -> Path | None:
    """The cached ``.deb`` of ``package`` (the highest version if several)."""
    found = sorted(debs.glob(f"{package}_*.deb"))
    found = [d for d in found if deb_field(d, "Package") == package]
    if len(found) > 1:
        def newer(a: Path, b: Path) -> bool:
            va, vb = deb_field(a, "Version"), deb_field(b, "Version")
            return subprocess.run(["dpkg", "--compare-versions", va, "gt", vb]).returncode == 0

        best = found[0]
        for d in found[1:]:
            best = d if newer(d, best) else best
        return best
    return found[0] if found else None


def extract_opensfx_cat(cat: Path, dest: Path) -> list[Path]:
    """Write each WAV of an OpenTTD sound catalogue as ``dest/opensfx_NN.wav``.

    Format: a table of (offset, size) uint32 pairs (the first offset, high bit masked, gives the
    count), then per entry a length-prefixed description followed by ``size`` bytes of RIFF.
    NN is the 0-based catalogue index (``src/wav/osfx_NN.wav`` upstream); the eval sets name
    the same sounds ``wav/opensfx_NN.wav``.
    """
    data = cat.read_bytes()
    count = (struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF) // 8
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(count):
        offset, size = struct.unpack_from("<II", data, 8 * i)
        offset &= 0x7FFFFFFF
        start = offset + 1 + data[offset]
        blob = data[start : start + size]
        if blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
            raise RuntimeError(f"{cat}: entry {i} is not a RIFF/WAVE sample")
        out = dest / f"opensfx_{i:02d}.wav"
        out.write_bytes(blob)
        written.append(out)
    return written


def _post_unpack(package: str, root: Path) -> None:
    if package == "openttd-opensfx":
        for cat in sorted(root.rglob("opensfx.cat")):
            extract_opensfx_cat(cat, root / "wav")


def unpack(deb: Path, dest: Path, package: str, version: str) -> None:
    """``dpkg -x`` into ``dest`` (replacing an older unpack), marked done by a stamp file."""
    stamp = dest / ".unpacked"
    if stamp.is_file() and stamp.read_text().strip() == version:
        return
    if dest.exists():
        if not stamp.is_file() and any(dest.iterdir()):
            raise CorpusError(f"{dest} exists but is not an unpack of ours; remove it by hand")
        shutil.rmtree(dest)
    atomic.sweep(dest.parent, recursive=False)    # unpacks of a killed run
    with atomic.atomic_folder(dest) as tmp:
        _run(["dpkg", "-x", str(deb), str(tmp)])
        _post_unpack(package, tmp)
        (tmp / ".unpacked").write_text(version + "\n")


def fetch_packages(names: Iterable[str], cache: Path,
                   offline: bool = False) -> tuple[dict[str, Package], dict[str, int], list[str]]:
    """Download (``apt-get download``, skipped when cached) and unpack packages.

    Returns
    -------
    packages : dict
        name -> :class:`Package`.
    deb_bytes : dict
        name -> size of its ``.deb``.
    unavailable : list of str
        Packages that could not be downloaded (a warning is printed; the build goes on).
    """
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    packages: dict[str, Package] = {}
    sizes: dict[str, int] = {}
    unavailable: list[str] = []
    for name in sorted(set(names)):
        deb = find_deb(debs, name)
        if deb is None and not offline:
            print(f"  apt-get download {name}", flush=True)
            try:
                _run(["apt-get", "download", name], cwd=debs)
            except (RuntimeError, FileNotFoundError) as exc:
                print(f"  WARNING: {name} unavailable ({exc}); continuing without it")
            deb = find_deb(debs, name)
        if deb is None:
            unavailable.append(name)
            continue
        version = deb_field(deb, "Version")
        root = cache / "unpacked" / name
        print(f"  {name} {version} ({deb.stat().st_size / 1e6:.0f} MB)", flush=True)
        unpack(deb, root, name, version)
        copyright_file = root / "usr" / "share" / "doc" / name / "copyright"
        text = copyright_file.read_text(errors="replace") if copyright_file.is_file() else ""
        packages[name] = Package(name, version, root, text)
        sizes[name] = deb.stat().st_size
    return packages, sizes, unavailable


def license_for(copyright_text: str, path: str, default: str) -> str:
    """Licence of one file from a DEP-5 ``debian/copyright`` (``default`` when no stanza names it).

    Stanzas whose ``Files:`` patterns name a file or an archive without wildcards are matched on
    the file name (``etc/samples/x.flac`` -> ``x.flac``) or on a folder of ``path``
    (``drumkits/Kit.h2drumkit`` -> ``Kit/``); the last matching stanza wins.
    """
    parts = normalize_path(path).split("/")
    found = default
    for stanza in re.split(r"\n\s*\n", copyright_text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        if "Files" not in fields or "License" not in fields:
            continue
        for pattern in fields["Files"].split():
            if any(c in pattern for c in "*?["):
                continue
            stem = posixpath.basename(pattern)
            if stem == parts[-1] or stem.removesuffix(".h2drumkit") in parts[:-1]:
                found = fields["License"].splitlines()[0].strip()
    return found


# --------------------------------------------------------------------------------------------
# walking


@dataclass(frozen=True)
class Item:
    """A candidate source file: which source claims it and where it is."""

    source: Source
    package: Package
    relpath: str

    @property
    def path(self) -> Path:
        return self.package.root / self.relpath


@dataclass(frozen=True)
class Skip:
    """A source file left out, and why."""

    package: str
    relpath: str
    kind: str  # reserved | low_rate | low_bandwidth | unreadable | too_short | silent | silent_clip
    detail: str


def _matches(source: Source, relpath: str) -> bool:
    if not any(fnmatch.fnmatchcase(relpath, pat) for pat in source.include):
        return False
    return not any(re.search(rx, relpath) for rx in source.exclude)


def walk_sources(sources: Sequence[Source], packages: dict[str, Package],
                 reserved: ReservedList,
                 max_files: int | None = None) -> tuple[list[Item], list[Skip]]:
    """Candidate audio files of every source in sorted path order; reserved ones are skipped.

    A file claimed by an earlier source is not offered again. Reserved files are recorded in
    the skip list and never opened. Symlinks are ignored.
    """
    items: list[Item] = []
    skips: list[Skip] = []
    claimed: set[tuple[str, str]] = set()
    for source in sources:
        pkg = packages.get(source.package)
        if pkg is None:
            continue
        paths = sorted(
            p.relative_to(pkg.root).as_posix()
            for p in pkg.root.rglob("*")
            if p.is_file() and not p.is_symlink() and p.suffix.lower() in AUDIO_EXTENSIONS
        )
        taken = 0
        for rel in paths:
            if (pkg.name, rel) in claimed or not _matches(source, rel):
                continue
            claimed.add((pkg.name, rel))
            why = reserved_reason(pkg.name, rel, reserved)
            if why is not None:
                skips.append(Skip(pkg.name, rel, "reserved", why))
                continue
            if max_files is not None and taken >= max_files:
                continue
            items.append(Item(source, pkg, rel))
            taken += 1
    return items, skips


# --------------------------------------------------------------------------------------------
# per-file preparation


@dataclass(frozen=True)
class Settings:
    """Processing parameters (all recorded in ``build_info.json``)."""

    clip_s: float = 4.0
    min_bandwidth_hz: float = 16000.0
    min_native_sr: int = MIN_NATIVE_SR
    min_part_s: float = 0.05
    min_last_fill: float = 0.5
    gap_s: tuple[float, float] = (0.05, 0.2)
    fade_s: float = 0.005
    peak_dbfs: float = -1.0
    trim_db: float = 60.0  # sound: 10 ms frames within this of the loudest one
    silence_peak_dbfs: float = -40.0
    min_active: float = 0.25
    seed: int = 0


@dataclass
class Prepared:
    """One source file at 48 kHz mono with its measurements, or the reason it was skipped.

    ``regions`` are the sample ranges of ``wave`` that hold sound (:func:`active_regions`).
    """

    item: Item
    wave: np.ndarray | None = None
    regions: list[tuple[int, int]] = field(default_factory=list)
    native_sr: int = 0
    codec: str = ""
    lossless: bool = False
    license: str = ""
    bandwidth: Bandwidth | None = None
    skip: Skip | None = None


def _frame_db(x: np.ndarray, frame: int) -> np.ndarray:
    n = x.size // frame
    if n == 0:
        return np.array([10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-20)])
    f = x[: n * frame].astype(np.float64).reshape(n, frame)
    return 10 * np.log10(np.mean(f * f, axis=1) + 1e-20)


def active_regions(x: np.ndarray, sample_rate: int, below_db: float,
                   max_gap_s: float = 0.25, margin_s: float = 0.02) -> list[tuple[int, int]]:
    """``(start, end)`` sample ranges where sound is, in order.

    10 ms frames within ``below_db`` of the loudest frame are active; active runs closer than
    ``max_gap_s`` are merged, and each run is widened by ``margin_s`` on both sides. Leading,
    trailing and long internal silences are left out.
    """
    frame = sample_rate // 100
    db = _frame_db(x, frame)
    active = np.flatnonzero(db >= db.max() - below_db)
    if active.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(active) * frame > max_gap_s * sample_rate)
    firsts = np.concatenate([[active[0]], active[breaks + 1]])
    lasts = np.concatenate([active[breaks], [active[-1]]])
    margin = int(margin_s * sample_rate)
    return [
        (max(0, int(a) * frame - margin), min(x.size, (int(b) + 1) * frame + margin))
        for a, b in zip(firsts, lasts, strict=True)
    ]


def is_near_silent(x: np.ndarray, settings: Settings, sample_rate: int = TARGET_SR) -> bool:
    """Peak below ``silence_peak_dbfs``, or under ``min_active`` of 20 ms frames within
    ``trim_db`` of the loudest frame and above -80 dBFS."""
    if x.size == 0 or audio.peak_dbfs(x) < settings.silence_peak_dbfs:
        return True
    db = _frame_db(x, sample_rate // 50)
    active = (db >= max(db.max() - settings.trim_db, -80.0)).mean()
    return bool(active < settings.min_active)


def prepare(item: Item, reserved: ReservedList, settings: Settings) -> Prepared:
    """Load one file (never a reserved one), mono, resample to 48 kHz, find sound, measure.

    Raises
    ------
    ReservedFileError
        ``item`` is reserved (the walk should have dropped it: defence in depth).
    """
    ensure_not_reserved(item.package.name, item.relpath, reserved)
    out = Prepared(item)

    def skip(kind: str, detail: str) -> Prepared:
        out.wave = None
        out.skip = Skip(item.package.name, item.relpath, kind, detail)
        return out

    try:
        meta = audio.info(item.path)
        out.native_sr, out.codec = meta.sample_rate, f"{meta.format}/{meta.subtype}"
        out.lossless = meta.subtype not in LOSSY_SUBTYPES
        if meta.sample_rate < settings.min_native_sr:
            return skip("low_rate", f"native rate {meta.sample_rate} Hz < "
                                    f"{settings.min_native_sr} Hz")
        x, rate = audio.load(item.path)
    except AudioInputError as exc:
        return skip("unreadable", str(exc))
    mono = x.mean(axis=0, dtype=np.float32) if x.shape[0] > 1 else x[0]
    wave = audio.resample(mono, rate, TARGET_SR)
    if audio.peak_dbfs(wave) < settings.silence_peak_dbfs:
        return skip("silent", f"peak {audio.peak_dbfs(wave):.1f} dBFS")
    min_len = max(int(settings.min_part_s * TARGET_SR), 256)
    regions = active_regions(wave, TARGET_SR, settings.trim_db)
    regions = [(a, b) for a, b in regions if b - a >= min_len]
    if not regions:
        return skip("too_short", f"no sound of at least {min_len / TARGET_SR:.3f} s")
    bw = measure_bandwidth(np.concatenate([wave[a:b] for a, b in regions]), TARGET_SR)
    out.bandwidth = bw
    if bw.cap_hz < settings.min_bandwidth_hz:
        return skip("low_bandwidth", f"bandwidth {bw.cap_hz:.0f} Hz < "
                    f"{settings.min_bandwidth_hz:.0f} Hz (cliff {bw.cliff_hz:.0f}, "
                    f"bw80 {bw.bw80_hz:.0f}, bw60 {bw.bw60_hz:.0f})")
    out.license = next(
        (lic for pat, lic in item.source.licenses if fnmatch.fnmatchcase(item.relpath, pat)),
        license_for(item.package.license_text, item.relpath, item.source.license),
    )
    out.wave, out.regions = wave, regions
    return out


# --------------------------------------------------------------------------------------------
# clips


@dataclass(frozen=True)
class Part:
    """A piece of one source file inside a clip."""

    relpath: str
    bandwidth: Bandwidth
    start_s: float | None = None  # offset in the source for clips cut from long files


@dataclass
class Clip:
    """A finished 48 kHz clip and where every sample of it came from."""

    source: Source
    package: Package
    license: str
    codec: str
    native_sr: int
    lossless: bool
    wave: np.ndarray
    parts: list[Part] = field(default_factory=list)


def _fade(x: np.ndarray, n: int) -> np.ndarray:
    n = min(n, x.size // 2)
    if n <= 0:
        return x
    ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)
    y = x.copy()
    y[:n] *= ramp
    y[-n:] *= ramp[::-1]
    return y


class Packer:
    """Fills fixed-length clips with consecutive short parts of one homogeneous group.

    Parts are joined with short digital-silence gaps (seeded random length); a part that does
    not fit continues in the next clip. Every clip lists all parts it holds.
    """

    def __init__(self, template: Prepared, settings: Settings, seed: int) -> None:
        self.template = template
        self.settings = settings
        self.length = int(round(settings.clip_s * TARGET_SR))
        self.rng = np.random.default_rng(seed)
        self.pieces: list[np.ndarray] = []
        self.parts: list[Part] = []
        self.filled = 0

    def _emit(self) -> Clip:
        wave = np.concatenate(self.pieces) if self.pieces else np.zeros(0, np.float32)
        wave = np.pad(wave, (0, self.length - wave.size))
        t = self.template
        clip = Clip(t.item.source, t.item.package, t.license, t.codec, t.native_sr, t.lossless,
                    wave.astype(np.float32), self.parts)
        self.pieces, self.parts, self.filled = [], [], 0
        return clip

    def add(self, wave: np.ndarray, part: Part) -> list[Clip]:
        """Append one part; returns the clips it completed."""
        done: list[Clip] = []
        lo, hi = self.settings.gap_s
        wave = _fade(wave, int(self.settings.fade_s * TARGET_SR))
        pos = 0
        while pos < wave.size:
            if self.filled and pos == 0:
                gap = min(int(self.rng.uniform(lo, hi) * TARGET_SR), self.length - self.filled)
                self.pieces.append(np.zeros(gap, np.float32))
                self.filled += gap
            if self.filled == self.length:
                done.append(self._emit())
                continue
            take = min(wave.size - pos, self.length - self.filled)
            self.pieces.append(wave[pos : pos + take])
            if not self.parts or self.parts[-1] is not part:
                self.parts.append(part)
            self.filled += take
            pos += take
            if self.filled == self.length:
                done.append(self._emit())
        return done

    def flush(self) -> Clip | None:
        """The last, partly filled clip (zero-padded), or None if it is under half full."""
        if self.filled >= self.settings.min_last_fill * self.length:
            return self._emit()
        self.pieces, self.parts, self.filled = [], [], 0
        return None


def _seed(settings: Settings, *keys: object) -> int:
    return zlib.crc32(repr((settings.seed, *keys)).encode())


def clips_from_file(prep: Prepared, packer: Packer, settings: Settings) -> list[Clip]:
    """Whole clips cut from each long sound region; short regions and rests go to the packer."""
    wave, length = prep.wave, int(round(settings.clip_s * TARGET_SR))
    if wave is None or prep.bandwidth is None:
        raise ValueError(f"{prep.item.relpath} was skipped; it has no clips")
    item = prep.item
    clips: list[Clip] = []
    for start, end in prep.regions:
        full = (end - start) // length
        for k in range(full):
            a = start + k * length
            clips.append(Clip(item.source, item.package, prep.license, prep.codec,
                              prep.native_sr, prep.lossless, wave[a : a + length],
                              [Part(item.relpath, prep.bandwidth, a / TARGET_SR)]))
        rest = wave[start + full * length : end]
        if rest.size >= settings.min_part_s * TARGET_SR:
            clips += packer.add(rest, Part(item.relpath, prep.bandwidth))
    return clips


# --------------------------------------------------------------------------------------------
# writing


class CorpusWriter:
    """Writes clips (PCM_24 WAV, peak-normalised) and the manifest; refuses reserved sources."""

    def __init__(self, out: Path, reserved: ReservedList, settings: Settings) -> None:
        self.out = out
        self.reserved = reserved
        self.settings = settings
        self.rows: list[dict[str, str]] = []
        self.counters: Counter[str] = Counter()
        self.skips: list[Skip] = []  # near-silent clips

    def add(self, clip: Clip) -> Path | None:
        """Check, normalise and write one clip; returns its path (None if near-silent).

        Raises
        ------
        ReservedFileError
            Any part of the clip comes from a reserved file.
        ValueError
            Wrong length, or a source below the minimum native rate (never upsampled audio).
        """
        for part in clip.parts:
            ensure_not_reserved(clip.package.name, part.relpath, self.reserved)
        if not clip.parts:
            raise ValueError("a clip without source parts")
        length = int(round(self.settings.clip_s * TARGET_SR))
        if clip.wave.shape != (length,):
            raise ValueError(f"clip shape {clip.wave.shape}, expected ({length},)")
        if clip.native_sr < self.settings.min_native_sr:
            raise ValueError(f"clip from a {clip.native_sr} Hz source: it would be upsampled")
        files = list(dict.fromkeys(p.relpath for p in clip.parts))
        if is_near_silent(clip.wave, self.settings):
            self.skips.append(Skip(clip.package.name, ";".join(files), "silent_clip",
                                   f"a {clip.source.name} clip is near-silent"))
            return None
        peak = float(np.max(np.abs(clip.wave)))
        wave = clip.wave * np.float32(10 ** (self.settings.peak_dbfs / 20) / peak)
        subset = clip.source.name
        index = self.counters[subset]
        self.counters[subset] += 1
        rel = f"{clip.source.domain}/{subset}/{subset}_{index:05d}.wav"
        audio.save(self.out / rel, wave[None, :], TARGET_SR, subtype="PCM_24")
        bws = [p.bandwidth for p in clip.parts]
        start = clip.parts[0].start_s if len(clip.parts) == 1 else None
        self.rows.append({
            "clip": rel,
            "domain": clip.source.domain,
            "subset": subset,
            "package": clip.package.name,
            "package_version": clip.package.version,
            "source_files": ";".join(files),
            "source_start_s": "" if start is None else f"{start:.3f}",
            "license": clip.license,
            "source_codec": clip.codec,
            "source_sr": str(clip.native_sr),
            "lossless_source": str(int(clip.lossless)),
            "duration_s": f"{self.settings.clip_s:.3f}",
            "bandwidth_hz": f"{min(b.cap_hz for b in bws):.0f}",
            "cliff_hz": f"{min(b.cliff_hz for b in bws):.0f}",
            "bw60_hz": f"{min(b.bw60_hz for b in bws):.0f}",
            "bw80_hz": f"{min(b.bw80_hz for b in bws):.0f}",
        })  # fmt: skip
        return self.out / rel


def _write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict[str, str]]) -> None:
    with atomic.atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def read_manifest(path: Path) -> list[dict[str, str]]:
    """Rows of a ``manifest.csv``."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def audit_manifest(manifest: Path, reserved: ReservedList) -> list[str]:
    """Reserved sources found in a manifest (empty list: the corpus is clean)."""
    bad = []
    for row in read_manifest(manifest):
        for rel in filter(None, row["source_files"].split(";")):
            why = reserved_reason(row["package"], rel, reserved)
            if why is not None:
                bad.append(f"{row['clip']}: {row['package']} {rel} ({why})")
    return bad


# --------------------------------------------------------------------------------------------
# the build


@dataclass
class BuildSummary:
    """What a build produced."""

    clips: int
    seconds_by_domain: dict[str, float]
    clips_by_domain: dict[str, int]
    skipped_by_kind: dict[str, int]
    manifest: Path


def _prepare_task(args: tuple[Item, ReservedList, Settings]) -> Prepared:
    return prepare(*args)


def _prepared(items: Sequence[Item], reserved: ReservedList, settings: Settings,
              jobs: int) -> Iterator[Prepared]:
    tasks = ((item, reserved, settings) for item in items)
    if jobs <= 1:
        yield from map(_prepare_task, tasks)
        return
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        yield from pool.imap(_prepare_task, tasks, chunksize=8)  # ordered: deterministic


def prepare_out_dir(out: Path, overwrite: bool) -> None:
    """Make ``out`` ready: create it, or clear a previous build when ``overwrite``."""
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise CorpusError(f"{out} is not empty; pass --overwrite to replace a previous build")
        if not (out / "build_info.json").is_file():
            raise CorpusError(f"{out} has no build_info.json: not a corpus of ours, not deleting")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def build_corpus(sources: Sequence[Source], packages: dict[str, Package], reserved: ReservedList,
                 out: Path, settings: Settings | None = None, jobs: int = 1,
                 max_files: int | None = None, extra_info: dict | None = None,
                 progress: bool = False) -> BuildSummary:
    """Process unpacked packages into clips under ``out`` (which must exist and be empty).

    Writes ``<domain>/<subset>/<subset>_NNNNN.wav``, ``manifest.csv`` (one row per clip),
    ``skipped.csv`` (every file left out, with the reason) and ``build_info.json``.
    """
    settings = settings or Settings()
    items, skips = walk_sources(sources, packages, reserved, max_files)
    writer = CorpusWriter(out, reserved, settings)
    packers: dict[tuple, Packer] = {}
    for n, prep in enumerate(_prepared(items, reserved, settings, jobs), 1):
        if progress and n % 250 == 0:
            print(f"  {n}/{len(items)} files, {len(writer.rows)} clips", flush=True)
        if prep.skip is not None:
            skips.append(prep.skip)
            continue
        key = (prep.item.source.name, prep.license, prep.native_sr, prep.codec, prep.lossless)
        if key not in packers:
            packers[key] = Packer(prep, settings, _seed(settings, *key))
        for clip in clips_from_file(prep, packers[key], settings):
            writer.add(clip)
    for packer in packers.values():
        clip = packer.flush()
        if clip is not None:
            writer.add(clip)

    skips += writer.skips
    _write_csv(out / "manifest.csv", MANIFEST_COLUMNS, writer.rows)
    _write_csv(out / "skipped.csv", ("package", "source_file", "kind", "detail"),
               ({"package": s.package, "source_file": s.relpath, "kind": s.kind,
                 "detail": s.detail} for s in skips))
    secs: Counter[str] = Counter()
    clips: Counter[str] = Counter()
    for row in writer.rows:
        secs[row["domain"]] += float(row["duration_s"])
        clips[row["domain"]] += 1
    kinds = Counter(s.kind for s in skips)
    info = {
        "sources": [s.name for s in sources],
        "packages": {p.name: p.version for p in sorted(packages.values(), key=lambda p: p.name)},
        "reserved_list": {"file": Path(reserved.origin).name, "sha256": reserved.sha256,
                          "entries": len(reserved),
                          "coarse_rules": [asdict(r) for r in reserved.coarse]},
        "settings": asdict(settings),
        "clips_by_domain": dict(sorted(clips.items())),
        "hours_by_domain": {k: round(v / 3600, 4) for k, v in sorted(secs.items())},
        "skipped_by_kind": dict(sorted(kinds.items())),
        **(extra_info or {}),
    }
    (out / "build_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    bad = audit_manifest(out / "manifest.csv", reserved)
    if bad:  # unreachable unless something above is broken; never leave such a corpus around
        raise ReservedFileError("reserved sources in the manifest: " + "; ".join(bad[:5]))
    return BuildSummary(len(writer.rows), dict(secs), dict(clips), dict(kinds),
                        out / "manifest.csv")


# --------------------------------------------------------------------------------------------
# command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m recipes.build_corpus",
        description="Build the lite training corpus (48 kHz mono PCM_24 clips + manifest.csv) "
        "from real recordings in Debian packages. Files of ../shared/data/eval-reserved.txt "
        "are never read.",
    )
    p.add_argument("--out", type=Path, help="output folder for clips and manifest.csv")
    p.add_argument("--cache", type=Path, default=Path("corpus_cache"),
                   help="download/unpack cache: CACHE/debs, CACHE/unpacked "
                   "(default ./corpus_cache)")
    p.add_argument("--sources", default="default",
                   help="comma list of source names or 'default'/'all' (see --list-sources)")
    p.add_argument("--reserved", type=Path, default=DEFAULT_RESERVED,
                   help=f"reserved-files list (default {DEFAULT_RESERVED})")
    p.add_argument("--no-coarse-exclusions", action="store_true",
                   help="apply only the exact reserved list, not the README's group rules "
                   "(brings back near-duplicates of eval clips, e.g. other guitar-strum takes)")
    p.add_argument("--clip-seconds", type=float, default=Settings.clip_s)
    p.add_argument("--min-bandwidth", type=float, default=Settings.min_bandwidth_hz,
                   help="skip files whose measured bandwidth is below this, Hz (default 16000)")
    p.add_argument("--seed", type=int, default=Settings.seed)
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--max-files-per-source", type=int, default=None,
                   help="take only the first N files of each source (quick trials)")
    p.add_argument("--offline", action="store_true", help="use only .deb files already in CACHE")
    p.add_argument("--overwrite", action="store_true", help="replace a previous build in --out")
    p.add_argument("--list-sources", action="store_true", help="print the source table and exit")
    p.add_argument("--audit", type=Path, metavar="MANIFEST",
                   help="check a manifest.csv against the reserved list and exit")
    return p


def _list_sources() -> None:
    for s in SOURCES:
        flag = "optional" if s.optional else "default"
        print(f"{s.name:22s} {flag:8s} {s.domain:6s} {s.package:26s} {s.license}\n"
              f"{'':22s} {' '.join(s.include)}\n{'':22s} {s.note}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 for a :class:`CorpusError`)."""
    args = _parser().parse_args(argv)
    try:
        return _main(args)
    except CorpusError as exc:
        print(f"build_corpus: error: {exc}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    if args.list_sources:
        _list_sources()
        return 0
    reserved = load_reserved(args.reserved, coarse=not args.no_coarse_exclusions)
    if args.audit:
        bad = audit_manifest(args.audit, reserved)
        rows = len(read_manifest(args.audit))
        for line in bad:
            print("RESERVED:", line)
        print(f"{rows} clips checked against {len(reserved)} reserved entries: "
              f"{len(bad)} problems")
        return 1 if bad else 0
    if args.out is None:
        raise CorpusError("--out is required to build (or use --audit / --list-sources)")
    sources = select_sources(args.sources)
    settings = Settings(clip_s=args.clip_seconds, min_bandwidth_hz=args.min_bandwidth,
                        seed=args.seed)
    t0 = time.monotonic()
    print(f"reserved list: {reserved.origin} ({len(reserved)} entries, coarse rules "
          f"{'on' if reserved.coarse else 'OFF'})")
    packages, sizes, unavailable = fetch_packages(
        sorted({s.package for s in sources}), args.cache.resolve(), args.offline
    )
    t1 = time.monotonic()
    prepare_out_dir(args.out, args.overwrite)
    print(f"processing {len(sources)} sources with {args.jobs} job(s)", flush=True)
    summary = build_corpus(
        sources, packages, reserved, args.out, settings, args.jobs, args.max_files_per_source,
        extra_info={"unavailable_packages": unavailable, "deb_bytes": dict(sorted(sizes.items()))},
        progress=True,
    )
    t2 = time.monotonic()
    for domain in sorted(summary.clips_by_domain):
        print(f"  {domain:7s} {summary.clips_by_domain[domain]:6d} clips "
              f"{summary.seconds_by_domain[domain] / 3600:7.3f} h")
    print(f"  total   {summary.clips:6d} clips "
          f"{sum(summary.seconds_by_domain.values()) / 3600:7.3f} h")
    print(f"  skipped files: {summary.skipped_by_kind}")
    if unavailable:
        print(f"  unavailable packages: {', '.join(unavailable)}")
    print(f"  debs: {sum(sizes.values()) / 1e6:.0f} MB; fetch+unpack {t1 - t0:.0f} s, "
          f"processing {t2 - t1:.0f} s")
    print(f"wrote {summary.manifest}")
    return 0
