"""The ``audiosr-plug`` command.

Examples
--------
$ audiosr-plug info examples/speech_like_16k.wav
$ audiosr-plug info --json recordings/*.flac > bandwidths.json
$ audiosr-plug enhance recordings/ -o out/                 # lite: fast, offline
$ audiosr-plug enhance recordings/ -o out/ --model basic --steps 50
$ audiosr-plug convert pytorch_model.bin ~/.cache/audiosr-plug/basic
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

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
    energy_cutoff_hz: float


def analyse_channels(samples, sample_rate: int) -> list[ChannelReport]:
    """Level and bandwidth of each channel of ``[channels, samples]`` audio.

    ``bandwidth_hz`` is where the spectrum ends (:func:`dsp.detect_band_edge`, what ``lite``
    uses); ``energy_cutoff_hz`` is the official 0.985 energy point the diffusion models use.
    """
    wave48 = audio.resample(samples, sample_rate, dsp.SAMPLE_RATE)
    reports = []
    for ch in range(samples.shape[0]):
        edge = dsp.detect_band_edge(wave48[ch], max_hz=min(sample_rate, dsp.SAMPLE_RATE) / 2)
        energy = dsp.detect_cutoff(wave48[ch])
        reports.append(ChannelReport(ch, round(audio.peak_dbfs(samples[ch]), 2),
                                     round(audio.rms_dbfs(samples[ch]), 2), edge.hz, edge.status,
                                     energy.hz))
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


def find_inputs(paths: Sequence[str], extensions: Sequence[str] | None = None
                ) -> Iterator[tuple[Path, Path]]:
    """``(input file, output path relative to OUTDIR without extension)`` for files and folders.

    A file ``a/b.wav`` maps to ``b``; a folder ``dir`` is searched recursively for audio files
    (only ``extensions``, e.g. ``[".wav", ".flac"]``, if given) and ``dir/x/y.flac`` maps to
    ``dir/x/y``, so the output tree mirrors the input tree.
    """
    allowed = {e.lower() for e in extensions} if extensions else audio.SUPPORTED_EXTENSIONS
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file() and f.suffix.lower() in allowed:
                    yield f, Path(path.name) / f.relative_to(path).with_suffix("")
        else:
            yield path, Path(path.stem)


def read_list(source: str) -> list[str]:
    """Paths from a list file (one per line; blank lines and ``#`` comments skipped; ``-`` is
    standard input)."""
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _extensions(text: str) -> list[str]:
    exts = ["." + e.strip().lower().lstrip(".") for e in text.split(",") if e.strip()]
    unknown = [e for e in exts if e not in audio.SUPPORTED_EXTENSIONS]
    if unknown or not exts:
        raise argparse.ArgumentTypeError(
            f"unsupported extension(s) {', '.join(unknown) or text!r}; choose from "
            f"{', '.join(sorted(e.lstrip('.') for e in audio.SUPPORTED_EXTENSIONS))}")
    return exts


def cmd_enhance(args: argparse.Namespace) -> int:
    import time

    import torch
    from tqdm.auto import tqdm

    from .pipeline import AudioSR, EnhanceOptions
    from .sampling import make_sampler

    try:
        listed = read_list(args.list) if args.list else []
    except OSError as exc:
        print(f"audiosr-plug: error: cannot read list file {args.list}: {exc.strerror}",
              file=sys.stderr)
        return EXIT_USAGE
    jobs = list(find_inputs([*args.inputs, *listed], args.ext))
    if not jobs:
        print("audiosr-plug: error: no audio files found in the given inputs", file=sys.stderr)
        return EXIT_FAILED
    try:
        options = EnhanceOptions(steps=args.steps, guidance_scale=args.guidance_scale,
                                 seed=args.seed, sampler=args.sampler,
                                 channels="mono" if args.mono else "all",
                                 batch_size=args.batch_size)
        make_sampler(options.sampler, options.steps)  # rejects step counts it cannot run
        if args.subtype:
            args.subtype = audio.check_subtype(args.subtype, args.format)
    except (ValueError, AudioSRError) as exc:
        print(f"audiosr-plug: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16,
             "float16": torch.float16}[args.dtype]
    model = AudioSR.from_pretrained(args.model, device=args.device, dtype=dtype)
    inputs = {src.resolve() for src, _ in jobs}
    report: list[dict] = []
    pending: list[tuple[dict, Path, Path]] = []
    bar = tqdm(total=len(jobs), desc="files", unit="file", disable=args.quiet)

    def run_pending() -> None:
        t0 = time.perf_counter()
        done = list(_enhance_group(model, pending, options, args.subtype, not args.quiet))
        seconds = (time.perf_counter() - t0) / max(len(done), 1)
        for entry, res in done:
            if isinstance(res, AudioSRError):
                entry.update(result="failed", reason=str(res))
                bar.write(f"audiosr-plug: error: {res}", file=sys.stderr)
                continue
            entry.update(result="processed", seconds=round(seconds, 3),
                         cutoff_hz=res.cutoff_hz, status=res.status,
                         output_gain_db=res.output_gain_db)
            if res.output_gain_db < 0:
                bar.write(f"audiosr-plug: {entry['output']}: lowered by "
                          f"{-res.output_gain_db:.2f} dB for the whole file so the added high "
                          "band does not clip", file=sys.stderr)
        bar.update(len(pending))
        pending.clear()

    try:
        for src, rel in jobs:
            dst = args.output_dir / rel.with_suffix("." + args.format)
            bar.set_postfix_str(src.name)
            entry = {"input": str(src), "output": str(dst)}
            report.append(entry)
            if dst.resolve() in inputs:
                entry.update(result="failed", reason=f"output {dst} would overwrite an input file")
                bar.update(1)
                continue
            if dst.exists() and not args.overwrite:
                entry["result"] = "skipped"
                bar.update(1)
                continue
            pending.append((entry, src, dst))
            if len(pending) >= args.batch_size:
                run_pending()
        if pending:
            run_pending()
    finally:
        bar.close()
        interrupted = len(report) < len(jobs) or any("result" not in e for e in report)
        for entry in report:
            entry.setdefault("result", "interrupted")
        counts = {k: sum(e["result"] == k for e in report)
                  for k in ("processed", "skipped", "failed")}
        if args.report:
            args.report.write_text(json.dumps({
                "model": args.model, "options": asdict(options), "counts": counts,
                "interrupted": interrupted, "files": report}, indent=2) + "\n")
    print(f"{counts['processed']} enhanced, {counts['skipped']} skipped (output exists; "
          f"--overwrite to redo), {counts['failed']} failed", file=sys.stderr)
    for entry in report:
        if entry["result"] == "failed":
            print(f"  failed: {entry['input']}: {entry['reason']}", file=sys.stderr)
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def _enhance_group(model, group: list[tuple[dict, Path, Path]], options, subtype: str | None,
                   progress: bool) -> Iterator[tuple[dict, object]]:
    """``(entry, EnhanceResult or AudioSRError)`` for each ``(entry, src, dst)`` of ``group``.

    Files that are not streamed go through :meth:`enhance_many` together, so their windows
    share network calls (``--batch-size``); if any of them is bad, the group is redone file
    by file so that only the bad one fails.
    """
    from .pipeline import save_result

    together, alone = [], []
    for job in group:
        try:
            (alone if model.streams_file(job[1], options) else together).append(job)
        except AudioSRError:
            alone.append(job)       # enhance_file below reports it
    if len(together) > 1:
        try:
            loaded = [audio.load(src) for _, src, _ in together]
            results = model.enhance_many(loaded, options, progress=progress)
        except AudioSRError:
            alone = group
        else:
            for (entry, src, dst), res in zip(together, results, strict=True):
                yield entry, save_result(res, dst, subtype, src)
    else:
        alone = group
    for entry, src, dst in alone:
        try:
            yield entry, model.enhance_file(src, dst, options, overwrite=True, subtype=subtype,
                                            progress=progress)
        except AudioSRError as exc:
            yield entry, exc


def cmd_convert(args: argparse.Namespace) -> int:
    from .weights import convert_official

    folder = convert_official(args.checkpoint, args.output_dir)
    print(f"converted {args.checkpoint} -> {folder}")
    return EXIT_OK


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
                    "level, the bandwidth (where the spectrum falls off a cliff; --json also gives "
                    "the official 0.985 cumulative-energy point) and whether enhancement would "
                    "change it. Exit code 1 if any file failed.")
    info.add_argument("files", nargs="+", metavar="FILE", help="audio files (WAV/FLAC/OGG/MP3)")
    info.add_argument("--json", action="store_true", help="print one JSON document instead")
    info.set_defaults(func=cmd_info)

    enh = sub.add_parser(
        "enhance", help="super-resolve audio files or folders to 48 kHz",
        description="Enhance files, or folders searched recursively, into OUTDIR (the folder "
                    "structure is mirrored). Existing outputs are skipped unless --overwrite, so "
                    "an interrupted run resumes; inputs are never overwritten. A failed file is "
                    "reported and the run goes on; the exit code is 1 if any file failed.")
    enh.add_argument("inputs", nargs="*", metavar="IN", help="audio files or folders")
    enh.add_argument("--list", metavar="FILE",
                     help="also read inputs from FILE, one path per line ('-' = stdin)")
    enh.add_argument("--ext", type=_extensions, default=None, metavar="EXT[,EXT]",
                     help="only these extensions when searching folders, e.g. wav,flac "
                          "(default: every supported one)")
    enh.add_argument("-o", "--output-dir", type=Path, required=True, metavar="OUTDIR")
    enh.add_argument("--model", default="lite",
                     help="lite (packaged CPU model, offline, default) | basic | speech "
                          "(official diffusion weights, downloaded on first use) | converted "
                          "folder | official checkpoint file")
    enh.add_argument("--steps", type=int, default=50,
                     help="diffusion steps (default 50; the options down to --dtype apply to "
                          "the diffusion models, not to lite)")
    enh.add_argument("--guidance-scale", type=float, default=3.5,
                     help="classifier-free guidance scale (default 3.5)")
    enh.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    enh.add_argument("--sampler", choices=("ddim", "dpmpp_2m"), default="ddim",
                     help="ddim = official (default); dpmpp_2m needs ~20 steps")
    enh.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: auto)")
    enh.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                     help="network precision (default float32)")
    enh.add_argument("--batch-size", type=int, default=1, metavar="N",
                     help="windows of long files, and short files, run through the diffusion "
                          "networks N at a time (default 1): faster on a GPU, more memory; the "
                          "output is the same up to float rounding")
    enh.add_argument("--format", choices=("wav", "flac"), default="wav",
                     help="output container (default wav)")
    enh.add_argument("--subtype", default=None,
                     help="sample type: PCM_16, PCM_24 (default) or FLOAT (wav only)")
    enh.add_argument("--mono", action="store_true",
                     help="downmix to one channel first (default: every channel is enhanced)")
    enh.add_argument("--report", type=Path, default=None, metavar="JSON",
                     help="write a JSON report: settings, counts, every file's result")
    enh.add_argument("--overwrite", action="store_true", help="redo outputs that exist")
    enh.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    enh.set_defaults(func=cmd_enhance)

    conv = sub.add_parser(
        "convert", help="convert an official AudioSR checkpoint to a safetensors folder",
        description="Keep only the inference weights of an official AudioSR checkpoint "
                    "(pytorch_model.bin, 6.2 GB) and write config.json + model.safetensors "
                    "(2.7 GB), which --model accepts and loads much faster.")
    conv.add_argument("checkpoint", type=Path, metavar="OFFICIAL_CKPT")
    conv.add_argument("output_dir", type=Path, metavar="OUTDIR")
    conv.set_defaults(func=cmd_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``audiosr-plug``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    previous = _interrupt_on_sigterm()
    try:
        return args.func(args)
    except AudioSRError as exc:
        print(f"audiosr-plug: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("audiosr-plug: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt_on_sigterm():
    """Make SIGTERM (``kill``) stop a run like Ctrl-C, so no partial output is left behind.
    Returns the previous handler (None when not in the main thread)."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:        # not the main thread
        return None


if __name__ == "__main__":
    sys.exit(main())
