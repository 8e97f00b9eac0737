"""audiosr_adapters: every generator family with tiny random-weight models built offline.

For each family: the wrapper returns the original's type and structure (numpy vs torch,
dtype, device, output classes, tuples, dicts), lengths scaled exactly
(``round(n * 48000 / sr)``), every reported rate 48000; its audio is exactly what the enhancer
makes of the original's output for the same arguments (so every argument reached the
original); the original's band is kept (``lsd_band`` below 0.9 x its Nyquist frequency
< ``LSD_BAND_MAX``) while the enhancer adds a band above it; ``unwrap()`` is the untouched
original, which still makes audio at its own rate. The enhancer is a random ``lite`` model.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import adapter_fixtures as fx
import numpy as np
import pytest
import torch

from audiosr_adapters import SUPPORTED, enhance
from audiosr_adapters import upsampler as upsampler_module
from audiosr_adapters.proxy import Enhanced
from audiosr_adapters.upsampler import Settings, Upsampler
from audiosr_core import EnhanceOptions, audio
from audiosr_core.errors import AudioInputError
from audiosr_core.lite_pipeline import LiteSR
from audiosr_core.metrics import lsd_band
from audiosr_core.models.lite import LiteConfig, LiteModel
from audiosr_core.rates import output_length

from conftest import kept_band_hz

REPO = Path(__file__).resolve().parents[1]

LSD_BAND_MAX = 0.05
"""Bound (bels) on the log-spectral distance between the wrapped output and the original
output resampled to 48 kHz, over 0 Hz to 0.9 x the original's Nyquist frequency (the engine
keeps that band; measured 0.0001-0.006 on these generators)."""
ADDED_BAND_MIN_RATIO = 10.0
"""The share of energy above 1.05 x the original's Nyquist frequency must be at least this
many times larger in the wrapped output than in the plainly resampled original (measured
50-2000x): the enhancer really ran."""


# ------------------------------------------------------------------------------- helpers
class Recorder:
    """An enhancer that records the shape, rate and options of every engine call."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[tuple[int, ...], int, EnhanceOptions | None]] = []

    def enhance(self, audio_in: np.ndarray, sample_rate: int,
                options: EnhanceOptions | None = None, **kwargs: Any) -> Any:
        self.calls.append((tuple(np.shape(audio_in)), sample_rate, options))
        return self.inner.enhance(audio_in, sample_rate, options, **kwargs)


@pytest.fixture(scope="module")
def lite() -> LiteSR:
    torch.manual_seed(0)
    return LiteSR(LiteModel(LiteConfig(hidden=16, dilations=(1, 2))))


@pytest.fixture
def recorder(lite: LiteSR) -> Recorder:
    return Recorder(lite)


def as_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def engine_reference(enhancer: Any, original_out: Any, sample_rate: int) -> np.ndarray:
    """What the enhancer makes of each waveform row of ``original_out`` (8 rows per call)."""
    x = as_numpy(original_out).astype(np.float32)
    rows = x.reshape(-1, x.shape[-1])
    out = np.concatenate([enhancer.enhance(rows[i:i + 8], sample_rate).audio
                          for i in range(0, len(rows), 8)])
    return out.reshape(*x.shape[:-1], out.shape[-1])


def check_waveform(wrapped_out: Any, original_out: Any, sample_rate: int, enhancer: Any) -> None:
    """Type, dtype, device, shape (length scaled exactly) and content of one waveform."""
    assert type(wrapped_out) is type(original_out)
    assert wrapped_out.dtype == original_out.dtype
    if isinstance(original_out, torch.Tensor):
        assert wrapped_out.device == original_out.device
    n_in = original_out.shape[-1]
    assert tuple(wrapped_out.shape) == (*original_out.shape[:-1], output_length(n_in, sample_rate))
    assert wrapped_out.shape[-1] == round(n_in * 48000 / sample_rate)
    np.testing.assert_allclose(as_numpy(wrapped_out),
                               engine_reference(enhancer, original_out, sample_rate),
                               rtol=0, atol=1e-6)


