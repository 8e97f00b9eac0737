"""The ``audiosr-plug`` command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from audiosr_core import __version__
from audiosr_core.cli import main

from conftest import f32_atol


@pytest.fixture
def band_limited_stereo(tmp_path):
    """2 s at 16 kHz: channel 0 noise up to ~3 kHz, channel 1 digital silence."""
    rng = np.random.default_rng(0)
    spec = np.fft.rfft(rng.standard_normal(32000))
    spec[np.fft.rfftfreq(32000, 1 / 16000) > 3000] = 0
    left = 0.25 * np.fft.irfft(spec, 32000) / np.abs(np.fft.irfft(spec, 32000)).max()
    path = tmp_path / "clip.wav"
    sf.write(path, np.stack([left, np.zeros(32000)], axis=1), 16000, subtype="PCM_16")
    return path


def test_info_reports_each_channel(band_limited_stereo, capsys):
    assert main(["info", str(band_limited_stereo)]) == 0
    out = capsys.readouterr().out
    assert "16000 Hz, 2.00 s, 2 channels, WAV PCM_16" in out
    assert "ch0: peak -12.0 dBFS" in out
    assert "-> would be enhanced" in out
    assert "ch1: peak -inf dBFS, RMS -inf dBFS" in out and "near-silent" in out


def test_info_json_and_bad_files(band_limited_stereo, tmp_path, capsys):
    corrupt = tmp_path / "broken.flac"
    corrupt.write_bytes(b"not audio at all" * 10)
    code = main(["info", "--json", str(band_limited_stereo), str(corrupt)])
    assert code == 1
    data = json.loads(capsys.readouterr().out)
    good, bad = data
    assert good["sample_rate"] == 16000 and good["channels"] == 2
    ch0, ch1 = good["per_channel"]
    assert 2700 < ch0["bandwidth_hz"] < 3100 and ch0["status"] == "band-limited"
    assert ch1["status"] == "silent" and ch1["peak_dbfs"] is None
    assert "broken.flac" in bad["error"] and "cannot be decoded" in bad["error"]


def test_info_keeps_going_after_a_missing_file(band_limited_stereo, capsys):
    assert main(["info", "missing.wav", str(band_limited_stereo)]) == 1
    captured = capsys.readouterr()
    assert "missing.wav: file not found" in captured.err
    assert "Traceback" not in captured.err
    assert "clip.wav" in captured.out


def test_version_and_help_from_the_installed_command():
    exe = [sys.executable, "-m", "audiosr_core"]
    version = subprocess.run([*exe, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"audiosr-plug {__version__}"
    helptext = subprocess.run([*exe, "info", "--help"], capture_output=True, text=True, check=True)
    assert "--json" in helptext.stdout and "bandwidth" in helptext.stdout
    usage = subprocess.run(exe, capture_output=True, text=True)
    assert usage.returncode == 2 and "COMMAND" in usage.stderr


def test_convert_the_parity_checkpoint_then_enhance_with_it(parity_dir, tmp_path, capsys):
    """`audiosr-plug convert` on the official fixture's checkpoint gives a folder that
    `enhance --model FOLDER` runs (the weights themselves are checked in test_weights.py)."""
    out = tmp_path / "models" / "tiny"
    assert main(["convert", str(parity_dir / "checkpoint.ckpt"), str(out)]) == 0
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    src = tmp_path / "in.wav"
    x = np.random.default_rng(0).standard_normal(8000)
    x = scipy.signal.sosfilt(scipy.signal.butter(8, 3000, fs=16000, output="sos"), x)
    sf.write(src, 0.25 * x / np.abs(x).max(), 16000, subtype="PCM_16")
    capsys.readouterr()
    assert main(["enhance", str(src), "-o", str(tmp_path / "out"), "--model", str(out),
                 "--steps", "2", "-q"]) == 0, capsys.readouterr().err
    y, rate = sf.read(tmp_path / "out" / "in.wav")
    assert rate == 48000 and y.shape == (24000,) and np.abs(y).max() > 0


# The tests below only need some diffusion model folder: conftest's tiny random-weight one.
@pytest.fixture(scope="module")
def tiny_model_dir(tiny_audiosr_dir):
    return tiny_audiosr_dir


def test_enhance_folder_mirrors_tree_skips_existing_and_reports_failures(
        tiny_model_dir, band_limited_stereo, tmp_path, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    data, rate = sf.read(band_limited_stereo)
    sf.write(src / "a.wav", data[:8000], rate)
    sf.write(src / "sub" / "b.flac", data[:8000, 0], rate)
    (src / "sub" / "broken.wav").write_bytes(b"RIFF....garbage")
    (src / "notes.txt").write_text("not audio, not picked up")
    out = tmp_path / "out"
    args = ["enhance", str(src), "-o", str(out), "--model", str(tiny_model_dir), "--steps", "2",
            "-q"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "2 enhanced, 0 skipped" in err and "1 failed" in err and "broken.wav" in err
    a, rate_a = sf.read(out / "in" / "a.wav")
    b, _ = sf.read(out / "in" / "sub" / "b.wav")
    assert rate_a == 48000 and a.shape == (24000, 2) and b.shape == (24000,)
    mtime = (out / "in" / "a.wav").stat().st_mtime_ns
    assert main(args) == 1
    assert "0 enhanced, 2 skipped" in capsys.readouterr().err
    assert (out / "in" / "a.wav").stat().st_mtime_ns == mtime


def test_enhance_refuses_bad_options_and_writing_over_inputs(tiny_model_dir, tmp_path, capsys):
    src = tmp_path / "x.wav"
    sf.write(src, np.zeros(800), 8000)
    assert main(["enhance", str(src), "-o", str(tmp_path), "--steps", "3", "--model",
                 str(tiny_model_dir)]) == 2
    assert "steps" in capsys.readouterr().err
    code = main(["enhance", str(src), "-o", str(tmp_path), "--model", str(tiny_model_dir),
                 "--steps", "2", "--overwrite", "-q"])
    assert code == 1
    assert "would overwrite this input file" in capsys.readouterr().err
    assert sf.read(src)[0].shape == (800,)


@pytest.mark.slow  # two CLI runs of 3 files
def test_batch_size_batches_files_and_still_isolates_bad_ones(tiny_model_dir, tmp_path, capsys,
                                                             monkeypatch):
    """--batch-size 2: files are taken two at a time. In the group [a, b_nan] the NaN file fails
    on its own and a is redone alone; the group [c, d] (two rates, one padded length) goes
    through one enhance_many call, sharing network calls. Every output equals a run with
    --batch-size 1 up to float rounding."""
    from audiosr_core.pipeline import AudioSR

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for name, rate, seconds in (("a", 16000, 1.0), ("c", 16000, 1.0), ("d", 22050, 2.0)):
        x = scipy.signal.sosfilt(scipy.signal.butter(8, 0.35 * rate, fs=rate, output="sos"),
                                 rng.standard_normal(int(rate * seconds)))
        sf.write(src / f"{name}.wav", 0.2 * x / np.abs(x).max(), rate, subtype="FLOAT")
    sf.write(src / "b_nan.wav", np.full(4000, np.nan), 16000, subtype="FLOAT")
    together = []
    enhance_many = AudioSR.enhance_many

    def spy(self, items, *args, **kwargs):
        together.append(len(items))
        return enhance_many(self, items, *args, **kwargs)

    monkeypatch.setattr(AudioSR, "enhance_many", spy)
    runs = {}
    for size in (1, 2):
        together.clear()
        out = tmp_path / f"out{size}"
        code = main(["enhance", str(src), "-o", str(out), "--model", str(tiny_model_dir),
                     "--steps", "2", "--guidance-scale", "1", "--batch-size", str(size),
                     "--subtype", "FLOAT", "-q"])
        err = capsys.readouterr().err
        assert code == 1 and "3 enhanced, 0 skipped" in err and "1 failed" in err
        assert "b_nan.wav" in err and "NaN" in err
        assert max(together) == size            # c and d together only with --batch-size 2
        runs[size] = {n: sf.read(out / "in" / f"{n}.wav")[0] for n in "acd"}
    for name in "acd":
        assert runs[2][name].shape == runs[1][name].shape
        # batch 2 vs 1 may take other kernels: float32 rounding only, carried through the
        # networks (as KERNEL_ULPS in test_pipeline.py: 128 ulps of the peak)
        np.testing.assert_allclose(runs[2][name], runs[1][name], rtol=0,
                                   atol=f32_atol(runs[1][name], 128))
    assert main(["enhance", str(src), "-o", str(tmp_path / "o"), "--batch-size", "0"]) == 2
    assert "batch_size must be a positive integer" in capsys.readouterr().err


# ------------------------------------------------------------- folder runs with the lite model
def write_band_limited(path, rate=16000, seconds=1.0, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    x = 0.1 * rng.standard_normal((int(rate * seconds), channels))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, rate, subtype="VORBIS" if path.suffix == ".ogg" else "PCM_16")
    return path


def test_list_file_extension_filter_report_mono_and_subtype(tmp_path, capsys):
    src = tmp_path / "in"
    write_band_limited(src / "a.wav", channels=2)
    write_band_limited(src / "deep" / "b.flac", seed=1)
    write_band_limited(src / "c.ogg", seed=2)
    extra = write_band_limited(tmp_path / "elsewhere" / "d.wav", rate=22050, seed=3)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# one path per line\n{extra}\n\n")
    out, report = tmp_path / "out", tmp_path / "run.json"
    code = main(["enhance", str(src), "--list", str(listing), "--ext", "wav,flac", "-o", str(out),
                 "--mono", "--subtype", "16", "--report", str(report), "-q"])
    assert code == 0, capsys.readouterr().err
    data = json.loads(report.read_text())
    assert data["counts"] == {"processed": 3, "skipped": 0, "failed": 0}
    assert not data["interrupted"] and data["options"]["channels"] == "mono"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav")) == [
        "d.wav", "in/a.wav", "in/deep/b.wav"]                     # c.ogg filtered out
    info = sf.info(out / "in" / "a.wav")
    assert info.channels == 1 and info.subtype == "PCM_16" and info.samplerate == 48000
    assert info.frames == 48000
    assert {f["result"] for f in data["files"]} == {"processed"}


def test_bad_extension_and_missing_list_are_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["enhance", str(tmp_path), "-o", str(tmp_path / "o"), "--ext", "docx"])
    assert exc.value.code == 2 and "unsupported extension" in capsys.readouterr().err
    assert main(["enhance", "--list", str(tmp_path / "nope.txt"), "-o", str(tmp_path)]) == 2
    assert "cannot read list file" in capsys.readouterr().err


def test_bad_files_are_reported_and_the_rest_processed(tmp_path, capsys):
    src = tmp_path / "in"
    write_band_limited(src / "good.wav")
    (src / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage" * 4)
    (src / "empty.wav").write_bytes(b"")
    nan = np.full((4000, 1), np.nan)
    sf.write(src / "nan.wav", nan, 16000, subtype="FLOAT")
    write_band_limited(src / "slow.wav", rate=2000)
    report = tmp_path / "run.json"
    assert main(["enhance", str(src), "-o", str(tmp_path / "out"), "--report", str(report),
                 "-q"]) == 1
    err = capsys.readouterr().err
    assert "1 enhanced, 0 skipped" in err and "4 failed" in err and "Traceback" not in err
    reasons = {Path(f["input"]).name: f.get("reason", "") for f in json.loads(
        report.read_text())["files"]}
    assert "cannot be decoded" in reasons["corrupt.wav"]
    assert reasons["empty.wav"].startswith("is an empty file (0 bytes)")
    assert "NaN" in reasons["nan.wav"]
    assert "2000 Hz" in reasons["slow.wav"]
    assert reasons["good.wav"] == ""
    assert sorted(p.name for p in (tmp_path / "out" / "in").iterdir()) == ["good.wav"]


@pytest.mark.slow  # a subprocess on 12 x 20 s files, interrupted, then resumed
def test_interrupted_run_leaves_no_partial_files_and_resumes(tmp_path):
    import signal
    import time

    src = tmp_path / "in"
    for i in range(12):
        write_band_limited(src / f"f{i:02d}.wav", seconds=20.0, seed=i)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "audiosr_core", "enhance", str(src), "-o", str(out), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.rglob("*.wav")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err
    done = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert done and all(name.endswith(".wav") and not name.startswith(".") for name in done)
    assert len(done) < 12                                  # stopped half-way
    for p in out.rglob("*.wav"):
        assert sf.info(p).frames == 20 * 48000             # complete files only
    report = tmp_path / "run.json"
    assert main(["enhance", str(src), "-o", str(out), "-q", "--report", str(report)]) == 0
    counts = json.loads(report.read_text())["counts"]
    assert counts == {"processed": 12 - len(done), "skipped": len(done), "failed": 0}
