"""``audiosr-plug app``: the job API through Flask's test client (fast), the queue, the safety
rules, the command, and one end-to-end run in headless Chromium (upload, enhance, download,
record from a fake microphone; screenshot in ``$AUDIOSR_APP_SCREENSHOT``, e.g. docs/app.png).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiosr_core import app as app_pkg
from audiosr_core.app import RunningApp, create_app
from audiosr_core.app.catalogue import build_catalogue
from audiosr_core.app.processing import (
    WindowCounter,
    download_name,
    make_options,
    rate_tag,
)
from audiosr_core.enhancer import Enhancer
from audiosr_core.errors import AudioInputError, WeightsError
from audiosr_core.rates import SAMPLE_RATE, output_length
from audiosr_core.spectrogram import encode_png

REPO = Path(__file__).resolve().parents[1]
HEADERS = {"X-Requested-With": "audiosr-plug-app"}
RATE = 16000


def speech_like(seconds: float = 1.5, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """Voiced bursts (harmonics of a gliding pitch) and noise, band-limited below 7 kHz."""
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 30))
    envelope = (np.sin(2 * np.pi * 2.5 * t) > -0.2).astype(float)
    x = 0.25 * voiced * envelope + 0.02 * rng.standard_normal(t.size)
    x = sosfilt(butter(10, 6800, fs=rate, output="sos"), x)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def wav_bytes(x: np.ndarray, rate: int = RATE) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture
def make_client(tmp_path):
    """``make_client(**create_app kwargs) -> (app, client)``; every app is closed after."""
    apps = []

    def make(**kwargs):
        kwargs.setdefault("work_dir", tmp_path / f"work{len(apps)}")
        app = create_app(**kwargs)
        apps.append(app)
        return app, app.test_client()

    yield make
    for app in apps:
        app.extensions["audiosr_app"].close()


def post(client, data: bytes, name: str = "voice.wav", **fields):
    form = {"audio": (io.BytesIO(data), name), **{k: str(v) for k, v in fields.items()}}
    return client.post("/api/jobs", data=form, headers=HEADERS,
                       content_type="multipart/form-data")


def wait_for(client, job_id: str, states=("done", "failed"), timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get(f"/api/jobs/{job_id}").get_json()
        if status["state"] in states:
            return status
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {states}: {status}")


# ------------------------------------------------------------------------ the job API
def test_upload_poll_download_gives_48k_of_the_right_length(make_client):
    _, client = make_client()
    x = speech_like()
    page = client.get("/")
    assert page.status_code == 200 and b'type="file"' in page.data
    assert b'accept="audio/*' in page.data and b"http" not in page.data.split(b"<body>")[0]
    resp = post(client, wav_bytes(x), "my voice.wav")
    assert resp.status_code == 202, resp.get_json()
    status = wait_for(client, resp.get_json()["id"])
    assert status["state"] == "done", status
    result = status["result"]
    assert result["download_name"] == "my voice_48k.wav"
    assert result["bands"][0]["status"] == "enhanced"
    assert 5000 < result["bands"][0]["edge_hz"] < 8000
    assert result["spectrogram"]["top_hz"] == SAMPLE_RATE / 2

    download = client.get(status["urls"]["download"])
    assert download.status_code == 200
    assert 'filename="my voice_48k.wav"' in download.headers["Content-Disposition"]
    y, rate = sf.read(io.BytesIO(download.data), dtype="float32")
    assert rate == SAMPLE_RATE and len(y) == output_length(len(x), RATE)

    before = client.get(status["urls"]["audio_before"])
    assert before.status_code == 200 and before.mimetype.startswith("audio/")
    assert sf.info(io.BytesIO(before.data)).samplerate == RATE
    sizes = []
    for role in ("before", "after"):
        png = client.get(status["urls"][f"spectrogram_{role}"])
        assert png.status_code == 200 and png.mimetype == "image/png"
        assert png.data.startswith(b"\x89PNG\r\n\x1a\n")
        sizes.append(png.data[16:24])                 # IHDR width and height
    assert sizes[0] == sizes[1], "before and after must share one picture grid"


def test_flac_at_44k1(make_client):
    _, client = make_client()
    x = speech_like(1.0)
    status = wait_for(client, post(client, wav_bytes(x), "take 2.wav", format="flac",
                                   output_rate=44100).get_json()["id"])
    assert status["state"] == "done", status
    download = client.get(status["urls"]["download"])
    assert 'filename="take 2_44k1.flac"' in download.headers["Content-Disposition"]
    info = sf.info(io.BytesIO(download.data))
    assert info.format == "FLAC" and info.samplerate == 44100
    assert info.frames == output_length(len(x), RATE, 44100)
    assert status["result"]["spectrogram"]["top_hz"] == 22050


def test_upload_over_the_limit_is_413_with_a_clear_message(make_client):
    _, client = make_client(max_upload_mb=0.01)
    resp = post(client, wav_bytes(speech_like(2.0)))
    assert resp.status_code == 413
    body = resp.get_json()
    assert "larger than the 10 KB upload limit" in body["error"]
    assert "--max-upload-mb" in body["error"]
    assert client.get("/api/config").get_json()["max_upload_bytes"] == int(0.01 * 2**20)


@pytest.mark.parametrize("data, expected", [
    (b"RIFF....WAVEfmt this is not really audio" * 4, "cannot be decoded as audio"),
    (b"", "is an empty file (0 bytes)"),
])
def test_corrupt_or_empty_upload_fails_with_the_engines_message(make_client, tmp_path,
                                                                data, expected):
    app, client = make_client()
    status = wait_for(client, post(client, data, "broken.wav").get_json()["id"])
    assert status["state"] == "failed" and expected in status["error"]
    # the engine's own words, with the user's file name instead of the server's path
    probe = tmp_path / "broken.wav"
    probe.write_bytes(data)
    with pytest.raises(AudioInputError) as engine:
        import audiosr_core.audio as audio_io

        audio_io.load(probe)
    assert status["error"] == str(engine.value).replace(str(probe), "broken.wav")
    assert str(app.extensions["audiosr_app"].queue.root) not in status["error"]


def test_unsupported_extension_and_missing_file_are_clear(make_client):
    _, client = make_client()
    status = wait_for(client, post(client, b"x" * 100, "notes.txt").get_json()["id"])
    assert status["state"] == "failed" and "unsupported extension '.txt'" in status["error"]
    assert status["error"].startswith("notes.txt: ")
    resp = client.post("/api/jobs", data={"model": "lite"}, headers=HEADERS)
    assert resp.status_code == 400 and "choose an audio file" in resp.get_json()["error"]


@pytest.mark.parametrize("fields, words", [
    ({"model": "nope"}, "unknown model 'nope'"),
    ({"format": "mp3"}, "format must be one of wav, flac"),
    ({"output_rate": "12345"}, "output rate 12345 Hz is not offered"),
    ({"steps": "0"}, "steps must lie between 1 and 500"),
    ({"seed": "abc"}, "seed must be a number"),
])
def test_bad_settings_are_400(make_client, fields, words):
    _, client = make_client()
    resp = post(client, wav_bytes(speech_like(0.2)), **fields)
    assert resp.status_code == 400 and words in resp.get_json()["error"]


def test_unknown_job_and_path_traversal_are_404_json(make_client, tmp_path):
    _, client = make_client()
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    for url in ("/api/jobs/AAAAAAAAAAAAAAAAAAAAAA", "/api/jobs/nope/download",
                "/api/jobs/..%2F..%2Fsecret.txt", "/api/jobs/%2e%2e%2fx/audio/after",
                "/api/jobs/../x", "/api/jobs/x/spectrogram/..%2F..%2Fsecret.txt.png",
                f"/api/jobs/{'A' * 22}/audio/..%2Fsecret.txt"):
        resp = client.get(url)
        assert resp.status_code == 404, url
        assert resp.is_json and resp.get_json()["status"] == 404, url
        assert b"do not serve" not in resp.data
    assert client.get("/static/..%2F__init__.py").status_code == 404


def test_uploaded_names_never_reach_the_file_system(make_client, tmp_path):
    app, client = make_client()
    status = wait_for(client, post(client, wav_bytes(speech_like(0.5)),
                                   "../../../evil.wav").get_json()["id"])
    assert status["state"] == "done"
    assert status["result"]["download_name"] == "evil_48k.wav"
    root = app.extensions["audiosr_app"].queue.root
    assert not (tmp_path / "evil.wav").exists() and not (root.parent / "evil.wav").exists()
    assert {p.parent for p in root.rglob("*") if p.is_file()} == {root / status["id"]}


def test_requests_from_other_sites_are_refused(make_client):
    _, client = make_client()
    resp = client.post("/api/jobs", data={"audio": (io.BytesIO(b"x"), "a.wav")},
                       content_type="multipart/form-data")
    assert resp.status_code == 403 and "the app's own page" in resp.get_json()["error"]
    rebound = client.get("/api/config", headers={"Host": "evil.example:7860"})
    assert rebound.status_code == 403
    assert client.get("/api/config", headers={"Host": "127.0.0.1:7860"}).status_code == 200
    _, open_client = make_client(local_only=False)
    assert open_client.get("/", headers={"Host": "studio.lan"}).status_code == 200


class Gated(Enhancer):
    """``lite`` that waits for ``gate`` in its networks, recording the order jobs ran in."""

    def __init__(self, inner: Enhancer, gate: threading.Event, log: list[str]) -> None:
        self.inner, self.gate, self.log = inner, gate, log
        self.stream_above_s = inner.stream_above_s
        self.running = threading.Event()

    def planner(self):
        return self.inner.planner()

    def run_windows(self, tasks, options, *, progress=False):
        self.log.append("start")
        self.running.set()
        assert self.gate.wait(20), "the test never opened the gate"
        out = self.inner.run_windows(tasks, options, progress=progress)
        self.log.append("end")
        return out


def test_two_jobs_queue_in_order(make_client, lite):
    gate, log, loaded = threading.Event(), [], threading.Event()
    models: list[Gated] = []

    def loader(source, device):
        models.append(Gated(lite, gate, log))
        loaded.set()
        return models[-1]

    app, client = make_client(loader=loader)
    first = post(client, wav_bytes(speech_like(0.5, seed=1)), "one.wav").get_json()["id"]
    wait_for(client, first, states=("running",))
    assert loaded.wait(10) and models[0].running.wait(10)
    second = post(client, wav_bytes(speech_like(0.5, seed=2)), "two.wav").get_json()["id"]
    queued = client.get(f"/api/jobs/{second}").get_json()
    assert queued["state"] == "queued" and queued["position"] == 1
    assert queued["queue_length"] == 1 and "waiting" in queued["stage"]
    status = client.get(f"/api/jobs/{first}").get_json()
    assert status["state"] == "running" and status["fraction"] is None   # one window
    assert client.get(f"/api/jobs/{first}/download").status_code == 404
    gate.set()
    done = [wait_for(client, job_id) for job_id in (first, second)]
    assert [d["state"] for d in done] == ["done", "done"]
    assert len(models) == 1, "the model must be loaded once"
    assert log == ["start", "end", "start", "end"]
    jobs = [app.extensions["audiosr_app"].queue.get(j) for j in (first, second)]
    assert jobs[1].started >= jobs[0].finished


def test_window_counter_reports_an_honest_fraction(lite, tmp_path):
    from audiosr_core.lite_pipeline import LiteSR

    model = LiteSR(lite.model)
    model.window_s, model.stream_above_s = 3.0, 4.0      # a 10 s file streams in windows
    src = tmp_path / "long.wav"
    sf.write(src, speech_like(10.0), RATE)
    seen: list[tuple[int, int]] = []
    WindowCounter(model, lambda done, planned: seen.append((done, planned))).enhance_file(
        src, tmp_path / "out.wav")
    planned = seen[0][1]
    assert planned >= 3 and seen[0] == (0, planned) and seen[-1] == (planned, planned)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_old_jobs_and_their_files_are_removed(make_client):
    app, client = make_client(keep_jobs=1)
    state = app.extensions["audiosr_app"]
    ids = [wait_for(client, post(client, wav_bytes(speech_like(0.3))).get_json()["id"])["id"]
           for _ in range(2)]
    assert client.get(f"/api/jobs/{ids[0]}").status_code == 404
    assert not (state.queue.root / ids[0]).exists()
    assert client.get(f"/api/jobs/{ids[1]}").status_code == 200
    assert state.queue.prune(now=time.time() + 2 * 3600) == [ids[1]]     # an hour later
    assert not (state.queue.root / ids[1]).exists()


def test_the_work_folder_is_deleted_when_the_app_closes():
    app = create_app()
    root = app.extensions["audiosr_app"].queue.root
    assert root.is_dir()
    app.extensions["audiosr_app"].close()
    assert not root.exists()


def test_diffusion_folder_gets_steps_guidance_and_seed(make_client, tiny_audiosr_dir):
    _, client = make_client(model_dirs=[tiny_audiosr_dir])
    config = client.get("/api/config").get_json()
    models = {m["key"]: m for m in config["models"]}
    assert models["lite"]["diffusion"] is False and models["basic"]["diffusion"] is True
    assert models["tiny-random"]["diffusion"] is True
    assert str(tiny_audiosr_dir) not in json.dumps(config)
    status = wait_for(client, post(client, wav_bytes(speech_like(0.5)), model="tiny-random",
                                   steps=2, guidance_scale=1.0, seed=7).get_json()["id"],
                      timeout_s=60)
    assert status["state"] == "done", status
    assert status["result"]["seed"] == 7 and status["result"]["diffusion"] is True


def test_catalogue_options_and_names(tmp_path):
    with pytest.raises(WeightsError, match="not a model folder"):
        build_catalogue("lite", [tmp_path])
    options = make_options({"steps": 8, "guidance_scale": 2.0, "seed": None,
                            "output_rate": SAMPLE_RATE}, diffusion=True)
    assert (options.steps, options.guidance_scale, options.seed) == (8, 2.0, None)
    assert make_options({"output_rate": SAMPLE_RATE}, diffusion=False).steps == 50
    assert [rate_tag(r) for r in (48000, 44100, 96000, 22050)] == ["48k", "44k1", "96k",
                                                                    "22k05"]
    assert download_name("C:\\music\\Café take.FLAC", 48000, "wav") == "Café take_48k.wav"
    assert download_name("...", 48000, "flac") == "audio_48k.flac"
    with pytest.raises(ValueError):
        encode_png(np.zeros((0, 4, 3), np.uint8))


# ---------------------------------------------------------------------------- command
class FakeServer:
    effective_port = 4321

    def run(self):
        raise KeyboardInterrupt

    def close(self):
        pass


@pytest.mark.parametrize("host, warned", [("127.0.0.1", False), ("0.0.0.0", True)])
def test_command_prints_the_url_and_warns_off_loopback(monkeypatch, capsys, host, warned):
    made = []
    monkeypatch.setattr(app_pkg, "make_server",
                        lambda app, h, p, threads=8: made.append(app) or FakeServer())
    parser = app_pkg.add_arguments(argparse.ArgumentParser())
    assert app_pkg.run(parser.parse_args(["--host", host, "--port", "0"])) == 0
    out, err = capsys.readouterr()
    assert "open http://127.0.0.1:4321/" in out
    assert ("anyone who can reach this machine" in err) == warned
    assert made[0].extensions["audiosr_app"].local_only is not warned
    assert not made[0].extensions["audiosr_app"].queue.root.exists()


def test_command_line_wiring_and_enhance_never_imports_flask():
    from audiosr_core.cli import build_parser

    args = build_parser().parse_args(["app", "--port", "0", "--max-upload-mb", "5"])
    assert args.func is app_pkg.run and args.max_upload_mb == 5.0
    assert app_pkg.main(["--port", "70000"]) == 2
    code = ("import sys, audiosr_core.cli as c; c.build_parser().parse_args(['enhance', 'x', "
            "'-o', 'y']); assert 'flask' not in sys.modules and 'waitress' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


# --------------------------------------------------------------------- the real browser
@pytest.mark.browser  # set here: importing study_fixtures' helpers at module level would
# make conftest tag every test of this module as a browser test, the fast ones too
def test_browser_upload_enhance_download_record(tmp_path):
    from study_fixtures import CHROMIUM, CHROMIUM_ARGS, require_chromium

    require_chromium()
    from playwright.sync_api import sync_playwright

    x = speech_like(3.0)
    wav = tmp_path / "voice_16k.wav"
    sf.write(wav, x, RATE, subtype="PCM_16")
    fake_mic = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                "--autoplay-policy=no-user-gesture-required"]
    errors: list[str] = []
    with RunningApp(create_app(work_dir=tmp_path / "work")) as server, \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=CHROMIUM_ARGS + fake_mic)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900},
                                    accept_downloads=True)
            page.set_default_timeout(20000)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{server.url}/")
            assert page.is_hidden("#diffusion")                     # lite: no diffusion knobs
            page.select_option("#model", "basic")
            assert page.is_visible("#steps")
            page.select_option("#model", "lite")
            page.set_input_files("#file", str(wav))
            page.click("#enhance")
            page.wait_for_selector("#result", state="visible")
            for role in ("before", "after"):
                page.wait_for_function(
                    "s => { const a = document.querySelector(s); return a.readyState >= 1 "
                    "&& a.duration > 0; }", arg=f"#audio-{role}")
                page.wait_for_function("s => document.querySelector(s).naturalWidth > 0",
                                       arg=f"#spec-{role}")
            assert "enhanced" in page.inner_text("#bands")
            assert page.locator("#edges-before .edge").count() == 1
            with page.expect_download() as info:
                page.click("#download")
            download = info.value
            assert download.suggested_filename == "voice_16k_48k.wav"
            saved = tmp_path / download.suggested_filename
            download.save_as(saved)
            meta = sf.info(saved)
            assert meta.samplerate == SAMPLE_RATE
            assert meta.frames == output_length(len(x), RATE)
            shot = page.screenshot(full_page=True)
            (tmp_path / "app.png").write_bytes(shot)
            if os.environ.get("AUDIOSR_APP_SCREENSHOT"):
                Path(os.environ["AUDIOSR_APP_SCREENSHOT"]).write_bytes(shot)

            page.click("#record")                                   # fake microphone
            page.wait_for_selector("#record.recording")
            page.wait_for_timeout(1200)
            page.click("#record")
            page.wait_for_function("() => document.querySelector('#chosen').textContent"
                                   ".startsWith('recording')")
            page.click("#enhance")
            page.wait_for_function("() => document.querySelector('#download').textContent"
                                   ".includes('recording_')")
            assert page.is_hidden("#error")
        finally:
            browser.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_queue_refuses_jobs_beyond_its_limit(tmp_path):
    from audiosr_core.app.jobqueue import JobQueue, QueueFull

    gate = threading.Event()

    def run(job, report):
        gate.wait(10)
        return {}, {}

    queue = JobQueue(tmp_path, run=run, max_pending=1)
    first, second, third = (queue.create("lite", f"{n}.wav", {}) for n in "abc")
    queue.submit(first)
    deadline = time.monotonic() + 5
    while queue.status(first.id)["state"] != "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    queue.submit(second)
    with pytest.raises(QueueFull, match="1 jobs are waiting"):
        queue.submit(third)
    assert not third.folder.exists() and queue.get(third.id) is None
    gate.set()
    queue.close()
