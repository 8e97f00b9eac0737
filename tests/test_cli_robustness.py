"""The command line on odd folder layouts, odd names and interrupted runs: nothing lost,
nothing overwritten, nothing written outside the output folder, no tracebacks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiosr_core import atomic, audio
from audiosr_core.cli import main


def band_limited(path: Path, rate: int = 16000, seconds: float = 0.5, seed: int = 0,
                 channels: int = 1) -> Path:
    """Noise low-passed at ~3 kHz, written as 16-bit audio (any extension soundfile writes)."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    spec = np.fft.rfft(rng.standard_normal((channels, n)), axis=-1)
    spec[:, np.fft.rfftfreq(n, 1 / rate) > 3000] = 0
    x = np.fft.irfft(spec, n, axis=-1)
    x = 0.3 * x / np.abs(x).max()
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.T, rate, subtype="PCM_16")
    return path


def files_under(folder: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under ``folder``."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run(args: list[str], cwd: Path | None = None) -> int:
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return main(["enhance", *args, "-q"])
    finally:
        os.chdir(old)


# ---------------------------------------------------------------- outputs stay inside OUTDIR
def test_dotdot_input_never_writes_outside_the_output_folder(tmp_path, capsys):
    """``cd p/sub && enhance .. -o out --overwrite`` once replaced p/notes.wav."""
    p = tmp_path / "p"
    notes = band_limited(p / "notes.wav", seed=1)
    band_limited(p / "sub" / "take.wav", seed=2)
    before = notes.read_bytes()
    assert run(["..", "-o", "out", "--overwrite"], cwd=p / "sub") == 0
    assert notes.read_bytes() == before
    out = p / "sub" / "out"
    assert sorted(files_under(out)) == ["p/notes.wav", "p/sub/take.wav"]
    outside = {k for k in files_under(tmp_path) if not k.startswith("p/sub/out/")}
    assert outside == {"p/notes.wav", "p/sub/take.wav"}


@pytest.mark.parametrize("spelling", [".", "./", "abs", "link", "../music/"])
def test_folder_spellings_mirror_into_the_output_folder(tmp_path, spelling):
    music = tmp_path / "music"
    band_limited(music / "a.wav")
    band_limited(music / "deep" / "b.flac", seed=3)
    (tmp_path / "link").symlink_to(music, target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    cwd = {"abs": tmp_path, ".": music, "./": music, "link": tmp_path,
           "../music/": tmp_path / "elsewhere"}[spelling]
    given = str(music) if spelling == "abs" else spelling
    out = tmp_path / "out"
    assert run([given, "-o", str(out)], cwd=cwd) == 0
    name = "link" if spelling == "link" else "music"
    assert sorted(files_under(out)) == [f"{name}/a.wav", f"{name}/deep/b.wav"]


# ----------------------------------------------------------------------------- collisions
def test_same_stem_in_one_folder_is_refused_naming_both(tmp_path, capsys):
    src = tmp_path / "in"
    band_limited(src / "a.wav", seed=1)
    band_limited(src / "a.flac", seed=2)
    band_limited(src / "b.wav", seed=3)
    report = tmp_path / "r.json"
    for extra in ([], ["--overwrite"]):
        assert run([str(src), "-o", str(tmp_path / "out"), "--report", str(report), *extra]) == 1
        err = capsys.readouterr().err
        assert "1 enhanced" in err or "1 skipped" in err
        assert "2 failed" in err
        for me, other in (("a.wav", "a.flac"), ("a.flac", "a.wav")):
            line = next(x for x in err.splitlines() if x.startswith(f"  failed: {src / me}:"))
            assert str(src / other) in line and "would also be written to" in line
        files = json.loads(report.read_text())["files"]
        assert {Path(f["input"]).name: f["result"] for f in files} == {
            "a.wav": "failed", "a.flac": "failed", "b.wav": "processed" if not extra
            else "processed"}
    assert sorted(files_under(tmp_path / "out")) == ["in/b.wav"]


def test_same_name_from_two_folders_is_refused_and_a_file_named_twice_runs_once(tmp_path,
                                                                                 capsys):
    one = band_limited(tmp_path / "d1" / "x.wav", seed=1)
    two = band_limited(tmp_path / "d2" / "x.wav", seed=2)
    out = tmp_path / "out"
    assert run([str(one), str(two), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "0 enhanced" in err and "2 failed" in err and not out.exists()
    assert run([str(one), str(one), str(tmp_path / "d1" / ".." / "d1" / "x.wav"), "-o",
                str(out)]) == 0
    err = capsys.readouterr().err
    assert "1 enhanced" in err and "input(s) named twice, enhanced once" in err


# -------------------------------------------------------------------- outputs inside inputs
@pytest.mark.parametrize("layout", ["same", "inside", "dot"])
def test_output_folder_inside_the_input_folder_resumes_cleanly(tmp_path, capsys, layout):
    music = tmp_path / "music"
    band_limited(music / "a.wav", seed=1)
    band_limited(music / "sub" / "b.wav", seed=2)
    args, cwd = {"same": (["music", "-o", "music"], tmp_path),
                 "inside": (["music", "-o", "music/enhanced"], tmp_path),
                 "dot": ([".", "-o", "out"], music)}[layout]
    assert run(args, cwd=cwd) == 0
    assert "2 enhanced, 0 skipped" in capsys.readouterr().err
    first = files_under(tmp_path)
    for _ in range(2):
        assert run(args, cwd=cwd) == 0
        assert "0 enhanced, 2 skipped" in capsys.readouterr().err
        assert files_under(tmp_path) == first          # nothing nested deeper, nothing new


def test_earlier_outputs_written_beside_their_inputs_are_not_taken_as_inputs(tmp_path, capsys):
    """``enhance music/raw -o music`` writes music/raw/x.wav beside music/raw/x.flac; a rerun
    must not enhance that output (its software tag marks it)."""
    raw = tmp_path / "music" / "raw"
    band_limited(raw / "x.flac")
    assert run(["music/raw", "-o", "music"], cwd=tmp_path) == 0
    assert (raw / "x.wav").is_file() and audio.is_enhanced_output(raw / "x.wav")
    assert not audio.is_enhanced_output(raw / "x.flac")
    capsys.readouterr()
    assert run(["music/raw", "-o", "music"], cwd=tmp_path) == 0
    err = capsys.readouterr().err
    assert "0 enhanced, 1 skipped" in err and "1 earlier output(s) in the input folders" in err


# ----------------------------------------------------- hidden files and leftover temporaries
def test_hidden_files_and_leftover_temporaries_are_never_inputs(tmp_path, capsys):
    src = tmp_path / "in"
    band_limited(src / "a.wav")
    (src / "._a.wav").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 80)   # macOS AppleDouble
    band_limited(src / ".hidden" / "c.wav")
    out = tmp_path / "out"
    stale = out / "in" / ".a.wav.0123abcd.part"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a file")
    stale_scratch = out / ".b.wav.89abcdef.part"
    stale_scratch.write_bytes(b"RIFF")
    assert run([str(src), str(out), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "removed" in err and "left by an interrupted run" in err
    assert "1 enhanced, 0 skipped (output exists; --overwrite to redo), 0 failed" in err
    assert not stale.exists() and not stale_scratch.exists()
    assert sorted(files_under(out)) == ["in/a.wav"]


def test_sweep_leaves_a_live_writers_file_alone(tmp_path):
    with atomic.atomic_path(tmp_path / "x.wav") as tmp:
        tmp.write_bytes(b"being written")
        assert atomic.is_temporary(tmp)
        assert atomic.sweep(tmp_path) == []            # its writer still holds the lock
        assert tmp.exists()
    assert (tmp_path / "x.wav").read_bytes() == b"being written"
    with atomic.scratch_path(tmp_path / "y.wav") as scratch:
        assert atomic.is_temporary(scratch) and atomic.sweep(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.wav"]


def test_sigkill_during_a_streamed_write_then_rerun(tmp_path):
    """A run killed outright while streaming leaves its temporary files; the next run removes
    them, does not take them as inputs and completes."""
    src = band_limited(tmp_path / "in" / "long.wav", seconds=8.0)
    out = tmp_path / "out"
    script = f"""
import time, audiosr_core
from audiosr_core.lite_pipeline import LiteSR
sr = audiosr_core.load("lite")
sr.stream_above_s = 0.0
sr.window_s = 4.0
original = LiteSR.extend
def slow(self, *args, **kwargs):
    time.sleep(0.5)
    return original(self, *args, **kwargs)
LiteSR.extend = slow
sr.enhance_file({str(src)!r}, {str(out / "in" / "long.wav")!r})
"""
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while not any(atomic.is_temporary(p) for p in out.rglob("*")):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    left = [p for p in out.rglob("*") if atomic.is_temporary(p)]
    assert left and not (out / "in" / "long.wav").exists()
    assert main(["enhance", str(tmp_path / "in"), str(out), "-o", str(out), "-q"]) == 0
    assert sorted(files_under(out)) == ["in/long.wav"]
    assert sf.info(out / "in" / "long.wav").frames == 8 * 48000


# ------------------------------------------------------------ checks before work, per file
def test_report_into_a_missing_folder_is_refused_before_any_work(tmp_path, capsys):
    band_limited(tmp_path / "a.wav")
    code = run([str(tmp_path / "a.wav"), "-o", str(tmp_path / "out"), "--report",
                str(tmp_path / "nope" / "r.json")])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("batch", ["1", "2", "3"])
def test_an_output_that_cannot_be_written_fails_alone_with_any_batch_size(tmp_path, capsys,
                                                                          batch):
    src = tmp_path / "in"
    for i in range(3):
        band_limited(src / f"f{i}.wav", seed=i)
    out = tmp_path / "out"
    (out / "in" / "f1.wav").mkdir(parents=True)       # the output name is taken by a folder
    report = tmp_path / "r.json"
    assert run([str(src), "-o", str(out), "--overwrite", "--batch-size", batch, "--report",
                str(report)]) == 1
    err = capsys.readouterr().err
    assert "2 enhanced, 0 skipped (output exists; --overwrite to redo), 1 failed" in err
    results = {Path(f["input"]).name: f["result"] for f in json.loads(report.read_text())["files"]}
    assert results == {"f0.wav": "processed", "f1.wav": "failed", "f2.wav": "processed"}


@pytest.mark.parametrize("device", ["gpu", "cuda", "cuda:7", "tpu"])
def test_a_device_this_machine_lacks_is_a_usage_error(tmp_path, capsys, device):
    import torch

    if device.startswith("cuda") and torch.cuda.is_available() and device == "cuda":
        pytest.skip("this machine has CUDA")
    band_limited(tmp_path / "a.wav")
    assert run([str(tmp_path / "a.wav"), "-o", str(tmp_path / "out"), "--device", device]) == 2
    err = capsys.readouterr().err
    assert "available here: cpu" in err and "Traceback" not in err


def test_failure_lines_name_the_file_once(tmp_path, capsys):
    (tmp_path / "fx").mkdir()
    (tmp_path / "fx" / "empty.wav").write_bytes(b"")
    assert run(["fx", "-o", "out"], cwd=tmp_path) == 1
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("  failed:"))
    assert line == "  failed: fx/empty.wav: is an empty file (0 bytes); the export or " \
                   "download that made it did not finish; make it again"


# ---------------------------------------------------------------------------- odd names
def test_file_names_that_are_not_utf8(tmp_path, capsys):
    folder = os.fsencode(tmp_path / "in")
    os.mkdir(folder)
    name = os.path.join(folder, b"caf\xe9.wav")
    with open(name, "wb") as fh:
        fh.write(band_limited(tmp_path / "tmp.wav").read_bytes())
    assert main(["info", os.fsdecode(name)]) == 0
    assert "caf\\xe9.wav" in capsys.readouterr().out
    assert run([os.fsdecode(folder), "-o", str(tmp_path / "out")]) == 0
    assert "1 enhanced" in capsys.readouterr().err
    written = os.listdir(os.fsencode(tmp_path / "out" / "in"))
    assert written == [b"caf\xe9.wav"]
    got, rate = sf.read(os.path.join(os.fsencode(tmp_path / "out" / "in"), written[0]))
    assert rate == 48000 and got.shape == (24000,)


# ------------------------------------------------------------------------------ tiny files
def test_info_on_tiny_and_truncated_files_reports_them_all(tmp_path, capsys):
    one = tmp_path / "one.wav"
    sf.write(one, np.array([0.5]), 16000)
    ten_ms = tmp_path / "ten_ms.wav"
    sf.write(ten_ms, 0.1 * np.random.default_rng(0).standard_normal(441), 44100)
    whole = band_limited(tmp_path / "whole.wav").read_bytes()
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(whole[:44 + 2 * 5])           # header + 5 frames
    good = band_limited(tmp_path / "good.wav")
    code = main(["info", str(one), str(ten_ms), str(truncated), str(good)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and code == 0
    for path in (one, ten_ms, truncated, good):
        assert str(path) in captured.out
    assert main(["info", "--json", str(one), str(truncated)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["frames"] for d in data] == [1, 5]


def test_help_says_hidden_files_are_skipped(capsys):
    with pytest.raises(SystemExit):
        main(["enhance", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "hidden" in text and "collision" in text
