"""The ComfyUI upsample step: an AUDIO batch through an enhancer, AUDIO and IMAGE out.

ComfyUI's AUDIO is ``{"waveform": tensor [batch, channels, samples], "sample_rate": int}``
(what LoadAudio builds); its IMAGE is float32 ``[batch, height, width, 3]`` in [0, 1]. Every
batch item is enhanced on its own (all its channels in one engine call), so each equals
``enhancer.enhance(item, rate)``; the output keeps the batch and channel counts.

Example
-------
>>> from audiosr_adapters.comfyui.models import load_model
>>> from audiosr_adapters.comfyui.upsample import upsample
>>> audio = {"waveform": torch.zeros(1, 2, 16000), "sample_rate": 16000}   # doctest: +SKIP
>>> out, image = upsample(load_model("lite"), audio)                      # doctest: +SKIP
>>> out["waveform"].shape, out["sample_rate"], image.shape                # doctest: +SKIP
(torch.Size([1, 2, 48000]), 48000, torch.Size([1, 256, 772, 3]))
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import torch

from audiosr_core.audio import MAX_CHANNELS, pcm_to_float
from audiosr_core.enhancer import MIN_OUTPUT_RATE, EnhanceOptions
from audiosr_core.errors import AudioInputError
from audiosr_core.rates import SAMPLE_RATE, check_rate, fit_length
from audiosr_core.spectrogram import spectrogram_image

__all__ = ["MIN_OUTPUT_RATE", "DEFAULTS", "audio_batch",
           "enhance_options", "upsample"]

DEFAULTS = EnhanceOptions()
"""The engine's defaults (steps, guidance_scale, seed, sampler), the nodes' defaults too."""
_BLANK_SIZE = 64


# ------------------------------------------------------------------------------------ input
def audio_batch(audio: Any) -> tuple[np.ndarray, int]:
    """Check a ComfyUI AUDIO value and return its samples as float32 numpy.

    Parameters
    ----------
    audio : dict
        ``{"waveform": torch.Tensor or np.ndarray [batch, channels, samples], "sample_rate":
        int}``; float (full scale +-1) or int8/int16/int32 PCM.

    Returns
    -------
    batch : np.ndarray
        float32 ``[batch, channels, samples]``, a copy.
    rate : int
        Hz.

    Raises
    ------
    AudioInputError
        Not such a dict, wrong dimensions, an empty axis, more than 8 channels, NaN/Inf, or a
        rate out of range; the message names the problem and the fix.
    """
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise AudioInputError(
            "AUDIO input must be {'waveform': tensor [batch, channels, samples], 'sample_rate': "
            f"int}} as LoadAudio gives; got {type(audio).__name__}"
            + (f" with keys {sorted(audio)}" if isinstance(audio, dict) else ""))
    rate = check_rate(audio["sample_rate"], "AUDIO sample_rate")
    batch = _as_float_array(audio["waveform"])
    _check_shape(batch.shape)
    _check_finite(batch)
    return batch, rate


def _as_float_array(waveform: Any) -> np.ndarray:
    """A waveform tensor/array -> float32 numpy copy (PCM integers scaled to +-1)."""
    if isinstance(waveform, torch.Tensor):
        data = waveform.detach().to("cpu")
        if data.is_complex() or data.dtype == torch.bool:
            raise AudioInputError(f"AUDIO waveform has dtype {data.dtype}; pass real float "
                                  "samples (full scale +-1)")
        array = data.float().numpy() if data.is_floating_point() else data.numpy()
    elif isinstance(waveform, np.ndarray):
        array = waveform
    else:
        raise AudioInputError(f"AUDIO waveform must be a torch tensor [batch, channels, "
                              f"samples], got {type(waveform).__name__}")
    if array.dtype.kind not in "fiu":
        raise AudioInputError(f"AUDIO waveform has dtype {array.dtype}; pass real float "
                              "samples (full scale +-1)")
    if array.dtype.kind in "iu":
        array = pcm_to_float(array, "AUDIO waveform")
    return np.array(array, dtype=np.float32, copy=True)


def _check_shape(shape: tuple[int, ...]) -> None:
    if len(shape) != 3:
        raise AudioInputError(
            f"AUDIO waveform has shape {tuple(shape)}; expected [batch, channels, samples] as "
            "LoadAudio gives (a [channels, samples] tensor needs .unsqueeze(0))")
    if min(shape) == 0:
        raise AudioInputError(f"AUDIO waveform is empty (shape {tuple(shape)}: batch, channels "
                              "and samples must all be at least 1)")
    if shape[1] > MAX_CHANNELS:
        raise AudioInputError(
            f"AUDIO waveform has {shape[1]} channels (shape {tuple(shape)}), more than the "
            f"{MAX_CHANNELS} supported; if it is [batch, samples, channels], use "
            ".movedim(-1, 1)")


def _check_finite(batch: np.ndarray) -> None:
    bad = ~np.isfinite(batch)
    if bad.any():
        item, channel, sample = (int(i[0]) for i in np.nonzero(bad))
        raise AudioInputError(
            f"AUDIO waveform has {int(bad.sum())} NaN or infinite samples (first: item {item}, "
            f"channel {channel}, sample {sample}); fix the node that produced it")


# ---------------------------------------------------------------------------------- options
def enhance_options(steps: int = DEFAULTS.steps, guidance_scale: float = DEFAULTS.guidance_scale,
                    seed: int | None = DEFAULTS.seed, sampler: str = DEFAULTS.sampler,
                    output_rate: int = SAMPLE_RATE) -> EnhanceOptions:
    """The engine options for the node's inputs (``lite`` uses none of the diffusion ones).

    Raises
    ------
    ValueError
        An invalid value, e.g. an output rate below :data:`MIN_OUTPUT_RATE`.
    """
    return EnhanceOptions(steps=int(steps), guidance_scale=float(guidance_scale),
                          seed=None if seed is None else int(seed), sampler=sampler,
                          output_rate=output_rate)


# -------------------------------------------------------------------------------------- run
def _comfy_module(name: str) -> Any | None:
    """A ComfyUI module when running inside ComfyUI, else None."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _progress_bar(total: int) -> Any | None:
    """ComfyUI's progress bar for ``total`` items, or None outside ComfyUI."""
    utils = _comfy_module("comfy.utils")
    bar = getattr(utils, "ProgressBar", None)
    return bar(total) if bar is not None else None


