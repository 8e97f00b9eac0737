"""Atomic writes: a file (or folder) appears complete at its name, or not at all.

Everything audiosr-plug writes goes through :func:`atomic_path` (or :func:`atomic_folder`):
the data goes to a hidden temporary name beside the destination (``.NAME.XXXXXXXX.part``),
is flushed to disk (``fsync``), and is then renamed over the destination (``os.replace``),
after which the folder is flushed too. On any exception, ``KeyboardInterrupt`` included, the
temporary file is removed. A process killed outright (SIGKILL, power loss) can leave a
temporary file behind: :func:`sweep` removes those on the next run. While a temporary file
is being written its writer holds an advisory lock on it (``flock``), so a sweep never
removes the file of a run that is still going.

Example
-------
>>> from audiosr_core import atomic
>>> atomic.write_text("out/report.json", "{}\\n")              # doctest: +SKIP
>>> with atomic.atomic_path("out/x.wav") as tmp:                # doctest: +SKIP
...     soundfile.write(tmp, data, 48000, format="WAV")
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

try:  # POSIX; elsewhere temporary files are swept without the liveness check
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["TEMP_SUFFIX", "is_temporary", "atomic_path", "atomic_folder", "scratch_path",
           "write_text", "write_bytes", "sweep"]

TEMP_SUFFIX = ".part"
"""Every temporary name ends with this."""
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.part$")


def _temporary_name(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


def is_temporary(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` has the name of one of our temporary files or folders."""
    return bool(_TEMP_NAME.match(Path(path).name))


def _lock(fd: int) -> bool:
    """Take the exclusive advisory lock of ``fd`` without waiting; False if another holds it."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _create_locked(dest: Path) -> tuple[Path, int]:
    """A new, empty, locked temporary file beside ``dest`` (parents created): (path, fd)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = _temporary_name(dest)
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    _lock(fd)
    return tmp, fd


def _fsync_path(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:        # not every platform opens folders; the rename still happened
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path to write; it becomes ``dest`` when the ``with`` block succeeds.

    The temporary file exists (empty, locked) when the block starts; write it by name with
    any library. Missing parent folders are created. ``dest`` is replaced only at the end,
    so it is always either its old content or the complete new one.

    Raises
    ------
    OSError
        The folder cannot be created or written, the disk is full, ...
    """
    dest = Path(dest)
    tmp, fd = _create_locked(dest)
    try:
        yield tmp
        _fsync_path(tmp)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    _fsync_path(dest.parent, directory=True)


@contextlib.contextmanager
def atomic_folder(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary folder to fill; it is renamed to ``dest`` when the ``with`` block succeeds.

    ``dest`` must not exist yet when the block ends (a folder cannot replace another
    atomically); the temporary folder is removed on any exception.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(dest)
    tmp.mkdir()
    fd = os.open(tmp, os.O_RDONLY)
    try:
        _lock(fd)
        yield tmp
        for root, _dirs, files in os.walk(tmp):
            for name in files:
                _fsync_path(Path(root) / name)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(fd)
    _fsync_path(dest.parent, directory=True)


def write_bytes(dest: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``dest`` atomically; returns ``dest``."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text(dest: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``dest`` atomically; returns ``dest``."""
    return write_bytes(dest, text.encode(encoding))


def sweep(folder: str | os.PathLike[str], recursive: bool = True) -> list[Path]:
    """Remove temporary files and folders left under ``folder`` by killed runs.

    Only names of the form :func:`is_temporary` are touched, and only when no live writer
    holds their lock. Symbolic links are not followed; ``recursive=False`` looks in
    ``folder`` itself only. Returns what was removed.
    """
    removed: list[Path] = []
    root = Path(folder)
    if not root.is_dir():
        return removed
    for current, dirs, files in os.walk(root):
        here = Path(current)
        for name in [*files, *dirs]:
            path = here / name
            if not is_temporary(path) or path.is_symlink():
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                if not _lock(fd):
                    continue        # a running writer still owns it
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink()
                removed.append(path)
            except OSError:
                continue
            finally:
                os.close(fd)
        dirs[:] = [d for d in dirs if recursive and not is_temporary(d)
                   and not (here / d).is_symlink()]
    return removed


@contextlib.contextmanager
def scratch_path(beside: str | os.PathLike[str]) -> Iterator[Path]:
    """A locked temporary file beside ``beside`` for intermediate data; always removed at
    the end of the ``with`` block (and swept by :func:`sweep` if the process is killed)."""
    tmp, fd = _create_locked(Path(beside))
    try:
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        os.close(fd)
