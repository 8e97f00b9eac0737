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
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from . import __version__, audio
from .errors import AudioSRError
from .sampling import SAMPLERS
from .status import Outcome, Status

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass
class ChannelReport:
    """What ``info`` says about one channel."""

    channel: int
    peak_dbfs: float
    rms_dbfs: float
    bandwidth_hz: float
    status: Status
    energy_cutoff_hz: float


def analyse_channels(samples, sample_rate: int) -> list[ChannelReport]:
    """Level and bandwidth of each channel of ``[channels, samples]`` audio.

    ``bandwidth_hz`` and ``status`` are what the default model, ``lite``, sees
    (:func:`audiosr_core.lite_pipeline.detect_band`: where the spectrum ends);
    ``energy_cutoff_hz`` is the official 0.985 energy point the diffusion models use.
    """
    from . import dsp
    from .lite_pipeline import detect_band
    from .rates import SAMPLE_RATE, output_length

    wave48 = audio.resample(samples, sample_rate, SAMPLE_RATE)
    wave48 = wave48[:, :output_length(samples.shape[-1], sample_rate)]
    reports = []
    for ch in range(samples.shape[0]):
        edge = detect_band(wave48[ch], sample_rate)
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
            results.append({"path": os.fspath(path), "error": str(exc)})
            if not args.json:
                print(f"audiosr-plug: error: {exc}", file=sys.stderr)
            continue
        entry = {"path": os.fspath(path), "sample_rate": meta.sample_rate,
                 "channels": meta.channels, "frames": meta.frames,
                 "duration_s": meta.duration_s, "format": meta.format, "subtype": meta.subtype,
                 "per_channel": [_json_channel(c) for c in channels]}
        results.append(entry)
        if not args.json:
            plural = "s" if meta.channels != 1 else ""
            print(f"{audio.display_path(path)}\n  {meta.sample_rate} Hz, {meta.duration_s:.2f} s, "
                  f"{meta.channels} channel{plural}, {meta.format} {meta.subtype}")
            for c in channels:
                print(f"  ch{c.channel}: peak {_format_db(c.peak_dbfs)}, RMS "
                      f"{_format_db(c.rms_dbfs)}, content up to {c.bandwidth_hz / 1000:.1f} kHz"
                      f" -> {c.status.describe()}")
    if args.json:
        json.dump(results, sys.stdout, indent=2, allow_nan=False)
        print()
    return EXIT_FAILED if failed else EXIT_OK


def _json_channel(report: ChannelReport) -> dict:
    """JSON has no -inf: digital silence has ``null`` levels."""
    return {k: (None if v == float("-inf") else v) for k, v in asdict(report).items()}


def _extensions(text: str) -> list[str]:
    exts = ["." + e.strip().lower().lstrip(".") for e in text.split(",") if e.strip()]
    unknown = [e for e in exts if e not in audio.SUPPORTED_EXTENSIONS]
    if unknown or not exts:
        raise argparse.ArgumentTypeError(
            f"unsupported extension(s) {', '.join(unknown) or text!r}; choose from "
            f"{', '.join(sorted(e.lstrip('.') for e in audio.SUPPORTED_EXTENSIONS))}")
    return exts


