"""The ``audiosr-plug`` command.

Examples
--------
$ audiosr-plug info examples/speech_like_16k.wav
$ audiosr-plug info --json recordings/*.flac > bandwidths.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from . import __version__, audio, dsp
from .errors import AudioSRError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

STATUS_TEXT = {
    "band-limited": "would be enhanced",
    "silent": "near-silent: passed through unchanged",
    "full-band": "already full-band: passed through unchanged",
    "low": "content below 1 kHz only: passed through unchanged",
}


@dataclass
class ChannelReport:
    """What ``info`` says about one channel."""

    channel: int
    peak_dbfs: float
    rms_dbfs: float
    bandwidth_hz: float
    status: str


def analyse_channels(samples, sample_rate: int) -> list[ChannelReport]:
    """Level and detected bandwidth of each channel of ``[channels, samples]`` audio."""
    wave48 = audio.resample(samples, sample_rate, dsp.SAMPLE_RATE)
    reports = []
    for ch in range(samples.shape[0]):
        cut = dsp.detect_cutoff(wave48[ch])
        reports.append(ChannelReport(ch, round(audio.peak_dbfs(samples[ch]), 2),
                                     round(audio.rms_dbfs(samples[ch]), 2), cut.hz, cut.status))
    return reports


def _format_db(value: float) -> str:
    return "-inf dBFS" if value == float("-inf") else f"{value:.1f} dBFS"


def cmd_info(args: argparse.Namespace) -> int:
    results, failed = [], 0
    for path in args.files:
        try:
            meta = audio.info(path)
            samples, rate = audio.load(path)
            channels = analyse_channels(samples, rate)
        except AudioSRError as exc:
            failed += 1
            results.append({"path": str(path), "error": str(exc)})
            if not args.json:
                print(f"audiosr-plug: error: {exc}", file=sys.stderr)
            continue
        entry = {"path": str(path), "sample_rate": meta.sample_rate, "channels": meta.channels,
                 "frames": meta.frames, "duration_s": meta.duration_s, "format": meta.format,
                 "subtype": meta.subtype, "per_channel": [_json_channel(c) for c in channels]}
        results.append(entry)
        if not args.json:
            plural = "s" if meta.channels != 1 else ""
            print(f"{path}\n  {meta.sample_rate} Hz, {meta.duration_s:.2f} s, "
                  f"{meta.channels} channel{plural}, {meta.format} {meta.subtype}")
            for c in channels:
                print(f"  ch{c.channel}: peak {_format_db(c.peak_dbfs)}, RMS "
                      f"{_format_db(c.rms_dbfs)}, content up to {c.bandwidth_hz / 1000:.1f} kHz"
                      f" -> {STATUS_TEXT[c.status]}")
    if args.json:
        json.dump(results, sys.stdout, indent=2, allow_nan=False)
        print()
    return EXIT_FAILED if failed else EXIT_OK


def _json_channel(report: ChannelReport) -> dict:
    """JSON has no -inf: digital silence has ``null`` levels."""
    return {k: (None if v == float("-inf") else v) for k, v in asdict(report).items()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audiosr-plug",
        description="Make any audio 48 kHz with AudioSR latent-diffusion super-resolution.",
        epilog="Run 'audiosr-plug COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    info = sub.add_parser(
        "info", help="show rate, level and detected bandwidth of audio files",
        description="Per file and channel: sample rate, duration, sample type, peak and RMS "
                    "level, the detected bandwidth (0.985 cumulative-energy rule at 48 kHz) and "
                    "whether enhancement would change it. Exit code 1 if any file failed.")
    info.add_argument("files", nargs="+", metavar="FILE", help="audio files (WAV/FLAC/OGG/MP3)")
    info.add_argument("--json", action="store_true", help="print one JSON document instead")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``audiosr-plug``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AudioSRError as exc:
        print(f"audiosr-plug: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("audiosr-plug: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
