"""Offline tests of recipes.generators, recipes.listening_page, and the tts_enhance and
generate_and_enhance recipes, with tiny random generators saved to tmp folders and the
shipped ``lite`` enhancer."""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from adapter_fixtures import require
from recipe_fixtures import save_tiny_generator

from audiosr_core.metrics import lsd_band
from audiosr_core.rates import output_length
from recipes import generators as G
from recipes import listening_page as LP
from recipes.generate_and_enhance import main as gen_main
from recipes.tts_enhance import main as tts_main

from conftest import kept_band_hz

REPO = Path(__file__).resolve().parents[1]
FAST = ["--model", "lite", "--steps", "3", "--seed", "5", "-q"]


def fast_except(argv: list[str]) -> list[str]:
    """FAST without the options ``argv`` sets itself."""
    out, skip = [], False
    for i, a in enumerate(FAST):
        if skip:
            skip = False
            continue
        if a in argv:
            skip = a != "-q" and i + 1 < len(FAST)
            continue
        out.append(a)
    return out


# --------------------------------------------------------------------------- fixtures
class _Tiny:
    """kind -> name_or_path of the tiny generator, saved on first use (its library required:
    skipped locally, a failure under CI, when missing)."""

    NEEDS = {"audioldm": "diffusers", "audioldm2": "diffusers", "musicgen": "transformers",
             "musicgen-audiocraft": "audiocraft.models",
             "audiogen-audiocraft": "audiocraft.models", "fastspeech2": "transformers",
             "fastspeech2-split": "transformers"}

    def __init__(self, root: Path) -> None:
        self.root, self.saved = root, {}

    def __getitem__(self, kind: str) -> str:
        if kind not in self.saved:
            require(self.NEEDS[kind])
            self.saved[kind] = save_tiny_generator(kind, self.root / kind)
        return self.saved[kind]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> _Tiny:
    """Tiny generators saved to folders on demand."""
    return _Tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def enhancer():
    import audiosr_core

    return audiosr_core.load("lite", device="cpu")