def check_band(wrapped_out: Any, original_out: Any, sample_rate: int) -> None:
    """The original's band is kept and a band above its Nyquist frequency is added."""
    out = as_numpy(wrapped_out).reshape(-1, wrapped_out.shape[-1]).astype(np.float64)
    ref = audio.resample(as_numpy(original_out).reshape(-1, original_out.shape[-1]),
                         sample_rate, 48000)[:, :out.shape[-1]].astype(np.float64)
    nyquist = sample_rate / 2
    for row_out, row_ref in zip(out, ref, strict=True):
        top = kept_band_hz(row_ref, sample_rate)
        assert lsd_band(row_ref, row_out, 0, top) < LSD_BAND_MAX
        assert high_share(row_out, 1.05 * nyquist) > \
            ADDED_BAND_MIN_RATIO * high_share(row_ref, 1.05 * nyquist)


def high_share(x: np.ndarray, above_hz: float) -> float:
    power = np.abs(np.fft.rfft(x)) ** 2
    return float(power[np.fft.rfftfreq(len(x), 1 / 48000) > above_hz].sum() / power.sum())


def attribute_ids(obj: Any) -> dict[str, Any]:
    """Identity of every attribute of ``obj`` (value for plain scalars) and of every hook of
    its networks."""
    state: dict[str, Any] = {
        k: ("value", v) if isinstance(v, (int, float, bool, str, type(None))) else ("id", id(v))
        for k, v in vars(obj).items()}
    modules = [m for m in vars(obj).values() if isinstance(m, torch.nn.Module)]
    if isinstance(obj, torch.nn.Module):
        modules.append(obj)
    state["hooks"] = [(id(sub), list(sub._forward_hooks), list(sub._forward_pre_hooks))
                      for module in modules for sub in module.modules()]
    return state


def check_untouched(original: Any, before: dict[str, Any], wrapped: Enhanced) -> None:
    """``unwrap()`` is the original: no attribute added, replaced or removed, no hook
    added (scalars a generator updates itself while it runs may change)."""
    assert wrapped.unwrap() is original
    after = attribute_ids(original)
    assert after.keys() == before.keys()
    assert after["hooks"] == before["hooks"]
    replaced = {k for k, v in before.items() if v[0] == "id" and after[k] != v}
    assert not replaced, replaced


