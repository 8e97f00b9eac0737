"""Text lines -> TTS (FastSpeech2 or any callable) -> 48 kHz files + a listening page.

``python -m recipes.tts_enhance lines.txt -o out`` speaks every non-blank line with
FastSpeech2-Conformer (transformers; a hub name or a local folder, ``--tokenizer`` for its
tokenizer) or with any TTS function (``--callable module:function --sample-rate 22050``),
enhances it to 48 kHz with AudioSR (the same path as ``audiosr_adapters.enhance``) and writes
``out/NNN.wav`` (48 kHz), ``out/before/NNN.wav`` (original rate), spectrograms and
``out/index.html``. See README.md in this folder. Exit codes: 0 all done, 1 some lines
failed, 2 usage error.
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

__all__ = ["DEFAULT_FASTSPEECH2", "build_parser", "main"]

DEFAULT_FASTSPEECH2 = EXAMPLE_MODELS["fastspeech2"]


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m recipes.tts_enhance",
        description="Speak text lines with FastSpeech2 (or any TTS function), enhance them to "
                    "48 kHz with AudioSR, and write a before/after listening page "
                    "(OUT/index.html).",
        epilog="Outputs: OUT/NNN.wav (48 kHz), OUT/before/NNN.wav (TTS rate), "
               "OUT/spectrograms/*.png, OUT/index.html. Exit codes: 0 all done, 1 some lines "
               "failed, 2 usage error, 130 interrupted.")
    parser.add_argument("text", metavar="TEXT_FILE",
                        help="UTF-8 file with one line to speak per line ('-' = stdin; blank "
                             "lines skipped)")
    parser.add_argument("-o", "--output-dir", required=True, metavar="OUT",
                        help="output folder (must be empty or new unless --overwrite)")
    tts = parser.add_argument_group("text-to-speech (one of)")
    which = tts.add_mutually_exclusive_group()
    which.add_argument("--fastspeech2", default=None, metavar="NAME|FOLDER",
                       help="transformers FastSpeech2-Conformer: FastSpeech2ConformerWithHifiGan, "
                            "or FastSpeech2ConformerModel with --vocoder (default "
                            f"{DEFAULT_FASTSPEECH2})")
    which.add_argument("--callable", default=None, metavar="MODULE:FUNCTION",
                       help="any TTS function fn(text[, seed=]) returning a waveform "
                            "('module:fn' importable from here, or 'path/file.py:fn'); needs "
                            "--sample-rate unless fn.sample_rate exists")
    tts.add_argument("--tokenizer", default=None, metavar="NAME|FOLDER",
                     help="FastSpeech2 tokenizer (default: the model folder if it has one, else "
                          "espnet/fastspeech2_conformer, which needs `pip install g2p-en`)")
    tts.add_argument("--vocoder", default=None, metavar="NAME|FOLDER",
                     help="FastSpeech2ConformerHifiGan for a FastSpeech2ConformerModel (hub "
                          "default espnet/fastspeech2_conformer_hifigan)")
    tts.add_argument("--sample-rate", type=int, default=None, metavar="HZ",
                     help="output rate of the TTS (--callable: required unless the function "
                          "reports it; FastSpeech2: default from the vocoder config, else 22050)")
    parser.add_argument("--overwrite", action="store_true",
                        help="reuse a non-empty output folder (an earlier run's files are "
                             "replaced)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_enhancer_arguments(parser)
    return parser


def _load_tts(args: argparse.Namespace):
    if args.callable is not None:
        if args.tokenizer or args.vocoder:
            raise UsageError("--tokenizer and --vocoder apply to FastSpeech2, not --callable")
        return load_generator("callable", args.callable, device=args.device,
                              sample_rate=args.sample_rate)
    return load_generator("fastspeech2", args.fastspeech2 or DEFAULT_FASTSPEECH2,
                          device=args.device, tokenizer=args.tokenizer, vocoder=args.vocoder,
                          sample_rate=args.sample_rate)


def main(argv: list[str] | None = None) -> int:
    """Run the recipe; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        lines = read_lines(args.text, what="text")
        options = enhance_options(args)
        out = prepare_output(args.output_dir, args.overwrite)
        quiet_libraries()
        try:
            generator = _load_tts(args)
        except (ValueError, FileNotFoundError) as exc:
            raise UsageError(str(exc)) from exc
        enhancer = load_enhancer(args.model, args.device)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    outcome = run_items(generator, lines, out, enhancer, options, args.seed, quiet=args.quiet)
    settings = settings_table([
        ("TTS", f"{generator.kind}: {generator.name} ({generator.sample_rate} Hz)"),
        ("tokenizer", args.tokenizer), ("vocoder", args.vocoder),
        *enhancer_settings(args, enhancer), ("seed", args.seed)])
    return finish(outcome, out, "Text-to-speech before / after AudioSR", settings, args.quiet)
