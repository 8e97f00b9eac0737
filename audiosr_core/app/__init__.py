"""``audiosr-plug app``: a small local web page to enhance one file at a time.

    audiosr-plug app [--host 127.0.0.1] [--port 7860] [--model lite] [--model-dir DIR]
                     [--device D] [--max-upload-mb 200] [--open]

Drop or pick an audio file (or record one from the microphone), choose the model and the
output, and get before/after players, before/after spectrograms on one frequency axis and one
dB scale, the detected band edge of the input, and a download link. Jobs run one at a time
per model in a background worker (FIFO); the page polls their status.

Why a page of our own and not Gradio: it works fully offline, loads nothing from a CDN (its
few kilobytes of plain JavaScript and CSS ship inside the package), adds only Flask and
waitress (``pip install 'audiosr-plug[app]'``, no frontend download or build step), and
runs on the same stack as the preference study (``recipes/preference_study``), so there is
one way to serve and test a page in this project.

Safety: the server listens on 127.0.0.1 unless told otherwise (and then warns), and a
local-only server answers only requests for localhost; uploads are limited in size; jobs are
addressed by random ids, their files live in a temporary folder of this run (deleted when
it stops), and the client never names a path. Finished jobs are removed after an hour or
once 20 newer ones have finished.

Importing this package is cheap (no Flask, no torch): ``audiosr-plug enhance`` never loads
Flask.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from ..enhancer import Enhancer

__all__ = ["create_app", "add_arguments", "run", "main", "RunningApp", "DEFAULT_PORT"]

DEFAULT_PORT = 7860
EXIT_OK, EXIT_USAGE = 0, 2


def create_app(model: str = "lite", model_dirs: Sequence[str | os.PathLike[str]] = (), *,
               device: str | None = None, max_upload_mb: float = 200.0,
               local_only: bool = True, work_dir: str | os.PathLike[str] | None = None,
               loader: Callable[[str, str | None], Enhancer] | None = None,
               keep_jobs: int = 20, max_age_s: float = 3600.0) -> Flask:
    """The app's Flask application.

    Parameters
    ----------
    model : str
        Model selected first: ``lite``, ``basic``, ``speech`` or a model folder.
    model_dirs : sequence of paths
        More model folders to offer (lite or converted diffusion folders).
    device : str, optional
        Where the models run (default: :func:`audiosr_core.load`'s choice).
    max_upload_mb : float
        Largest upload, MiB (larger ones get a 413 with a clear message).
    local_only : bool
        Answer only requests addressed to localhost / 127.0.0.1 / ::1.
    work_dir : path, optional
        Folder for the jobs' files; default a new temporary folder, deleted by
        ``app.extensions["audiosr_app"].close()`` and at exit.
    loader : callable, optional
        ``loader(name_or_folder, device) -> Enhancer`` (default :func:`audiosr_core.load`).
    keep_jobs, max_age_s : int, float
        Finished jobs kept at most, and for how long (seconds).

    Raises
    ------
    audiosr_core.errors.AudioSRError
        A model folder that is not a model; a device this machine lacks.
    ValueError
        A non-positive upload limit.
    """
    from .catalogue import build_catalogue
    from .web import build_app

    if not max_upload_mb > 0:
        raise ValueError(f"the upload limit must be positive, got {max_upload_mb} MB")
    if device is not None:
        from ..devices import resolve_device

        resolve_device(device)
    choices, selected = build_catalogue(model, list(model_dirs))
    return build_app(choices, selected, device=device,
                     max_upload_bytes=int(max_upload_mb * 2**20), local_only=local_only,
                     work_dir=Path(work_dir) if work_dir is not None else None, loader=loader,
                     keep_jobs=keep_jobs, max_age_s=max_age_s)


class RunningApp:
    """A waitress server for an app on a background thread; :meth:`stop` ends it."""

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0,
                 threads: int = 8) -> None:
        self.app = app
        self.host = host
        self.server = make_server(app, host, port, threads)
        self.port = int(self.server.effective_port)
        self.thread = threading.Thread(target=self.server.run, name="audiosr-app-server",
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash."""
        return _url(self.host, self.port)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving, let running requests end, join the thread, close the app."""
        from waitress import wasyncore

        if self.thread.is_alive():
            self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self.server._map))
            self.thread.join(timeout_s)
        self.server.task_dispatcher.shutdown()
        self.app.extensions["audiosr_app"].close()

    def __enter__(self) -> RunningApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_server(app: Flask, host: str, port: int, threads: int = 8) -> Any:
    """A waitress server for ``app`` (its body limit a little above the app's, so that the
    app, not waitress, answers a too-large upload with its message)."""
    from waitress import create_server

    limit = int(app.config["MAX_CONTENT_LENGTH"]) + 2**20
    return create_server(app, host=host, port=port, threads=threads, ident="audiosr-plug",
                         max_request_body_size=limit)


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    return f"http://{f'[{shown}]' if ':' in shown else shown}:{port}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ------------------------------------------------------------------------------ command
def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``app`` command's options (and ``func``: :func:`run`) on ``parser``."""
    parser.description = (
        "Serve a local web page to enhance audio files: drop a file or record one, pick the "
        "model and output, listen before/after, compare spectrograms, download the result. "
        "Local only by default; press Ctrl-C to stop (the uploads and results are deleted).")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this computer only; "
                             "0.0.0.0 lets anyone on the network use it, without a login)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port (default {DEFAULT_PORT}; 0 = any free port)")
    parser.add_argument("--model", default="lite",
                        help="model selected first: lite (default), basic, speech or a model "
                             "folder; the page offers all of them")
    parser.add_argument("--model-dir", action="append", default=[], metavar="DIR",
                        help="also offer this model folder (repeatable)")
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, cuda:1, mps (default: auto; lite runs on the CPU)")
    parser.add_argument("--max-upload-mb", type=float, default=200.0, metavar="MB",
                        help="largest upload in MB (default 200)")
    parser.add_argument("--open", action="store_true",
                        help="open the page in the default web browser")
    parser.set_defaults(func=run)
    return parser