# ----------------------------------------------------------------- package and dispatch
def test_importing_the_package_imports_no_heavy_library():
    code = ("import sys, audiosr_adapters; print(sorted(m for m in ('torch', 'numpy', "
            "'diffusers', 'transformers', 'audiocraft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_objects_get_an_error_listing_what_is_supported(lite):
    with pytest.raises(TypeError) as info:
        enhance(object(), model=lite)
    message = str(info.value)
    assert "builtins.object" in message
    for family in SUPPORTED:
        assert family in message
    for name in ("AudioLDMPipeline", "AudioLDM2Pipeline", "MusicgenForConditionalGeneration",
                 "text-to-audio", "MusicGen", "AudioGen", "FastSpeech2ConformerWithHifiGan",
                 "sample_rate="):
        assert name in message
    with pytest.raises(TypeError, match=r"pass its rate: enhance\(fn, sample_rate=22050\)"):
        enhance(lambda text: np.zeros(100), model=lite)


def test_enhance_arguments_are_validated(lite):
    def fn() -> np.ndarray:
        return np.zeros(100, np.float32)

    with pytest.raises(TypeError, match="unknown enhance option.*stepz.*valid options:.*steps"):
        enhance(fn, model=lite, sample_rate=16000, stepz=3)
    with pytest.raises(ValueError, match="channels='mono' is not supported"):
        enhance(fn, model=lite, sample_rate=16000, channels="mono")
    with pytest.raises(ValueError, match="device= only applies when model is a name"):
        enhance(fn, model=lite, sample_rate=16000, device="cpu")
    with pytest.raises(TypeError, match="model must be a model name"):
        enhance(fn, model=42, sample_rate=16000)
    with pytest.raises(ValueError, match="sample_rate: sample rate 1000 Hz is below the 4000 Hz"):
        enhance(fn, model=lite, sample_rate=1000)
    with pytest.raises(ValueError, match="whole number"):
        enhance(fn, model=lite, sample_rate=22050.5)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        enhance(fn, model=lite, sample_rate=16000, steps=0)
    wrapped = enhance(fn, model=lite, sample_rate=16000, options=EnhanceOptions(steps=7),
                      guidance_scale=2.0, seed=3, sampler="dpmpp_2m")
    assert wrapped.enhance_options == EnhanceOptions(steps=7, guidance_scale=2.0, seed=3,
                                                     sampler="dpmpp_2m")
    with pytest.raises(TypeError, match="already enhanced; pass obj.unwrap"):
        enhance(wrapped, model=lite)


def test_options_reach_the_engine_and_rows_are_batched_in_groups_of_eight(recorder):
    x = np.random.default_rng(0).standard_normal((9, 2, 800)).astype(np.float64) * 0.1
    wrapped = enhance(lambda: x, model=recorder, sample_rate=16000, steps=5, seed=1)
    out = wrapped()
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (9, 2, 2400)
    assert [c[0] for c in recorder.calls] == [(8, 800)] * 2 + [(2, 800)]
    assert {c[1] for c in recorder.calls} == {16000}
    assert {c[2] for c in recorder.calls} == {EnhanceOptions(steps=5, seed=1)}
    np.testing.assert_allclose(out, engine_reference(recorder.inner, x, 16000), atol=1e-6)


def test_rows_of_different_lengths_go_in_separate_engine_calls(recorder):
    upsampler = Upsampler(Settings.build(recorder, None, None, None, {}), 22050)
    a = torch.linspace(-0.5, 0.5, 441, dtype=torch.float64)
    b = np.sin(np.arange(2 * 600) * 0.3).reshape(2, 600).astype(np.float32) * 0.3
    c = [0.1, -0.2, 0.3] * 200
    out_a, out_b, out_c, out_empty = upsampler.many([a, b, c, np.zeros((2, 0), np.float32)])
    assert sorted(call[0] for call in recorder.calls) == [(1, 441), (3, 600)]
    assert out_a.dtype == torch.float64 and out_a.shape == (960,)
    assert out_b.dtype == np.float32 and out_b.shape == (2, 1306)
    assert isinstance(out_c, list) and len(out_c) == 1306 and isinstance(out_c[0], float)
    assert out_empty.shape == (2, 0)
    np.testing.assert_allclose(out_b, engine_reference(recorder.inner, b, 22050), atol=1e-6)
    half = upsampler(torch.linspace(-0.3, 0.3, 2 * 441).reshape(2, 441).to(torch.bfloat16))
    assert half.dtype == torch.bfloat16 and half.shape == (2, 960)
    pcm = upsampler(torch.tensor([[1000, -2000, 3000] * 147], dtype=torch.int16))
    assert pcm.dtype == torch.int16 and pcm.shape == (1, 960) and pcm.abs().max() > 1000
    with pytest.raises(AudioInputError, match="has complex samples"):
        upsampler(torch.zeros(441, dtype=torch.complex64))


def test_integer_waveforms_are_scaled_in_and_out(lite):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(2000) * 3000).astype(np.int16)
    out = enhance(lambda: x, model=lite, sample_rate=16000)()
    assert out.dtype == np.int16 and out.shape == (6000,)
    expected = engine_reference(lite, x.astype(np.float32) / 32768, 16000)
    assert np.abs(out.astype(np.float64) / 32768 - expected).max() <= 1 / 32768


def test_an_enhancer_that_breaks_the_contract_is_reported(lite):
    class Truncating:
        def enhance(self, audio_in, sample_rate, options=None):
            res = lite.enhance(audio_in, sample_rate, options)
            res.audio = res.audio[:, :-1]
            return res

    wrapped = enhance(lambda: np.zeros(1000, np.float32) + 0.1, model=Truncating(),
                      sample_rate=16000)
    with pytest.raises(RuntimeError, match=r"expected \(1, 3000\) at 48000 Hz"):
        wrapped()


