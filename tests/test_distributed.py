"""``--engine ray`` / :mod:`audiosr_core.distributed` on a local Ray started by these tests
(2 CPUs, bounded time): the same files and report as the local run, resumable after the driver
is killed, complete when an actor is killed, Hugging Face datasets and URLs in and out."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiosr_core.cli import main
from audiosr_core.rates import output_length

from conftest import f32_atol


def _require(name: str):
    """The ``ray`` extra's modules: skipped with the install command when missing, a failure
    under ``CI=true`` (``make test`` installs them)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        msg = f"{name} is not installed ({exc}); install it with pip install -e '.[ray]'"
        if os.environ.get("CI") == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg, allow_module_level=True)


ray = _require("ray")
datasets = _require("datasets")

pytestmark = pytest.mark.slow

#: Mixed inputs: (name, rate, seconds, channels). 0.3 s to 90 s, 8-48 kHz, mono and stereo.
MIXED = [("a/s08k_mono", 8000, 0.3, 1), ("a/s11k_st", 11025, 1.7, 2), ("a/s16k", 16000, 2.0, 1),
         ("a/s16k_st", 16000, 3.1, 2), ("a/s22k", 22050, 0.9, 1), ("a/s24k_st", 24000, 4.0, 2),
         ("a/s32k", 32000, 2.5, 1), ("a/s44k_st", 44100, 1.2, 2), ("a/s48k", 48000, 1.0, 1),
         ("b/long16k", 16000, 90.0, 1), ("b/long22k_st", 22050, 35.0, 2),
         ("b/m12k", 12000, 5.0, 1), ("b/m8k_st", 8000, 6.0, 2), ("b/quiet", 16000, 1.0, 1),
         ("b/silent", 16000, 1.0, 1), ("b/dc", 16000, 1.0, 1), ("c/s16k_b", 16000, 0.5, 2),
         ("c/s22k_b", 22050, 7.0, 1), ("c/s32k_b", 32000, 3.0, 2), ("c/s44k_b", 44100, 2.0, 1)]
CPUS = 2


