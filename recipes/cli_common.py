"""What ``tts_enhance`` and ``generate_and_enhance`` share: reading prompts, the output
folder, the enhancer options, and the generate -> save -> enhance -> save -> page loop.

Output folder layout (``NNN`` = 001, 002, ... in prompt order)::

    OUT/index.html                     the listening page
    OUT/NNN.wav                        48 kHz, enhanced ("after")
    OUT/before/NNN.wav                 the generator's own output at its own rate ("before")
    OUT/spectrograms/NNN-before.png    spectrograms, shared 0-24 kHz axis and dB scale
    OUT/spectrograms/NNN-after.png

WAV files are 32-bit float, so nothing is clipped.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from audiosr_core.loading import DEFAULT_MODEL
from audiosr_core.rates import SAMPLE_RATE, output_length
from audiosr_core.sampling import SAMPLERS
from recipes.generators import Generator, enhance_audio
from recipes.listening_page import PageEntry, render_spectrogram_pair, write_listening_page

__all__ = ["UsageError", "read_lines", "prepare_output", "add_enhancer_arguments",
           "enhance_options", "load_enhancer", "run_items", "Outcome", "report", "finish",
           "settings_table", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE"]

SUBTYPE = "FLOAT"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input from the user (exit code 2); the message says what and what to do."""


def read_lines(source: str, stdin: TextIO | None = None, what: str = "text") -> list[str]:
    """Non-blank lines (stripped) of a UTF-8 file, or of stdin for ``"-"``."""
    if source == "-":
        text = (stdin or sys.stdin).read()
        name = "standard input"
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise UsageError(f"{what} file {source!r} does not exist"
                             + (" (it is a folder)" if path.is_dir() else ""))
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UsageError(f"{what} file {source!r} is not UTF-8 text ({exc}); save it as "
                             "UTF-8") from exc
        name = repr(source)
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise UsageError(f"no {what} in {name}: it is empty or has only blank lines; give one "
                         "line per item")
    return lines


#: Files this recipe writes (glob patterns relative to the output folder).
_OWN_FILES = ("index.html", "[0-9][0-9][0-9]*.wav", "before/[0-9][0-9][0-9]*.wav",
              "spectrograms/[0-9][0-9][0-9]*-before.png",
              "spectrograms/[0-9][0-9][0-9]*-after.png")


def prepare_output(folder: str | os.PathLike[str], overwrite: bool) -> Path:
    """Create the output folder; an existing non-empty one is refused unless ``overwrite``
    (then the files an earlier run wrote there are removed, nothing else)."""
    out = Path(folder).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"output {str(folder)!r} is a file, not a folder; choose a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UsageError(f"output folder {str(folder)!r} is not empty; pass --overwrite to "
                             "replace an earlier run's files, or choose another folder")
        for pattern in _OWN_FILES:
            for old in out.glob(pattern):
                if old.is_file():
                    old.unlink()
    (out / "before").mkdir(parents=True, exist_ok=True)
    (out / "spectrograms").mkdir(exist_ok=True)
    return out


def add_enhancer_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model --steps --guidance-scale --seed --sampler --device --output-rate``."""
    group = parser.add_argument_group("enhancer (AudioSR)")
    group.add_argument("--model", default=DEFAULT_MODEL, metavar="lite|basic|speech|FOLDER",
                       help=f"AudioSR model (default {DEFAULT_MODEL}: ships with the package, "
                            "fastest on CPU; basic/speech are the official diffusion models, "
                            "downloaded once)")
    group.add_argument("--steps", type=int, default=50, help="AudioSR sampling steps (default 50)")
    group.add_argument("--guidance-scale", type=float, default=3.5,
                       help="AudioSR classifier-free guidance (default 3.5)")
    group.add_argument("--seed", type=int, default=42,
                       help="seed of the generator and of AudioSR (default 42)")
    group.add_argument("--sampler", choices=SAMPLERS, default="ddim",
                       help="AudioSR sampler (default ddim)")
    group.add_argument("--device", default="cpu",
                       help="cpu, cuda, cuda:1, mps for the generator and AudioSR (default cpu)")
    group.add_argument("--output-rate", type=int, default=SAMPLE_RATE, metavar="HZ",
                       help="rate of the enhanced files: 48000 (default), 44100, 96000 or any "
                            "rate from 8000 Hz (the 48 kHz result resampled)")


def enhance_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``EnhanceOptions`` fields from the parsed enhancer arguments."""
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    from audiosr_core.enhancer import EnhanceOptions

    try:
        EnhanceOptions(output_rate=args.output_rate)
    except ValueError as exc:
        raise UsageError(f"--output-rate: {exc}") from exc
    return {"steps": args.steps, "guidance_scale": args.guidance_scale, "seed": args.seed,
            "sampler": args.sampler, "output_rate": args.output_rate}


