"""Prepare a study bundle: generate clips, make "without"/"with" pairs, loudness-match them.

For every generator (``--generator NAME=KIND:MODEL``, repeatable) and each of its first
``--per-generator`` prompts, the recipe

1. generates a clip with a seed derived from ``--seed``, the generator's name and the item's
   index (recorded in the manifest, so any item can be re-made alone);
2. "without": resamples the raw clip to 48 kHz (soxr, very high quality);
3. "with": super-resolves the raw clip with the enhancer (``--model``, ``--steps``,
   ``--guidance-scale``; seed = the item's seed);
4. loudness-matches the pair to ``--loudness`` LUFS (ITU-R BS.1770 integrated loudness,
   pyloudnorm). If that would push either file above ``--peak-limit`` dBFS, both are lowered
   by the same amount (recorded as ``level_reduction_db``), so the pair stays matched.
   Clips shorter than BS.1770's 400 ms gating block are measured by RMS instead (recorded as
   ``loudness_method: "rms"``);
5. writes both as 48 kHz 16-bit PCM WAV of equal length, and finally ``manifest.json``.

The bundle is built in a temporary sibling folder and moved into place at the end, so a
failed run leaves no half-made bundle. An existing bundle is replaced only with
``--overwrite``.

Run as ``python -m recipes.preference_study prepare -o BUNDLE --generator ...``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import os
import platform
import shutil
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audiosr_core import atomic
from audiosr_core.errors import AudioSRError
from audiosr_core.loading import DEFAULT_MODEL
from audiosr_core.rates import SAMPLE_RATE
from audiosr_core.seeds import derive_seed

from .bundle import AUDIO_DIR, ID_PATTERN, MANIFEST_NAME, BundleError, write_manifest

__all__ = [
    "PROMPTS_DIR",
    "GeneratorSpec",
    "PrepareError",
    "parse_generator",
    "default_prompt_list",
    "load_prompts",
    "measure_loudness",
    "match_pair",
    "prepare_bundle",
    "main",
]

#: Rate of every file in a bundle, Hz.
#: Folder of the shipped default prompt lists.
PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
#: BS.1770 gating block, seconds (pyloudnorm needs at least this much audio).
GATE_BLOCK_S = 0.4
#: Kinds known when ``recipes.generators`` cannot be imported (same as the contract).
_FALLBACK_KINDS = ("audioldm", "audioldm2", "musicgen", "musicgen-audiocraft",
                   "audiogen-audiocraft", "fastspeech2", "callable")


class PrepareError(RuntimeError):
    """A problem with the arguments, the prompts, a generator or the output folder."""


@dataclass
class GeneratorSpec:
    """One ``--generator NAME=KIND:MODEL`` with its prompts (filled in later)."""

    name: str
    kind: str
    model: str
    prompts: list[str] = field(default_factory=list)
    prompts_source: str = ""
    options: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- arguments


def _known_kinds() -> tuple[str, ...]:
    try:
        from recipes.generators import KINDS
    except ImportError:
        return _FALLBACK_KINDS
    return tuple(KINDS)


def parse_generator(text: str) -> GeneratorSpec:
    """Parse ``NAME=KIND:MODEL`` (MODEL may itself contain ':' or '=')."""
    name, eq, rest = text.partition("=")
    kind, colon, model = rest.partition(":")
    if not eq or not colon or not name or not kind or not model:
        raise PrepareError(f"--generator {text!r}: expected NAME=KIND:MODEL, e.g. "
                           "audioldm=audioldm:cvssp/audioldm-s-full-v2")
    name, kind, model = name.strip(), kind.strip(), model.strip()
    if not ID_PATTERN.match(name):
        raise PrepareError(f"--generator {text!r}: NAME {name!r} must be lower-case letters, "
                           "digits, '-' or '_' (starting with a letter or digit)")
    kinds = _known_kinds()
    if kind not in kinds:
        raise PrepareError(f"--generator {text!r}: unknown KIND {kind!r}; "
                           f"known: {', '.join(kinds)}")
    return GeneratorSpec(name=name, kind=kind, model=model)


def default_prompt_list(kind: str) -> Path | None:
    """The shipped prompt list for a generator kind, or None if there is no default."""
    if kind.startswith(("audioldm", "audiogen")):
        return PROMPTS_DIR / "sound_events.txt"
    if kind.startswith("musicgen"):
        return PROMPTS_DIR / "music.txt"
    if kind.startswith("fastspeech2"):
        return PROMPTS_DIR / "tts.txt"
    return None


def load_prompts(path: str | os.PathLike[str]) -> list[str]:
    """Prompts of a text file: one a line; blank lines and lines starting with '#' skipped."""
    p = Path(path)
    if not p.is_file():
        raise PrepareError(f"prompt file {p} does not exist (one prompt a line, UTF-8)")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise PrepareError(f"prompt file {p} is not UTF-8 text ({exc})") from None
    prompts = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not prompts:
        raise PrepareError(f"prompt file {p} has no prompts (blank and '#' lines are skipped)")
    return prompts


# ---------------------------------------------------------------------------- loudness


def _db(x: float) -> float:
    return 20.0 * math.log10(x) if x > 0 else -math.inf


def measure_loudness(audio: np.ndarray, sample_rate: int) -> tuple[float, str]:
    """Loudness of ``[channels, samples]`` audio: ``(value, method)``.

    ``method`` is ``"bs1770"`` (pyloudnorm integrated, gated loudness in LUFS) for clips of
    at least 400 ms, else ``"rms"``: ``-0.691 + 10 log10(sum of channel mean squares)``,
    i.e. BS.1770 without K-weighting and gating. Silence gives ``-inf``.
    """
    import pyloudnorm

    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.shape[-1] >= GATE_BLOCK_S * sample_rate and x.shape[0] <= 5:
        meter = pyloudnorm.Meter(sample_rate)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = float(meter.integrated_loudness(x.T.copy()))
        return value, "bs1770"
    ms = float(np.sum(np.mean(np.square(x), axis=-1))) if x.shape[-1] else 0.0
    return (-0.691 + 10.0 * math.log10(ms) if ms > 0 else -math.inf), "rms"


def _quantize16(x: np.ndarray) -> np.ndarray:
    """What a 16-bit PCM file stores, back as float (round to nearest, clip)."""
    return (np.clip(np.round(x * 32768.0), -32768, 32767) / 32768.0).astype(np.float32)


@dataclass
class MatchedPair:
    """Result of :func:`match_pair`: both signals (16-bit exact) and what was done."""

    without: np.ndarray
    with_: np.ndarray
    loudness: dict[str, float | None]
    gain_db: dict[str, float]
    level_reduction_db: float
    method: str
    peak_dbfs: dict[str, float]


def match_pair(without: np.ndarray, with_: np.ndarray, sample_rate: int, target_lufs: float,
               peak_limit_dbfs: float, *, iterations: int = 4) -> MatchedPair:
    """Bring both signals to ``target_lufs`` with a shared peak limit.

    Gains are refined a few times on the 16-bit-quantised result (BS.1770 gating makes
    loudness not exactly linear in gain). If the louder peak would exceed
    ``peak_limit_dbfs``, both gains are lowered by the same number of dB. A silent signal
    keeps gain 0 and loudness ``None``.
    """
    signals = {"without": np.asarray(without, np.float32), "with": np.asarray(with_, np.float32)}
    measured = {k: measure_loudness(v, sample_rate) for k, v in signals.items()}
    method = measured["without"][1]
    gains = {k: (target_lufs - m[0] if math.isfinite(m[0]) else 0.0)
             for k, m in measured.items()}
    limit = 10.0 ** (peak_limit_dbfs / 20.0)
    reduction = 0.0
    out: dict[str, np.ndarray] = {}
    loud: dict[str, float] = {}
    for _ in range(max(1, iterations)):
        peaks = {k: float(np.max(np.abs(v))) * 10.0 ** (gains[k] / 20.0) if v.size else 0.0
                 for k, v in signals.items()}
        top = max(peaks.values())
        reduction = max(0.0, _db(top) - peak_limit_dbfs) if top > 0 else 0.0
        out = {k: _quantize16(v * 10.0 ** ((gains[k] - reduction) / 20.0))
               for k, v in signals.items()}
        loud = {k: measure_loudness(v, sample_rate)[0] for k, v in out.items()}
        goal = target_lufs - reduction
        worst = 0.0
        for k in signals:
            if math.isfinite(loud[k]) and math.isfinite(measured[k][0]):
                err = goal - loud[k]
                worst = max(worst, abs(err))
                gains[k] += err
        if worst < 0.005:
            break
    # a refined gain may have raised a peak past the limit: final shared check
    peaks_out = {k: float(np.max(np.abs(v))) if v.size else 0.0 for k, v in out.items()}
    top = max(peaks_out.values())
    if top > limit * 1.0001:
        extra = _db(top) - peak_limit_dbfs
        reduction += extra
        out = {k: _quantize16(v * 10.0 ** (-extra / 20.0)) for k, v in out.items()}
        loud = {k: measure_loudness(v, sample_rate)[0] for k, v in out.items()}
        peaks_out = {k: float(np.max(np.abs(v))) if v.size else 0.0 for k, v in out.items()}
    return MatchedPair(
        without=out["without"], with_=out["with"],
        loudness={k: (round(v, 3) if math.isfinite(v) else None) for k, v in loud.items()},
        gain_db={k: round(gains[k] - reduction, 3) for k in signals},
        level_reduction_db=round(reduction, 3), method=method,
        peak_dbfs={k: round(_db(v), 3) if v > 0 else None for k, v in peaks_out.items()})


# ---------------------------------------------------------------------------- generation


def _as_channels(audio: Any, what: str) -> np.ndarray:
    if hasattr(audio, "detach"):
        audio = audio.detach().cpu().numpy()
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[-1] == 0:
        raise PrepareError(f"{what}: expected audio [channels, samples], got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise PrepareError(f"{what}: the audio contains NaN or infinite values")
    return x


def _generate_kwargs(kind: str, duration: float | None) -> dict[str, Any]:
    """``duration=`` for the kinds whose ``generate`` takes it (not TTS or callables)."""
    try:
        from recipes.generators import GENERATE_OPTIONS
    except ImportError:
        return {}
    if duration is None or "duration" not in GENERATE_OPTIONS.get(kind, ()):
        return {}
    return {"duration": duration}


def _enhance(audio: np.ndarray, rate: int, enhancer: Any, steps: int, guidance: float,
             seed: int) -> np.ndarray:
    """Super-resolve exactly as the adapters do (``recipes.generators.enhance_audio``)."""
    try:
        from recipes.generators import enhance_audio
    except ImportError:  # the engine's public API, same options
        result = enhancer.enhance(audio, rate, steps=steps, guidance_scale=guidance, seed=seed)
        return np.asarray(result.audio, dtype=np.float32)
    return enhance_audio(audio, rate, enhancer, steps=steps, guidance_scale=guidance, seed=seed)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("audiosr-plug", "torch", "numpy", "soxr", "soundfile", "pyloudnorm",
                 "diffusers", "transformers", "audiocraft"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        import audiosr_core

        out["audiosr_core"] = audiosr_core.__version__
    except ImportError:
        pass
    return out


def _check_output(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise PrepareError(f"output {out} exists and is not a folder; choose another -o")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise PrepareError(f"output folder {out} already exists and is not empty; pass "
                               "--overwrite to replace the bundle, or choose another -o")
        if not (out / MANIFEST_NAME).is_file():
            raise PrepareError(f"output folder {out} is not a study bundle (no {MANIFEST_NAME});"
                               " refusing to delete it even with --overwrite")
        foreign = sorted(p.name for p in out.iterdir() if p.name not in (MANIFEST_NAME, AUDIO_DIR))
        audio = out / AUDIO_DIR
        if audio.exists():
            foreign += sorted(f"{AUDIO_DIR}/{p.name}" for p in audio.iterdir()
                              if not (p.is_file() and p.suffix == ".wav"))
        if foreign:
            raise PrepareError(f"bundle {out} also holds {', '.join(foreign[:5])}, which prepare "
                               "did not write (e.g. the study's answers database); refusing "
                               "to replace it even with --overwrite: move those away or "
                               "choose another -o")


def prepare_bundle(out: str | os.PathLike[str], specs: Sequence[GeneratorSpec], *,
                   per_generator: int = 10, seed: int = 0, duration: float | None = 5.0,
                   model: str = DEFAULT_MODEL, steps: int = 50, guidance_scale: float = 3.5,
                   loudness: float = -23.0, peak_limit: float = -1.0, device: str = "cpu",
                   overwrite: bool = False, progress: bool = True,
                   load: Callable[..., Any] | None = None, enhancer: Any = None,
                   command: Sequence[str] | None = None) -> Path:
    """Build the bundle in ``out`` and return the manifest path (see module docstring).

    ``specs`` carry their prompts. ``load(kind, model, device=...)`` defaults to
    ``recipes.generators.load_generator``; ``enhancer`` defaults to
    ``audiosr_core.load(model, device=device)``.
    """
    import soundfile as sf
    from tqdm import tqdm

    from audiosr_core.audio import resample

    out = Path(out)
    if per_generator < 1:
        raise PrepareError(f"--per-generator must be at least 1, got {per_generator}")
    if not specs:
        raise PrepareError("no generator given; pass --generator NAME=KIND:MODEL")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise PrepareError(f"generator names must be unique, got {', '.join(names)}")
    if peak_limit > 0:
        raise PrepareError(f"--peak-limit must be at most 0 dBFS, got {peak_limit}")
    if duration is not None and not duration > 0:
        raise PrepareError(f"--duration must be positive, got {duration}")
    for s in specs:
        if not s.prompts:
            raise PrepareError(f"generator {s.name!r} has no prompts")
    _check_output(out, overwrite)
    if load is None:
        try:
            from recipes.generators import load_generator as load
        except ImportError as exc:
            raise PrepareError(f"recipes.generators is not available ({exc})") from None
    if enhancer is None:
        from audiosr_core.loading import load as load_model

        enhancer = load_model(model, device=device)

    with atomic.atomic_folder(out) as work:
        (work / AUDIO_DIR).mkdir()
        generators: list[dict[str, Any]] = []
        items: list[dict[str, Any]] = []
        rms_items: list[str] = []
        total = per_generator * len(specs)
        bar = tqdm(total=total, desc="preparing pairs", unit="pair", disable=not progress,
                   file=sys.stderr)
        for spec in specs:
            bar.set_postfix_str(f"loading {spec.name}")
            try:
                gen = load(spec.kind, spec.model, device=device, **spec.options)
            except (ValueError, FileNotFoundError, OSError) as exc:
                raise PrepareError(f"cannot load generator {spec.name!r} "
                                   f"({spec.kind}:{spec.model}): {exc}") from None
            rate = int(gen.sample_rate)
            generators.append({"name": spec.name, "kind": spec.kind, "model": spec.model,
                               "sample_rate": rate, "prompts": spec.prompts_source,
                               "load_options": dict(spec.options)})
            kwargs = _generate_kwargs(spec.kind, duration)
            for index in range(per_generator):
                prompt = spec.prompts[index % len(spec.prompts)]
                item_seed = derive_seed(seed, spec.name, index)
                item_id = f"{spec.name}-{index:03d}"
                bar.set_postfix_str(item_id)
                what = f"generator {spec.name!r}, item {item_id} (prompt {prompt!r})"
                try:
                    raw = gen.generate(prompt, item_seed, **kwargs)
                except (ValueError, RuntimeError, TypeError) as exc:
                    raise PrepareError(f"{what}: generation failed: {exc}") from None
                raw = _as_channels(raw, what)
                without = resample(raw, rate, SAMPLE_RATE)
                try:
                    enhanced = _enhance(raw, rate, enhancer, steps, guidance_scale, item_seed)
                except (ValueError, RuntimeError, AudioSRError) as exc:
                    raise PrepareError(f"{what}: enhancement failed: {exc}") from None
                with_ = _as_channels(enhanced, f"{what}: enhancer output")
                if with_.shape[0] != without.shape[0]:
                    raise PrepareError(f"{what}: the enhancer returned {with_.shape[0]} "
                                       f"channels for {without.shape[0]}")
                n = min(with_.shape[-1], without.shape[-1])
                pair = match_pair(without[:, :n], with_[:, :n], SAMPLE_RATE, loudness,
                                  peak_limit)
                if pair.method != "bs1770":
                    rms_items.append(item_id)
                    bar.write(f"note: {item_id} is shorter than 400 ms (BS.1770's gating "
                              "block): its pair is loudness-matched by RMS instead",
                              file=sys.stderr)
                files = {}
                for cond, data in (("with", pair.with_), ("without", pair.without)):
                    rel = f"{AUDIO_DIR}/{item_id}-{cond}.wav"
                    sf.write(work / rel, data.T, SAMPLE_RATE, subtype="PCM_16", format="WAV")
                    files[cond] = rel
                items.append({
                    "id": item_id, "generator": spec.name, "prompt": prompt, "seed": item_seed,
                    **files, "loudness_lufs": pair.loudness, "duration_s": n / SAMPLE_RATE,
                    "loudness_method": pair.method, "gain_db": pair.gain_db,
                    "level_reduction_db": pair.level_reduction_db, "peak_dbfs": pair.peak_dbfs,
                    "enhancer_seed": item_seed, "channels": int(without.shape[0]),
                    "source_samples": int(raw.shape[-1]),
                })
                bar.update(1)
            del gen
        bar.close()
        settings = {
            "enhancer": {"model": str(model), "steps": steps, "guidance_scale": guidance_scale,
                         "seed": seed, "seed_per_item": "the item's seed"},
            "loudness_lufs": loudness,
            "loudness_standard": "ITU-R BS.1770-4 integrated (pyloudnorm); RMS below 400 ms",
            "loudness_rms_items": rms_items,
            "peak_limit_dbfs": peak_limit,
            "sample_rate": SAMPLE_RATE,
            "subtype": "PCM_16",
            "resampler": "soxr VHQ",
            "seed": seed,
            "seed_derivation": "first 31 bits of sha256('{seed}/{generator}/{index}')",
            "per_generator": per_generator,
            "duration_s": duration,
            "device": device,
            "versions": _versions(),
            "command": list(command) if command is not None else None,
        }
        write_manifest(work, settings, generators, items)
        if out.exists():
            shutil.rmtree(out)       # checked replaceable by _check_output above
    return out / MANIFEST_NAME


# ---------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m recipes.preference_study prepare",
        description="Generate clips with each generator, make loudness-matched 48 kHz pairs "
                    "without/with super-resolution, and write a study bundle "
                    "(manifest.json + audio/*.wav).",
        epilog="Example: prepare -o study --generator audioldm=audioldm:cvssp/audioldm-s-full-v2 "
               "--generator musicgen=musicgen:facebook/musicgen-small --per-generator 10")
    p.add_argument("-o", "--out", required=True, type=Path, help="bundle folder to create")
    p.add_argument("--generator", action="append", required=True, metavar="NAME=KIND:MODEL",
                   help="a generator (repeatable); KIND one of: " + ", ".join(_known_kinds()))
    p.add_argument("--prompts", action="append", default=[], metavar="NAME=FILE",
                   help="prompt file for generator NAME (one prompt a line; default: the "
                        "shipped list for its kind: sound_events, music or tts)")
    p.add_argument("--load-option", action="append", default=[], metavar="NAME.KEY=VALUE",
                   help="option for loading generator NAME, e.g. tts.vocoder=FOLDER, "
                        "tts.tokenizer=FOLDER, mg.processor=FOLDER, fn.sample_rate=16000 "
                        "(callables)")
    p.add_argument("--per-generator", type=int, default=10, metavar="N",
                   help="pairs per generator (prompts are reused in order if fewer; "
                        "default 10)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument("--duration", type=float, default=5.0,
                   help="seconds to generate (not for TTS; default 5)")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"enhancer: lite | basic | speech | PATH (default {DEFAULT_MODEL}; use "
                        "basic or speech to reproduce the paper's study with AudioSR itself)")
    p.add_argument("--steps", type=int, default=50, help="enhancer diffusion steps (50)")
    p.add_argument("--guidance-scale", type=float, default=3.5, help="enhancer guidance (3.5)")
    p.add_argument("--loudness", type=float, default=-23.0,
                   help="target loudness of every file, LUFS (default -23)")
    p.add_argument("--peak-limit", type=float, default=-1.0,
                   help="highest sample peak, dBFS; pairs that would exceed it are both "
                        "lowered by the same amount (default -1)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code (0 ok, 1 failure while preparing, 2 bad
    arguments, prompts or output folder)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from recipes.generators import quiet_libraries
    except ImportError:
        pass
    else:
        quiet_libraries()
    try:
        specs = [parse_generator(g) for g in args.generator]
        by_name = {s.name: s for s in specs}
        for entry in args.prompts:
            name, eq, file = entry.partition("=")
            if not eq or not file:
                raise PrepareError(f"--prompts {entry!r}: expected NAME=FILE")
            if name not in by_name:
                raise PrepareError(f"--prompts {entry!r}: no --generator named {name!r} "
                                   f"(have: {', '.join(by_name)})")
            by_name[name].prompts = load_prompts(file)
            by_name[name].prompts_source = str(file)
        for entry in args.load_option:
            target, eq, value = entry.partition("=")
            name, dot, key = target.partition(".")
            if not eq or not dot or not key or not value:
                raise PrepareError(f"--load-option {entry!r}: expected NAME.KEY=VALUE")
            if name not in by_name:
                raise PrepareError(f"--load-option {entry!r}: no --generator named {name!r}")
            by_name[name].options[key] = int(value) if value.isdigit() else value
        for s in specs:
            if not s.prompts:
                default = default_prompt_list(s.kind)
                if default is None:
                    raise PrepareError(f"generator {s.name!r} (kind {s.kind}) has no default "
                                       f"prompt list; pass --prompts {s.name}=FILE")
                s.prompts = load_prompts(default)
                s.prompts_source = f"default:{default.name}"
        _check_output(args.out, args.overwrite)
    except PrepareError as exc:
        print(f"prepare: error: {exc}", file=sys.stderr)
        return 2
    try:
        manifest = prepare_bundle(
            args.out, specs, per_generator=args.per_generator, seed=args.seed,
            duration=args.duration, model=args.model, steps=args.steps,
            guidance_scale=args.guidance_scale, loudness=args.loudness,
            peak_limit=args.peak_limit, device=args.device, overwrite=args.overwrite,
            progress=not args.quiet, command=sys.argv if argv is None else ["prepare", *argv])
    except (PrepareError, BundleError) as exc:
        print(f"prepare: error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, OSError, AudioSRError) as exc:
        print(f"prepare: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {manifest} ({args.per_generator * len(specs)} pairs)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
