"""The ComfyUI node pack (audiosr_adapters/comfyui), without ComfyUI: the V1 specs checked the
way ComfyUI's executor reads them, the nodes run on AUDIO dicts built like LoadAudio's, the
model folder, the cache, the progress bar, the V3 schema through a minimal stand-in of
``comfy_api.latest``, loading the folder the way ComfyUI loads a custom node, and the example
workflow."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import audiosr_adapters.comfyui as pack
from audiosr_adapters.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, models
from audiosr_adapters.comfyui.models import clear_cache, load_model, model_choices, resolve_model
from audiosr_adapters.comfyui.nodes import AudioSRLoader, AudioSRUpsample
from audiosr_core.enhancer import EnhanceOptions
from audiosr_core.errors import AudioInputError
from audiosr_core.rates import SAMPLE_RATE, output_length
from audiosr_core.spectrogram import AXIS_HZ, GAP, HEIGHT, PANEL_WIDTH, colourise

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "examples" / "comfyui_workflow.json"
PACK_DIR = REPO / "audiosr_adapters" / "comfyui"
IMAGE_SHAPE = (HEIGHT, 2 * PANEL_WIDTH + GAP, 3)
#: ComfyUI's own nodes used by the example workflow: input names and output types.
BUILTIN_INPUTS = {"LoadAudio": {"audio"}, "SaveAudio": {"audio", "filename_prefix"},
                  "PreviewImage": {"images"}}
BUILTIN_OUTPUTS = {"LoadAudio": ("AUDIO",), "SaveAudio": (), "PreviewImage": ()}
BUILTIN_INPUT_TYPES = {("SaveAudio", "audio"): "AUDIO", ("PreviewImage", "images"): "IMAGE"}


def load_audio_like(batch: int, channels: int, samples: int, rate: int, seed: int = 0) -> dict:
    """An AUDIO dict as LoadAudio builds it: float32 ``[B, C, T]`` tensor, band-limited tones
    (below a quarter of ``rate``) with a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / rate
    freqs = rng.uniform(100, rate / 4, size=(batch, channels, 6, 1))
    tones = 0.1 * np.sin(2 * np.pi * freqs * t).sum(axis=2)
    wave = tones + 0.003 * rng.standard_normal((batch, channels, samples))
    return {"waveform": torch.from_numpy(wave.astype(np.float32)), "sample_rate": rate}


def run_node(cls: type, **inputs):
    """Call a V1 node the way ComfyUI's executor does: a fresh instance, FUNCTION, kwargs."""
    return getattr(cls(), cls.FUNCTION)(**inputs)


def upsample_inputs(model, audio: dict, **overrides) -> dict:
    defaults = dict(steps=50, guidance_scale=3.5, seed=42, sampler="ddim",
                    output_rate=SAMPLE_RATE, spectrogram=True)
    return {"audiosr_model": model, "audio": audio, **defaults, **overrides}


class RecordingEnhancer:
    """Stands in for a model: records calls, returns the input repeated 3 times."""

    def __init__(self) -> None:
        self.calls = 0

    def enhance(self, audio, sample_rate, options=None):
        self.calls += 1
        return types.SimpleNamespace(audio=np.repeat(audio, 3, axis=-1), sample_rate=SAMPLE_RATE)


# ------------------------------------------------------------------------ V1 specifications
def _check_input(name: str, spec: object) -> None:
    assert isinstance(spec, tuple) and len(spec) in (1, 2), (name, spec)
    kind, options = spec[0], (spec[1] if len(spec) == 2 else {})
    assert isinstance(options, dict), (name, options)
    if isinstance(kind, list):
        assert kind and all(isinstance(c, str) for c in kind), (name, kind)
        assert options.get("default", kind[0]) in kind, (name, options)
        return
    assert isinstance(kind, str) and kind, (name, kind)
    if kind in ("INT", "FLOAT"):
        assert options["min"] <= options["default"] <= options["max"], (name, options)
        assert isinstance(options["default"], int if kind == "INT" else float), (name, options)
    if kind == "BOOLEAN":
        assert isinstance(options["default"], bool), (name, options)