class _Page(HTMLParser):
    """Collects per <section>: its text paragraph, <audio> srcs and <img> srcs."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[dict] = []
        self._in_text = False
        self._in_error = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append({"id": a.get("id"), "text": "", "audio": [], "img": [],
                                  "error": ""})
        elif self.sections and tag == "audio":
            self.sections[-1]["audio"].append(a["src"])
        elif self.sections and tag == "img":
            self.sections[-1]["img"].append(a["src"])
        elif self.sections and tag == "p":
            self._in_text = a.get("class") == "text"
            self._in_error = a.get("class") == "error"

    def handle_endtag(self, tag):
        if tag == "p":
            self._in_text = self._in_error = False

    def handle_data(self, data):
        if self._in_text:
            self.sections[-1]["text"] += data
        elif self._in_error:
            self.sections[-1]["error"] += data


def band_lsd(reference: np.ndarray, estimate: np.ndarray, high_hz: float) -> float:
    """Worst-channel LSD (bels) of two 48 kHz ``[channels, samples]`` below ``high_hz``."""
    return max(lsd_band(r, e, 0, high_hz) for r, e in zip(reference, estimate, strict=True))


def parse_page(out: Path) -> list[dict]:
    parser = _Page()
    parser.feed((out / "index.html").read_text(encoding="utf-8"))
    return parser.sections


def check_page(out: Path, texts: list[str], before_rate: int) -> list[dict]:
    """Every text has a section with both players and both spectrograms; files exist and are
    valid; "after" is 48 kHz with the exact length; "after" keeps the "before" band."""
    from PIL import Image

    sections = parse_page(out)
    assert [s["text"] for s in sections] == texts
    for i, sec in enumerate(sections, 1):
        label = f"{i:03d}"
        assert sec["audio"] == [f"before/{label}.wav", f"{label}.wav"]
        assert sec["img"] == [f"spectrograms/{label}-before.png",
                              f"spectrograms/{label}-after.png"]
        for src in sec["audio"] + sec["img"]:
            assert not os.path.isabs(src) and ".." not in src
            assert (out / src).is_file(), src
        for src in sec["img"]:
            with Image.open(out / src) as img:
                img.verify()
            with Image.open(out / src) as img:
                assert img.format == "PNG" and img.size[0] > 200 and img.size[1] > 100
        before, rate_b = sf.read(out / sec["audio"][0], dtype="float32", always_2d=True)
        after, rate_a = sf.read(out / sec["audio"][1], dtype="float32", always_2d=True)
        assert (rate_b, rate_a) == (before_rate, 48000)
        assert after.shape == (round(len(before) * 48000 / before_rate), before.shape[1])
        assert np.abs(after).max() > 1e-3
        ref = G.to_48k(before.T, before_rate)
        assert band_lsd(ref, after.T, kept_band_hz(ref, before_rate)) < 0.1
    return sections


# ------------------------------------------------------------------------- generators
@pytest.mark.parametrize("kind, options, rate", [
    ("audioldm", {"steps": 2}, 16000),
    ("audioldm2", {"steps": 2, "guidance_scale": 2.0}, 16000),
    ("musicgen", {"duration": 0.2, "top_k": 16}, 32000),
    ("musicgen-audiocraft", {"duration": 0.2, "guidance_scale": 2.0}, 32000),
    ("audiogen-audiocraft", {"duration": 0.2}, 16000),
    ("fastspeech2", {}, 22050),
])
def test_load_generator_by_path_is_deterministic(tiny, kind, options, rate):
    gen = G.load_generator(kind, tiny[kind])
    assert (gen.kind, gen.name, gen.sample_rate) == (kind, tiny[kind], rate)
    a = gen.generate("a dog barks", 3, **options)
    b = gen.generate("a dog barks", 3, **options)
    assert a.dtype == np.float32 and a.ndim == 2 and a.shape[0] == 1 and a.shape[1] > 100
    np.testing.assert_array_equal(a, b)
    if kind != "fastspeech2":  # FastSpeech2 has no randomness; the others follow the seed
        assert not np.array_equal(a, gen.generate("a dog barks", 4, **options))
    with pytest.raises(TypeError, match="unknown option"):
        gen.generate("a dog", 1, bogus=1)
    with pytest.raises(ValueError, match="empty prompt"):
        gen.generate("  ", 1)


def test_fastspeech2_model_plus_separate_hifigan(tiny):
    folder = Path(tiny["fastspeech2-split"])
    vocoder = str(folder.parent / "hifigan")
    gen = G.load_generator("fastspeech2", folder, vocoder=vocoder)
    audio = gen.generate("hello there", 0)
    assert gen.sample_rate == 22050 and audio.shape[0] == 1 and audio.shape[1] % 256 == 0
    with pytest.raises(ValueError, match="vocoder="):
        G.load_generator("fastspeech2", folder)
    with pytest.raises(ValueError, match="HiFi-GAN vocoder, not an acoustic model"):
        G.load_generator("fastspeech2", vocoder, tokenizer=str(folder))


def test_load_generator_errors(tmp_path, tiny):
    with pytest.raises(ValueError, match="unknown generator kind 'tortoise'"):
        G.load_generator("tortoise", "x/y")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        G.load_generator("audioldm", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="not a saved musicgen model"):
        G.load_generator("musicgen", tmp_path)
    with pytest.raises(FileNotFoundError, match="state_dict.bin"):
        G.load_generator("musicgen-audiocraft", tmp_path)
    with pytest.raises(ValueError, match="not MusicGen"):
        G.load_generator("musicgen", tiny["fastspeech2"])
    with pytest.raises(ValueError, match="unknown option.*tokenizer"):
        G.load_generator("audioldm", tiny["audioldm"], tokenizer="x")
    with pytest.raises(ValueError, match="module:function"):
        G.load_generator("callable", "no_colon_here", sample_rate=16000)
    with pytest.raises(ValueError, match="no function 'nope'"):
        G.load_generator("callable", "recipe_fixtures:nope", sample_rate=16000)
    with pytest.raises(ValueError, match="give the sample rate"):
        G.load_generator("callable", "recipe_fixtures:failing_tts")
    with pytest.raises(ValueError, match="below the 4000 Hz minimum"):
        G.load_generator("callable", "recipe_fixtures:tiny_tts", sample_rate=100)


def test_callable_from_a_file_with_seed(tmp_path):
    script = tmp_path / "my_tts.py"
    script.write_text("import numpy as np\n"
                      "def speak(text, seed=0):\n"
                      "    rng = np.random.default_rng(seed)\n"
                      "    return {'wav': rng.standard_normal((2, 800)) * 0.1}\n")
    gen = G.load_generator("callable", f"{script}:speak", sample_rate=8000)
    a = gen.generate("hi", 1)
    assert a.shape == (2, 800) and a.dtype == np.float32
    np.testing.assert_array_equal(a, gen.generate("hi", 1))
    assert not np.array_equal(a, gen.generate("hi", 2))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        G.load_generator("callable", f"{tmp_path / 'none.py'}:speak", sample_rate=8000)


def test_enhance_audio_equals_the_adapter(tiny, enhancer):
    from audiosr_adapters import enhance

    opts = {"steps": 3, "seed": 11, "guidance_scale": 2.0}
    gen = G.load_generator("audioldm", tiny["audioldm"])
    raw = gen.generate("a bell rings", 7, steps=2)
    ours = G.enhance_audio(raw, gen.sample_rate, enhancer, **opts)
    assert ours.shape == (1, raw.shape[1] * 3) and ours.dtype == np.float32
    wrapped = enhance(gen.model, model=enhancer, **opts)
    torch.manual_seed(7)
    theirs = wrapped("a bell rings", num_inference_steps=2,
                     generator=torch.Generator().manual_seed(7)).audios
    np.testing.assert_array_equal(ours, theirs)

    tts = G.load_generator("fastspeech2", tiny["fastspeech2"])
    raw = tts.generate("hello world", 0)
    ours = G.enhance_audio(raw[0], tts.sample_rate, enhancer, **opts)  # [samples] accepted
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(tiny["fastspeech2"])("hello world",
                                                            return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        theirs = enhance(tts.model, model=enhancer, **opts)(ids).waveform.numpy()
    np.testing.assert_array_equal(ours, theirs)
    # the band below the TTS Nyquist is the raw audio's
    assert band_lsd(G.to_48k(raw, tts.sample_rate), ours, 10000) < 0.1


def test_as_channels_rejects_non_audio():
    assert G.as_channels(torch.ones(1, 1, 5)).shape == (1, 5)
    assert G.as_channels(np.ones((100, 2))).shape == (2, 100)
    with pytest.raises(ValueError, match="NaN"):
        G.as_channels(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="without any of the keys"):
        G.as_channels({"mel": np.ones(3)})
    with pytest.raises(ValueError, match="at least one sample"):
        G.as_channels(np.zeros((1, 0)))


# ----------------------------------------------------------------------- listening page
def test_spectrogram_peak_and_shared_scale(tmp_path):
    from PIL import Image

    t = np.arange(16000) / 16000
    before = (0.5 * np.sin(2 * np.pi * 3000 * t))[None].astype(np.float32)
    after = G.to_48k(before, 16000) * 0.5
    times, freqs, db = LP.spectrogram_db(before, 16000)
    assert abs(freqs[np.argmax(db.mean(axis=1))] - 3000) < 16000 / 256
    assert abs(db.max() - 20 * np.log10(0.5)) < 1.5  # dB re full-scale sine
    vmin, vmax = LP.render_spectrogram_pair(before, 16000, after, 48000, tmp_path / "b.png",
                                            tmp_path / "a.png")
    assert vmax == pytest.approx(max(LP.spectrogram_db(before, 16000)[2].max(),
                                     LP.spectrogram_db(after, 48000)[2].max()))
    assert vmax - vmin == LP.DYNAMIC_RANGE_DB
    with Image.open(tmp_path / "b.png") as b, Image.open(tmp_path / "a.png") as a:
        assert b.size == a.size


def test_page_escapes_text_and_checks_links(tmp_path):
    for name in ("x.wav", "y.wav", "b.png", "a.png"):
        (tmp_path / name).write_bytes(b"0")
    text = '<script>alert("x")</script> & café'
    ok = LP.PageEntry("001", text, "x.wav", 16000, "y.wav", "b.png", "a.png")
    bad = LP.PageEntry("002", "<b>boom</b>", error="RuntimeError: <oops>")
    page = LP.write_listening_page(tmp_path, [ok, bad], title="T <1>",
                                   settings={"model": "<lite>"})
    raw = page.read_text(encoding="utf-8")
    assert "<script>" not in raw and "<b>boom" not in raw and "<oops>" not in raw
    assert html.escape(text) in raw and "&lt;lite&gt;" in raw
    sections = parse_page(tmp_path)
    assert [s["text"] for s in sections] == [text, "<b>boom</b>"]
    assert sections[1]["audio"] == [] and "<oops>" in sections[1]["error"]
    for path in ("/etc/passwd", "../x.wav", "C:/x.wav"):
        with pytest.raises(ValueError, match="relative"):
            LP.write_listening_page(tmp_path, [LP.PageEntry("1", "t", path, 16000, "y.wav",
                                                            "b.png", "a.png")])
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        LP.write_listening_page(tmp_path, [LP.PageEntry("1", "t", "missing.wav", 16000,
                                                        "y.wav", "b.png", "a.png")])


# ------------------------------------------------------------------------- tts_enhance
def test_tts_enhance_fastspeech2_page(tmp_path, tiny):
    lines = tmp_path / "lines.txt"
    lines.write_text("Hello world.\n\n   \nIs 2 < 3 & \"yes\"?  \n", encoding="utf-8")
    out = tmp_path / "out"
    assert tts_main([str(lines), "--fastspeech2", tiny["fastspeech2"], "-o", str(out),
                     *FAST]) == 0
    check_page(out, ["Hello world.", 'Is 2 < 3 & "yes"?'], 22050)
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "Is 2 &lt; 3 &amp;" in page
    assert "<th>enhancer</th><td>lite" in page and "enhancer steps" not in page  # no diffusion
    assert lines.read_text(encoding="utf-8").startswith("Hello")  # input untouched

    # a non-empty output folder is refused, then reused with --overwrite
    assert tts_main([str(lines), "--fastspeech2", tiny["fastspeech2"], "-o", str(out),
                     *FAST]) == 2
    (out / "notes.txt").write_text("mine")
    shutil.copy(out / "001.wav", out / "007.wav")  # stale output of an earlier, longer run
    one = tmp_path / "one.txt"
    one.write_text("Only one line\n")
    assert tts_main([str(one), "--fastspeech2", tiny["fastspeech2"], "-o", str(out),
                     "--overwrite", *FAST]) == 0
    check_page(out, ["Only one line"], 22050)
    assert not (out / "007.wav").exists() and not (out / "002.wav").exists()
    assert (out / "notes.txt").read_text() == "mine"


def test_tts_enhance_tokenizer_and_vocoder_options(tmp_path, tiny):
    no_tok = tmp_path / "fs2-no-tokenizer"
    shutil.copytree(tiny["fastspeech2"], no_tok)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (no_tok / name).unlink(missing_ok=True)
    lines = tmp_path / "l.txt"
    lines.write_text("good day\n")
    assert tts_main([str(lines), "--fastspeech2", str(no_tok), "-o", str(tmp_path / "a"),
                     *FAST]) == 2
    assert tts_main([str(lines), "--fastspeech2", str(no_tok), "--tokenizer",
                     tiny["fastspeech2"], "-o", str(tmp_path / "b"), *FAST]) == 0
    split = Path(tiny["fastspeech2-split"])
    assert tts_main([str(lines), "--fastspeech2", str(split), "--vocoder",
                     str(split.parent / "hifigan"), "-o", str(tmp_path / "c"), *FAST]) == 0
    check_page(tmp_path / "c", ["good day"], 22050)


def test_tts_enhance_usage_errors(tmp_path, tiny, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n\n")
    fs2 = ["--fastspeech2", tiny["fastspeech2"]]
    cases = [
        ([str(empty), *fs2], "no text in"),
        ([str(tmp_path / "nope.txt"), *fs2], "does not exist"),
        ([str(tmp_path / "x.txt"), "--fastspeech2", str(tmp_path / "no_model")],
         "does not exist"),
        ([str(tmp_path / "x.txt"), "--callable", "recipe_fixtures:failing_tts"],
         "give the sample rate"),
        ([str(tmp_path / "x.txt"), "--callable", "no_such_module_xyz:fn", "--sample-rate",
          "16000"], "cannot import module"),
        ([str(tmp_path / "x.txt"), *fs2, "--steps", "0"], "--steps must be at least 1"),
        ([str(tmp_path / "x.txt"), *fs2, "--model", str(tmp_path / "nomodel")],
         "is not lite, basic, speech"),
    ]
    (tmp_path / "x.txt").write_text("hello\n")
    for i, (argv, message) in enumerate(cases):
        out = tmp_path / f"out{i}"
        assert tts_main([*argv, "-o", str(out), *fast_except(argv)]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    with pytest.raises(SystemExit) as exc:
        tts_main(["x.txt", "--fastspeech2", "a", "--callable", "m:f", "-o", "o"])
    assert exc.value.code == 2


def test_tts_enhance_failed_line_exit_1(tmp_path, capsys):
    lines = tmp_path / "l.txt"
    lines.write_text("first line\nplease FAIL here\nthird one\n")
    out = tmp_path / "out"
    assert tts_main([str(lines), "--callable", "recipe_fixtures:failing_tts",
                     "--sample-rate", "16000", "-o", str(out), *FAST]) == 1
    assert "item 002" in capsys.readouterr().err
    sections = parse_page(out)
    assert [bool(s["error"]) for s in sections] == [False, True, False]
    assert "cannot speak" in sections[1]["error"]
    assert (out / "003.wav").is_file() and not (out / "002.wav").exists()


def test_tts_enhance_interrupted_keeps_page(tmp_path, capsys):
    lines = tmp_path / "l.txt"
    lines.write_text("first line\nnow STOP\nnever spoken\n")
    out = tmp_path / "out"
    assert tts_main([str(lines), "--callable", "recipe_fixtures:failing_tts",
                     "--sample-rate", "16000", "-o", str(out), *FAST]) == 130
    assert "interrupted at item 002" in capsys.readouterr().err
    assert [s["text"] for s in parse_page(out)] == ["first line"]
    assert (out / "001.wav").is_file() and not (out / "003.wav").exists()


def test_tts_enhance_subprocess_stdin(tmp_path):
    out = tmp_path / "out"
    # the callable's file imports its sibling test helpers, as a user's script would its own
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "tests")}
    proc = subprocess.run(
        [sys.executable, "-m", "recipes.tts_enhance", "-", "--callable",
         f"{REPO / 'tests' / 'recipe_fixtures.py'}:tiny_tts", "-o", str(out), *FAST],
        input="one two\n\nthree <four>\n", text=True, capture_output=True, cwd=REPO, env=env,
        timeout=300)
    assert proc.returncode == 0, proc.stderr
    check_page(out, ["one two", "three <four>"], 16000)
    help_text = subprocess.run([sys.executable, "-m", "recipes.tts_enhance", "--help"],
                               capture_output=True, text=True, cwd=REPO, timeout=120).stdout
    assert "--tokenizer" in help_text and "--callable" in help_text and "Exit codes" in help_text


# ----------------------------------------------------------------- generate_and_enhance
@pytest.mark.parametrize("kind, extra, rate", [
    ("audioldm", ["--gen-steps", "2"], 16000),
    ("musicgen", ["--duration", "0.2", "--top-k", "16"], 32000),
    ("audiogen-audiocraft", ["--duration", "0.2"], 16000),
])
def test_generate_and_enhance_page(tmp_path, tiny, kind, extra, rate):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("rain on a roof\n\n")
    out = tmp_path / "out"
    code = gen_main(["--kind", kind, "--generator", tiny[kind], "--prompts", str(prompts),
                     "--prompt", "a <dog> & cat", "-o", str(out), *extra, *FAST])
    assert code == 0
    check_page(out, ["rain on a roof", "a <dog> & cat"], rate)


def test_generate_and_enhance_usage_errors(tmp_path, tiny, capsys):
    cases = [
        (["--kind", "audioldm", "--generator", tiny["audioldm"]], "no prompts"),
        (["--kind", "musicgen", "--generator", tiny["musicgen"], "--prompt", "x",
          "--gen-steps", "3"], "--gen-steps applies"),
        (["--kind", "audioldm", "--generator", tiny["audioldm"], "--prompt", "x",
          "--duration", "-1"], "--duration must be positive"),
        (["--kind", "audioldm", "--generator", str(tmp_path / "gone"), "--prompt", "x"],
         "does not exist"),
        (["--kind", "audioldm", "--generator", tiny["musicgen"], "--prompt", "x"],
         "not a saved audioldm model"),
        (["--kind", "audioldm", "--processor", "p", "--prompt", "x"], "--processor applies"),
    ]
    for i, (argv, message) in enumerate(cases):
        assert gen_main([*argv, "-o", str(tmp_path / f"o{i}"), *FAST]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    with pytest.raises(SystemExit) as exc:
        gen_main(["--kind", "tortoise", "--prompt", "x", "-o", str(tmp_path / "z")])
    assert exc.value.code == 2


def test_tts_enhance_output_rate(tmp_path, capsys):
    lines = tmp_path / "l.txt"
    lines.write_text("first line\nthird one\n")
    out = tmp_path / "out"
    assert tts_main([str(lines), "--callable", "recipe_fixtures:failing_tts",
                     "--sample-rate", "16000", "-o", str(out), "--output-rate", "44100",
                     *FAST]) == 0
    before = sf.info(out / "before" / "001.wav")
    after = sf.info(out / "001.wav")
    assert after.samplerate == 44100
    assert after.frames == output_length(before.frames, 16000, 44100)
    assert tts_main([str(lines), "--callable", "recipe_fixtures:failing_tts",
                     "--sample-rate", "16000", "-o", str(tmp_path / "o2"), "--output-rate",
                     "100", *FAST]) == 2
    assert "--output-rate: output_rate must be a whole number" in capsys.readouterr().err