def _check_interrupted() -> None:
    """Stop between items when the user cancelled the run in ComfyUI."""
    management = _comfy_module("comfy.model_management")
    check = getattr(management, "throw_exception_if_processing_interrupted", None)
    if callable(check):
        check()


def _enhance_items(enhancer: Any, batch: np.ndarray, rate: int,
                   options: EnhanceOptions) -> tuple[list[np.ndarray], int]:
    """Each ``[channels, samples]`` item through the engine; one progress tick per item."""
    bar = _progress_bar(len(batch))
    outputs, out_rate = [], SAMPLE_RATE
    for index, item in enumerate(batch):
        _check_interrupted()
        result = enhancer.enhance(item, rate, options=options)
        out = np.asarray(result.audio, dtype=np.float32)
        if out.ndim != 2 or out.shape[0] != item.shape[0]:
            raise RuntimeError(f"the enhancer returned shape {out.shape} for an item of "
                               f"{item.shape[0]} channels; it must keep every channel")
        outputs.append(out)
        out_rate = int(result.sample_rate)
        if bar is not None:
            bar.update_absolute(index + 1, len(batch))
    return outputs, out_rate


def _spectrograms(batch: np.ndarray, rate: int, waveform: np.ndarray, out_rate: int,
                  enabled: bool) -> np.ndarray:
    """IMAGE ``[batch, H, W, 3]``: before/after per item, or small black images."""
    if not enabled:
        return np.zeros((len(batch), _BLANK_SIZE, _BLANK_SIZE, 3), dtype=np.float32)
    return np.stack([spectrogram_image(x, rate, y, out_rate)
                     for x, y in zip(batch, waveform, strict=True)])


def upsample(enhancer: Any, audio: Any, *, steps: int = DEFAULTS.steps,
             guidance_scale: float = DEFAULTS.guidance_scale, seed: int = DEFAULTS.seed,
             sampler: str = DEFAULTS.sampler, output_rate: int = SAMPLE_RATE,
             spectrogram: bool = True) -> tuple[dict[str, Any], torch.Tensor]:
    """Super-resolve every item and channel of a ComfyUI AUDIO batch.

    Parameters
    ----------
    enhancer : Enhancer
        From the AudioSR Loader (:func:`audiosr_adapters.comfyui.models.load_model`).
    audio : dict
        ComfyUI AUDIO (see :func:`audio_batch`).
    steps, guidance_scale, seed, sampler
        Diffusion settings (:class:`audiosr_core.EnhanceOptions`); ``lite`` ignores them.
    output_rate : int
        Output sample rate, Hz (48000 is the models' own).
    spectrogram : bool
        Draw the before/after spectrograms (else the IMAGE is black, 64 x 64).

    Returns
    -------
    audio : dict
        ``{"waveform": float32 [batch, channels, samples_out], "sample_rate": output rate}`` on
        the input's device; ``samples_out`` is the engine's length for the input's length
        (:func:`audiosr_core.rates.output_length` at 48 kHz).
    image : torch.Tensor
        float32 ``[batch, 256, 772, 3]`` in [0, 1]: input (left) and output (right) on one
        0-24 kHz axis and dB scale.

    Raises
    ------
    AudioInputError
        Unusable audio (see :func:`audio_batch`).
    ValueError
        Invalid settings.
    TypeError
        ``enhancer`` is not a loaded model.
    """
    if not callable(getattr(enhancer, "enhance", None)):
        raise TypeError(f"audiosr_model must come from the AudioSR Loader node, got "
                        f"{type(enhancer).__name__}")
    options = enhance_options(steps, guidance_scale, seed, sampler, output_rate)
    batch, rate = audio_batch(audio)
    outputs, out_rate = _enhance_items(enhancer, batch, rate, options)
    length = max(out.shape[-1] for out in outputs)
    waveform = np.stack([fit_length(out, length) for out in outputs])
    image = _spectrograms(batch, rate, waveform, out_rate, spectrogram)
    source = audio["waveform"]
    device = source.device if isinstance(source, torch.Tensor) else torch.device("cpu")
    result = {"waveform": torch.from_numpy(waveform).to(device), "sample_rate": out_rate}
    return result, torch.from_numpy(image)