def _usage_error(message: str) -> int:
    print(f"audiosr-plug: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _check_report_path(report: Path | None) -> str | None:
    """Why ``--report`` cannot be written (checked before any work), or None."""
    if report is None:
        return None
    where = report.parent if str(report.parent) else Path(".")
    if report.is_dir():
        return f"--report {audio.display_path(report)} is a folder; give a file name"
    if not where.is_dir():
        return (f"--report: the folder {audio.display_path(where)} does not exist; create it "
                "or choose another path")
    if not os.access(where, os.W_OK):
        return f"--report: the folder {audio.display_path(where)} is not writable"
    return None


def _reason(exc: BaseException, source: Path) -> str:
    """The error's message without the input's name in front (the report names it)."""
    text = str(exc)
    for name in (audio.display_path(source), os.fspath(source)):
        if text.startswith(name + ": "):
            return text[len(name) + 2:]
    return text


def _enhance_options(args: argparse.Namespace):
    """The validated settings of ``enhance`` (raises ValueError / AudioSRError)."""
    from .enhancer import EnhanceOptions
    from .sampling import make_sampler

    options = EnhanceOptions(steps=args.steps, guidance_scale=args.guidance_scale,
                             seed=args.seed, sampler=args.sampler,
                             channels="mono" if args.mono else "all", batch_size=args.batch_size,
                             output_rate=args.output_rate)
    make_sampler(options.sampler, options.steps)  # rejects step counts it cannot run
    if args.subtype:
        args.subtype = audio.check_subtype(args.subtype, args.format)
    return options


def cmd_enhance(args: argparse.Namespace) -> int:
    from .devices import resolve_device
    from .jobs import read_list

    try:
        listed = read_list(args.list) if args.list else []
    except OSError as exc:
        return _usage_error(f"cannot read list file {audio.display_path(args.list)}: "
                            f"{exc.strerror}")
    try:
        options = _enhance_options(args)
        device = resolve_device(args.device)
    except (ValueError, AudioSRError) as exc:
        return _usage_error(str(exc))
    problem = _check_report_path(args.report)
    if problem is None and args.output_dir.exists() and not args.output_dir.is_dir():
        problem = f"-o {audio.display_path(args.output_dir)} exists and is not a folder"
    if problem is None and args.engine == "local" and (args.hf_dataset or args.manifest):
        problem = "--hf-dataset and --manifest need --engine ray"
    if problem:
        return _usage_error(problem)
    inputs = [*args.inputs, *listed]
    urls = [i for i in inputs if "://" in i and not Path(i).exists()]
    if urls and args.engine == "local":
        return _usage_error(f"{urls[0]}: URLs are read by --engine ray")
    if args.engine == "ray":
        return _enhance_on_ray(args, inputs, options)
    return _enhance_locally(args, inputs, options, device)


def _enhance_on_ray(args: argparse.Namespace, inputs: list[str], options) -> int:
    """``--engine ray``: the same listing, outputs, report and exit codes, on Ray."""
    try:
        from .distributed import DatasetJob, RayConfig, RayUnavailableError
        config = RayConfig(address=args.ray_address, workers=args.workers,
                           gpus_per_worker=args.gpus_per_worker)
    except (ImportError, ValueError) as exc:
        return _usage_error(str(exc))
    if not inputs and args.hf_dataset is None:
        print("audiosr-plug: error: no inputs (files, folders, URLs or --hf-dataset)",
              file=sys.stderr)
        return EXIT_FAILED
    job = DatasetJob(inputs, os.fspath(args.output_dir), model=args.model, options=options,
                     fmt=args.format, subtype=args.subtype, overwrite=args.overwrite,
                     extensions=args.ext, ray=config, device=args.device, dtype=args.dtype,
                     manifest=args.manifest, hf_dataset=args.hf_dataset,
                     audio_column=args.audio_column, progress=not args.quiet)
    if not job.plan.jobs and not job.plan.refused:
        print("audiosr-plug: error: no audio files found in the given inputs", file=sys.stderr)
        return EXIT_FAILED
    for r in job.plan.refused:
        print(f"audiosr-plug: error: {audio.display_path(r.source)}: {r.reason}",
              file=sys.stderr)
    try:
        job.run()
    except RayUnavailableError as exc:
        return _usage_error(str(exc))
    finally:
        run = job.result
        _write_report(args, options, job.plan, run.files, run.interrupted)
    if run.wall_seconds and run.audio_seconds:
        print(f"{run.audio_seconds / 3600:.2f} h of audio in {run.wall_seconds:.0f} s "
              f"({run.audio_seconds / run.wall_seconds:.1f}x real time) on Ray; manifest: "
              f"{run.manifest}", file=sys.stderr)
    return _summary(job.plan, run.files)


def _enhance_locally(args: argparse.Namespace, inputs: list[str], options, device) -> int:
    import time

    import torch
    from tqdm.auto import tqdm

    from . import atomic
    from .jobs import plan_jobs
    from .loading import load

    plan = plan_jobs(inputs, args.output_dir, args.format, args.ext)
    if not plan.jobs and not plan.refused:
        print("audiosr-plug: error: no audio files found in the given inputs", file=sys.stderr)
        return EXIT_FAILED
    for path in atomic.sweep(args.output_dir):
        print(f"audiosr-plug: removed {audio.display_path(path)}, left by an interrupted run",
              file=sys.stderr)
    dtype = getattr(torch, args.dtype)
    report: list[dict] = [{"input": os.fspath(r.source), "output": _fspath(r.output),
                           "result": Outcome.FAILED, "reason": r.reason} for r in plan.refused]
    for r in plan.refused:
        print(f"audiosr-plug: error: {audio.display_path(r.source)}: {r.reason}",
              file=sys.stderr)
    pending: list[tuple[dict, Path, Path]] = []
    bar = tqdm(total=len(plan.jobs), desc="files", unit="file", disable=args.quiet)
    model = None

    def run_pending() -> None:
        t0 = time.perf_counter()
        done = list(_enhance_group(model, pending, options, args.subtype, not args.quiet))
        seconds = (time.perf_counter() - t0) / max(len(done), 1)
        for entry, src, res in done:
            if isinstance(res, BaseException):
                entry.update(result=Outcome.FAILED, reason=_reason(res, src))
                bar.write(f"audiosr-plug: error: {audio.display_path(src)}: {entry['reason']}",
                          file=sys.stderr)
                continue
            entry.update(result=Outcome.PROCESSED, seconds=round(seconds, 3),
                         cutoff_hz=res.cutoff_hz, status=res.status,
                         output_gain_db=res.output_gain_db)
            if res.output_gain_db < 0:
                bar.write(f"audiosr-plug: {audio.display_path(entry['output'])}: lowered by "
                          f"{-res.output_gain_db:.2f} dB for the whole file so the added high "
                          "band does not clip", file=sys.stderr)
        bar.update(len(pending))
        pending.clear()

    try:
        for job in plan.jobs:
            bar.set_postfix_str(audio.display_path(job.source.name))
            entry = {"input": os.fspath(job.source), "output": os.fspath(job.output)}
            report.append(entry)
            if job.output.exists() and not args.overwrite:
                entry["result"] = Outcome.SKIPPED
                bar.update(1)
                continue
            if model is None:
                model = load(args.model, device=device, dtype=dtype)
            pending.append((entry, job.source, job.output))
            if len(pending) >= args.batch_size:
                run_pending()
        if pending:
            run_pending()
    finally:
        bar.close()
        interrupted = any("result" not in e for e in report)
        for entry in report:
            entry.setdefault("result", Outcome.INTERRUPTED)
        _write_report(args, options, plan, report, interrupted)
    return _summary(plan, report)


def _write_report(args: argparse.Namespace, options, plan, files: list[dict],
                  interrupted: bool) -> None:
    """``--report``: the settings, the counts and every file's result (both engines)."""
    from . import atomic

    if not args.report:
        return
    counts = {str(k): sum(e["result"] == k for e in files)
              for k in (Outcome.PROCESSED, Outcome.SKIPPED, Outcome.FAILED)}
    atomic.write_text(args.report, json.dumps({
        "model": args.model, "engine": args.engine, "options": asdict(options),
        "counts": counts, "interrupted": interrupted,
        "earlier_outputs_ignored": plan.earlier_outputs, "files": files}, indent=2) + "\n")


def _summary(plan, files: list[dict]) -> int:
    """The closing lines (both engines) and the exit code."""
    counts = {str(k): sum(e["result"] == k for e in files)
              for k in (Outcome.PROCESSED, Outcome.SKIPPED, Outcome.FAILED)}
    notes = []
    if plan.earlier_outputs:
        notes.append(f"{plan.earlier_outputs} earlier output(s) in the input folders ignored")
    if plan.duplicates:
        notes.append(f"{plan.duplicates} input(s) named twice, enhanced once")
    print(f"{counts['processed']} enhanced, {counts['skipped']} skipped (output exists; "
          f"--overwrite to redo), {counts['failed']} failed"
          + "".join(f"; {n}" for n in notes), file=sys.stderr)
    for entry in files:
        if entry["result"] == Outcome.FAILED:
            print(f"  failed: {audio.display_path(entry['input'])}: {entry['reason']}",
                  file=sys.stderr)
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def _fspath(path: Path | None) -> str | None:
    return None if path is None else os.fspath(path)


def _enhance_group(model, group: list[tuple[dict, Path, Path]], options, subtype: str | None,
                   progress: bool) -> Iterator[tuple[dict, Path, object]]:
    """``(entry, source, EnhanceResult or the error)`` for each ``(entry, src, dst)``.

    Files that are not streamed go through :meth:`enhance_many` together, so their windows
    share network calls (``--batch-size``); if any of them is bad, the group is redone file
    by file so that only the bad one fails. Saving is per file: one output that cannot be
    written fails alone.
    """
    from .enhancer import save_result

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
                try:
                    yield entry, src, save_result(res, dst, subtype, src)
                except AudioSRError as exc:
                    yield entry, src, exc
    else:
        alone = group
    for entry, src, dst in alone:
        try:
            yield entry, src, model.enhance_file(src, dst, options, overwrite=True,
                                                 subtype=subtype, progress=progress)
        except AudioSRError as exc:
            yield entry, src, exc


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
        description="Enhance files, or folders searched recursively, into OUTDIR: a file "
                    "a/b.wav becomes OUTDIR/b.wav, a folder's tree is mirrored under "
                    "OUTDIR/<folder name>/, and nothing is written outside OUTDIR. Folder "
                    "searches skip hidden files and folders (names starting with '.', such as "
                    "macOS ._x.wav files and our own temporary files), the output folder and "
                    "earlier outputs. Two inputs that would write the same output (a.wav and "
                    "a.flac, or d1/x.wav and d2/x.wav) are a collision: both are refused, "
                    "naming each other. Existing outputs are skipped unless --overwrite, so an "
                    "interrupted run resumes (temporary files a killed run left are removed "
                    "first); inputs are never overwritten. A failed file is reported and the run "
                    "goes on; the exit code is 1 if any file failed, 2 for a usage error.")
    enh.add_argument("inputs", nargs="*", metavar="IN",
                     help="audio files or folders (with --engine ray also URLs: s3://, gs://, "
                          "file://)")
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
    enh.add_argument("--sampler", choices=SAMPLERS, default="ddim",
                     help="ddim = official (default); dpmpp_2m needs ~20 steps")
    enh.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: auto)")
    enh.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                     help="network precision (default float32)")
    enh.add_argument("--batch-size", type=int, default=1, metavar="N",
                     help="windows of long files, and short files, run through the diffusion "
                          "networks N at a time (default 1): faster on a GPU, more memory; the "
                          "output is the same up to float rounding")
    enh.add_argument("--output-rate", type=int, default=48000, metavar="HZ",
                     help="rate of the outputs: 48000 (the models' rate, default), 44100 for "
                          "CD/DAW projects, 96000, or any rate from 8000 Hz, by resampling the "
                          "48 kHz result (soxr); lengths follow the input's duration")
    enh.add_argument("--format", choices=("wav", "flac"), default="wav",
                     help="output container (default wav)")
    enh.add_argument("--subtype", default=None,
                     help="sample type: PCM_16, PCM_24 (default) or FLOAT (wav only)")
    enh.add_argument("--mono", action="store_true",
                     help="downmix to one channel first (default: every channel is enhanced)")
    enh.add_argument("--report", type=Path, default=None, metavar="JSON",
                     help="write a JSON report: settings, counts, every file's result")
    enh.add_argument("--overwrite", action="store_true", help="redo outputs that exist")
    dist = enh.add_argument_group(
        "many machines (Ray)", "--engine ray runs the same job on a Ray cluster: files are "
        "read and cut into windows by CPU tasks, the model runs on --workers actors, outputs "
        "and exit codes are the local run's. Needs pip install 'audiosr-plug[ray]'.")
    dist.add_argument("--engine", choices=("local", "ray"), default="local",
                      help="local (default): this process; ray: a Ray cluster")
    dist.add_argument("--ray-address", default=None, metavar="ADDRESS",
                      help="cluster to join (host:6379, ray://host:10001, auto; default "
                           "$RAY_ADDRESS, else a local Ray started for the run)")
    dist.add_argument("--workers", type=int, default=1, metavar="N",
                      help="model actors, each loading the model once (default 1)")
    dist.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G",
                      help="GPUs per actor, fractions allowed (default 0: CPU)")
    dist.add_argument("--hf-dataset", default=None, metavar="PATH",
                      help="also enhance a Hugging Face dataset saved with save_to_disk: "
                           "OUTDIR/audio/ gets the files, OUTDIR/dataset the 48 kHz dataset")
    dist.add_argument("--audio-column", default="audio", metavar="NAME",
                      help="the dataset's audio column (default audio)")
    dist.add_argument("--manifest", default=None, metavar="JSONL",
                      help="results manifest, one JSON line per finished file (default "
                           "OUTDIR/manifest.jsonl)")
    enh.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    enh.set_defaults(func=cmd_enhance)

    conv = sub.add_parser(
        "convert", help="convert an official AudioSR checkpoint to a safetensors folder",
        description="Keep only the inference weights of an official AudioSR checkpoint "
                    "(pytorch_model.bin, 6.2 GB) and write config.json + model.safetensors "
                    "(2.7 GB), which --model accepts and loads much faster, plus "
                    "first_stage_encoder.safetensors (0.36 GB, for fine-tuning only).")
    conv.add_argument("checkpoint", type=Path, metavar="OFFICIAL_CKPT")
    conv.add_argument("output_dir", type=Path, metavar="OUTDIR")
    conv.set_defaults(func=cmd_convert)

    from .app import add_arguments as add_app_arguments  # cheap: Flask loads only when it runs

    add_app_arguments(sub.add_parser(
        "app", help="serve a local web page to enhance files (needs audiosr-plug[app])"))
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
