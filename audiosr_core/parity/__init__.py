"""Parity with the official AudioSR: run a reference fixture stage by stage.

Two kinds of fixture, told apart by their files:

- inference (``../shared/reference/parity/dev``: ``config.json``, ``checkpoint.ckpt``, wav
  inputs): :class:`ParityRunner`, every stage from the wav file to the 48 kHz output;
- training (``../shared/reference/parity/train-dev``: ``train_settings.json``):
  :class:`TrainingParityRunner`, one official training step, its gradients, the AdamW step and
  the EMA update.

Usage::

    python -m audiosr_core.parity ../shared/reference/parity/dev
    python -m audiosr_core.parity ../shared/reference/parity/train-dev
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .checks import Check, print_report
from .inference import DEFAULT_TOLERANCES, LOG_RULE, ParityRunner, parse_tolerances
from .training import TrainingParityRunner, is_training_fixture, parse_training_tolerances

__all__ = ["DEFAULT_TOLERANCES", "LOG_RULE", "Check", "ParityRunner", "TrainingParityRunner",
           "main", "parse_tolerances", "parse_training_tolerances", "print_report"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m audiosr_core.parity",
        description="Compare every stage of our AudioSR with an official parity fixture: an "
                    "inference fixture (config.json, checkpoint.ckpt, inputs/*.wav) or a "
                    "training fixture (train_settings.json, inputs/*.npz). Exit 0 when every "
                    "check is within the tolerance of the fixture's README, 1 otherwise.")
    parser.add_argument("fixture", type=Path, help="fixture folder")
    parser.add_argument("--input", action="append", dest="stems", metavar="STEM",
                        help="only these inputs or cases (repeatable)")
    args = parser.parse_args(argv)
    try:
        runner = (TrainingParityRunner(args.fixture) if is_training_fixture(args.fixture)
                  else ParityRunner(args.fixture))
    except (FileNotFoundError, ValueError) as exc:
        print(f"parity: error: {exc}", file=sys.stderr)
        return 2
    if isinstance(runner, ParityRunner):
        torch.set_grad_enabled(False)
    for stem in args.stems or runner.stems():
        runner.run(stem)
    return 0 if runner.report() else 1
