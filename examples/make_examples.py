"""Synthesise the two example clips in this folder (deterministic; numpy, scipy, soundfile).

    python examples/make_examples.py [OUTDIR]      # default: the folder of this script

speech_like_16k.wav   16 kHz mono, 3.0 s, PCM_16: a voiced, formant-filtered "sentence" of five
                      syllables with an intonation contour, fricatives and a plosive burst.
music_like_32k.flac   32 kHz stereo, 4.0 s, PCM_16: a I-V-vi-IV chord progression (pad, bass,
                      plucked arpeggio) with noise hi-hats, snare and a kick, panned in stereo.

Both are band-limited by their sample rate (no partial above 0.95 x Nyquist), which is what
super-resolution is for. Our own synthesis: CC0.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

SEED = 20240611

# Vowel formant targets (F1..F4, Hz), adult male averages.
VOWELS = {
    "a": (730, 1090, 2440, 3400),
    "e": (530, 1840, 2480, 3500),
    "i": (270, 2290, 3010, 3700),
    "o": (570, 840, 2410, 3400),
    "u": (300, 870, 2240, 3400),
}
BANDWIDTHS = np.array([80.0, 100.0, 150.0, 250.0])


def _raised_cosine(n: int, attack: int, release: int) -> np.ndarray:
    """[n] envelope rising over `attack` samples and falling over `release` samples."""
    env = np.ones(n)
    a, r = min(attack, n // 2), min(release, n // 2)
    env[:a] = 0.5 - 0.5 * np.cos(np.pi * np.arange(a) / a)
    env[n - r :] = 0.5 + 0.5 * np.cos(np.pi * np.arange(r) / r)
    return env


def _formant_gain(freq: np.ndarray, formants: np.ndarray) -> np.ndarray:
    """Cascade of 2nd-order resonators (unit gain at DC) at `freq` ([n]) for formants [4, n]."""
    gain = np.ones_like(freq)
    for k in range(4):
        f0, bw = formants[k], BANDWIDTHS[k]
        gain *= f0**2 / np.sqrt((f0**2 - freq**2) ** 2 + (bw * freq) ** 2)
    return gain


def speech_like(sr: int = 16000, duration: float = 3.0, seed: int = SEED) -> np.ndarray:
    """A speech-like phrase, [samples] float32, peak about -3 dBFS."""
    rng = np.random.default_rng(seed)
    n = int(sr * duration)
    t = np.arange(n) / sr
    # syllables: (onset s, vowel duration s, vowel, consonant before it)
    syllables = [(0.18, 0.30, "a", "s"), (0.62, 0.22, "i", "l"), (0.98, 0.34, "u", "m"),
                 (1.55, 0.26, "e", "t"), (1.98, 0.55, "o", "n")]  # fmt: skip
    # formant tracks: interpolate vowel targets between syllable centres
    centres = [on + dur / 2 for on, dur, *_ in syllables]
    targets = np.array([VOWELS[v] for _, _, v, _ in syllables], float).T  # [4, syllables]
    formants = np.stack([np.interp(t, centres, targets[k]) for k in range(4)])
    # intonation: declining line, a rise on syllable 3, a fall at the end, vibrato and jitter
    f0 = 128 - 22 * t / duration + 18 * np.exp(-(((t - 1.1) / 0.18) ** 2))
    f0 -= 12 * np.clip((t - 2.2) / 0.4, 0, 1)
    f0 *= 1 + 0.01 * np.sin(2 * np.pi * 5.2 * t)
    jitter = signal.sosfiltfilt(signal.butter(2, 20, fs=sr, output="sos"), rng.standard_normal(n))
    f0 *= 1 + 0.4 * jitter
    phase = 2 * np.pi * np.cumsum(f0) / sr
    # voiced source: harmonics with a -6 dB/octave tilt, formant-shaped, below 0.95 x Nyquist
    voiced = np.zeros(n)
    top = 0.95 * sr / 2
    for k in range(1, int(top / f0.min()) + 1):
        fk = k * f0
        fade = np.clip((top - fk) / 300.0, 0, 1)  # partials leave smoothly as f0 moves
        if not fade.any():
            continue
        voiced += fade * _formant_gain(fk, formants) / k * np.sin(k * phase)
    # voicing envelope: each vowel (with a nasal/liquid lead-in) plus syllable amplitude
    voicing = np.zeros(n)
    for on, dur, _, cons in syllables:
        lead = 0.06 if cons in "lmn" else 0.0
        i0, i1 = int((on - lead) * sr), int((on + dur) * sr)
        env = _raised_cosine(i1 - i0, int(0.04 * sr), int(0.08 * sr))
        if lead:  # quieter, murmured consonant, blending smoothly into the vowel
            ramp = np.clip((np.arange(i1 - i0) / sr - lead + 0.02) / 0.04, 0, 1)
            env *= 0.35 + 0.65 * (0.5 - 0.5 * np.cos(np.pi * ramp))
        voicing[i0:i1] = np.maximum(voicing[i0:i1], env)
    speech = voicing * voiced / np.max(np.abs(voiced))
    # unvoiced parts: /s/ (high-passed noise), /t/ (short burst)
    hiss = signal.sosfilt(signal.butter(4, [3800, 7400], "bandpass", fs=sr, output="sos"),
                          rng.standard_normal(n))  # fmt: skip
    hiss /= np.max(np.abs(hiss))
    burst = signal.sosfilt(signal.butter(2, 1500, "highpass", fs=sr, output="sos"),
                           rng.standard_normal(n))  # fmt: skip
    burst /= np.max(np.abs(burst))
    for on, _, _, cons in syllables:
        if cons == "s":
            i0, i1 = int((on - 0.14) * sr), int(on * sr)
            speech[i0:i1] += 0.35 * hiss[i0:i1] * _raised_cosine(i1 - i0, 400, 300)
        elif cons == "t":
            i0, i1 = int((on - 0.03) * sr), int((on - 0.005) * sr)
            speech[i0:i1] += 0.5 * burst[i0:i1] * np.exp(-np.arange(i1 - i0) / (0.006 * sr))
    speech += 10 ** (-55 / 20) * rng.standard_normal(n)  # faint room noise
    return (0.7 * speech / np.max(np.abs(speech))).astype(np.float32)


def _pluck(freq: float, n: int, sr: int, decay_s: float) -> np.ndarray:
    """Additive plucked string: partials below 0.95 x Nyquist, higher ones decaying faster."""
    t = np.arange(n) / sr
    out = np.zeros(n)
    for k in range(1, 40):
        if k * freq >= 0.95 * sr / 2:
            break
        out += np.sin(2 * np.pi * k * freq * t) * np.exp(-t * k / decay_s) / k**1.2
    return out * _raised_cosine(n, 16, int(0.01 * sr))


def _note(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def music_like(sr: int = 32000, duration: float = 4.0, seed: int = SEED) -> np.ndarray:
    """A short pop-like loop, [2, samples] float32, peak about -3 dBFS."""
    rng = np.random.default_rng(seed + 1)
    n = int(sr * duration)
    left, right = np.zeros(n), np.zeros(n)
    chords = [(60, 64, 67), (55, 59, 62), (57, 60, 64), (53, 57, 60)]  # C G Am F
    bar = n // len(chords)
    for c, notes in enumerate(chords):
        i0 = c * bar
        seg = np.arange(bar) / sr
        env = _raised_cosine(bar, int(0.05 * sr), int(0.1 * sr))
        # pad: detuned band-limited saws, slightly different per side
        for j, midi in enumerate(notes):
            for side, detune in ((left, -0.06), (right, 0.06)):
                f = _note(midi + detune)
                saw = sum(
                    np.sin(2 * np.pi * k * f * seg + j) / k
                    for k in range(1, 60)
                    if k * f < 0.95 * sr / 2
                )
                side[i0 : i0 + bar] += 0.05 * env * saw * np.exp(-seg / 3.0)
        # bass: root an octave down, two notes per bar
        half = bar // 2
        for h in range(2):
            f = _note(notes[0] - 24)
            s = np.arange(half) / sr
            tone = np.sin(2 * np.pi * f * s) + 0.3 * np.sin(4 * np.pi * f * s)
            tone *= np.exp(-s / 0.6) * _raised_cosine(half, 64, 400)
            for side in (left, right):
                side[i0 + h * half : i0 + (h + 1) * half] += 0.25 * tone
        # plucked arpeggio in eighths, alternating sides
        step = bar // 8
        for k in range(8):
            midi = notes[k % 3] + 12 * (k // 3 % 2)
            p = _pluck(_note(midi), step * 2, sr, decay_s=0.35)
            a = i0 + k * step
            m = min(2 * step, n - a)
            gain_l, gain_r = (0.14, 0.06) if k % 2 == 0 else (0.06, 0.14)
            left[a : a + m] += gain_l * p[:m]
            right[a : a + m] += gain_r * p[:m]
    # drums: kick on beats 1 and 3, snare on 2 and 4, hi-hats on 8ths
    beat = n // 16
    hat_sos = signal.butter(4, 7000, "highpass", fs=sr, output="sos")
    snare_sos = signal.butter(2, [1200, 9000], "bandpass", fs=sr, output="sos")
    for b in range(16):
        i0 = b * beat
        s = np.arange(beat) / sr
        if b % 2 == 0:
            sweep = 2 * np.pi * np.cumsum(50 + 90 * np.exp(-s / 0.03)) / sr
            kick = 0.6 * np.sin(sweep) * np.exp(-s / 0.12)
            left[i0 : i0 + beat] += kick
            right[i0 : i0 + beat] += kick
        else:
            noise = signal.sosfilt(snare_sos, rng.standard_normal(beat))
            snare = (0.25 * noise + 0.2 * np.sin(2 * np.pi * 190 * s)) * np.exp(-s / 0.07)
            left[i0 : i0 + beat] += 0.9 * snare
            right[i0 : i0 + beat] += snare
        for off in (0, beat // 2):
            m = min(beat // 2, n - i0 - off)
            hat = signal.sosfilt(hat_sos, rng.standard_normal(m)) * np.exp(-s[:m] / 0.018)
            left[i0 + off : i0 + off + m] += 0.10 * hat
            right[i0 + off : i0 + off + m] += 0.16 * hat
    mix = np.stack([left, right])
    mix *= _raised_cosine(n, int(0.005 * sr), int(0.05 * sr))
    return (0.7 * mix / np.max(np.abs(mix))).astype(np.float32)


def main(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    speech = speech_like()
    sf.write(outdir / "speech_like_16k.wav", speech, 16000, subtype="PCM_16")
    music = music_like()
    sf.write(outdir / "music_like_32k.flac", music.T, 32000, subtype="PCM_16")
    for name in ("speech_like_16k.wav", "music_like_32k.flac"):
        path = outdir / name
        print(f"{path}: {sf.info(path).duration:.2f} s, {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
