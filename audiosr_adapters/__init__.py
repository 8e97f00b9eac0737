"""One line after your generator: its audio at 48 kHz through AudioSR.

``enhance(obj)`` recognises the generator and returns a wrapper used exactly like it: same
call signature, same return type and structure, audio at 48 kHz (the input's duration,
:func:`audiosr_core.rates.output_length` samples, the generator's own band kept), and every
place the generator reports its sample rate says 48000. ``wrapped.unwrap()`` is the
original, which ``enhance`` never modifies.

Supported: diffusers ``AudioLDMPipeline`` and ``AudioLDM2Pipeline``; transformers
``MusicgenForConditionalGeneration``, ``MusicgenMelodyForConditionalGeneration`` and
``pipeline("text-to-audio")``; audiocraft ``MusicGen`` and ``AudioGen``; transformers
``FastSpeech2ConformerWithHifiGan`` and ``FastSpeech2ConformerHifiGan``; and any callable
returning a waveform, given ``sample_rate=``. Importing this package imports none of these
libraries (nor torch); each adapter module is imported when first needed.

Example
-------
>>> from diffusers import AudioLDMPipeline
>>> from audiosr_adapters import enhance
>>> pipe = enhance(AudioLDMPipeline.from_pretrained("cvssp/audioldm-s-full-v2"))   # lite
>>> pipe = enhance(AudioLDMPipeline.from_pretrained("cvssp/audioldm-s-full-v2"), model="basic",
...                steps=50, guidance_scale=3.5, seed=42)                       # diffusion
>>> audio = pipe("a hammer hitting wood", num_inference_steps=10).audios[0]  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from audiosr_core.loading import DEFAULT_MODEL

if TYPE_CHECKING:
    import torch

    from audiosr_core import EnhanceOptions

    from .proxy import Enhanced

__all__ = ["enhance", "SUPPORTED"]

#: (library, class name) found in an object's class hierarchy -> (adapter module, function).
_ADAPTERS: dict[tuple[str, str], tuple[str, str]] = {
    ("diffusers", "AudioLDMPipeline"): ("diffusers_audioldm", "wrap"),
    ("diffusers", "AudioLDM2Pipeline"): ("diffusers_audioldm", "wrap"),
    ("transformers", "MusicgenForConditionalGeneration"): ("musicgen_transformers", "wrap_model"),
    ("transformers", "MusicgenMelodyForConditionalGeneration"):
        ("musicgen_transformers", "wrap_model"),
    ("transformers", "TextToAudioPipeline"): ("musicgen_transformers", "wrap_pipeline"),
    ("audiocraft", "MusicGen"): ("musicgen_audiocraft", "wrap"),
    ("audiocraft", "AudioGen"): ("musicgen_audiocraft", "wrap"),
    ("transformers", "FastSpeech2ConformerWithHifiGan"): ("fastspeech2", "wrap"),
    ("transformers", "FastSpeech2ConformerHifiGan"): ("fastspeech2", "wrap"),
    ("transformers", "FastSpeech2ConformerModel"): ("fastspeech2", "wrap"),  # explains itself
}

SUPPORTED = (
    "diffusers AudioLDMPipeline, AudioLDM2Pipeline",
    "transformers MusicgenForConditionalGeneration, MusicgenMelodyForConditionalGeneration, "
    "pipeline('text-to-audio')",
    "audiocraft MusicGen, AudioGen",
    "transformers FastSpeech2ConformerWithHifiGan, FastSpeech2ConformerHifiGan",
    "any callable that returns a waveform, with sample_rate=<Hz> (ESPnet, SpeechBrain, ...)",
)
"""What :func:`enhance` accepts, for error messages and docs."""


def enhance(obj: Any, model: str | os.PathLike[str] | Any = DEFAULT_MODEL, *,
            sample_rate: int | None = None, device: str | torch.device | None = None,
            options: EnhanceOptions | None = None, on_error: str = "raise",
            **enhance_kwargs: Any) -> Enhanced:
    """Wrap a generator so that its audio comes out at 48 kHz.

    Parameters
    ----------
    obj : object
        A supported generator (see :data:`SUPPORTED`) or any callable returning a waveform.
    model : str or os.PathLike or enhancer
        ``"lite"`` (default: the packaged CPU model, offline), ``"basic"``, ``"speech"``
        (the official diffusion models) or a folder, loaded once with
        ``audiosr_core.load(model, device=...)`` on the first call; or an enhancer object
        (anything with ``.enhance(audio, sample_rate, options=...)`` such as
        ``audiosr_core.load(...)`` returns), used as it is and shareable between wrappers.
    sample_rate : int, optional
        The generator's output rate, Hz. Read from the generator by default (FastSpeech2:
        22050); required for callables that do not report one.
    device : str or torch.device, optional
        Where a named model runs; default: the generator's device at the first call.
    options : EnhanceOptions, optional
        Engine settings; ``**enhance_kwargs`` override single fields (``steps``,
        ``guidance_scale``, ``seed``, ``sampler``, ...; unknown names raise TypeError).
        ``channels`` must stay ``"all"``: outputs keep the generator's channels.
        ``output_rate=44100`` (or any rate >= 8000 Hz) makes the audio and every reported
        rate that rate instead of 48000.
    on_error : {"raise", "passthrough"}
        ``"passthrough"``: if super-resolution fails (bad audio, out of memory, ...), return
        the generator's own audio resampled to the output rate and log one warning, so a
        TTS request never fails because of SR; ``.last_status`` says which waveforms.

    Returns
    -------
    Enhanced
        The wrapper; ``.unwrap()`` gives ``obj`` back, ``.enhancer`` is the AudioSR model,
        ``.source_sample_rate`` the generator's rate.

    Raises
    ------
    TypeError
        ``obj`` is not supported (the message lists what is), or bad options.
    ValueError
        The rate cannot be found or is out of range, or an option value is invalid.

    Notes
    -----
    Every waveform of one call (batch items and channels) of equal length is stacked as
    channels of one AudioSR call, at most 8 per call; the engine gives every channel the
    same seed and noise, and each channel is super-resolved on its own.
    """
    from .proxy import Enhanced
    from .upsampler import Settings

    if isinstance(obj, Enhanced):
        raise TypeError(f"{obj!r} is already enhanced; pass obj.unwrap() to wrap it again "
                        "with other settings")
    settings = Settings.build(model, device, sample_rate, options, enhance_kwargs, on_error)
    adapter = _find_adapter(type(obj))
    if adapter is None:
        if not callable(obj):
            raise TypeError(_unsupported(obj))
        from . import generic

        if sample_rate is None and generic.source_rate(obj) is None:
            raise TypeError(_unsupported(obj) + ". If it is a function returning a waveform, "
                            "pass its rate: enhance(fn, sample_rate=22050)")
        return generic.wrap(obj, settings)
    module, function = adapter
    return getattr(importlib.import_module(f".{module}", __name__), function)(obj, settings)


def _find_adapter(cls: type) -> tuple[str, str] | None:
    for klass in cls.__mro__:
        library = klass.__module__.split(".")[0]
        found = _ADAPTERS.get((library, klass.__name__))
        if found is not None:
            return found
    return None


def _unsupported(obj: Any) -> str:
    cls = type(obj)
    return (f"enhance() does not support {cls.__module__}.{cls.__qualname__}; supported: "
            + "; ".join(SUPPORTED))