def test_a_named_model_is_loaded_once_on_the_generator_device(lite, monkeypatch):
    loads = []

    def fake_load(name, device=None, **kwargs):
        loads.append((name, device))
        return lite

    monkeypatch.setattr(upsampler_module, "load", fake_load)
    _, vocoder = fx.tiny_fastspeech2_model_and_hifigan()
    wrapped = enhance(vocoder, model="lite")
    assert loads == []  # nothing is loaded before the first call
    mel = torch.randn(1, 12, 20)
    first, second = wrapped(mel), wrapped(mel)
    assert loads == [("lite", torch.device("cpu"))]
    assert wrapped.enhancer is lite and torch.equal(first, second)
    explicit = enhance(vocoder, model="speech", device="cpu")
    explicit(mel)
    assert loads[-1] == ("speech", torch.device("cpu"))


# ----------------------------------------------------------------------- diffusers AudioLDM
@pytest.fixture(scope="module", params=["AudioLDMPipeline", "AudioLDM2Pipeline"])
def audioldm(request) -> Any:
    return fx.tiny_audioldm() if request.param == "AudioLDMPipeline" else fx.tiny_audioldm2()


def test_audioldm_numpy_batches_of_prompts_and_waveforms(audioldm, recorder):
    def gen():
        return torch.Generator().manual_seed(0)

    # One denoising step: the wrapper sees the pipeline's output, not how it was sampled (the
    # callback test below runs two).
    expected = audioldm(["rain", "a dog"], num_inference_steps=1, generator=gen(),
                        num_waveforms_per_prompt=2)
    before = attribute_ids(audioldm)
    wrapped = enhance(audioldm, model=recorder)
    out = wrapped(["rain", "a dog"], num_inference_steps=1, generator=gen(),
                  num_waveforms_per_prompt=2)
    assert type(out) is type(expected) and list(out.keys()) == list(expected.keys())
    assert isinstance(out.audios, np.ndarray) and out.audios.shape == (4, 3 * 4096)
    check_waveform(out.audios, expected.audios, 16000, recorder.inner)
    check_band(out.audios, expected.audios, 16000)
    assert [c[0] for c in recorder.calls] == [(4, 4096)]  # one engine call for the batch
    assert wrapped.vocoder.config.sampling_rate == 48000 and wrapped.source_sample_rate == 16000
    assert inspect.signature(wrapped) == inspect.signature(audioldm)
    check_untouched(audioldm, before, wrapped)
    assert audioldm.vocoder.config.sampling_rate == 16000
    assert audioldm("rain", num_inference_steps=1).audios.shape == (1, 4096)


def test_audioldm_torch_tuple_positional_and_callback_arguments(audioldm, lite):
    wrapped = enhance(audioldm, model=lite)
    steps: list[int] = []
    kwargs = dict(audio_length_in_s=0.128, num_inference_steps=2, guidance_scale=2.0,
                  negative_prompt="noise", output_type="pt", return_dict=False)
    out = wrapped("birds", generator=torch.Generator().manual_seed(1),
                  callback=lambda i, t, latents: steps.append(i), callback_steps=1, **kwargs)
    expected = audioldm("birds", generator=torch.Generator().manual_seed(1), **kwargs)
    assert steps == [0, 1]
    assert isinstance(out, tuple) and len(out) == len(expected) == 1
    assert isinstance(out[0], torch.Tensor) and out[0].shape == (1, 6144)
    check_waveform(out[0], expected[0], 16000, lite)


def test_audioldm2_latents_pass_through(lite):
    pipe = fx.tiny_audioldm2()
    out = enhance(pipe, model=lite)("x", num_inference_steps=1, output_type="latent",
                                    generator=torch.Generator().manual_seed(0))
    expected = pipe("x", num_inference_steps=1, output_type="latent",
                    generator=torch.Generator().manual_seed(0))
    assert out.audios.ndim == 4 and torch.equal(out.audios, expected.audios)