@pytest.mark.parametrize("node_id", sorted(NODE_CLASS_MAPPINGS))
def test_v1_specs_are_what_comfyui_reads(node_id):
    cls = NODE_CLASS_MAPPINGS[node_id]
    spec = cls.INPUT_TYPES()
    assert set(spec) <= {"required", "optional", "hidden"} and "required" in spec
    for section in spec.values():
        assert isinstance(section, dict)
        for name, item in section.items():
            _check_input(name, item)
    assert isinstance(cls.RETURN_TYPES, tuple) and all(isinstance(t, str) for t in cls.RETURN_TYPES)
    assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES)
    assert cls.CATEGORY == "audio/AudioSR"
    assert NODE_DISPLAY_NAME_MAPPINGS[node_id].startswith("AudioSR ")
    params = inspect.signature(getattr(cls, cls.FUNCTION)).parameters
    assert set(spec["required"]) | set(spec.get("optional", {})) <= set(params)
    assert all(params[name].default is not inspect.Parameter.empty
               for name in spec.get("optional", {}))
    if hasattr(cls, "VALIDATE_INPUTS"):
        assert set(inspect.getfullargspec(cls.VALIDATE_INPUTS).args[1:]) <= set(spec["required"])


def test_upsample_spec_offers_the_engine_samplers_and_defaults():
    from audiosr_core.sampling import SAMPLERS

    required = AudioSRUpsample.INPUT_TYPES()["required"]
    assert required["sampler"][0] == list(SAMPLERS)
    assert required["audio"] == ("AUDIO",) and required["audiosr_model"] == ("AUDIOSR_MODEL",)
    assert required["output_rate"][1]["default"] == 48000
    assert required["output_rate"][1]["min"] == 8000
    assert AudioSRUpsample.RETURN_TYPES == ("AUDIO", "IMAGE")
    assert AudioSRLoader.RETURN_TYPES == ("AUDIOSR_MODEL",)
    assert AudioSRLoader.INPUT_TYPES()["required"]["model"][0][:3] == ["lite", "basic", "speech"]


# ------------------------------------------------------------------------------ running
OUTPUT_RATES = [SAMPLE_RATE, 44100]


@pytest.mark.parametrize("output_rate", OUTPUT_RATES)
@pytest.mark.parametrize("rate", [16000, 22050, 44100])
def test_every_item_and_channel_equals_the_engine_alone(lite, rate, output_rate):
    audio = load_audio_like(2, 2, 5001, rate, seed=rate)
    out, image = run_node(AudioSRUpsample, **upsample_inputs(lite, audio,
                                                             output_rate=output_rate))
    wave = out["waveform"]
    assert out["sample_rate"] == output_rate
    assert wave.dtype == torch.float32
    assert tuple(wave.shape) == (2, 2, output_length(5001, rate, output_rate))
    options = EnhanceOptions(**({} if output_rate == SAMPLE_RATE else
                                {"output_rate": output_rate}))
    for b in range(2):
        alone = lite.enhance(audio["waveform"][b].numpy(), rate, options=options)
        np.testing.assert_allclose(wave[b].numpy(), alone.audio, rtol=0, atol=1e-6)
    assert tuple(image.shape) == (2, *IMAGE_SHAPE) and image.dtype == torch.float32
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0


def test_default_output_is_48k_and_the_input_is_left_alone(lite):
    audio = load_audio_like(1, 1, 4000, 16000)
    before = audio["waveform"].clone()
    out, image = run_node(AudioSRUpsample, **upsample_inputs(lite, audio, spectrogram=False))
    assert out["sample_rate"] == SAMPLE_RATE and tuple(out["waveform"].shape) == (1, 1, 12000)
    assert torch.equal(audio["waveform"], before)
    assert tuple(image.shape) == (1, 64, 64, 3) and float(image.abs().max()) == 0.0


def test_a_tiny_diffusion_model_loads_by_path_and_runs(tiny_audiosr_dir):
    (model,) = run_node(AudioSRLoader, model=str(tiny_audiosr_dir), device="cpu", dtype="auto")
    audio = load_audio_like(2, 1, 3000, 16000)
    out, image = run_node(AudioSRUpsample, **upsample_inputs(model, audio, steps=2,
                                                             sampler="dpmpp_2m"))
    assert tuple(out["waveform"].shape) == (2, 1, 9000) and out["sample_rate"] == SAMPLE_RATE
    alone = model.enhance(audio["waveform"][1].numpy(), 16000, steps=2, sampler="dpmpp_2m")
    np.testing.assert_allclose(out["waveform"][1].numpy(), alone.audio, rtol=0, atol=1e-6)
    assert tuple(image.shape) == (2, *IMAGE_SHAPE)


