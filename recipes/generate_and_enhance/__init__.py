"""Text prompts -> AudioLDM / AudioLDM2 / MusicGen / AudioGen -> 48 kHz files + a listening page.

``python -m recipes.generate_and_enhance --kind audioldm --prompt "rain on a tin roof" -o out``
generates one clip per prompt with the chosen generator, enhances it to 48 kHz with AudioSR
(the same path as ``audiosr_adapters.enhance``), and writes ``out/NNN.wav`` (48 kHz),
``out/before/NNN.wav`` (the generator's own rate), spectrograms and ``out/index.html``.
See README.md in this folder. Exit codes: 0 all done, 1 some prompts failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import sys

from recipes.cli_common import (
    EXIT_USAGE,
    UsageError,
    add_enhancer_arguments,
    enhance_options,
    enhancer_settings,
    finish,
    load_enhancer,
    prepare_output,
    read_lines,
    run_items,
    settings_table,
)
from recipes.generators import EXAMPLE_MODELS, load_generator, quiet_libraries

__all__ = ["GENERATOR_KINDS", "build_parser", "main"]

GENERATOR_KINDS = ("audioldm", "audioldm2", "musicgen", "musicgen-audiocraft",
                   "audiogen-audiocraft")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m recipes.generate_and_enhance",
        description="Generate audio from text prompts with AudioLDM, AudioLDM2, MusicGen or "
                    "AudioGen, enhance it to 48 kHz with AudioSR, and write a before/after "
                    "listening page (OUT/index.html).",
        epilog="Outputs: OUT/NNN.wav (48 kHz), OUT/before/NNN.wav (generator rate), "
               "OUT/spectrograms/*.png, OUT/index.html. Exit codes: 0 all done, 1 some "
               "prompts failed, 2 usage error, 130 interrupted.")
    gen = parser.add_argument_group("generator")
    gen.add_argument("--kind", required=True, choices=GENERATOR_KINDS,
                     help="generator family (musicgen = transformers; *-audiocraft = audiocraft)")
    gen.add_argument("--generator", default=None, metavar="NAME|FOLDER",
                     help="hub name or local folder (default per kind: "
                          + ", ".join(f"{k}: {EXAMPLE_MODELS[k]}" for k in GENERATOR_KINDS) + ")")
    gen.add_argument("--processor", default=None, metavar="NAME|FOLDER",
                     help="musicgen only: processor name/folder (default: the model's)")
    gen.add_argument("--prompts", default=None, metavar="FILE",
                     help="UTF-8 file with one prompt per line ('-' = stdin; blank lines "
                          "skipped)")
    gen.add_argument("--prompt", action="append", default=[], metavar="TEXT",
                     help="a prompt (repeat for several; added after --prompts)")
    gen.add_argument("--duration", type=float, default=None, metavar="S",
                     help="seconds per clip (default: the model's; AudioLDM ~5-10 s, MusicGen "
                          "and AudioGen: 5)")
    gen.add_argument("--gen-steps", type=int, default=None, metavar="N",
                     help="AudioLDM/AudioLDM2 diffusion steps (default: the pipeline's)")
    gen.add_argument("--gen-guidance-scale", type=float, default=None, metavar="G",
                     help="generator guidance (AudioLDM guidance_scale, MusicGen/AudioGen "
                          "cfg coefficient; default: the model's)")
    gen.add_argument("--top-k", type=int, default=None, metavar="K",
                     help="MusicGen/AudioGen top-k sampling (default 250, at most the codebook)")
    parser.add_argument("-o", "--output-dir", required=True, metavar="OUT",
                        help="output folder (must be empty or new unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true",
                        help="reuse a non-empty output folder (an earlier run's files are "
                             "replaced)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_enhancer_arguments(parser)
    return parser


def _generate_kwargs(args: argparse.Namespace) -> dict[str, object]:
    for name, value in (("--duration", args.duration), ("--gen-steps", args.gen_steps),
                        ("--top-k", args.top_k)):
        if value is not None and value <= 0:
            raise UsageError(f"{name} must be positive, got {value}")
    if args.kind.startswith(("audioldm",)):
        if args.top_k is not None:
            raise UsageError("--top-k applies to MusicGen/AudioGen, not AudioLDM")
        return {"steps": args.gen_steps, "guidance_scale": args.gen_guidance_scale,
                "duration": args.duration}
    if args.gen_steps is not None:
        raise UsageError("--gen-steps applies to AudioLDM/AudioLDM2 only")
    duration = args.duration if args.duration is not None else 5.0
    return {"duration": duration, "guidance_scale": args.gen_guidance_scale,
            "top_k": args.top_k}


def main(argv: list[str] | None = None) -> int:
    """Run the recipe; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.processor is not None and args.kind != "musicgen":
            raise UsageError("--processor applies to --kind musicgen only")
        prompts = read_lines(args.prompts, what="prompts") if args.prompts else []
        prompts += [p.strip() for p in args.prompt if p.strip()]
        if not prompts:
            raise UsageError("no prompts: give --prompts FILE and/or --prompt TEXT (non-blank)")
        gen_kwargs = _generate_kwargs(args)
        options = enhance_options(args)
        out = prepare_output(args.output_dir, args.overwrite)
        quiet_libraries()
        name = args.generator or EXAMPLE_MODELS[args.kind]
        extra = {"processor": args.processor} if args.kind == "musicgen" else {}
        try:
            generator = load_generator(args.kind, name, device=args.device, **extra)
        except (ValueError, FileNotFoundError) as exc:
            raise UsageError(str(exc)) from exc
        enhancer = load_enhancer(args.model, args.device)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    outcome = run_items(generator, prompts, out, enhancer, options, args.seed, gen_kwargs,
                        quiet=args.quiet)
    settings = settings_table([
        ("generator", f"{args.kind}: {name} ({generator.sample_rate} Hz)"),
        ("duration (s)", gen_kwargs.get("duration")), ("generator steps", args.gen_steps),
        ("generator guidance", args.gen_guidance_scale), ("top-k", args.top_k),
        *enhancer_settings(args, enhancer), ("seed", args.seed)])
    return finish(outcome, out, f"{args.kind} before / after AudioSR", settings, args.quiet)