def test_a_pipeline_component_can_be_swapped_through_the_wrapper(lite):
    diffusers = fx.require("diffusers")
    pipe = fx.tiny_audioldm()
    wrapped = enhance(pipe, model=lite)
    scheduler = diffusers.DDPMScheduler.from_config(pipe.scheduler.config)
    wrapped.scheduler = scheduler
    assert pipe.scheduler is scheduler and wrapped.scheduler is scheduler
    assert wrapped.to("cpu") is wrapped  # methods returning the pipeline return the wrapper
    assert wrapped("x", num_inference_steps=2).audios.shape == (1, 12288)


# ---------------------------------------------------------------- transformers MusicGen
@pytest.fixture(scope="module", params=["MusicgenForConditionalGeneration",
                                        "MusicgenMelodyForConditionalGeneration"])
def musicgen(request) -> Any:
    if request.param == "MusicgenForConditionalGeneration":
        return fx.tiny_musicgen()
    return fx.tiny_musicgen_melody()


def test_musicgen_generate_is_48k(musicgen, recorder):
    inputs = fx.musicgen_inputs(["lo-fi beat", "rock"])
    expected = musicgen.generate(**inputs, do_sample=False, max_new_tokens=25)
    before = attribute_ids(musicgen)
    wrapped = enhance(musicgen, model=recorder)
    out = wrapped.generate(**inputs, do_sample=False, max_new_tokens=25)
    assert expected.shape == (2, 1, (25 - (fx.N_Q - 1)) * 640)
    assert out.shape == (2, 1, 21120)
    check_waveform(out, expected, 32000, recorder.inner)
    check_band(out, expected, 32000)
    assert [c[0] for c in recorder.calls] == [(2, 14080)]
    assert inspect.signature(wrapped.generate) == inspect.signature(musicgen.generate)
    assert inspect.signature(wrapped) == inspect.signature(musicgen.forward)
    assert wrapped.config.sampling_rate == 48000
    assert wrapped.config.audio_encoder.sampling_rate == 48000
    assert wrapped.audio_encoder.config.sampling_rate == 48000
    assert wrapped.config.decoder.num_codebooks == fx.N_Q  # everything else is the original's
    check_untouched(musicgen, before, wrapped)
    assert musicgen.config.audio_encoder.sampling_rate == 32000
    assert musicgen.generate(**inputs, do_sample=False, max_new_tokens=10).shape[-1] == 7 * 640


def test_musicgen_return_dict_in_generate_keeps_the_output_object(musicgen, lite):
    inputs = fx.musicgen_inputs(["jazz"])
    kwargs = dict(do_sample=False, max_new_tokens=12, return_dict_in_generate=True,
                  guidance_scale=2.0)
    out = enhance(musicgen, model=lite).generate(**inputs, **kwargs)
    expected = musicgen.generate(**inputs, **kwargs)
    assert type(out) is type(expected) and list(out.keys()) == list(expected.keys())
    field = "audio_values" if getattr(expected, "audio_values", None) is not None else "sequences"
    check_waveform(getattr(out, field), getattr(expected, field), 32000, lite)


def test_text_to_audio_pipeline_single_and_batch(recorder):
    pipe = fx.musicgen_text_to_audio(fx.tiny_musicgen())
    forward = {"do_sample": False, "max_new_tokens": 12}
    before = attribute_ids(pipe)
    wrapped = enhance(pipe, model=recorder)
    single = wrapped("lo-fi", forward_params=forward)
    expected = pipe("lo-fi", forward_params=forward)
    assert type(single) is dict and single.keys() == expected.keys()
    assert single["sampling_rate"] == 48000 and expected["sampling_rate"] == 32000
    check_waveform(single["audio"], expected["audio"], 32000, recorder.inner)
    check_band(single["audio"], expected["audio"], 32000)
    recorder.calls.clear()
    batch = wrapped(["lo-fi", "rock"], forward_params=forward)
    expected_batch = pipe(["lo-fi", "rock"], forward_params=forward)
    assert type(batch) is type(expected_batch) and len(batch) == 2
    for got, exp in zip(batch, expected_batch, strict=True):
        assert got["sampling_rate"] == 48000
        check_waveform(got["audio"], exp["audio"], 32000, recorder.inner)
    assert [c[0] for c in recorder.calls] == [(2, 5760)]
    assert wrapped.sampling_rate == 48000 and pipe.sampling_rate == 32000
    assert inspect.signature(wrapped) == inspect.signature(pipe)
    check_untouched(pipe, before, wrapped)