def test_the_spectrogram_puts_both_signals_on_one_0_to_24_khz_axis(lite):
    rate, n = 16000, 16000
    t = np.arange(n) / rate
    before = (0.5 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)[None]
    after = (0.5 * np.sin(2 * np.pi * 15000 * np.arange(3 * n) / 48000)).astype(np.float32)[None]
    from audiosr_core.spectrogram import spectrogram_image

    image = spectrogram_image(before, rate, after, 48000)
    assert image.shape == IMAGE_SHAPE
    left, right = image[:, :PANEL_WIDTH], image[:, PANEL_WIDTH + GAP:]
    for panel, hz in ((left, 3000), (right, 15000)):
        row = int(np.argmax(panel.sum(axis=(1, 2))))
        assert abs(row - (HEIGHT - 1 - hz / AXIS_HZ * HEIGHT)) <= 2
    above_nyquist = left[: int(HEIGHT * (1 - 8000 / AXIS_HZ)) - 1]
    np.testing.assert_allclose(above_nyquist, np.broadcast_to(colourise(np.zeros(1)),
                                                              above_nyquist.shape))
    assert np.all(image[:, PANEL_WIDTH:PANEL_WIDTH + GAP] == 1.0)


# ---------------------------------------------------------------------------- bad input
BAD_AUDIO = {
    "two_dims": ({"waveform": torch.zeros(2, 1000), "sample_rate": 16000}, "shape"),
    "four_dims": ({"waveform": torch.zeros(1, 1, 2, 1000), "sample_rate": 16000}, "shape"),
    "no_samples": ({"waveform": torch.zeros(1, 2, 0), "sample_rate": 16000}, "empty"),
    "no_items": ({"waveform": torch.zeros(0, 2, 100), "sample_rate": 16000}, "empty"),
    "nan": ({"waveform": torch.tensor([[[0.0, float("nan"), 0.1]]]), "sample_rate": 16000},
            "NaN"),
    "inf": ({"waveform": torch.tensor([[[0.0, 0.2]], [[float("inf"), 0.1]]]),
             "sample_rate": 16000}, "item 1"),
    "channels_last": ({"waveform": torch.zeros(1, 1000, 2), "sample_rate": 16000}, "channels"),
    "rate": ({"waveform": torch.zeros(1, 1, 100), "sample_rate": 1000}, "1000 Hz"),
    "not_a_dict": (torch.zeros(1, 1, 100), "AUDIO input must be"),
    "no_rate": ({"waveform": torch.zeros(1, 1, 100)}, "sample_rate"),
    "complex": ({"waveform": torch.zeros(1, 1, 10, dtype=torch.complex64),
                 "sample_rate": 16000}, "dtype"),
}


@pytest.mark.parametrize("case", sorted(BAD_AUDIO))
def test_bad_audio_is_refused_before_the_engine_runs(case):
    audio, message = BAD_AUDIO[case]
    enhancer = RecordingEnhancer()
    with pytest.raises(AudioInputError, match=message):
        run_node(AudioSRUpsample, **upsample_inputs(enhancer, audio))
    assert enhancer.calls == 0


def test_bad_settings_say_what_is_wrong():
    audio = load_audio_like(1, 1, 100, 16000)
    with pytest.raises(ValueError, match="output_rate"):
        run_node(AudioSRUpsample, **upsample_inputs(RecordingEnhancer(), audio,
                                                    output_rate=4000))
    with pytest.raises(ValueError, match="sampler"):
        run_node(AudioSRUpsample, **upsample_inputs(RecordingEnhancer(), audio, sampler="euler"))
    with pytest.raises(TypeError, match="AudioSR Loader"):
        run_node(AudioSRUpsample, **upsample_inputs("lite", audio))
    with pytest.raises(ValueError, match="unknown AudioSR model"):
        run_node(AudioSRLoader, model="no-such-model", device="auto", dtype="auto")
    assert "no-such-model" in AudioSRLoader.VALIDATE_INPUTS("no-such-model")
    assert AudioSRLoader.VALIDATE_INPUTS("lite") is True


def test_int16_waveforms_are_scaled_like_comfyui_does():
    audio = {"waveform": torch.full((1, 1, 10), 16384, dtype=torch.int16), "sample_rate": 16000}
    enhancer = RecordingEnhancer()
    out, _ = run_node(AudioSRUpsample, **upsample_inputs(enhancer, audio, spectrogram=False))
    np.testing.assert_allclose(out["waveform"].numpy(), 0.5)


