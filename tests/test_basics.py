"""The basics with one home each: rate check, PCM conversion, status vocabulary, seeds, atomic
writes, devices, the loading front door."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import audiosr_core
from audiosr_core import atomic, audio
from audiosr_core.devices import available_devices, resolve_device
from audiosr_core.errors import AudioInputError, DeviceError, WeightsError
from audiosr_core.rates import check_rate
from audiosr_core.seeds import derive_seed, fresh_seed
from audiosr_core.status import Outcome, Status


# ------------------------------------------------------------------------------ rates
@pytest.mark.parametrize("value", [16000, 22050.0, np.float64(16000), np.int32(44100),
                                   np.float32(8000), 48000.0])
def test_whole_number_rates_of_any_numeric_type_are_accepted(value):
    rate = check_rate(value)
    assert type(rate) is int and rate == int(value)


@pytest.mark.parametrize("value,match", [(22050.5, "not a whole number"), (float("nan"),
                         "not a whole number"), (True, "not a whole number"), ("16000",
                         "not a whole number"), (None, "not a whole number"),
                         (1000, "below the 4000 Hz minimum"), (500000, "above the 384000 Hz"),
                         (-16000, "not positive"), (0, "not positive")])
def test_other_rates_get_the_clear_error(value, match):
    with pytest.raises(AudioInputError, match=match):
        check_rate(value, "clip.wav")
    with pytest.raises(AudioInputError, match="clip.wav: sample rate"):
        check_rate(value, "clip.wav")


@pytest.mark.parametrize("rate", [22050.0, np.float64(16000), np.int64(32000)])
def test_enhance_takes_whole_number_float_rates(lite, tiny_audiosr, rate):
    x = (0.1 * np.random.default_rng(0).standard_normal(4000)).astype(np.float32)
    expected = round(4000 * 48000 / int(rate))
    assert lite.enhance(x, rate).audio.shape == (1, expected)
    res = tiny_audiosr.enhance(x, rate, steps=1, guidance_scale=1.0)
    assert res.audio.shape == (1, expected) and np.isfinite(res.audio).all()
    with pytest.raises(AudioInputError, match="not a whole number of Hz"):
        lite.enhance(x, float(rate) + 0.5)


# ------------------------------------------------------------------- PCM to float
@pytest.mark.parametrize("dtype,code,value", [(np.int8, -128, -1.0), (np.int16, 16384, 0.5),
                                              (np.int32, -(2**31), -1.0), (np.uint8, 192, 0.5),
                                              (np.float64, 0.25, 0.25)])
def test_pcm_to_float_scales(dtype, code, value):
    x = np.array([code, 0], dtype=dtype)
    y = audio.pcm_to_float(x)
    assert y.dtype == np.float32 and y[0] == np.float32(value)
    assert audio.float_to_pcm(y, dtype)[0] == code


@pytest.mark.parametrize("dtype", [np.int64, np.uint16, np.uint32, np.uint64])
def test_integer_types_without_a_scale_are_refused_everywhere(lite, dtype):
    """int64 (numpy's default for a list of ints) was scaled by 2**63 in the adapters (silence)
    and refused by the engine: both refuse now, with the same advice."""
    from audiosr_adapters import enhance

    x = np.arange(1600, dtype=dtype)
    with pytest.raises(AudioInputError, match=f"{np.dtype(dtype)}, which has no agreed"):
        audio.validate_array(x, 16000)
    wrapped = enhance(lambda: x, model=lite, sample_rate=16000)
    with pytest.raises(AudioInputError, match=f"{np.dtype(dtype)}, which has no agreed"):
        wrapped()


def test_int16_round_trips_through_the_adapters(lite):
    from audiosr_adapters import enhance

    x = (np.sin(np.arange(1600) / 3) * 12000).astype(np.int16)
    out = enhance(lambda: torch.from_numpy(x), model=lite, sample_rate=16000)()
    assert out.dtype == torch.int16 and out.shape == (4800,)
    np.testing.assert_allclose(out.numpy()[::3][100:-100] / 32768, x[100:-100] / 32768,
                               atol=0.02)


# -------------------------------------------------------------------------- statuses
def test_status_is_one_vocabulary_of_plain_strings():
    assert Status.SILENT == "silent" and f"{Status.FULL_BAND}" == "full-band"
    assert str(Status.BELOW_RANGE) == "below-range" and Status("low") is Status.LOW
    assert json.dumps([Status.ENHANCED, Outcome.SKIPPED]) == '["enhanced", "skipped"]'
    assert all(s.passes_through for s in Status if s not in (Status.BAND_LIMITED,
                                                             Status.ENHANCED))
    assert all(s.describe() for s in Status)


def test_cutoffs_and_results_use_it(lite):
    from audiosr_core import dsp

    assert dsp.detect_cutoff(np.zeros(48000, np.float32)).status is Status.SILENT
    assert dsp.Cutoff(10, 234.0, "low").status is Status.LOW
    res = lite.enhance(np.zeros(16000, np.float32), 16000)
    assert res.status == [Status.SILENT] and isinstance(res.status[0], Status)


# ------------------------------------------------------------------------------ seeds
def test_derived_seeds_are_stable_distinct_and_in_range():
    seeds = {derive_seed(42, "window", i) for i in range(1000)}
    assert len(seeds) == 1000 and all(0 <= s < 2**31 for s in seeds)
    assert derive_seed(0, "audioldm", 3) == 56328232       # sha256("0/audioldm/3")[:31 bits]
    assert derive_seed(1, "window", 1) != derive_seed(2, "window", 1)
    assert 0 <= fresh_seed() < 2**31 and len({fresh_seed() for _ in range(20)}) > 1


# ----------------------------------------------------------------------------- atomic
def test_atomic_text_and_failed_writes(tmp_path):
    dest = atomic.write_text(tmp_path / "sub" / "a.txt", "one\n")
    assert dest.read_text() == "one\n"
    with pytest.raises(ZeroDivisionError), atomic.atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise ZeroDivisionError
    assert dest.read_text() == "one\n" and os.listdir(dest.parent) == ["a.txt"]


def test_atomic_folder(tmp_path):
    with atomic.atomic_folder(tmp_path / "bundle") as work:
        (work / "x.txt").write_text("x")
        assert atomic.is_temporary(work) and not (tmp_path / "bundle").exists()
    assert (tmp_path / "bundle" / "x.txt").read_text() == "x"
    with pytest.raises(KeyboardInterrupt), atomic.atomic_folder(tmp_path / "other") as work:
        raise KeyboardInterrupt
    assert sorted(os.listdir(tmp_path)) == ["bundle"]


# ---------------------------------------------------------------------------- devices
def test_devices():
    assert resolve_device("cpu") == torch.device("cpu") and "cpu" in available_devices()
    with pytest.raises(DeviceError, match="'gpu' is not a device name; available here: cpu"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="needs CUDA"):
            resolve_device("cuda")
    with pytest.raises(DeviceError):
        audiosr_core.load("lite", device="cuda:99")


# ------------------------------------------------------------------------ front door
def test_load_is_the_front_door_and_classes_load_only_their_own(tiny_audiosr_dir):
    from audiosr_core import AudioSR, LiteSR

    assert isinstance(audiosr_core.load(), LiteSR)
    assert audiosr_core.DEFAULT_MODEL == "lite"
    assert isinstance(audiosr_core.load(tiny_audiosr_dir), AudioSR)
    assert isinstance(AudioSR.from_pretrained(tiny_audiosr_dir), AudioSR)
    with pytest.raises(WeightsError, match=r"is the lite model.*audiosr_core.load\('lite'\)"):
        AudioSR.from_pretrained("lite")
    with pytest.raises(WeightsError, match="is not a lite model folder"):
        LiteSR.from_pretrained(tiny_audiosr_dir)
    with pytest.raises(WeightsError, match="is not a lite model folder"):
        LiteSR.from_pretrained("basic")              # refused before any download
