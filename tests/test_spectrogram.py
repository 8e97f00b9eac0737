"""The one spectrogram renderer: panels on a shared axis and dB scale, colours, PNG."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from audiosr_core.spectrogram import (
    AXIS_HZ,
    GAP,
    HEIGHT,
    PANEL_WIDTH,
    colourise,
    encode_png,
    panels_image,
    to_uint8,
)


def test_three_panels_share_the_axis_and_the_scale():
    rng = np.random.default_rng(0)
    wide = 0.1 * rng.standard_normal(48000).astype(np.float32)      # noise up to 24 kHz
    narrow = np.fft.irfft(np.fft.rfft(wide) * (np.fft.rfftfreq(48000, 1 / 48000) < 8000),
                          48000).astype(np.float32)                  # the same, cut at 8 kHz
    image = panels_image([(wide, 48000), (narrow, 48000), (narrow[::3].copy(), 16000)])
    assert image.shape == (HEIGHT, 3 * PANEL_WIDTH + 2 * GAP, 3) and image.dtype == np.float32
    assert np.all(image[:, PANEL_WIDTH:PANEL_WIDTH + GAP] == 1.0)    # white gaps
    panels = [image[:, k * (PANEL_WIDTH + GAP):k * (PANEL_WIDTH + GAP) + PANEL_WIDTH]
              for k in range(3)]
    row_12k = int(HEIGHT * (1 - 12000 / AXIS_HZ))                   # top row is 24 kHz
    row_4k = int(HEIGHT * (1 - 4000 / AXIS_HZ))
    brightness = [p.sum(axis=-1) for p in panels]
    assert brightness[0][row_12k].mean() > 5 * brightness[1][row_12k].mean()
    assert brightness[2][row_12k].mean() < 0.1                       # above 8 kHz: black
    for b in brightness:                                             # the same band, same level
        assert b[row_4k].mean() == pytest.approx(brightness[0][row_4k].mean(), rel=0.15)


def test_colours_and_png():
    ramp = colourise(np.linspace(-0.5, 1.5, 9))
    assert ramp.shape == (9, 3) and ramp.min() >= 0 and ramp.max() <= 1
    assert np.all(np.diff(ramp.sum(axis=-1)[2:7]) > 0)               # darker = quieter
    rgb = to_uint8(np.random.default_rng(1).random((5, 7, 3)))
    png = encode_png(rgb)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    start = png.index(b"IDAT") + 4
    raw = zlib.decompress(png[start:png.index(b"IEND") - 8])
    assert np.array_equal(np.frombuffer(raw, np.uint8).reshape(5, 1 + 7 * 3)[:, 1:],
                          rgb.reshape(5, -1))
    with pytest.raises(ValueError, match="non-empty"):
        encode_png(np.zeros((0, 3, 3), np.uint8))
    with pytest.raises(ValueError, match="no signal"):
        panels_image([])
