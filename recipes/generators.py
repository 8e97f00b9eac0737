"""Load a generator by kind and model name or folder, generate raw audio, enhance it to 48 kHz.

``load_generator(kind, name_or_path)`` returns a :class:`Generator` whose ``generate(prompt,
seed)`` gives the generator's own output (no enhancement) as float32 ``[channels, samples]``
at ``generator.sample_rate``. :func:`enhance_audio` then runs the very engine path the
adapters use (``audiosr_adapters._common.Upsampler``), so for the same raw audio it equals
what ``audiosr_adapters.enhance(model, model=enhancer)`` returns.

Kinds (:data:`KINDS`) and what ``name_or_path`` is:

- ``audioldm`` / ``audioldm2``: a diffusers pipeline (``cvssp/audioldm-s-full-v2``,
  ``cvssp/audioldm2``) or a folder saved with ``save_pretrained``.
- ``musicgen``: transformers MusicGen (``facebook/musicgen-small``) or a folder; the processor
  (tokenizer + feature extractor) comes from the same place unless ``processor=`` is given.
- ``musicgen-audiocraft`` / ``audiogen-audiocraft``: ``get_pretrained`` names
  (``facebook/musicgen-small``, ``facebook/audiogen-medium``) or a folder holding
  ``state_dict.bin`` and ``compression_state_dict.bin``.
- ``fastspeech2``: ``FastSpeech2ConformerWithHifiGan``
  (``espnet/fastspeech2_conformer_with_hifigan``) or ``FastSpeech2ConformerModel`` plus
  ``vocoder=`` (a ``FastSpeech2ConformerHifiGan``);
  ``tokenizer=`` names the tokenizer (default: the model folder if it holds one, else
  ``espnet/fastspeech2_conformer`` for hub models; the real one needs ``pip install g2p-en``).
- ``callable``: ``"module:function"`` or ``"path/to/file.py:function"``; the function takes the
  text (and ``seed=`` if it accepts it) and returns a waveform (numpy/torch/list ``[samples]``
  or ``[channels, samples]``, or a dict with ``"wav"``/``"waveform"``/``"audio"``); pass its
  rate as ``sample_rate=`` unless the function has a ``sample_rate`` attribute.

Hub names download on first use (users have internet); folders are used as they are.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["KINDS", "Generator", "load_generator", "enhance_audio", "to_48k",
           "quiet_libraries", "GENERATE_OPTIONS"]

KINDS = ("audioldm", "audioldm2", "musicgen", "musicgen-audiocraft", "audiogen-audiocraft",
         "fastspeech2", "callable")

#: Keyword arguments ``Generator.generate`` accepts per kind (besides prompt and seed).
GENERATE_OPTIONS: dict[str, tuple[str, ...]] = {
    "audioldm": ("steps", "guidance_scale", "duration", "negative_prompt"),
    "audioldm2": ("steps", "guidance_scale", "duration", "negative_prompt"),
    "musicgen": ("duration", "guidance_scale", "top_k", "temperature"),
    "musicgen-audiocraft": ("duration", "guidance_scale", "top_k", "temperature"),
    "audiogen-audiocraft": ("duration", "guidance_scale", "top_k", "temperature"),
    "fastspeech2": (),
    "callable": (),  # anything: passed to the function
}

#: Default tokenizer and vocoder of the released FastSpeech2-Conformer (hub models only).
FS2_TOKENIZER = "espnet/fastspeech2_conformer"
FS2_VOCODER = "espnet/fastspeech2_conformer_hifigan"
FS2_DEFAULT_RATE = 22050
_AUDIO_KEYS = ("wav", "waveform", "audio")


@dataclasses.dataclass
class Generator:
    """A loaded generator.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    name : str
        The model name or path it was loaded from.
    sample_rate : int
        Rate of :meth:`generate`'s output, Hz.
    model : object
        The library object (pipeline, model, function); pass it to ``audiosr_adapters.enhance``.
    """

    kind: str
    name: str
    sample_rate: int
    model: Any = dataclasses.field(default=None, repr=False, compare=False)
    _run: Callable[..., Any] | None = dataclasses.field(default=None, repr=False, compare=False)

    def generate(self, prompt: str, seed: int, **kwargs: Any) -> np.ndarray:
        """Raw audio for one prompt: float32 ``[channels, samples]`` at :attr:`sample_rate`.

        ``kwargs`` are the generation options of the kind (:data:`GENERATE_OPTIONS`; a
        ``None`` value means the model's default). Raises ValueError for an empty prompt or
        unknown options, RuntimeError if the model returns no usable audio.
        """
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"empty prompt for the {self.kind} generator; give some text")
        allowed = GENERATE_OPTIONS[self.kind]
        if self.kind != "callable":
            unknown = sorted(set(kwargs) - set(allowed))
            if unknown:
                raise TypeError(f"unknown option(s) {', '.join(unknown)} for a {self.kind} "
                                f"generator; it accepts: {', '.join(allowed) or 'none'}")
            kwargs = {k: v for k, v in kwargs.items() if v is not None}
        if self._run is None:
            raise RuntimeError("this Generator has no model; create it with load_generator()")
        import torch

        torch.manual_seed(int(seed))
        with torch.inference_mode():
            out = self._run(prompt, int(seed), kwargs)
        return as_channels(out, f"the {self.kind} generator {self.name!r}")


# ----------------------------------------------------------------------------- helpers
def as_channels(audio: Any, what: str = "audio") -> np.ndarray:
    """A waveform (numpy/torch/list, ``[T]``, ``[C, T]`` or ``[1, C, T]``, or a dict holding
    one) as float32 ``[channels, samples]``; ValueError if it is not usable audio."""
    if isinstance(audio, Mapping):
        key = next((k for k in _AUDIO_KEYS if k in audio), None)
        if key is None:
            raise ValueError(f"{what} returned a dict without any of the keys "
                             f"{', '.join(_AUDIO_KEYS)}")
        audio = audio[key]
    if hasattr(audio, "detach"):
        audio = audio.detach().to("cpu").float().numpy()
    try:
        arr = np.asarray(audio, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} did not return a waveform ({type(audio).__name__})") from exc
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[-1] == 0:
        raise ValueError(f"{what} returned audio of shape {arr.shape}; expected [samples] or "
                         "[channels, samples] with at least one sample")
    if arr.shape[0] > 8 and arr.shape[1] <= 8:  # [samples, channels]
        arr = arr.T
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} returned NaN or infinite samples")
    return np.ascontiguousarray(arr)


def to_48k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Plain resampling to 48 kHz (soxr VHQ, as the engine's input stage): the "without"."""
    from audiosr_core.audio import resample

    return np.asarray(resample(as_channels(audio), int(sample_rate)),
                      dtype=np.float32)


def enhance_audio(audio: np.ndarray, sample_rate: int, enhancer: Any,
                  **options: Any) -> np.ndarray:
    """Enhance raw generator audio to 48 kHz (or ``output_rate=``) exactly as the adapters do.

    Parameters
    ----------
    audio : array
        ``[samples]`` or ``[channels, samples]`` at ``sample_rate``.
    sample_rate : int
        Hz.
    enhancer : AudioSR or str or os.PathLike
        An enhancer object (reused) or a model name/folder (loaded for this call).
    **options
        ``EnhanceOptions`` fields (``steps``, ``guidance_scale``, ``seed``, ...), as given to
        ``audiosr_adapters.enhance``.

    Returns
    -------
    np.ndarray
        float32 ``[channels, output_length(samples, sample_rate, output_rate)]``
        (:func:`audiosr_core.rates.output_length`; ``output_rate`` 48000 by default).
    """
    from audiosr_adapters.upsampler import Settings, Upsampler

    settings = Settings.build(enhancer, None, None, None, options)
    return np.asarray(Upsampler(settings, sample_rate)(as_channels(audio)), dtype=np.float32)


def quiet_libraries() -> None:
    """Silence library progress bars and chatter (transformers, diffusers) for the CLIs."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for name in ("transformers", "diffusers"):
        if importlib.util.find_spec(name) is None:
            continue
        logging = importlib.import_module(f"{name}.utils.logging")
        logging.set_verbosity_error()
        logging.disable_progress_bar()


def _import(module: str, kind: str) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".")[0]
        hint = (" (pip install --no-deps audiocraft; see the README section 'Adapters')"
                if package == "audiocraft" else f" (pip install {package})")
        raise ValueError(f"the {kind} generator needs {package}, which is not installed"
                         f"{hint}: {exc}") from exc


def _looks_local(name: str) -> bool:
    """Whether a missing ``name`` was meant as a path rather than a hub name."""
    return (name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1
            or name.endswith((".bin", ".ckpt", ".pt", ".safetensors", ".json")))


def _source(name_or_path: str | os.PathLike[str], kind: str, markers: tuple[str, ...]) -> str:
    """An existing folder (checked for one of ``markers``) or a hub name; FileNotFoundError for
    a path that does not exist or is not a saved model of ``kind``."""
    name = os.fspath(name_or_path)
    if not name.strip():
        raise ValueError(f"no model given for the {kind} generator; pass a hub name or folder")
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise FileNotFoundError(f"{kind} model {name!r} is a file; pass the folder it was "
                                    "saved to (save_pretrained) or a hub name")
        if markers and not any((path / m).is_file() for m in markers):
            raise FileNotFoundError(f"{name!r} is not a saved {kind} model: none of "
                                    f"{', '.join(markers)} in it; pass the folder written by "
                                    "save_pretrained or a hub name")
        return str(path)
    if _looks_local(name):
        raise FileNotFoundError(f"{kind} model folder {name!r} does not exist; check the path, "
                                "or pass a hub name such as " + EXAMPLE_MODELS[kind])
    return name


EXAMPLE_MODELS = {
    "audioldm": "cvssp/audioldm-s-full-v2", "audioldm2": "cvssp/audioldm2",
    "musicgen": "facebook/musicgen-small", "musicgen-audiocraft": "facebook/musicgen-small",
    "audiogen-audiocraft": "facebook/audiogen-medium",
    "fastspeech2": "espnet/fastspeech2_conformer_with_hifigan", "callable": "mypkg.tts:synth",
}


def _loading(kind: str, name: str, load: Callable[[], Any]) -> Any:
    """Run ``load``; library errors become a ValueError naming the model."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load()
    except (ValueError, FileNotFoundError):
        raise
    except Exception as exc:  # noqa: BLE001 - libraries raise anything; we say which model
        raise ValueError(f"could not load the {kind} model {name!r}: {type(exc).__name__}: "
                         f"{exc}") from exc


# ---------------------------------------------------------------------------- the kinds
def load_generator(kind: str, name_or_path: str | os.PathLike[str], *, device: str = "cpu",
                   **kwargs: Any) -> Generator:
    """Load a generator.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    name_or_path : str or os.PathLike
        Hub name or local folder (``callable``: ``"module:function"``).
    device : str
        Where the model runs.
    **kwargs
        ``musicgen``: ``processor=`` (name/folder). ``fastspeech2``: ``tokenizer=``,
        ``vocoder=``, ``sample_rate=``. ``callable``: ``sample_rate=`` (Hz).

    Raises
    ------
    ValueError
        Unknown kind or option, a missing library, or a model that does not load.
    FileNotFoundError
        A local path that does not exist or is not a saved model of this kind.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown generator kind {kind!r}; choose one of {', '.join(KINDS)}")
    allowed = {"musicgen": {"processor"}, "fastspeech2": {"tokenizer", "vocoder", "sample_rate"},
               "callable": {"sample_rate"}}.get(kind, set())
    unknown = sorted(k for k, v in kwargs.items() if k not in allowed and v is not None)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for kind {kind!r}; it accepts: "
                         f"{', '.join(sorted(allowed)) or 'none'}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    loader = {"audioldm": _load_audioldm, "audioldm2": _load_audioldm,
              "musicgen": _load_musicgen, "musicgen-audiocraft": _load_audiocraft,
              "audiogen-audiocraft": _load_audiocraft, "fastspeech2": _load_fastspeech2,
              "callable": _load_callable}[kind]
    return loader(kind, os.fspath(name_or_path), device, **kwargs)


def _load_audioldm(kind: str, name: str, device: str) -> Generator:
    diffusers = _import("diffusers", kind)
    source = _source(name, kind, ("model_index.json",))
    cls = diffusers.AudioLDMPipeline if kind == "audioldm" else diffusers.AudioLDM2Pipeline
    pipe = _loading(kind, name, lambda: cls.from_pretrained(source).to(device))
    pipe.set_progress_bar_config(disable=True)
    rate = int(pipe.vocoder.config.sampling_rate)

    def run(prompt: str, seed: int, opts: dict[str, Any]) -> Any:
        import torch

        call: dict[str, Any] = {"generator": torch.Generator(device="cpu").manual_seed(seed)}
        names = {"steps": "num_inference_steps", "guidance_scale": "guidance_scale",
                 "duration": "audio_length_in_s", "negative_prompt": "negative_prompt"}
        call.update({names[k]: v for k, v in opts.items()})
        return pipe(prompt, **call).audios[0]

    return Generator(kind, name, rate, pipe, run)


def _load_musicgen(kind: str, name: str, device: str, processor: str | None = None) -> Generator:
    transformers = _import("transformers", kind)
    source = _source(name, kind, ("config.json",))
    processor_source = _source(processor, kind, ()) if processor else source

    def load() -> tuple[Any, Any]:
        config = transformers.AutoConfig.from_pretrained(source)
        classes = {"musicgen": transformers.MusicgenForConditionalGeneration,
                   "musicgen_melody": transformers.MusicgenMelodyForConditionalGeneration}
        if config.model_type not in classes:
            raise ValueError(f"{name!r} is a {config.model_type!r} model, not MusicGen")
        model = classes[config.model_type].from_pretrained(source).to(device).eval()
        return model, transformers.AutoProcessor.from_pretrained(processor_source)

    model, proc = _loading(kind, name, load)
    if not callable(getattr(proc, "tokenizer", None)):
        raise ValueError(f"the processor of {name!r} has no tokenizer; pass processor= (the "
                         "MusicGen processor name or folder, e.g. facebook/musicgen-small)")
    encoder = model.config.audio_encoder
    rate, frame_rate = int(encoder.sampling_rate), float(encoder.frame_rate)

    def run(prompt: str, seed: int, opts: dict[str, Any]) -> Any:
        inputs = proc(text=[prompt], padding=True, return_tensors="pt").to(device)
        call: dict[str, Any] = {"do_sample": True}
        if "duration" in opts:
            call["max_new_tokens"] = max(1, round(float(opts["duration"]) * frame_rate))
        for key in ("guidance_scale", "top_k", "temperature"):
            if key in opts:
                call[key] = opts[key]
        if "top_k" in call:
            call["top_k"] = min(int(call["top_k"]), int(model.config.decoder.vocab_size))
        out = model.generate(**inputs, **call)
        if not hasattr(out, "detach"):  # a ModelOutput: audio_values (4.x) or sequences (5.x)
            values = getattr(out, "audio_values", None)
            out = values if values is not None else out.sequences
        return out[0]

    return Generator(kind, name, rate, model, run)


def _load_audiocraft(kind: str, name: str, device: str) -> Generator:
    models = _import("audiocraft.models", kind)
    source = _source(name, kind, ())
    if Path(source).is_dir():
        missing = [f for f in ("state_dict.bin", "compression_state_dict.bin")
                   if not (Path(source) / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{name!r} is not an audiocraft model folder: "
                                    f"{' and '.join(missing)} missing (a folder needs "
                                    "state_dict.bin and compression_state_dict.bin)")
    cls = models.MusicGen if kind == "musicgen-audiocraft" else models.AudioGen
    model = _loading(kind, name, lambda: cls.get_pretrained(source, device=device))
    card = int(getattr(model.lm, "card", 2048))

    def run(prompt: str, seed: int, opts: dict[str, Any]) -> Any:
        params: dict[str, Any] = {"top_k": min(int(opts.get("top_k", 250)), card)}
        if "duration" in opts:
            params["duration"] = float(opts["duration"])
        if "guidance_scale" in opts:
            params["cfg_coef"] = float(opts["guidance_scale"])
        if "temperature" in opts:
            params["temperature"] = float(opts["temperature"])
        model.set_generation_params(**params)
        return model.generate([prompt])[0]

    return Generator(kind, name, int(model.sample_rate), model, run)


def _has_tokenizer(folder: str) -> bool:
    path = Path(folder)
    return path.is_dir() and any((path / f).is_file() for f in (
        "tokenizer_config.json", "tokenizer.json", "vocab.json"))


def _load_fastspeech2(kind: str, name: str, device: str, tokenizer: str | None = None,
                      vocoder: str | None = None, sample_rate: int | None = None) -> Generator:
    transformers = _import("transformers", kind)
    source = _source(name, kind, ("config.json",))
    local = Path(source).is_dir()
    if tokenizer is None:
        if _has_tokenizer(source) or not local:
            tokenizer = source if _has_tokenizer(source) else FS2_TOKENIZER
        else:
            raise ValueError(f"no tokenizer in {name!r}; pass tokenizer= (--tokenizer), e.g. "
                             f"{FS2_TOKENIZER} or a folder holding a saved tokenizer")
    tokenizer_source = _source(tokenizer, "fastspeech2 tokenizer", ())
    config = _loading(kind, name, lambda: transformers.AutoConfig.from_pretrained(source))
    model_type = config.model_type
    if model_type == "fastspeech2_conformer_hifigan":
        raise ValueError(f"{name!r} is a HiFi-GAN vocoder, not an acoustic model; pass it as "
                         "vocoder= (--vocoder) next to a FastSpeech2ConformerModel")
    if model_type not in ("fastspeech2_conformer", "fastspeech2_conformer_with_hifigan"):
        raise ValueError(f"{name!r} is a {model_type!r} model, not FastSpeech2-Conformer")
    split = model_type == "fastspeech2_conformer"
    if split and vocoder is None:
        if local:
            raise ValueError(f"{name!r} is a FastSpeech2ConformerModel (it outputs a mel "
                             "spectrogram); pass its HiFi-GAN as vocoder= (--vocoder), e.g. "
                             f"{FS2_VOCODER} or a folder")
        vocoder = FS2_VOCODER
    vocoder_source = _source(vocoder, "fastspeech2 vocoder", ("config.json",)) if split else None

    def load() -> tuple[Any, Any, Any]:
        if split:
            acoustic = transformers.FastSpeech2ConformerModel.from_pretrained(source)
            hifigan = transformers.FastSpeech2ConformerHifiGan.from_pretrained(vocoder_source)
            hifigan = hifigan.to(device).eval()
        else:
            acoustic = transformers.FastSpeech2ConformerWithHifiGan.from_pretrained(source)
            hifigan = None
        return acoustic.to(device).eval(), hifigan, _load_tokenizer(transformers, tokenizer_source)

    model, hifigan, tok = _loading(kind, name, load)
    vocoder_config = hifigan.config if split else model.config.vocoder_config
    rate = int(sample_rate or getattr(vocoder_config, "sampling_rate", None) or FS2_DEFAULT_RATE)

    def run(prompt: str, seed: int, opts: dict[str, Any]) -> Any:
        ids = tok(prompt, return_tensors="pt")["input_ids"].to(device)
        if ids.shape[-1] == 0:
            raise ValueError(f"the tokenizer gave no symbols for {prompt!r}")
        if split:
            return hifigan(model(ids, return_dict=True).spectrogram)[0]
        return model(ids, return_dict=True).waveform[0]

    return Generator(kind, name, rate, model if not split else (model, hifigan), run)


def _load_tokenizer(transformers: Any, source: str) -> Any:
    try:
        return transformers.AutoTokenizer.from_pretrained(source)
    except ImportError as exc:
        raise ValueError(f"the FastSpeech2 tokenizer {source!r} needs g2p_en: pip install g2p-en "
                         f"({exc})") from exc


def _load_callable(kind: str, spec: str, device: str, sample_rate: int | None = None) -> Generator:
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"callable spec {spec!r} must be 'module:function' or "
                         "'path/to/file.py:function'")
    if module_name.endswith(".py"):
        path = Path(module_name).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"callable file {module_name!r} does not exist")
        mod_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(mod_spec)  # type: ignore[arg-type]
        try:
            mod_spec.loader.exec_module(module)  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"importing {module_name!r} failed: {type(exc).__name__}: "
                             f"{exc}") from exc
    else:                       # importable from where Python looks (the current folder with -m)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"cannot import module {module_name!r} of callable {spec!r}: "
                             f"{exc}") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"{module_name!r} has no function {attr!r} (callable spec {spec!r})")
    if sample_rate is None:
        reported = next((getattr(fn, a) for a in ("sample_rate", "sampling_rate", "fs")
                         if isinstance(getattr(fn, a, None), int)), None)
        if reported is None:
            raise ValueError(f"give the sample rate of {spec!r} (sample_rate= / --sample-rate, "
                             "Hz); the function does not report one")
        sample_rate = reported
    from audiosr_core.rates import check_rate

    rate = check_rate(sample_rate, "sample_rate")
    try:
        takes_seed = "seed" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes_seed = False

    def run(prompt: str, seed: int, opts: dict[str, Any]) -> Any:
        return fn(prompt, **({"seed": seed} if takes_seed else {}), **opts)

    return Generator(kind, spec, rate, fn, run)