def _missing_dependencies() -> str | None:
    try:
        import flask  # noqa: F401
        import waitress  # noqa: F401
    except ImportError as exc:
        return (f"audiosr-plug app needs Flask and waitress ({exc.name} is missing): "
                "pip install 'audiosr-plug[app]'")
    return None


def _check_args(args: argparse.Namespace) -> str | None:
    if not 0 <= args.port <= 65535:
        return f"--port must be 0..65535, got {args.port}"
    if not args.max_upload_mb > 0:
        return f"--max-upload-mb must be positive, got {args.max_upload_mb}"
    return _missing_dependencies()


def _stop_on_sigterm() -> Any:
    """Make SIGTERM stop the server like Ctrl-C (main thread only); the previous handler."""
    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, interrupt)


def run(args: argparse.Namespace) -> int:
    """Serve the app until Ctrl-C (or SIGTERM); returns the exit code. Errors in the model
    settings raise :class:`audiosr_core.errors.AudioSRError` (the CLI prints them)."""
    problem = _check_args(args)
    if problem:
        print(f"audiosr-plug: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    local = is_loopback(args.host)
    app = create_app(args.model, args.model_dir, device=args.device,
                     max_upload_mb=args.max_upload_mb, local_only=local)
    try:
        server = make_server(app, args.host, args.port)
    except OSError as exc:
        app.extensions["audiosr_app"].close()
        print(f"audiosr-plug: error: cannot listen on {args.host}:{args.port} "
              f"({exc.strerror or exc}); choose another --port", file=sys.stderr)
        return EXIT_USAGE
    url = _url(args.host, int(server.effective_port))
    if not local:
        print(f"audiosr-plug: warning: listening on {args.host}: anyone who can reach this "
              "machine can upload files and use its processor; there is no login. Use "
              "--host 127.0.0.1 to keep it local.", file=sys.stderr)
    print(f"audiosr-plug app: open {url}/ (Ctrl-C to stop)", flush=True)
    if args.open:
        import webbrowser

        threading.Timer(0.5, webbrowser.open, args=(f"{url}/",)).start()
    previous = _stop_on_sigterm()
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        app.extensions["audiosr_app"].close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print("audiosr-plug app: stopped; the uploads and results were deleted", flush=True)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m audiosr_core.app``: the same as ``audiosr-plug app``."""
    parser = add_arguments(argparse.ArgumentParser(prog="audiosr-plug app"))
    args = parser.parse_args(argv)
    from ..errors import AudioSRError

    try:
        return args.func(args)
    except (AudioSRError, ValueError) as exc:
        print(f"audiosr-plug: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
