"""Run an official-AudioSR inference fixture stage by stage and compare with its expected arrays.

A fixture folder holds ``config.json`` (official ``get_basic_config()`` vocabulary),
``checkpoint.ckpt`` (official key layout), ``inputs/<stem>.wav``, ``expected/<stem>.npz`` and a
``README.md`` whose tolerance table is used (the dev fixture's table is the fallback). Every
setting (widths, steps, guidance, eta, filter, order, frames, scale_factor) is read from the
fixture. Each stage runs *isolated* (fed the stored previous array) and the whole chain runs
*chained* from the wav file with every stage ours.

Usage::

    python -m audiosr_core.parity ../shared/reference/parity/dev
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .. import audio as audio_io
from .. import dsp
from ..models.audiosr import AudioSRConfig, AudioSRModel
from ..pipeline import AudioSR
from ..weights import load_official_checkpoint, split_official_state_dict
from .checks import Check, print_report

#: Tolerances of the dev fixture README (§7), used when a README has no parsable table.
#: Keys: (array, "isolated" | "chained"); "log" means the log-mel rule.
DEFAULT_TOLERANCES: dict[tuple[str, str], float | str] = {
    **{(k, "isolated"): 0.0 for k in ("cutoff_bin", "lowpass_highcut_int",
                                      "lowpass_resample_up_down", "cutoff_melbin",
                                      "post_cutoff_bin", "ddim_timesteps", "unet_t")},
    **{(k, "isolated"): 2e-6 for k in ("wave48", "lowpass_cheby1", "lowpass_butter")},
    **{(k, "isolated"): "log" for k in ("mel_input", "mel_lowpass")},
    **{(k, "isolated"): 1e-4 for k in ("cond_mean", "cond_logvar", "cond_latent",
                                       "unet_out_cond", "unet_out_uncond", "vocoder_wave")},
    **{(k, "isolated"): 2e-4 for k in ("ddim_x_intermediate", "ddim_latent", "mel_decoded",
                                       "mel_replaced")},
    **{(k, "isolated"): 2e-5 for k in ("post_wave", "final_wave")},
    **{(k, "chained"): 1e-3 for k in ("cond_mean", "ddim_latent", "mel_decoded", "mel_replaced")},
    **{(k, "chained"): 2e-4 for k in ("vocoder_wave", "post_wave", "final_wave")},
}
LOG_RULE = (-8.0, 1e-4, 5e-3)  # where expected > -8: 1e-4; everywhere: 5e-3


def parse_tolerances(readme: str) -> tuple[dict[tuple[str, str], float | str], tuple]:
    """Read the "Recommended tolerances" table of a fixture README.

    Returns the ``(array, mode) -> tolerance`` map and the log-mel rule
    ``(threshold, tol_above, tol_everywhere)``; falls back to the dev values when absent.
    """
    table: dict[tuple[str, str], float | str] = {}
    log_rule = LOG_RULE
    start = readme.find("ecommended tolerances")
    if start < 0:
        return dict(DEFAULT_TOLERANCES), log_rule
    for line in readme[start:].splitlines()[1:]:
        if table and not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or cells[0].startswith(("comparison", "---")):
            continue
        what, value = cells
        mode = "chained" if "chained" in what else "isolated"
        names = re.findall(r"`([A-Za-z0-9_]+)`", re.sub(r"\([^)]*\)", "", what))
        numbers = [float(x) for x in re.findall(r"\d+(?:\.\d+)?e-?\d+", value)]
        if "exact" in value:
            tol: float | str = 0.0
        elif "where expected" in value and len(numbers) == 2:
            threshold = float(re.search(r"expected\s*>\s*(-?\d+(?:\.\d+)?)", value).group(1))
            log_rule, tol = (threshold, numbers[0], numbers[1]), "log"
        elif numbers:
            tol = numbers[0]
        else:
            continue
        for name in names:
            table[(name, mode)] = tol
    return (table or dict(DEFAULT_TOLERANCES)), log_rule


class ParityRunner:
    """Builds the fixture's model with our code and compares every stage."""

    def __init__(self, fixture: str | Path) -> None:
        self.dir = Path(fixture)
        for needed in ("config.json", "checkpoint.ckpt", "inputs", "expected"):
            if not (self.dir / needed).exists():
                raise FileNotFoundError(f"{self.dir}: not a parity fixture (missing {needed})")
        official = json.loads((self.dir / "config.json").read_text())
        model = AudioSRModel(AudioSRConfig.from_official(official))
        parts = split_official_state_dict(load_official_checkpoint(self.dir / "checkpoint.ckpt"))
        model.load_official(parts)
        self.sr = AudioSR(model, device="cpu", dtype=torch.float32)
        readme = self.dir / "README.md"
        self.tolerances, self.log_rule = parse_tolerances(
            readme.read_text() if readme.is_file() else "")
        self.checks: list[Check] = []

    def stems(self) -> list[str]:
        return sorted(p.stem for p in (self.dir / "expected").glob("*.npz"))

    # ------------------------------------------------------------------------------ comparison
    def _compare(self, stem: str, name: str, actual, expected: np.ndarray,
                 mode: str = "isolated") -> None:
        tol = self.tolerances.get((name, mode))
        if tol is None:
            return  # the fixture sets no tolerance for this array in this mode
        actual = np.asarray(actual.detach().cpu() if torch.is_tensor(actual) else actual)
        if actual.shape != expected.shape:
            self.checks.append(Check(stem, name, mode, float("inf"), tol,
                                     f"shape {actual.shape} != {expected.shape}"))
            return
        err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
        if tol == "log":
            threshold, above, everywhere = self.log_rule
            hi = float(err[expected > threshold].max(initial=0.0))
            where = f"where expected > {threshold:g}"
            self.checks.append(Check(stem, name, mode, hi, above, where))
            self.checks.append(Check(stem, name, mode, float(err.max()), everywhere, "everywhere"))
        else:
            self.checks.append(Check(stem, name, mode, float(err.max(initial=0.0)), float(tol)))

    # ---------------------------------------------------------------------------------- stages
    def run(self, stem: str) -> None:
        with np.load(self.dir / "expected" / f"{stem}.npz") as data:
            e = {k: data[k] for k in data.files}
        cmp: Callable = lambda name, actual, mode="isolated": self._compare(  # noqa: E731
            stem, name, actual, e[name], mode)
        frames = int(e["target_frame"])
        steps, guidance = int(e["ddim_steps_arg"]), float(e["guidance_scale"])
        eta, kind, order = float(e["ddim_eta"]), str(e["main_filter_type"]), int(e["lowpass_order"])
        sr = self.sr

        # 5.1 wave48 from the wav file (official reader: channel 0, sinc/Hann, normalise, pad)
        samples, rate = audio_io.load(self.dir / "inputs" / f"{stem}.wav")
        x48 = audio_io.resample(samples, rate, dsp.SAMPLE_RATE, method="sinc_hann")[:1]
        prep = sr.prepare(x48, [kind], filter_order=order)
        cmp("wave48", prep.wave[0])

        # isolated DSP stages
        cmp("mel_input", dsp.mel_features(e["wave48"], frames).log_mel)
        cut = dsp.detect_cutoff(e["wave48"])
        cmp("cutoff_bin", np.int64(cut.bin))
        cmp("lowpass_highcut_int", np.int64(int(cut.hz)))
        low_rate = dsp.hard_lowpass_rate(cut.hz)
        cmp("lowpass_resample_up_down", np.array([[low_rate, 48000], [48000, low_rate]]))
        for k in ("cheby1", "butter"):
            if f"lowpass_{k}" in e:
                cmp(f"lowpass_{k}", dsp.lowpass(e["wave48"], float(e["cutoff_hz"]), k, order))
        cmp("mel_lowpass", dsp.mel_features(e[f"lowpass_{kind}"], frames).log_mel)

        # 5.5 conditioning, 5.6 one UNet call, 5.7 DDIM, 5.8 decode (isolated)
        with torch.inference_mode():
            mean, logvar = sr.model.vae_encoder(torch.from_numpy(e["mel_lowpass"])[None, None])
        cmp("cond_mean", mean)
        cmp("cond_logvar", logvar)
        cond = sr.scale_factor * torch.from_numpy(e["cond_mean"])
        cmp("cond_latent", cond)
        if "uncond_latent_value" in e:
            err = abs(sr.uncond_value - float(e["uncond_latent_value"]))
            self.checks.append(Check(stem, "uncond_latent_value", "isolated", err, 1e-6))
        x = torch.from_numpy(e["unet_x"])
        t = torch.tensor([int(e["unet_t"])])
        with torch.inference_mode():
            cmp("unet_out_cond", sr.model.unet(torch.cat([x, cond], 1), t))
            uncond = torch.full_like(cond, sr.uncond_value)
            cmp("unet_out_uncond", sr.model.unet(torch.cat([x, uncond], 1), t))
        out = sr.sample(cond, torch.from_numpy(e["x_T"]), steps=steps, guidance_scale=guidance,
                        eta=eta, return_intermediates=True)
        cmp("ddim_timesteps", out.timesteps)
        cmp("ddim_x_intermediate", torch.stack(out.intermediates[:-1]))
        cmp("ddim_latent", out.latent)
        cmp("mel_decoded", sr.decode(torch.from_numpy(e["ddim_latent"]))[:, None])
        melbin = dsp.mel_cutoff_bin(e["mel_lowpass"])
        cmp("cutoff_melbin", np.int64(melbin))
        cmp("mel_replaced", dsp.replace_mel_low_band(e["mel_decoded"], e["mel_lowpass"], melbin))
        cmp("vocoder_wave", sr.vocode(e["mel_replaced"][:, 0])[:, None])
        post = dsp.replace_low_band(e["vocoder_wave"][0, 0], e[f"lowpass_{kind}"])
        cmp("post_cutoff_bin", np.int64(post.cutoff_bin))
        cmp("post_wave", post.wave[None, None])
        cmp("final_wave", dsp.official_output_level(e["post_wave"]))

        # chained from the wav file, every stage ours
        with torch.inference_mode():
            mean, _ = sr.model.vae_encoder(torch.from_numpy(prep.mel_lowpass)[:, None])
        cmp("cond_mean", mean, "chained")
        out = sr.sample(sr.scale_factor * mean, torch.from_numpy(e["x_T"]), steps=steps,
                        guidance_scale=guidance, eta=eta)
        cmp("ddim_latent", out.latent, "chained")
        mel = sr.decode(out.latent)
        cmp("mel_decoded", mel[:, None], "chained")
        mel = dsp.replace_mel_low_band(mel, prep.mel_lowpass,
                                       dsp.mel_cutoff_bin(prep.mel_lowpass[0]))
        cmp("mel_replaced", mel[:, None], "chained")
        voc = sr.vocode(mel)
        cmp("vocoder_wave", voc[:, None], "chained")
        post = dsp.replace_low_band(voc[0], prep.lowpass[0])
        cmp("post_wave", post.wave[None, None], "chained")
        cmp("final_wave", dsp.official_output_level(post.wave)[None, None], "chained")

    def report(self, stream=sys.stdout) -> bool:
        """Print one line per check; True if all pass."""
        return print_report(self.checks, stream)
