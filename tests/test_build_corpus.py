"""The training-corpus builder (recipes/build_corpus): reserved files, bandwidth, determinism.

Everything runs on a fake unpacked package tree in tmp_path; nothing touches the network.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "recipes" / "build_corpus" / "build_corpus.py"


def _load_module():
    spec = importlib.util.spec_from_file_location("build_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_corpus"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


bc = _load_module()

FAKE_DIR = "usr/share/fake"
RESERVED_REL = f"{FAKE_DIR}/f_reserved.wav"
RESERVED_TEXT = (
    "# fake reserved list\n"
    f"fakepkg\t{RESERVED_REL}\n"
    "fakekit\tKick-Hard.wav\n"  # name-only entry, like hydrogen-data's GMRockKit samples
)


def _noise(rate: int, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.2 * rng.standard_normal(int(rate * seconds))).astype(np.float32)


def _write(path: Path, wave: np.ndarray, rate: int, subtype: str = "PCM_16") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, rate, subtype=subtype)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> dict:
    """Two fake unpacked packages, a fake reserved list, and matching sources."""
    root = tmp_path_factory.mktemp("unpacked")
    pkg_root, kit_root = root / "fakepkg", root / "fakekit"
    d = pkg_root / FAKE_DIR
    _write(d / "a_wide_44k.wav", _noise(44100, 2.5, 1), 44100)
    _write(d / "b_wide_48k.flac", _noise(48000, 1.5, 2), 48000)
    _write(d / "c_wide_96k.flac", _noise(96000, 1.2, 3), 96000, "PCM_24")
    sos = scipy.signal.butter(16, 8000, fs=44100, output="sos")
    narrow = scipy.signal.sosfilt(sos, _noise(44100, 1.5, 4)).astype(np.float32)
    _write(d / "d_narrow_8k.wav", narrow, 44100)
    _write(d / "e_low_rate.wav", _noise(22050, 1.5, 5), 22050)
    _write(pkg_root / RESERVED_REL, _noise(48000, 1.5, 6), 48000)
    _write(kit_root / "drums/Kick-Hard.wav", _noise(48000, 1.0, 7), 48000)
    _write(kit_root / "drums/Snare.wav", _noise(48000, 1.0, 8), 48000)
    packages = {
        "fakepkg": bc.Package("fakepkg", "1.0-1", pkg_root),
        "fakekit": bc.Package("fakekit", "2:0.5-3", kit_root),
    }
    sources = [
        bc.Source("fake_sfx", "fakepkg", "sfx", (f"{FAKE_DIR}/*",), "CC0"),
        bc.Source("fake_kit", "fakekit", "music", ("drums/*.wav",), "GPL-2+"),
    ]
    reserved = bc.parse_reserved(RESERVED_TEXT, "fake-reserved.txt")
    return {"packages": packages, "sources": sources, "reserved": reserved, "root": root}


SETTINGS = bc.Settings(clip_s=1.0)


def _build(tree: dict, out: Path):
    out.mkdir(parents=True)
    return bc.build_corpus(tree["sources"], tree["packages"], tree["reserved"], out, SETTINGS)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def built(tree, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "out"
    _build(tree, out)
    return out


# -- reserved files --------------------------------------------------------------------------


def test_is_reserved_exact_name_only_and_coarse(tree):
    reserved = tree["reserved"]
    assert bc.is_reserved("fakepkg", RESERVED_REL, reserved)
    assert bc.is_reserved("fakepkg", "./" + RESERVED_REL, reserved)  # normalised path
    assert not bc.is_reserved("otherpkg", RESERVED_REL, reserved)  # package matters
    assert not bc.is_reserved("fakepkg", f"{FAKE_DIR}/a_wide_44k.wav", reserved)
    assert bc.is_reserved("fakekit", "any/folder/Kick-Hard.wav", reserved)  # name-only entry
    assert not bc.is_reserved("fakekit", "drums/Kick-Hard.flac", reserved)
    # the README's coarse rules apply on top of the list unless switched off
    noise = "usr/share/sounds/alsa/Noise.wav"  # not listed, but alsa-utils sounds are reserved
    assert bc.is_reserved("alsa-utils", noise, reserved)
    exact_only = bc.parse_reserved(RESERVED_TEXT, coarse=False)
    assert not bc.is_reserved("alsa-utils", noise, exact_only)
    assert bc.is_reserved("fakepkg", RESERVED_REL, exact_only)
    guitar = "usr/share/hydrogen/data/drumkits/belofilms_GuitarStrums/Amajor_02.flac"
    assert bc.is_reserved("hydrogen-drumkits-effects", guitar, reserved)
    assert bc.is_reserved("klettres-data", "usr/share/klettres/en/alpha/B.ogg", reserved)
    assert not bc.is_reserved("klettres-data", "usr/share/klettres/fr/alpha/b.ogg", reserved)


def test_reserved_file_never_read_nor_written(tree, tmp_path, monkeypatch):
    opened: list[str] = []
    real_info, real_load = bc.audio.info, bc.audio.load

    def spy_info(path):
        opened.append(os.fspath(path))
        return real_info(path)

    def spy_load(path):
        opened.append(os.fspath(path))
        return real_load(path)

    monkeypatch.setattr(bc.audio, "info", spy_info)
    monkeypatch.setattr(bc.audio, "load", spy_load)
    out = tmp_path / "out"
    _build(tree, out)
    assert opened, "the spy saw no file at all"
    assert not [p for p in opened if p.endswith(("f_reserved.wav", "Kick-Hard.wav"))]
    rows = _rows(out / "manifest.csv")
    sources = {f for row in rows for f in row["source_files"].split(";")}
    assert RESERVED_REL not in sources and "drums/Kick-Hard.wav" not in sources
    assert "drums/Snare.wav" in sources
    skipped = {(r["source_file"], r["kind"]) for r in _rows(out / "skipped.csv")}
    assert (RESERVED_REL, "reserved") in skipped
    assert ("drums/Kick-Hard.wav", "reserved") in skipped
    assert bc.audit_manifest(out / "manifest.csv", tree["reserved"]) == []


def test_adding_a_reserved_file_raises(tree, tmp_path):
    reserved, pkg = tree["reserved"], tree["packages"]["fakepkg"]
    item = bc.Item(tree["sources"][0], pkg, RESERVED_REL)
    with pytest.raises(bc.ReservedFileError, match="reserved for evaluation"):
        bc.prepare(item, reserved, SETTINGS)
    writer = bc.CorpusWriter(tmp_path, reserved, SETTINGS)
    bw = bc.Bandwidth(24000.0, 24000.0, 24000.0)
    clip = bc.Clip(
        tree["sources"][0], pkg, "CC0", "WAV/PCM_16", 48000, True,
        _noise(48000, 1.0, 9),
        [bc.Part(f"{FAKE_DIR}/a_wide_44k.wav", bw), bc.Part(RESERVED_REL, bw)],
    )  # fmt: skip
    with pytest.raises(bc.ReservedFileError):
        writer.add(clip)
    assert writer.rows == [] and not list(tmp_path.rglob("*.wav"))
    kit = tree["packages"]["fakekit"]
    with pytest.raises(bc.ReservedFileError):
        bc.ensure_not_reserved(kit.name, "drums/Kick-Hard.wav", reserved)


def test_audit_flags_a_tampered_manifest(built, tree, tmp_path):
    rows = _rows(built / "manifest.csv")
    rows[0]["source_files"] += ";" + RESERVED_REL
    bad = tmp_path / "manifest.csv"
    with open(bad, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert len(bc.audit_manifest(bad, tree["reserved"])) == 1
    assert bc.main(["--audit", str(bad), "--reserved", str(_fake_list(tmp_path))]) == 1
    assert bc.main(["--audit", str(built / "manifest.csv"),
                    "--reserved", str(_fake_list(tmp_path))]) == 0


def _fake_list(tmp_path: Path) -> Path:
    path = tmp_path / "fake-reserved.txt"
    path.write_text(RESERVED_TEXT)
    return path


def test_reserved_list_is_required_and_validated(tmp_path, capsys):
    with pytest.raises(bc.CorpusError, match="eval-reserved.txt"):
        bc.load_reserved(tmp_path / "missing.txt")
    assert bc.main(["--out", str(tmp_path / "o"), "--reserved", str(tmp_path / "missing.txt")]) == 2
    assert "never be used for training" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match=":2:"):
        bc.parse_reserved("# header\nalsa-utils usr/share/sounds/alsa/Front_Left.wav\n")
    with pytest.raises(ValueError, match="no entries"):
        bc.parse_reserved("# only a comment\n\n")


@pytest.mark.needs_shared  # reads ../shared/data/eval-reserved.txt itself (no fixture)
def test_real_reserved_list_parses():
    path = bc.DEFAULT_RESERVED
    if not path.is_file():
        msg = f"{path} not found (../shared/data beside the repository)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    text = path.read_text()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    reserved = bc.load_reserved(path)
    assert len(reserved) == len(set(lines)) >= 200
    assert ("alsa-utils", "usr/share/sounds/alsa/Front_Center.wav") in reserved.exact
    assert bc.is_reserved("alsa-utils", "usr/share/sounds/alsa/Front_Center.wav", reserved)
    assert bc.is_reserved(
        "tuxpaint-stamps-default",
        "usr/share/tuxpaint/stamps/animals/birds/hen_desc_es.ogg",
        bc.load_reserved(path, coarse=False),
    )
    # hydrogen-data lists bare GMRockKit sample names; they match inside the kit folder
    kick = "usr/share/hydrogen/data/drumkits/GMRockKit/Kick-Hard.wav"
    assert bc.is_reserved("hydrogen-data", kick, bc.load_reserved(path, coarse=False))
    # opensfx members are named wav/opensfx_NN.wav (0-based catalogue index), as extracted
    assert bc.is_reserved("openttd-opensfx", "wav/opensfx_12.wav", reserved)
    assert not bc.is_reserved("openttd-opensfx", "wav/opensfx_02.wav", reserved)


# -- processing ------------------------------------------------------------------------------


def test_low_band_and_low_rate_files_are_skipped_with_a_reason(built):
    skipped = {r["source_file"]: r for r in _rows(built / "skipped.csv")}
    narrow = skipped[f"{FAKE_DIR}/d_narrow_8k.wav"]
    assert narrow["kind"] == "low_bandwidth" and "< 16000 Hz" in narrow["detail"]
    low = skipped[f"{FAKE_DIR}/e_low_rate.wav"]
    assert low["kind"] == "low_rate" and "22050" in low["detail"]
    used = {f for r in _rows(built / "manifest.csv") for f in r["source_files"].split(";")}
    assert not used & {f"{FAKE_DIR}/d_narrow_8k.wav", f"{FAKE_DIR}/e_low_rate.wav"}


def test_clips_are_48k_with_a_bandwidth_cap_near_the_true_band(built):
    rows = _rows(built / "manifest.csv")
    by_file: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        info = sf.info(built / row["clip"])
        assert (info.samplerate, info.channels, info.subtype) == (48000, 1, "PCM_24")
        assert info.frames == 48000
        wave, _ = sf.read(built / row["clip"], dtype="float32")
        assert abs(20 * np.log10(np.max(np.abs(wave))) + 1.0) < 0.01  # peak -1 dBFS
        assert int(row["source_sr"]) >= 44100
        assert row["package_version"] in ("1.0-1", "2:0.5-3")
        by_file.setdefault(row["source_files"], []).append(row)
    # 2.5 s at 44.1 kHz -> two whole 1 s clips plus a packed, padded 0.5 s rest
    wide44 = by_file[f"{FAKE_DIR}/a_wide_44k.wav"]
    assert len(wide44) == 3
    assert [r["source_start_s"] for r in wide44] == ["0.000", "1.000", ""]
    # true band: 22.05 kHz (44.1k source), 24 kHz (48k and 96k sources)
    expected = {"a_wide_44k.wav": 22050, "b_wide_48k.flac": 24000, "c_wide_96k.flac": 24000}
    for name, true_hz in expected.items():
        for row in by_file[f"{FAKE_DIR}/{name}"]:
            cap = float(row["bandwidth_hz"])
            assert true_hz - 1000 <= cap <= true_hz, (name, cap)
            assert cap <= float(row["cliff_hz"]) and cap <= float(row["bw80_hz"])
    assert by_file["drums/Snare.wav"][0]["domain"] == "music"


def test_build_is_deterministic(tree, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _build(tree, a)
    _build(tree, b)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) > 5
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_packer_fills_clips_across_parts():
    settings = bc.Settings(clip_s=1.0, gap_s=(0.1, 0.1))
    bw = bc.Bandwidth(20000.0, 21000.0, 22000.0)
    template = bc.Prepared(bc.Item(bc.SOURCES[0], bc.Package("p", "1", Path(".")), "x"))
    packer = bc.Packer(template, settings, seed=0)
    clips = []
    for i in range(3):
        clips += packer.add(np.ones(30000, np.float32), bc.Part(f"f{i}", bw))
    last = packer.flush()
    # 30000 + 4800 gap + 13200 -> clip 1; 16800 + 4800 + 26400 -> clip 2; 3600 left: dropped
    assert len(clips) == 2 and last is None
    assert [[p.relpath for p in c.parts] for c in clips] == [["f0", "f1"], ["f1", "f2"]]
    assert all(c.wave.shape == (48000,) for c in clips)


def test_extract_opensfx_cat(tmp_path):
    blobs = []
    for i in range(2):
        path = tmp_path / f"s{i}.wav"
        sf.write(path, _noise(44100, 0.1, i), 44100, subtype="PCM_16")
        blobs.append(path.read_bytes())
    table = b""
    body = b""
    start = 8 * len(blobs)
    for i, blob in enumerate(blobs):
        desc = f"sound {i}\0".encode()
        entry = bytes([len(desc)]) + desc + blob + b"\0\x05name\0"
        table += struct.pack("<II", (start + len(body)) | (0x80000000 if i == 0 else 0),
                             len(blob))
        body += entry
    cat = tmp_path / "opensfx.cat"
    cat.write_bytes(table + body)
    written = bc.extract_opensfx_cat(cat, tmp_path / "wav")
    assert [p.name for p in written] == ["opensfx_00.wav", "opensfx_01.wav"]
    assert written[1].read_bytes() == blobs[1]


def test_license_from_debian_copyright():
    text = (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: someone\nLicense: MIT\n\n"
        "Files: etc/samples/ambi_choir.flac\nCopyright: 2013 x\nLicense: CC0\n\n"
        "Files:\n drumkits/Kit-A.h2drumkit\n drumkits/Kit-B.h2drumkit\nLicense: GPL-2+\n"
    )
    assert bc.license_for(text, "usr/share/sonic-pi/samples/ambi_choir.flac", "MIT") == "CC0"
    assert bc.license_for(text, "usr/share/sonic-pi/samples/loop_x.flac", "MIT") == "MIT"
    assert bc.license_for(text, "usr/share/h/drumkits/Kit-B/snare.wav", "?") == "GPL-2+"


def test_source_table_and_cli_help(capsys):
    assert len({s.name for s in bc.SOURCES}) == len(bc.SOURCES)
    assert all(s.domain in ("speech", "music", "sfx") for s in bc.SOURCES)
    assert not any(s.package == "alsa-utils" for s in bc.SOURCES)
    default = bc.select_sources("default")
    assert default and not any(s.optional for s in default)
    assert bc.select_sources("default,warzone2100")[-1].name == "warzone2100"
    with pytest.raises(bc.CorpusError, match="unknown source"):
        bc.select_sources("nope")
    with pytest.raises(SystemExit) as exc:
        bc.main(["--help"])
    assert exc.value.code == 0 and "eval-reserved" in capsys.readouterr().out


def test_out_dir_is_never_clobbered(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("x")
    with pytest.raises(bc.CorpusError, match="not empty"):
        bc.prepare_out_dir(out, overwrite=False)
    with pytest.raises(bc.CorpusError, match="not a corpus of ours"):
        bc.prepare_out_dir(out, overwrite=True)
    assert (out / "precious.txt").is_file()


@pytest.mark.skipif(not shutil.which("dpkg-deb"), reason="needs dpkg-deb (Debian tools)")
def test_cli_end_to_end_from_a_cached_deb(tmp_path, monkeypatch, capsys):
    """--offline build from a locally made .deb: find, version, dpkg -x, process, audit."""
    pkg = tmp_path / "pkgsrc"
    _write(pkg / FAKE_DIR / "wide.wav", _noise(48000, 2.0, 10), 48000)
    _write(pkg / RESERVED_REL, _noise(48000, 2.0, 11), 48000)
    (pkg / "DEBIAN").mkdir()
    (pkg / "DEBIAN" / "control").write_text(
        "Package: fakepkg\nVersion: 1:2.3-4\nArchitecture: all\n"
        "Maintainer: Test <t@example.org>\nDescription: fake audio\n"
    )
    cache = tmp_path / "cache"
    (cache / "debs").mkdir(parents=True)
    deb = cache / "debs" / "fakepkg_2.3-4_all.deb"
    subprocess.run(["dpkg-deb", "-Zgzip", "--build", str(pkg), str(deb)], check=True,
                   capture_output=True)
    source = bc.Source("fake_sfx", "fakepkg", "sfx", (f"{FAKE_DIR}/*",), "CC0")
    monkeypatch.setattr(bc, "SOURCES", (source,))
    monkeypatch.setattr(bc, "SOURCES_BY_NAME", {"fake_sfx": source})
    out = tmp_path / "out"
    argv = ["--out", str(out), "--cache", str(cache), "--offline", "--sources", "fake_sfx",
            "--reserved", str(_fake_list(tmp_path)), "--clip-seconds", "1"]
    assert bc.main(argv) == 0
    rows = _rows(out / "manifest.csv")
    assert len(rows) == 2 and {r["package_version"] for r in rows} == {"1:2.3-4"}
    assert {r["source_files"] for r in rows} == {f"{FAKE_DIR}/wide.wav"}
    assert bc.main(argv) == 2  # refuses to overwrite without --overwrite
    assert "not empty" in capsys.readouterr().err
    assert bc.main([*argv, "--overwrite"]) == 0