def test_text_to_audio_pipelines_without_a_waveform_or_a_rate_are_refused(lite):
    transformers = fx.require("transformers")
    fs2 = fx.tiny_fastspeech2_with_hifigan()
    mel_pipe = transformers.TextToAudioPipeline(model=fs2, tokenizer=fx.char_t5_tokenizer())
    with pytest.raises(ValueError, match="mel spectrogram"):
        enhance(mel_pipe, model=lite)
    pipe = fx.musicgen_text_to_audio(fx.tiny_musicgen())
    pipe.sampling_rate = None
    with pytest.raises(ValueError, match="reports no sampling_rate; pass sample_rate="):
        enhance(pipe, model=lite)
    assert enhance(pipe, model=lite, sample_rate=32000).source_sample_rate == 32000


# ---------------------------------------------------------------------- audiocraft
@pytest.mark.parametrize("error", [ImportError("No module named 'audiocraft'"),
                                   OSError("libtorchaudio.so: cannot open shared object file")])
def test_missing_audiocraft_skips_with_the_install_command_and_fails_under_ci(error,
                                                                              monkeypatch):
    real_import = fx.importlib.import_module

    def broken(name, *args):
        if name.startswith("audiocraft"):
            raise error
        return real_import(name, *args)

    monkeypatch.setattr(fx.importlib, "import_module", broken)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        fx.tiny_audiocraft("MusicGen")
    assert fx.AUDIOCRAFT_INSTALL in str(skipped.value) and str(error) in str(skipped.value)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="make .venv/.adapters"):
        fx.require("audiocraft.models")


@pytest.fixture(scope="module")
def audiocraft_musicgen() -> Any:
    return fx.tiny_audiocraft("MusicGen")


def seeded(seed: int, method: Any, *args: Any, **kwargs: Any) -> Any:
    torch.manual_seed(seed)
    return method(*args, **kwargs)


def test_audiocraft_musicgen_methods_are_48k(audiocraft_musicgen, recorder):
    model = audiocraft_musicgen
    before = attribute_ids(model)
    wrapped = enhance(model, model=recorder)
    assert wrapped.sample_rate == 48000 and model.sample_rate == 32000
    assert wrapped.frame_rate == model.frame_rate == 50
    out = seeded(0, wrapped.generate, ["lo-fi", "rock"])
    expected = seeded(0, model.generate, ["lo-fi", "rock"])
    assert expected.shape == (2, 1, 10240) and out.shape == (2, 1, 15360)
    check_waveform(out, expected, 32000, recorder.inner)
    check_band(out, expected, 32000)
    assert [c[0] for c in recorder.calls] == [(2, 10240)]

    out, tokens = seeded(1, wrapped.generate_unconditional, 3, return_tokens=True)
    expected, expected_tokens = seeded(1, model.generate_unconditional, 3, return_tokens=True)
    assert torch.equal(tokens, expected_tokens)
    check_waveform(out, expected, 32000, recorder.inner)

    prompt = torch.sin(torch.arange(4800) * 0.05)[None, None].repeat(2, 1, 1) * 0.3
    out = seeded(2, wrapped.generate_continuation, prompt, 48000, ["a", "b"], progress=False)
    expected = seeded(2, model.generate_continuation, prompt, 48000, ["a", "b"], progress=False)
    check_waveform(out, expected, 32000, recorder.inner)

    check_waveform(wrapped.generate_audio(expected_tokens), model.generate_audio(expected_tokens),
                   32000, recorder.inner)
    for name in ("generate", "generate_unconditional", "generate_continuation",
                 "generate_with_chroma", "generate_audio"):
        assert inspect.signature(getattr(wrapped, name)) == \
            inspect.signature(getattr(model, name))
    with pytest.raises(AttributeError, match="managed by the 48 kHz wrapper"):
        wrapped.sample_rate = 16000
    check_untouched(model, before, wrapped)
    assert seeded(0, model.generate, ["x"]).shape == (1, 1, 10240)


