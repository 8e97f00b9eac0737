"""Which files a run enhances, and where each output goes.

Inputs are files, folders (searched recursively) and lines of list files. Every input gets
exactly one output inside the output folder, or a reason why not:

- a file ``a/b.wav`` writes ``OUTDIR/b.<fmt>``; a folder ``dir`` writes ``dir/x/y.flac`` to
  ``OUTDIR/<dir's name>/x/y.<fmt>``, mirroring its tree. The folder's name is taken from its
  absolute path, so ``.``, ``..``, ``../music/`` and absolute paths all stay inside OUTDIR;
- folder searches skip hidden files and folders (names starting with ``.``: macOS ``._x.wav``,
  ``.git``, our temporary files), the output folder when it lies inside the searched folder,
  and files an enhancer wrote (their "software" tag), so a rerun never takes earlier outputs
  as inputs. Files named directly are always taken;
- two different inputs that would write the same output (``a.wav`` and ``a.flac`` in one
  folder, ``d1/x.wav`` and ``d2/x.wav``) are both refused, with a reason naming the other;
  the same file named twice is enhanced once;
- an input that would be its own output is refused.

Example
-------
>>> from audiosr_core.jobs import plan_jobs
>>> plan = plan_jobs(["song.flac", "speeches/"], "out", "wav")        # doctest: +SKIP
>>> [(str(j.source), str(j.output)) for j in plan.jobs]               # doctest: +SKIP
[('song.flac', 'out/song.wav'), ('speeches/a.wav', 'out/speeches/a.wav')]
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import audio

__all__ = ["Job", "Refusal", "JobPlan", "plan_jobs", "read_list", "find_audio"]


@dataclass(frozen=True)
class Job:
    """One input file and the output it becomes (``output`` is inside the output folder)."""

    source: Path
    output: Path


@dataclass(frozen=True)
class Refusal:
    """An input that gets no output, and why (``reason`` does not repeat the path)."""

    source: Path
    output: Path | None
    reason: str


@dataclass
class JobPlan:
    """What a run does.

    Attributes
    ----------
    jobs : list of Job
        In input order; outputs are distinct.
    refused : list of Refusal
        Inputs that get no output (collisions, an input that is its own output).
    earlier_outputs : int
        Files found in searched folders that are outputs of an enhancer, not inputs.
    duplicates : int
        Inputs named more than once (enhanced once).
    """

    jobs: list[Job] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    earlier_outputs: int = 0
    duplicates: int = 0


def read_list(source: str, stdin: Iterable[str] | None = None) -> list[str]:
    """Paths from a list file: one per line, blank lines and ``#`` comments skipped; ``-`` is
    standard input (``stdin``, default ``sys.stdin``)."""
    if source == "-":
        import sys

        text = "".join(stdin if stdin is not None else sys.stdin)
    else:
        text = Path(source).read_text(errors="surrogateescape")
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _absolute(path: str | os.PathLike[str]) -> Path:
    """Absolute and lexically normalised (``..`` folded, symbolic links kept)."""
    return Path(os.path.normpath(os.path.abspath(os.fspath(path))))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _walk(root: Path, allowed: set[str], skip: list[Path]) -> Iterator[Path]:
    """Audio files under ``root`` (sorted, hidden names skipped, symbolic links to folders
    followed once), except under the real paths in ``skip``."""
    seen: set[str] = set()
    for current, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(current)
        if real in seen or any(_inside(Path(real), s) for s in skip):
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(current) / name
            if path.suffix.lower() in allowed and path.is_file():
                yield path


def find_audio(folder: str | os.PathLike[str],
               extensions: Sequence[str] | None = None) -> list[Path]:
    """Audio files under ``folder`` as :func:`plan_jobs` searches it: recursive, sorted, hidden
    names skipped, symbolic links to folders followed once.

    Parameters
    ----------
    folder : str or PathLike
        Folder to search.
    extensions : sequence of str, optional
        Lower-case extensions with the dot (``[".wav", ".flac"]``); default every one of
        :data:`audiosr_core.audio.SUPPORTED_EXTENSIONS`.

    Returns
    -------
    list of Path
        ``folder / relative path`` of each file, in search order.
    """
    allowed = {e.lower() for e in extensions} if extensions else set(audio.SUPPORTED_EXTENSIONS)
    return list(_walk(Path(os.fspath(folder)), allowed, []))


def plan_jobs(inputs: Sequence[str | os.PathLike[str]], output_dir: str | os.PathLike[str],
              fmt: str = "wav", extensions: Sequence[str] | None = None) -> JobPlan:
    """Map inputs to outputs (the rules are in the module docstring).

    Parameters
    ----------
    inputs : sequence of str or PathLike
        Files and folders, in order. Paths that do not exist are kept as jobs (their load
        reports the error, so the run says what is wrong with each).
    output_dir : str or PathLike
        OUTDIR.
    fmt : {"wav", "flac"}
        Output extension.
    extensions : sequence of str, optional
        Extensions searched in folders (``[".wav", ".flac"]``); default every supported one.

    Returns
    -------
    JobPlan
    """
    allowed = {e.lower() for e in extensions} if extensions else set(audio.SUPPORTED_EXTENSIONS)
    out_abs = _absolute(output_dir)
    out_real = Path(os.path.realpath(out_abs))
    candidates: list[Job] = []
    plan = JobPlan()
    for raw in inputs:
        given = Path(os.fspath(raw))
        if not given.is_dir():
            candidates.append(Job(given, Path(output_dir) / f"{given.stem}.{fmt}"))
            continue
        root_abs = _absolute(given)
        root_real = Path(os.path.realpath(root_abs))
        mirror = root_abs.name                 # "" only for a filesystem root
        skip = []
        if _inside(out_real, root_real) and out_real != root_real:
            skip.append(out_real)              # enhance . -o out
        mirror_real = Path(os.path.realpath(out_abs / mirror)) if mirror else out_real
        if _inside(mirror_real, root_real) and mirror_real != root_real:
            skip.append(mirror_real)           # enhance music -o music
        for path in _walk(given, allowed, skip):
            if audio.is_enhanced_output(path):
                plan.earlier_outputs += 1
                continue
            rel = path.relative_to(given).with_suffix(f".{fmt}")
            candidates.append(Job(path, Path(output_dir) / mirror / rel))
    by_output: dict[Path, list[Job]] = {}
    for job in candidates:
        by_output.setdefault(_absolute(job.output), []).append(job)
    for job in candidates:
        group = by_output[_absolute(job.output)]
        sources = {os.path.realpath(j.source) for j in group}
        if len(sources) == 1:
            if job is group[0]:
                plan.jobs.append(job)
            else:
                plan.duplicates += 1
            continue
        others = ", ".join(audio.display_path(j.source) for j in group if j is not job)
        plan.refused.append(Refusal(job.source, job.output,
                                    f"{others} would also be written to "
                                    f"{audio.display_path(job.output)}; enhance them into "
                                    "different output folders or rename one"))
    kept = []
    for job in plan.jobs:
        if job.source.exists() and os.path.realpath(job.source) == os.path.realpath(job.output):
            plan.refused.append(Refusal(job.source, job.output,
                                        "the output would overwrite this input file; choose "
                                        "another output folder"))
        else:
            kept.append(job)
    plan.jobs = kept
    return plan