def _write_clip(path: Path, rate: int, seconds: float, channels: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = max(1, int(rate * seconds))
    spec = np.fft.rfft(rng.standard_normal((channels, n)), axis=-1)
    spec[:, np.fft.rfftfreq(n, 1 / rate) > 0.42 * rate] = 0     # content ends below Nyquist
    x = np.fft.irfft(spec, n, axis=-1)
    x = 0.3 * x / max(np.abs(x).max(), 1e-9)
    if path.stem == "quiet":
        x *= 0.01
    elif path.stem == "silent":
        x[:] = 0
    elif path.stem == "dc":
        x[:] = 0.2
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.T, rate, subtype="PCM_16")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "in"
    for seed, (name, rate, seconds, channels) in enumerate(MIXED):
        _write_clip(root / f"{name}.wav", rate, seconds, channels, seed)
    (root / "c" / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    (root / "c" / "empty.flac").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (a run joins it instead of starting its own)."""
    ray.init(num_cpus=CPUS, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield
    ray.shutdown()


def _outputs(folder: Path) -> dict[str, np.ndarray]:
    return {p.relative_to(folder).as_posix(): sf.read(p, dtype="float32", always_2d=True)[0]
            for p in sorted(folder.rglob("*.wav"))}


def _results(report: Path) -> dict[str, tuple]:
    """input name -> (result, statuses, cutoffs) of a --report file."""
    data = json.loads(report.read_text())
    return {Path(f["input"]).name: (f["result"], f.get("status"), f.get("cutoff_hz"))
            for f in data["files"]}


def test_ray_writes_the_local_runs_files_and_report_with_lite(corpus, tmp_path, local_ray,
                                                               capsys):
    local, distributed = tmp_path / "local", tmp_path / "ray"
    code_local = main(["enhance", str(corpus), "-o", str(local), "--report",
                       str(tmp_path / "local.json"), "-q"])
    err_local = capsys.readouterr().err
    code_ray = main(["enhance", str(corpus), "-o", str(distributed), "--engine", "ray",
                     "--workers", "2", "--report", str(tmp_path / "ray.json"), "-q"])
    err_ray = capsys.readouterr().err
    assert code_local == code_ray == 1                        # the two corrupt files
    summary = "20 enhanced, 0 skipped (output exists; --overwrite to redo), 2 failed"
    assert summary in err_local and summary in err_ray
    a, b = _outputs(local), _outputs(distributed)
    assert sorted(a) == sorted(b) and len(a) == 20
    for name in a:
        assert a[name].shape == b[name].shape, name
        # the same code on another process: differences only from thread counts, 1e-6
        np.testing.assert_allclose(b[name], a[name], rtol=0, atol=1e-6, err_msg=name)
    assert _results(tmp_path / "local.json") == _results(tmp_path / "ray.json")
    lines = [json.loads(x) for x in (distributed / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == 22 and {x["status"] for x in lines} == {"processed", "failed"}
    long = next(x for x in lines if x["input"].endswith("long16k.wav"))
    assert long["duration_s"] == pytest.approx(90.0) and long["detected_band_hz"][0] > 6000
    assert main(["enhance", str(corpus), "-o", str(distributed), "--engine", "ray", "-q"]) == 1
    assert "0 enhanced, 20 skipped" in capsys.readouterr().err


def test_tiny_diffusion_on_ray_equals_local_within_batching_tolerance(tmp_path, local_ray,
                                                                      tiny_audiosr_dir):
    """A 25 s file has three 10.24 s windows, which go to two actors in batches of two."""
    src = tmp_path / "in"
    for i, (rate, seconds, channels) in enumerate([(16000, 25.0, 1), (22050, 2.0, 2),
                                                   (8000, 0.5, 1)]):
        _write_clip(src / f"d{i}.wav", rate, seconds, channels, 100 + i)
    common = ["--model", str(tiny_audiosr_dir), "--steps", "1", "--guidance-scale", "1", "-q"]
    assert main(["enhance", str(src), "-o", str(tmp_path / "local"), *common]) == 0
    assert main(["enhance", str(src), "-o", str(tmp_path / "ray"), "--engine", "ray",
                 "--workers", "2", "--batch-size", "2", *common]) == 0
    a, b = _outputs(tmp_path / "local"), _outputs(tmp_path / "ray")
    assert sorted(a) == sorted(b) == ["in/d0.wav", "in/d1.wav", "in/d2.wav"]
    for name in a:
        # batched vs one at a time through the tiny networks: float32 reordering, 128 ulps
        np.testing.assert_allclose(b[name], a[name], rtol=0, atol=f32_atol(a[name], 128),
                                   err_msg=name)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_driver_resumes_with_only_the_rest(tmp_path, sig):
    src = tmp_path / "in"
    for i in range(12):
        _write_clip(src / f"g{i:02d}.wav", 16000, 15.0, 1, i)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "audiosr_core", "enhance", str(src), "-o", str(out),
           "--engine", "ray", "--workers", "1", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, start_new_session=True, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while len(list(out.rglob("g*.wav"))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        if sig == signal.SIGKILL:
            os.killpg(proc.pid, sig)                    # the driver and its local Ray
        else:
            proc.send_signal(sig)
        proc.wait(timeout=60)
    before = {p.name: p.stat().st_mtime_ns for p in out.rglob("g*.wav")}
    assert 2 <= len(before) < 12
    for p in out.rglob("g*.wav"):                      # what is visible is complete
        assert sf.info(p).frames == output_length(15 * 16000, 16000)
    report = tmp_path / "again.json"
    rerun = subprocess.run([*cmd, "--report", str(report)], env=env, capture_output=True,
                           text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    results = {Path(f["input"]).name: f["result"] for f in json.loads(report.read_text())["files"]}
    assert sorted(n for n, r in results.items() if r == "skipped") == sorted(before)
    assert sum(r == "processed" for r in results.values()) == 12 - len(before)
    assert {p.name: p.stat().st_mtime_ns for p in out.rglob("g*.wav") if p.name in before} \
        == before
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == sorted(
        [f"g{i:02d}.wav" for i in range(12)] + ["manifest.jsonl"])


def test_a_killed_actor_is_replaced_and_every_file_written_once(tmp_path, local_ray):
    import psutil

    from audiosr_core.distributed import DatasetJob, RayConfig

    src = tmp_path / "in"
    for i in range(10):
        _write_clip(src / f"k{i}.wav", 16000, 12.0, 1, i)
    killed: list[int] = []

    def kill_an_actor(entry: dict) -> None:
        if killed:
            return
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if any("_WindowWorker" in part for part in (proc.info["cmdline"] or [])):
                os.kill(proc.info["pid"], signal.SIGKILL)
                killed.append(proc.info["pid"])
                return

    job = DatasetJob([str(src)], str(tmp_path / "out"), ray=RayConfig(workers=2),
                     progress=False, on_file=kill_an_actor)
    run = job.run()
    assert killed, "no actor process was found to kill"
    assert run.counts == {"processed": 10, "skipped": 0, "failed": 0}
    lines = [json.loads(x) for x in (tmp_path / "out" / "manifest.jsonl").read_text()
             .splitlines()]
    assert sorted(x["output"] for x in lines) == sorted({x["output"] for x in lines})
    for x in lines:
        assert sf.info(x["output"]).frames == output_length(12 * 16000, 16000)


def test_a_saved_hugging_face_dataset_becomes_a_48k_dataset(tmp_path, local_ray):
    import io

    from audiosr_core.distributed import enhance_dataset

    cells, lengths = [], []
    for i, (rate, seconds) in enumerate([(16000, 1.0), (22050, 0.7), (8000, 2.0)]):
        path = tmp_path / f"clip{i}.flac"
        _write_clip(path, rate, seconds, 1, i)
        cells.append({"bytes": path.read_bytes(), "path": path.name})
        lengths.append(output_length(int(rate * seconds), rate))
    ds = datasets.Dataset.from_dict({"audio": cells, "text": ["one", "two", "three"]})
    ds = ds.cast_column("audio", datasets.Audio(decode=False))
    ds.save_to_disk(tmp_path / "ds")
    run = enhance_dataset([], tmp_path / "out", hf_dataset=tmp_path / "ds", progress=False)
    assert run.counts["processed"] == 3
    again = datasets.load_from_disk(tmp_path / "out" / "dataset")
    assert again["text"] == ["one", "two", "three"]
    assert again.features["audio"].sampling_rate == 48000
    again = again.cast_column("audio", datasets.Audio(decode=False))
    for cell, n in zip(again["audio"], lengths, strict=True):
        data, rate = sf.read(io.BytesIO(cell["bytes"]))
        assert rate == 48000 and data.shape[0] == n


def test_urls_in_and_out(corpus, tmp_path, local_ray):
    """Any pyarrow filesystem URL: here file://, through the same code as s3:// or gs://."""
    from audiosr_core.distributed import enhance_dataset

    folder = corpus / "a"
    run = enhance_dataset([f"file://{folder}"], f"file://{tmp_path / 'out'}", progress=False)
    assert run.counts == {"processed": 9, "skipped": 0, "failed": 0}
    assert sorted(_outputs(tmp_path / "out")) == sorted(f"a/{p.stem}.wav"
                                                        for p in folder.glob("*.wav"))
    again = enhance_dataset([f"file://{folder}"], f"file://{tmp_path / 'out'}", progress=False)
    assert again.counts == {"processed": 0, "skipped": 9, "failed": 0}


def test_an_unreachable_cluster_is_a_clear_error_not_a_hang(tmp_path, corpus, capsys):
    t0 = time.monotonic()
    code = main(["enhance", str(corpus / "a"), "-o", str(tmp_path / "out"), "--engine", "ray",
                 "--ray-address", "127.0.0.1:9", "-q"])
    assert code == 2 and time.monotonic() - t0 < 30
    assert "cannot reach the Ray cluster at 127.0.0.1:9" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_local_engine_never_imports_ray(corpus, tmp_path):
    code = ("import sys; from audiosr_core.cli import main; "
            f"assert main(['enhance', {str(corpus / 'a')!r}, '-o', {str(tmp_path)!r}, '-q']) == 0; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_progress_callback_sees_every_file_once(tmp_path, local_ray):
    from audiosr_core.distributed import enhance_dataset

    src = tmp_path / "in"
    for i in range(4):
        _write_clip(src / f"p{i}.wav", 16000, 1.0, 1, i)
    seen: list[str] = []
    lock = threading.Lock()

    def record(entry: dict) -> None:
        with lock:
            seen.append(Path(entry["input"]).name)

    enhance_dataset([str(src)], tmp_path / "out", progress=False, on_file=record)
    assert sorted(seen) == [f"p{i}.wav" for i in range(4)]