# ------------------------------------------------------------------------ models and cache
def test_the_loader_caches_models_by_model_device_and_dtype(monkeypatch):
    loads = []

    def fake_load(target, device=None, dtype=None):
        loads.append((target, device, dtype))
        return RecordingEnhancer()

    monkeypatch.setattr(models, "load", fake_load)
    clear_cache()
    try:
        (first,) = run_node(AudioSRLoader, model="lite", device="cpu", dtype="auto")
        (again,) = run_node(AudioSRLoader, model="lite", device="cpu", dtype="auto")
        assert again is first and loads == [("lite", "cpu", None)]
        (half,) = run_node(AudioSRLoader, model="basic", device="auto", dtype="float16")
        assert half is not first and loads[-1] == ("basic", None, torch.float16)
        assert load_model("lite", "cpu", "auto") is first and len(loads) == 2
        with pytest.raises(ValueError, match="device"):
            load_model("lite", "tpu", "auto")
    finally:
        clear_cache()


def _fake_folder_paths(models_dir: Path) -> types.ModuleType:
    """ComfyUI's folder_paths as far as the loader uses it."""
    module = types.ModuleType("folder_paths")
    module.models_dir = str(models_dir)
    module.folder_names_and_paths = {}

    def add_model_folder_path(name, path, is_default=False):
        module.folder_names_and_paths.setdefault(name, ([], set()))[0].append(path)

    def get_filename_list(name):
        root = Path(module.folder_names_and_paths[name][0][0])
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    def get_full_path(name, filename):
        path = Path(module.folder_names_and_paths[name][0][0]) / filename
        return str(path) if path.is_file() else None

    module.add_model_folder_path = add_model_folder_path
    module.get_filename_list = get_filename_list
    module.get_full_path = get_full_path
    return module


def test_models_under_comfyui_models_audiosr_are_offered(monkeypatch, tmp_path,
                                                          tiny_audiosr_dir):
    root = tmp_path / "models" / "audiosr"
    shutil.copytree(tiny_audiosr_dir, root / "my-tiny")
    (root / "official").mkdir()
    (root / "official" / "basic.ckpt").write_bytes(b"")
    (root / "notes.txt").write_text("not a model")
    fake = _fake_folder_paths(tmp_path / "models")
    monkeypatch.setitem(sys.modules, "folder_paths", fake)

    assert model_choices() == ["lite", "basic", "speech", "my-tiny", "official/basic.ckpt"]
    assert fake.folder_names_and_paths["audiosr"][0] == [str(root)]
    assert AudioSRLoader.INPUT_TYPES()["required"]["model"][0] == model_choices()
    assert resolve_model("my-tiny") == str(root / "my-tiny")
    assert resolve_model("official/basic.ckpt") == str(root / "official" / "basic.ckpt")
    assert resolve_model("lite") == "lite"
    model_choices()
    assert len(fake.folder_names_and_paths["audiosr"][0]) == 1   # registered once
    (model,) = run_node(AudioSRLoader, model="my-tiny", device="cpu", dtype="auto")
    assert type(model).__name__ == "AudioSR"


# --------------------------------------------------------------------------- ComfyUI hooks
def _fake_comfy(monkeypatch, interrupt_after: int | None = None) -> list:
    """A ``comfy`` package with ``utils.ProgressBar`` recording its ticks and, optionally,
    ``model_management`` cancelling the run after ``interrupt_after`` items."""
    bars: list = []

    class ProgressBar:
        def __init__(self, total):
            self.total, self.ticks = total, []
            bars.append(self)

        def update_absolute(self, value, total=None, preview=None):
            self.ticks.append((value, total))

    comfy = types.ModuleType("comfy")
    comfy.__path__ = []
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar
    monkeypatch.setitem(sys.modules, "comfy", comfy)
    monkeypatch.setitem(sys.modules, "comfy.utils", utils)
    if interrupt_after is not None:
        management = types.ModuleType("comfy.model_management")
        checks = []

        def throw_exception_if_processing_interrupted():
            checks.append(1)
            if len(checks) > interrupt_after:
                raise InterruptedError("cancelled")

        management.throw_exception_if_processing_interrupted = (
            throw_exception_if_processing_interrupted)
        monkeypatch.setitem(sys.modules, "comfy.model_management", management)
    return bars


