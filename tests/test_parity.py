"""The parity runner on the official dev fixture (every stage, isolated and chained)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from audiosr_core.parity import DEFAULT_TOLERANCES, LOG_RULE, parse_tolerances


def run_parity(fixture, *extra):
    return subprocess.run([sys.executable, "-m", "audiosr_core.parity", str(fixture), *extra],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # every stage of 3 inputs, isolated and chained
def test_dev_fixture_passes_every_stage(parity_dir):
    proc = run_parity(parity_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "99 passed, 0 failed"
    checked = {tuple(line.split()[:3]) for line in lines[1:-1]}
    for stem in ("chord8k_mono", "speech16k_mono", "tones44k_stereo"):
        assert (stem, "wave48", "isolated") in checked
        for name in ("cond_mean", "ddim_latent", "vocoder_wave", "post_wave", "final_wave"):
            assert (stem, name, "isolated") in checked and (stem, name, "chained") in checked


def test_tolerances_are_read_from_the_fixture_readme(parity_dir):
    table, log_rule = parse_tolerances((parity_dir / "README.md").read_text())
    assert table == DEFAULT_TOLERANCES
    assert log_rule == LOG_RULE


@pytest.mark.slow  # the parity runner over the whole fixture once more
def test_a_wrong_expected_array_fails(parity_dir, tmp_path):
    fixture = tmp_path / "fixture"
    fixture.mkdir()
    for name in ("config.json", "checkpoint.ckpt", "README.md", "inputs"):
        os.symlink(parity_dir / name, fixture / name)
    (fixture / "expected").mkdir()
    stem = "chord8k_mono"
    with np.load(parity_dir / "expected" / f"{stem}.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["vocoder_wave"] = arrays["vocoder_wave"] + 1e-3  # a small vocoder bug
    np.savez(fixture / "expected" / f"{stem}.npz", **arrays)
    proc = run_parity(fixture)
    assert proc.returncode == 1
    failing = [line for line in proc.stdout.splitlines() if line.endswith("FAIL")]
    # The stored array feeds the isolated post-processing too, so that fails with it.
    assert {tuple(line.split()[1:3]) for line in failing} == {
        ("vocoder_wave", "isolated"), ("vocoder_wave", "chained"), ("post_wave", "isolated")}
    assert proc.stdout.splitlines()[-1].endswith(f"{len(failing)} failed")


def test_not_a_fixture(tmp_path):
    proc = run_parity(tmp_path)
    assert proc.returncode == 2 and "not a parity fixture" in proc.stderr
    shutil.rmtree(tmp_path)