def test_audiocraft_generation_params_set_through_the_wrapper_apply(audiocraft_musicgen, lite):
    wrapped = enhance(audiocraft_musicgen, model=lite)
    wrapped.set_generation_params(duration=0.16, top_k=8)
    try:
        assert seeded(0, wrapped.generate, ["x"]).shape == (1, 1, 3 * 5120 // 2)
    finally:
        audiocraft_musicgen.set_generation_params(duration=0.32, top_k=16, extend_stride=2.0)


def test_audiocraft_generate_with_chroma(lite):
    model = fx.tiny_audiocraft("MusicGen", melody=True)
    melody = torch.sin(torch.arange(16000) * 0.1)[None, None] * 0.5
    wrapped = enhance(model, model=lite)
    out, tokens = seeded(3, wrapped.generate_with_chroma, ["lo-fi"], melody, 16000,
                         return_tokens=True)
    expected, expected_tokens = seeded(3, model.generate_with_chroma, ["lo-fi"], melody, 16000,
                                       return_tokens=True)
    assert torch.equal(tokens, expected_tokens)
    check_waveform(out, expected, 32000, lite)


def test_audiocraft_audiogen_16k(lite):
    model = fx.tiny_audiocraft("AudioGen", sample_rate=16000)
    wrapped = enhance(model, model=lite)
    assert wrapped.sample_rate == 48000 and model.sample_rate == 16000
    out = seeded(0, wrapped.generate, ["dog barking"])
    expected = seeded(0, model.generate, ["dog barking"])
    assert expected.shape == (1, 1, 5120) and out.shape == (1, 1, 15360)
    check_waveform(out, expected, 16000, lite)
    check_band(out, expected, 16000)


# ---------------------------------------------------------------------- FastSpeech2
def test_fastspeech2_with_hifigan_output_object_and_tuple(recorder):
    model = fx.tiny_fastspeech2_with_hifigan()
    ids = fx.phoneme_ids(2)
    mask = torch.ones_like(ids)
    mask[1, -3:] = 0
    before = attribute_ids(model)
    wrapped = enhance(model, model=recorder)
    assert wrapped.source_sample_rate == 22050
    assert wrapped.config.vocoder_config.sampling_rate == 48000
    assert not hasattr(model.config.vocoder_config, "sampling_rate")
    with torch.no_grad():
        out = wrapped(ids, attention_mask=mask)
        expected = model(ids, attention_mask=mask)
    assert type(out) is type(expected) and list(out.keys()) == list(expected.keys())
    assert torch.equal(out.spectrogram, expected.spectrogram)
    assert torch.equal(out.duration_outputs, expected.duration_outputs)
    check_waveform(out.waveform, expected.waveform, 22050, recorder.inner)
    check_band(out.waveform, expected.waveform, 22050)
    assert [c[0] for c in recorder.calls] == [(2, expected.waveform.shape[-1])]

    with torch.no_grad():
        out = wrapped.forward(ids, return_dict=False)
        expected = model.forward(ids, return_dict=False)
    assert isinstance(out, tuple) and len(out) == len(expected)
    for got, exp in zip(out[:-1], expected[:-1], strict=True):
        assert got is exp or torch.equal(got, exp)
    check_waveform(out[-1], expected[-1], 22050, recorder.inner)
    assert inspect.signature(wrapped) == inspect.signature(model.forward)
    assert inspect.signature(wrapped.forward) == inspect.signature(model.forward)
    assert wrapped.eval() is wrapped and wrapped.to("cpu") is wrapped
    check_untouched(model, before, wrapped)


def test_fastspeech2_waveform_keeps_autograd_free_float32_on_the_model_device(lite):
    model = fx.tiny_fastspeech2_with_hifigan()
    out = enhance(model, model=lite)(fx.phoneme_ids(1))
    assert out.waveform.dtype == torch.float32 and out.waveform.device.type == "cpu"
    assert not out.waveform.requires_grad


def test_fastspeech2_rate_from_config_or_override(lite):
    model = fx.tiny_fastspeech2_with_hifigan()
    ids = fx.phoneme_ids(1)
    with torch.no_grad():
        expected = model(ids).waveform
        out = enhance(model, model=lite, sample_rate=24000)(ids).waveform
    assert out.shape[-1] == round(expected.shape[-1] * 2)
    check_waveform(out, expected, 24000, lite)
    _, vocoder = fx.tiny_fastspeech2_model_and_hifigan()
    vocoder.config.sampling_rate = 16000  # what users set for pipeline("text-to-audio")
    wrapped = enhance(vocoder, model=lite)
    assert wrapped.source_sample_rate == 16000 and wrapped.config.sampling_rate == 48000


def test_fastspeech2_model_plus_hifigan(lite):
    acoustic, vocoder = fx.tiny_fastspeech2_model_and_hifigan()
    with torch.no_grad():
        mel = acoustic(fx.phoneme_ids(2)).spectrogram
        wrapped = enhance(vocoder, model=lite)
        for spectrogram in (mel, mel[0]):  # batched [B, frames, bins] and unbatched
            check_waveform(wrapped(spectrogram), vocoder(spectrogram), 22050, lite)
    assert inspect.signature(wrapped) == inspect.signature(vocoder.forward)
    with pytest.raises(TypeError, match="returns a mel spectrogram, not audio: wrap its vocoder"):
        enhance(acoustic, model=lite)


# ------------------------------------------------------------------------ generic
def test_generic_tts_function(lite):
    acoustic, vocoder = fx.tiny_fastspeech2_model_and_hifigan()

    @torch.no_grad()
    def speechbrain_like(ids: torch.Tensor, *, pace: float = 1.0) -> torch.Tensor:
        """[B, 1, T] like SpeechBrain's HIFIGAN.decode_batch."""
        mel = acoustic(ids, return_dict=True).spectrogram
        return vocoder(mel)[:, None]

    wrapped = enhance(speechbrain_like, model=lite, sample_rate=22050)
    ids = fx.phoneme_ids(2, seed=3)
    out, expected = wrapped(ids, pace=1.0), speechbrain_like(ids)
    assert out.shape[:2] == (2, 1)
    check_waveform(out, expected, 22050, lite)
    check_band(out, expected, 22050)
    assert inspect.signature(wrapped) == inspect.signature(speechbrain_like)
    assert wrapped.unwrap() is speechbrain_like


def test_generic_espnet_like_object_with_fs_and_dict_output(lite):
    class Text2Speech:
        """ESPnet's interface: ``fs`` and ``__call__(text) -> {"wav": [T], "feat_gen": ...}``."""

        fs = 22050

        def __call__(self, text: str, speed: float = 1.0) -> dict[str, Any]:
            n = int(4000 / speed)
            t = torch.arange(n) / self.fs
            wav = 0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.05 * torch.sin(
                2 * torch.pi * 7000 * t)
            return {"feat_gen": torch.ones(3, 4), "wav": wav}

    tts = Text2Speech()
    wrapped = enhance(tts, model=lite)
    assert wrapped.fs == 48000 and tts.fs == 22050 and wrapped.source_sample_rate == 22050
    out, expected = wrapped("hello", speed=2.0), tts("hello", speed=2.0)
    assert list(out) == list(expected) and torch.equal(out["feat_gen"], expected["feat_gen"])
    check_waveform(out["wav"], expected["wav"], 22050, lite)
    assert inspect.signature(wrapped) == inspect.signature(tts)


def test_generic_callable_returning_something_else_is_explained(lite):
    wrapped = enhance(lambda: (np.zeros(100), 16000), model=lite, sample_rate=16000)
    with pytest.raises(TypeError, match="returned something that is not a waveform"):
        wrapped()
    wrapped = enhance(lambda: {"mel": np.zeros(100)}, model=lite, sample_rate=16000)
    with pytest.raises(TypeError, match="without any of the keys wav, waveform, audio"):
        wrapped()