def test_one_progress_tick_per_batch_item(monkeypatch):
    bars = _fake_comfy(monkeypatch)
    audio = load_audio_like(3, 2, 200, 16000)
    run_node(AudioSRUpsample, **upsample_inputs(RecordingEnhancer(), audio, spectrogram=False))
    assert len(bars) == 1 and bars[0].total == 3
    assert bars[0].ticks == [(1, 3), (2, 3), (3, 3)]


def test_a_cancelled_run_stops_between_items(monkeypatch):
    _fake_comfy(monkeypatch, interrupt_after=1)
    enhancer = RecordingEnhancer()
    with pytest.raises(InterruptedError):
        run_node(AudioSRUpsample, **upsample_inputs(enhancer, load_audio_like(3, 1, 50, 16000)))
    assert enhancer.calls == 1


def test_without_comfy_api_there_is_no_v3_entrypoint():
    if importlib.util.find_spec("comfy_api") is not None:
        pytest.skip("comfy_api is installed here")
    assert not hasattr(pack, "comfy_entrypoint")
    assert "comfy_api" not in sys.modules and "comfy" not in sys.modules


def _fake_comfy_api() -> types.ModuleType:
    """A minimal ``comfy_api.latest``: the schema classes record their arguments."""

    class Port:
        def __init__(self, io_type):
            self.io_type = io_type

        def Input(self, id, **options):  # noqa: N802 (ComfyUI's names)
            return types.SimpleNamespace(id=id, io_type=self.io_type, **options)

        def Output(self, **options):  # noqa: N802
            return types.SimpleNamespace(io_type=self.io_type, **options)

    class NodeOutput:
        def __init__(self, *args, ui=None):
            self.args = args

    class Schema:
        def __init__(self, **fields):
            self.__dict__.update(fields)

    class ComfyExtension:
        async def on_load(self):
            return None

    ports = {"Combo": "COMBO", "Int": "INT", "Float": "FLOAT", "Boolean": "BOOLEAN",
             "Audio": "AUDIO", "Image": "IMAGE"}
    io = types.SimpleNamespace(ComfyNode=type("ComfyNode", (), {}), Schema=Schema,
                               NodeOutput=NodeOutput, Custom=Port,
                               **{name: Port(kind) for name, kind in ports.items()})
    latest = types.ModuleType("comfy_api.latest")
    latest.io, latest.ComfyExtension = io, ComfyExtension
    return latest


@pytest.fixture
def v3_pack(monkeypatch):
    """``audiosr_adapters.comfyui`` imported again with a stand-in ``comfy_api`` present."""
    api = types.ModuleType("comfy_api")
    api.__path__ = []
    api.latest = _fake_comfy_api()
    monkeypatch.setitem(sys.modules, "comfy_api", api)
    monkeypatch.setitem(sys.modules, "comfy_api.latest", api.latest)
    yield importlib.reload(pack)
    monkeypatch.undo()
    sys.modules.pop("audiosr_adapters.comfyui.v3", None)
    del pack.comfy_entrypoint              # reload keeps names the new run does not define
    importlib.reload(pack)


def test_v3_nodes_match_the_v1_nodes_and_run(v3_pack, lite):
    extension = asyncio.run(v3_pack.comfy_entrypoint())
    nodes = asyncio.run(extension.get_node_list())
    schemas = {node.define_schema().node_id: (node, node.define_schema()) for node in nodes}
    assert set(schemas) == set(NODE_CLASS_MAPPINGS)
    for node_id, (_node, schema) in schemas.items():
        v1 = NODE_CLASS_MAPPINGS[node_id]
        spec = v1.INPUT_TYPES()
        assert [i.id for i in schema.inputs] == [*spec["required"], *spec.get("optional", {})]
        assert [o.io_type for o in schema.outputs] == list(v1.RETURN_TYPES)
        assert schema.display_name == NODE_DISPLAY_NAME_MAPPINGS[node_id]
        assert schema.category == v1.CATEGORY
    loader, _ = schemas["AudioSRLoader"]
    assert loader.validate_inputs("lite") is True
    upsampler, _ = schemas["AudioSRUpsample"]
    audio = load_audio_like(1, 2, 2000, 22050)
    result = upsampler.execute(**upsample_inputs(lite, audio))
    expected, _ = run_node(AudioSRUpsample, **upsample_inputs(lite, audio))
    assert torch.equal(result.args[0]["waveform"], expected["waveform"])
    assert tuple(result.args[1].shape) == (1, *IMAGE_SHAPE)


