"""``AudioSR``: band-limited audio in, 48 kHz audio out.

preprocess (resample, normalise, detect cutoff, low-pass, log-mel) -> conditioning VAE encode ->
latent diffusion (DDIM or DPM-Solver++, guidance on v) -> VAE decode -> mel low-band replacement
-> HiFi-GAN -> STFT low-band replacement -> level and length.

Example
-------
>>> from audiosr_core import AudioSR
>>> sr = AudioSR.from_pretrained("basic")                      # official weights, converted once
>>> res = sr.enhance(audio, 16000, steps=50, guidance_scale=3.5, seed=42)
>>> res.audio.shape, res.sample_rate, res.cutoff_hz            # ([channels, samples], 48000, [...])
>>> sr.enhance_file("in.flac", "out.wav")                      # never overwrites its input
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import audio as audio_io
from . import chunking, dsp
from .devices import resolve_device
from .enhancer import (
    EnhanceOptions,
    Enhancer,
    EnhanceResult,
    FilePlan,
    Planner,
    WindowTask,
    blocks,
    result_statuses,
)
from .errors import WeightsError
from .models.audiosr import AudioSRModel
from .rates import SAMPLE_RATE
from .sampling import GuidedUNet, NoiseSchedule, make_sampler, unconditional_value
from .seeds import derive_seed

__all__ = ["AudioSR", "DiffusionPlanner", "DiffusionState", "Prepared", "RowNoise", "ModelJob",
           "official_filter_draw"]


@dataclass
class Prepared:
    """Model-ready inputs of one batch of channels (all of one padded length).

    Attributes
    ----------
    wave : np.ndarray
        ``[B, N]`` normalised (mean removed, peak 0.5), zero-padded 48 kHz waveform.
    lowpass : np.ndarray
        ``[B, N]`` its pre-processing low-pass.
    mel_lowpass : np.ndarray
        ``[B, frames, 256]`` log-mel of ``lowpass``.
    cutoffs : list of dsp.Cutoff
        Detected bandwidth per row.
    filter_kinds : list of str
        Filter used per row.
    """

    wave: np.ndarray
    lowpass: np.ndarray
    mel_lowpass: np.ndarray
    cutoffs: list[dsp.Cutoff]
    filter_kinds: list[str]


class AudioSR(Enhancer):
    """AudioSR super-resolution pipeline (official architecture and sampler).

    Parameters
    ----------
    model : AudioSRModel
        The four components and ``scale_factor``.
    device : str or torch.device, optional
        Default: cuda > mps > cpu.
    dtype : torch.dtype, optional
        Compute type of the networks (default float32). bfloat16 is faster on CPUs with native
        support; DSP always runs in float32/64.
    """

    def __init__(self, model: AudioSRModel, device: str | torch.device | None = None,
                 dtype: torch.dtype | None = None) -> None:
        self.device = resolve_device(device)
        self.dtype = dtype or torch.float32
        self.scale_factor = float(model.scale_factor)  # before any cast to a low precision
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        # Channels-last weights make oneDNN run the 2-D convolutions in its fast layout (VAE
        # decoder about 2x, UNet about 10 % faster on CPU); the arithmetic is unchanged.
        for net in (self.model.unet, self.model.vae_encoder, self.model.vae_decoder):
            net.to(memory_format=torch.channels_last)
        self.schedule = NoiseSchedule.cosine(model.config.timesteps, model.config.cosine_s)
        self.uncond_value = unconditional_value(self.scale_factor,
                                                model.config.unconditional_value)
        # Long audio: the model sees 10.24 s at a time (its training length), of which 0.64 s
        # on each side is context; windows overlap by at least 0.32 s.
        self.segment = int(10.24 * SAMPLE_RATE)
        self.context = int(0.64 * SAMPLE_RATE)
        self.crossfade = int(0.32 * SAMPLE_RATE)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str] = "basic",
                        device: str | torch.device | None = None,
                        dtype: torch.dtype | None = None, **kwargs: Any) -> AudioSR:
        """Load a diffusion model: ``"basic"``, ``"speech"``, a converted folder or an official
        checkpoint file.

        Official weights are downloaded and converted on first use (see
        :func:`audiosr_core.weights.resolve_pretrained`, which receives ``kwargs``).
        :func:`audiosr_core.load` is the front door for every model, ``"lite"`` included.

        Raises
        ------
        WeightsError
            Weights that cannot be found, downloaded or read, or a ``lite`` model (load that
            with :func:`audiosr_core.load` or :meth:`LiteSR.from_pretrained`).
        DeviceError
            A device this machine does not have.
        """
        from .models.lite import LiteModel
        from .weights import resolve_pretrained

        device = resolve_device(device)
        folder = resolve_pretrained(name_or_path, **kwargs)
        if LiteModel.is_lite_folder(folder):
            raise WeightsError(f"{name_or_path}: is the lite model, not a diffusion model; load "
                               f"it with audiosr_core.load({str(name_or_path)!r}) (or "
                               "LiteSR.from_pretrained)")
        return cls(AudioSRModel.from_pretrained(folder, device=device), device, dtype)

    # ----------------------------------------------------------------------------------- stages
    def prepare(self, waves48: np.ndarray, filter_kinds: list[str], filter_order: int = 8,
                cutoffs: list[dsp.Cutoff] | None = None, normalize: bool = True) -> Prepared:
        """Normalise, pad, detect the cutoff and low-pass each row of ``[B, N]`` 48 kHz audio.

        Rows must be band-limited (see :func:`dsp.detect_cutoff`); ``filter_kinds`` has one
        kind per row. ``cutoffs`` (detected on the whole file) and ``normalize=False`` (input
        already scaled by the whole file's gain) are how windows of a long file are prepared.
        """
        frames = dsp.padded_frames(waves48.shape[-1], SAMPLE_RATE)
        n = frames * dsp.HOP
        wave = np.zeros((waves48.shape[0], n), np.float32)
        wave[:, :waves48.shape[-1]] = audio_io.official_normalize(waves48) if normalize else waves48
        if cutoffs is None:
            cutoffs = [dsp.detect_cutoff(row) for row in wave]
        low = np.stack([dsp.lowpass(row, c.hz, kind, filter_order) for row, c, kind
                        in zip(wave, cutoffs, filter_kinds, strict=True)])
        mel = np.stack([dsp.mel_features(row, frames).log_mel for row in low])
        return Prepared(wave, low, mel, list(cutoffs), list(filter_kinds))

    def _tensor(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x)
        return x.to(device=self.device, dtype=self.dtype)

    @torch.inference_mode()
    def encode_condition(self, mel_lowpass: np.ndarray | torch.Tensor,
                         generator: torch.Generator | RowNoise | None = None,
                         mode: str = "sample") -> torch.Tensor:
        """Conditioning latent ``scale_factor * z`` ``[B, 16, T/8, 32]`` from ``[B, T, 256]``.

        ``mode="sample"`` draws ``z`` from the posterior with ``generator`` (official);
        ``"mean"`` uses its mean. The noise of one call is shared by all rows.
        """
        mean, logvar = self.model.vae_encoder(self._tensor(mel_lowpass)[:, None])
        z = mean
        if mode == "sample":
            noise = RowNoise.of(generator, len(mean))(mean.shape[1:])
            z = mean + torch.exp(0.5 * logvar) * noise.to(mean.device, mean.dtype)
        return self.scale_factor * z.float()

    @torch.inference_mode()
    def sample(self, cond_latent: torch.Tensor, x_T: torch.Tensor, *, steps: int,
               guidance_scale: float, sampler: str = "ddim", eta: float = 1.0,
               generator: torch.Generator | RowNoise | None = None,
               callback: Callable[[int, int, torch.Tensor], None] | None = None,
               return_intermediates: bool = False):
        """Run the sampler from ``x_T`` ``[B, 16, T/8, 32]`` (float32 latents).

        Per-step noise (``eta > 0``) is drawn once per step as ``[1, ...]`` from ``generator``
        and shared by every row, so channels of one file get the same noise (a
        :class:`RowNoise` gives each group of rows its own generator).
        """
        def unet_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.model.unet(x.to(self.dtype), t).float()

        rows = RowNoise.of(generator, len(x_T))

        def shared_noise(x: torch.Tensor) -> torch.Tensor:
            return rows(x.shape[1:]).to(x.device, x.dtype)

        denoiser = GuidedUNet(unet_fn, cond_latent.to(self.device), guidance_scale,
                              self.uncond_value)
        kwargs = {"eta": eta} if sampler == "ddim" else {}
        runner = make_sampler(sampler, steps, schedule=self.schedule, **kwargs)
        return runner.sample(denoiser, x_T.to(self.device).float(), shared_noise, callback,
                             return_intermediates)

    @torch.inference_mode()
    def decode(self, latent: torch.Tensor) -> np.ndarray:
        """Log-mel ``[B, T, 256]`` from a latent ``[B, 16, T/8, 32]`` (official ``1/scale``)."""
        z = (1.0 / torch.tensor(self.scale_factor, dtype=torch.float32)) * latent.float()
        return self.model.vae_decoder(self._tensor(z))[:, 0].float().cpu().numpy()

    @torch.inference_mode()
    def vocode(self, log_mel: np.ndarray) -> np.ndarray:
        """48 kHz waveform ``[B, 480 T + 16]`` from a log-mel ``[B, T, 256]``."""
        mel = self._tensor(log_mel).transpose(1, 2)
        return self.model.vocoder(mel)[:, 0].float().cpu().numpy()

    # ------------------------------------------------------------------------------- windows
    def planner(self) -> DiffusionPlanner:
        """Windows of :attr:`segment` samples with :attr:`context` on each side."""
        return DiffusionPlanner(self.segment, self.context, self.crossfade, self.stream_above_s)

    def run_windows(self, tasks: Sequence[WindowTask], options: EnhanceOptions, *,
                    progress: bool = False) -> list[np.ndarray]:
        """The networks on windows of any planned files (:class:`DiffusionState`): windows
        that pad to the same length share batches of ``options.batch_size``; each keeps its
        own seed, so the output does not depend on the grouping (float rounding aside)."""
        outputs: list[np.ndarray | None] = [None] * len(tasks)
        jobs = []
        for k, task in enumerate(tasks):
            if task.state.active:
                jobs.append(k)
            else:
                outputs[k] = np.asarray(task.segment, np.float32).copy()
        frames = lambda k: dsp.padded_frames(tasks[k].segment.shape[-1], SAMPLE_RATE)  # noqa
        for batch in _batches(jobs, options.batch_size, key=frames):
            outs = self._run_jobs([tasks[k].state.model_job(tasks[k].index, tasks[k].segment)
                                   for k in batch], options, progress)
            for k, y in zip(batch, outs, strict=True):
                outputs[k] = tasks[k].state.restore(tasks[k].segment, y)
        return outputs

    def _run_jobs(self, jobs: list[ModelJob], opts: EnhanceOptions, progress: bool
                  ) -> list[np.ndarray]:
        """The networks on jobs that pad to one length, in one batch. Each job's rows share
        its seed's draws: the draws it would get alone. Official settings normalise and
        detect cutoffs here, as the official code does; ours come prepared."""
        sizes = [len(j.rows) for j in jobs]
        n = max(j.rows.shape[-1] for j in jobs)
        rows = np.concatenate([np.pad(j.rows, ((0, 0), (0, n - j.rows.shape[-1])))
                               for j in jobs])
        official = opts.output_level == "official"
        prep = self.prepare(rows, [k for j in jobs for k in j.kinds],
                            cutoffs=None if official else [c for j in jobs for c in j.cutoffs],
                            normalize=official)
        noise = RowNoise([torch.Generator("cpu").manual_seed(j.seed) for j in jobs], sizes)
        latent = (self.model.config.vae.z_channels, prep.mel_lowpass.shape[1] // 8,
                  prep.mel_lowpass.shape[2] // 8)
        if official:
            # The official code draws (and discards) a first-stage posterior sample first;
            # drawing it too keeps every later draw equal to the official one for a seed.
            noise(latent)
        cond = self.encode_condition(prep.mel_lowpass, noise, opts.conditioning)
        x_T = noise(latent)
        bar = _progress_bar(progress, opts)
        result = self.sample(cond, x_T, steps=opts.steps, guidance_scale=opts.guidance_scale,
                             sampler=opts.sampler, eta=opts.eta, generator=noise,
                             callback=(lambda *_: bar.update()) if bar else None)
        if bar:
            bar.close()
        mel = self.decode(result.latent)
        for b in range(len(rows)):
            mel[b] = dsp.replace_mel_low_band(mel[b], prep.mel_lowpass[b],
                                              dsp.mel_cutoff_bin(prep.mel_lowpass[b]))
        voc = self.vocode(mel)
        if official:
            out = np.stack([dsp.official_output_level(
                dsp.replace_low_band(voc[b], prep.lowpass[b]).wave) for b in range(len(rows))])
        else:
            # Ours: the input's own band up to its detected bandwidth (the official stops at
            # the low-passed input's 0.985 point, a little lower), unfiltered; input's scale.
            out = np.stack([dsp.replace_low_band(voc[b], prep.wave[b], prep.cutoffs[b].bin,
                                                 preserve_reference=True).wave
                            for b in range(len(rows))])
        bounds = np.cumsum([0, *sizes])
        return [out[a:b, :j.rows.shape[-1]]
                for a, b, j in zip(bounds[:-1], bounds[1:], jobs, strict=True)]


class RowNoise:
    """Gaussian draws for a batch made of groups of rows: each group draws ``[1, ...]`` from
    its own generator, shared by its rows, so a group gets the draws it would get alone.

    Parameters
    ----------
    generators : list of torch.Generator or None
        One per group (None: torch's global generator).
    sizes : list of int
        Rows per group.
    """

    def __init__(self, generators: list[torch.Generator | None], sizes: list[int]) -> None:
        self.generators, self.sizes = generators, sizes

    @classmethod
    def of(cls, generator: torch.Generator | RowNoise | None, rows: int) -> RowNoise:
        """``generator`` if it is a RowNoise already, else one group of ``rows`` rows."""
        return generator if isinstance(generator, RowNoise) else cls([generator], [rows])

    def __call__(self, tail: Sequence[int]) -> torch.Tensor:
        """``[sum(sizes), *tail]`` float32 draws on the generators' devices (CPU)."""
        return torch.cat([torch.randn((1, *tail), generator=g,
                                      device=g.device if g is not None else "cpu")
                          .expand(n, *tail)
                          for g, n in zip(self.generators, self.sizes, strict=True)])


@dataclass
class ModelJob:
    """Rows ``[B, N]`` the networks process together with one seed."""

    rows: np.ndarray
    kinds: list[str]
    seed: int
    cutoffs: list[dsp.Cutoff]


@dataclass
class DiffusionState:
    """File-level state of a planned file (picklable): its channels' cutoffs, the filter
    kind, the seed, and the whole file's normalisation ``mean`` and ``gain`` ``[A, 1]`` of
    its enhanced channels. Window ``i`` runs with its own seed."""

    cutoffs: list[dsp.Cutoff]
    kind: str
    seed: int
    mean: np.ndarray
    gain: np.ndarray

    @property
    def active(self) -> list[int]:
        """Channels that are enhanced (the rest pass through)."""
        return [i for i, c in enumerate(self.cutoffs) if c.enhance]

    def window_seed(self, i: int) -> int:
        """Window 0 uses the seed itself (a short file equals a one-pass run); window ``i``
        the file's seed derived for ``i``, whatever batch or machine runs it."""
        return self.seed if i == 0 else derive_seed(self.seed, "window", i)

    def model_job(self, i: int, segment: np.ndarray) -> ModelJob:
        active = self.active
        return ModelJob((segment[active] - self.mean) * self.gain, [self.kind] * len(active),
                        self.window_seed(i), [self.cutoffs[c] for c in active])

    def restore(self, segment: np.ndarray, generated: np.ndarray) -> np.ndarray:
        """The window's output: enhanced channels back at the input's level."""
        out = np.asarray(segment, np.float32).copy()
        out[self.active] = generated / self.gain + self.mean
        return out

    def result(self) -> EnhanceResult:
        """What to report (``audio`` empty until the windows are joined)."""
        kinds = [self.kind if c.enhance else "" for c in self.cutoffs]
        return EnhanceResult(np.zeros((len(self.cutoffs), 0), np.float32), SAMPLE_RATE,
                             [c.hz for c in self.cutoffs], result_statuses(self.cutoffs),
                             self.seed, kinds)


@dataclass
class DiffusionPlanner(Planner):
    """Plans files for :class:`AudioSR`: windows of ``segment`` samples (10.24 s, the training
    length) of which ``context`` on each side (0.64 s) is only context, overlapping by at
    least ``crossfade`` (0.32 s); one gain and one 0.985 cutoff per channel for the whole
    file. The official options plan one pass over the whole (padded) file instead."""

    segment: int = int(10.24 * SAMPLE_RATE)
    context: int = int(0.64 * SAMPLE_RATE)
    crossfade: int = int(0.32 * SAMPLE_RATE)
    stream_above_s: float = 300.0

    def streams(self, opts: EnhanceOptions) -> bool:
        return opts.output_level != "official"      # the official flow is one padded pass

    def plan(self, x48: np.ndarray, rate: int, opts: EnhanceOptions) -> FilePlan:
        n = x48.shape[-1]
        seed = opts.resolved_seed()
        cutoffs = [dsp.detect_cutoff(row) for row in x48]
        kind = _filter_kind(opts, seed)
        if opts.output_level == "official":     # one pass over the padded file, as official
            state = DiffusionState(cutoffs, kind, seed, np.float32(0.0), np.float32(1.0))
            return FilePlan(n, [chunking.Window(0, n, 0, n)], state, state.result())
        # Ours: one gain and one cutoff per channel for the whole file, windows joined.
        active = x48[[i for i, c in enumerate(cutoffs) if c.enhance]]
        mean = active.mean(axis=-1, keepdims=True, dtype=np.float32)
        gain = np.float32(0.5) / (np.abs(active - mean).max(axis=-1, keepdims=True, initial=0.0)
                                  + np.float32(1e-8))
        state = DiffusionState(cutoffs, kind, seed, mean, gain)
        windows = chunking.plan_windows(n, self.segment, self.context, self.crossfade)
        return FilePlan(n, windows, state, state.result())

    def plan_stream(self, read: Callable[[int, int], np.ndarray], length: int, rate: int,
                    opts: EnhanceOptions) -> FilePlan:
        seed = opts.resolved_seed()
        total = low = high = magnitude = None
        for block in blocks(read, length):
            mags = np.stack([dsp.magnitude_sum(row) for row in block])
            if total is None:
                total, low, high = np.zeros(len(block)), block.min(-1), block.max(-1)
                magnitude = np.zeros_like(mags)
            total += block.sum(-1, dtype=np.float64)
            low, high = np.minimum(low, block.min(-1)), np.maximum(high, block.max(-1))
            magnitude += mags
        peak = np.maximum(np.abs(low), np.abs(high))
        cutoffs = [dsp.energy_cutoff(m, float(p)) for m, p in zip(magnitude, peak, strict=True)]
        active = [i for i, c in enumerate(cutoffs) if c.enhance]
        mean = (total[active] / max(length, 1)).astype(np.float32)[:, None]
        spread = np.maximum(high[active][:, None] - mean, mean - low[active][:, None])
        gain = np.float32(0.5) / (spread + np.float32(1e-8))
        state = DiffusionState(cutoffs, _filter_kind(opts, seed), seed, mean, gain)
        windows = chunking.plan_windows(length, self.segment, self.context, self.crossfade)
        return FilePlan(length, windows, state, state.result())


def _batches(work: list, size: int, key: Callable[[Any], Any]) -> Iterator[list]:
    """``work`` in batches of at most ``size`` items with equal ``key``, in order within a
    key."""
    groups: dict[Any, list] = {}
    for item in work:
        groups.setdefault(key(item), []).append(item)
    for items in groups.values():
        for start in range(0, len(items), size):
            yield items[start:start + size]


def _filter_kind(opts: EnhanceOptions, seed: int) -> str:
    """The pre-processing filter: the options' kind, or the official seeded draw."""
    return official_filter_draw(seed) if opts.filter_kind == "random" else opts.filter_kind


def official_filter_draw(seed: int) -> str:
    """The official seeded ``np.random.choice`` of the filter kind."""
    return str(np.random.RandomState(seed).choice(["butter", "cheby1", "ellip", "bessel"]))


def _progress_bar(enabled: bool, opts: EnhanceOptions):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    total = make_sampler(opts.sampler, opts.steps).num_steps
    return tqdm(total=total, desc="diffusion", unit="step", leave=False)