def load_enhancer(model: str, device: str) -> Any:
    """``audiosr_core.load(model, device=device)``; a missing folder or any load error
    becomes a UsageError naming the model."""
    from audiosr_core.loading import MODEL_NAMES, load

    looks_path = model not in MODEL_NAMES
    if looks_path and not Path(model).expanduser().exists():
        raise UsageError(f"AudioSR model {model!r} is not {', '.join(MODEL_NAMES)} or an "
                         "existing folder/file; check --model")
    try:
        return load(model, device=device)
    except Exception as exc:  # noqa: BLE001 - report which model and why
        raise UsageError(f"could not load the AudioSR model {model!r}: {type(exc).__name__}: "
                         f"{exc}") from exc


@dataclass
class Outcome:
    """What :func:`run_items` did: page entries (failed ones carry ``error``) and counts."""

    entries: list[PageEntry]
    failed: int
    seconds: float
    interrupted: bool = False


def _progress(total: int, quiet: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="item", disable=quiet, file=sys.stderr, dynamic_ncols=True)


def run_items(generator: Generator, texts: Sequence[str], out: Path, enhancer: Any,
              options: dict[str, Any], seed: int, generate_kwargs: dict[str, Any] | None = None,
              quiet: bool = False, log: Callable[[str], None] | None = None) -> Outcome:
    """Generate, save the "before", enhance, save the "after" and draw the spectrograms for
    every text; a failing item is recorded (and logged), the others go on."""
    from audiosr_core import audio as audio_io

    log = log or (lambda msg: print(msg, file=sys.stderr))
    width = max(3, len(str(len(texts))))
    entries: list[PageEntry] = []
    failed = 0
    interrupted = False
    start = time.monotonic()
    with _progress(len(texts), quiet) as bar:
        for i, text in enumerate(texts, 1):
            label = f"{i:0{width}d}"
            bar.set_description(label)
            try:
                raw = generator.generate(text, seed, **(generate_kwargs or {}))
                after = enhance_audio(raw, generator.sample_rate, enhancer, **options)
                rate = options.get("output_rate", SAMPLE_RATE)
                expected = output_length(raw.shape[-1], generator.sample_rate, rate)
                if after.shape != (raw.shape[0], expected):
                    raise RuntimeError(f"enhanced audio has shape {after.shape}, expected "
                                       f"{(raw.shape[0], expected)}")
                rel = {"before": f"before/{label}.wav", "after": f"{label}.wav",
                       "before_png": f"spectrograms/{label}-before.png",
                       "after_png": f"spectrograms/{label}-after.png"}
                audio_io.save(out / rel["before"], raw, generator.sample_rate, subtype=SUBTYPE)
                audio_io.save(out / rel["after"], after, rate, subtype=SUBTYPE)
                render_spectrogram_pair(raw, generator.sample_rate, after, rate,
                                        out / rel["before_png"], out / rel["after_png"])
                entries.append(PageEntry(label, text, before_rate=generator.sample_rate, **rel))
            except KeyboardInterrupt:
                interrupted = True
                bar.clear()
                log(f"interrupted at item {label}; the page lists the items done so far")
                break
            except Exception as exc:  # noqa: BLE001 - one bad item must not stop the rest
                failed += 1
                message = f"{type(exc).__name__}: {exc}"
                entries.append(PageEntry(label, text, error=message))
                bar.clear()
                log(f"error: item {label} ({_short(text)}) failed: {message}")
            bar.update(1)
    return Outcome(entries, failed, time.monotonic() - start, interrupted)


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit - 3] + "...")


def report(outcome: Outcome, page: Path, quiet: bool) -> int:
    """Print the summary; the exit code (0 all done, 1 some failed, 130 interrupted)."""
    done = len(outcome.entries) - outcome.failed
    if not quiet or outcome.failed:
        print(f"{done} of {len(outcome.entries)} done in {outcome.seconds:.1f} s"
              + (f", {outcome.failed} failed" if outcome.failed else "")
              + f"; listening page: {page}", file=sys.stderr)
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if outcome.failed else EXIT_OK


def finish(outcome: Outcome, out: Path, title: str, settings: dict[str, object],
           quiet: bool) -> int:
    """Write the page for ``outcome`` into ``out`` and report; returns the exit code."""
    page = write_listening_page(out, outcome.entries, title=title, settings=settings)
    return report(outcome, page, quiet)


def enhancer_settings(args: argparse.Namespace, enhancer: object) -> list[tuple[str, object]]:
    """The page's enhancer rows: diffusion settings only for a diffusion model (``lite``
    has none)."""
    from audiosr_core import AudioSR

    rows: list[tuple[str, object]] = [("enhancer", args.model)]
    if isinstance(enhancer, AudioSR):
        rows += [("enhancer steps", args.steps), ("enhancer guidance", args.guidance_scale),
                 ("sampler", args.sampler)]
    return rows


def settings_table(pairs: Iterable[tuple[str, object]]) -> dict[str, object]:
    """An ordered settings mapping for the page (``None`` values left out)."""
    return {k: v for k, v in pairs if v is not None}