def _load_like_comfyui(name: str) -> types.ModuleType:
    """Import the pack folder the way ComfyUI imports a folder under custom_nodes/."""
    spec = importlib.util.spec_from_file_location(name, PACK_DIR / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
    return module


def test_the_folder_loads_as_a_custom_node():
    module = _load_like_comfyui("custom_nodes_x_audiosr")
    assert sorted(module.NODE_CLASS_MAPPINGS) == sorted(NODE_CLASS_MAPPINGS)
    assert module.NODE_DISPLAY_NAME_MAPPINGS == NODE_DISPLAY_NAME_MAPPINGS


def test_a_missing_engine_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "audiosr_core", None)
    with pytest.raises(ImportError, match="pip install audiosr-plug"):
        _load_like_comfyui("custom_nodes_x_audiosr_missing")


# -------------------------------------------------------------------------------- workflow
def _link_type(workflow: dict, link: list) -> str:
    source = workflow[link[0]]["class_type"]
    outputs = (NODE_CLASS_MAPPINGS[source].RETURN_TYPES if source in NODE_CLASS_MAPPINGS
               else BUILTIN_OUTPUTS[source])
    assert 0 <= link[1] < len(outputs), link
    return outputs[link[1]]


def test_the_example_workflow_is_valid():
    workflow = json.loads(WORKFLOW.read_text())
    classes = {node["class_type"] for node in workflow.values()}
    assert {"AudioSRLoader", "AudioSRUpsample", "LoadAudio", "SaveAudio", "PreviewImage"} == classes
    for node in workflow.values():
        kind, inputs = node["class_type"], node["inputs"]
        links = {k: v for k, v in inputs.items() if isinstance(v, list)}
        for name, link in links.items():
            assert link[0] in workflow, link
            declared = BUILTIN_INPUT_TYPES.get((kind, name))
            if kind in NODE_CLASS_MAPPINGS:
                spec = NODE_CLASS_MAPPINGS[kind].INPUT_TYPES()
                declared = {**spec["required"], **spec.get("optional", {})}[name][0]
            assert declared is None or _link_type(workflow, link) == declared, (kind, name)
        if kind not in NODE_CLASS_MAPPINGS:
            assert set(inputs) == BUILTIN_INPUTS[kind]
            continue
        spec = NODE_CLASS_MAPPINGS[kind].INPUT_TYPES()
        assert set(spec["required"]) <= set(inputs) <= set(spec["required"]) | set(
            spec.get("optional", {}))
        for name, value in inputs.items():
            item = {**spec["required"], **spec.get("optional", {})}[name]
            if isinstance(item[0], list):
                assert value in item[0], (name, value)
            elif item[0] in ("INT", "FLOAT"):
                assert item[1]["min"] <= value <= item[1]["max"], (name, value)


def test_the_example_workflow_runs():
    """Executes the workflow in order: LoadAudio reads the example clip like ComfyUI (float32
    [1, C, T]), our nodes run as ComfyUI calls them, the outputs reach SaveAudio/PreviewImage."""
    workflow = json.loads(WORKFLOW.read_text())
    results: dict[str, tuple] = {}
    for node_id in sorted(workflow, key=int):
        node = workflow[node_id]
        inputs = {k: results[v[0]][v[1]] if isinstance(v, list) else v
                  for k, v in node["inputs"].items()}
        if node["class_type"] == "LoadAudio":
            data, rate = sf.read(REPO / "examples" / inputs["audio"], dtype="float32",
                                 always_2d=True)
            results[node_id] = ({"waveform": torch.from_numpy(data.T.copy())[None],
                                 "sample_rate": rate},)
        elif node["class_type"] in NODE_CLASS_MAPPINGS:
            results[node_id] = run_node(NODE_CLASS_MAPPINGS[node["class_type"]], **inputs)
        else:
            results[node_id] = (inputs,)
    saved = results["4"][0]["audio"]
    assert saved["sample_rate"] == SAMPLE_RATE and saved["waveform"].shape[:2] == (1, 1)
    assert saved["waveform"].shape[-1] == output_length(3 * 16000, 16000)
    assert tuple(results["5"][0]["images"].shape) == (1, *IMAGE_SHAPE)
