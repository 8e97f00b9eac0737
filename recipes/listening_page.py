"""A before/after listening page: ``index.html`` with players and spectrograms per prompt.

Each entry shows its text (HTML-escaped: prompts are user input), a "before" player (the
generator's own file at its own rate), an "after" player (48 kHz), and a spectrogram of each.
Both spectrograms of a pair share the frequency axis (0-24 kHz, so the band AudioSR adds
above the original Nyquist is visible) and the dB colour scale. Every link is relative to
the page's folder, so the folder can be moved, zipped or served as it is.

>>> render_spectrogram_pair(before, 16000, after, 48000, "spec/001-before.png",
...                         "spec/001-after.png")                     # doctest: +SKIP
>>> write_listening_page("out", [PageEntry("001", "a dog barks", "before/001.wav", 16000,
...     "001.wav", "spec/001-before.png", "spec/001-after.png")])  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import numpy as np

from audiosr_core.atomic import write_text

__all__ = ["PageEntry", "spectrogram_db", "shared_db_range", "render_spectrogram",
           "render_spectrogram_pair", "page_html", "write_listening_page", "MAX_HZ",
           "DYNAMIC_RANGE_DB"]

MAX_HZ = 24000.0
"""Top of every spectrogram's frequency axis (the 48 kHz Nyquist), Hz."""
DYNAMIC_RANGE_DB = 80.0
"""Span of the colour scale below the louder spectrogram's peak, dB."""


@dataclasses.dataclass(frozen=True)
class PageEntry:
    """One prompt on the page. Paths are relative to the page's folder (POSIX or native).

    ``error`` set: the entry failed; only its label, text and the error are shown.
    """

    label: str
    text: str
    before: str = ""
    before_rate: int = 0
    after: str = ""
    before_png: str = ""
    after_png: str = ""
    error: str | None = None


# ----------------------------------------------------------------------------- spectrogram
def spectrogram_db(audio: np.ndarray, sample_rate: int,
                   window_s: float = 0.02) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Magnitude spectrogram in dB of the channel mean.

    Returns ``(times_s, freqs_hz, db)`` with ``db`` shaped ``[freqs, frames]``. The FFT size
    is the power of two nearest ``window_s`` seconds (Hann window, 75 % overlap), so two rates
    give comparable time/frequency resolution; the level is in dB re full-scale sine.
    """
    x = np.asarray(audio, dtype=np.float64)
    x = x.mean(axis=0) if x.ndim == 2 else x.reshape(-1)
    n_fft = int(2 ** round(np.log2(max(16.0, window_s * sample_rate))))
    hop = n_fft // 4
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    frames = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    window = np.hanning(n_fft)
    mag = np.abs(np.fft.rfft(x[idx] * window, axis=-1)).T / (window.sum() / 2)
    db = 20 * np.log10(np.maximum(mag, 1e-10))
    times = (np.arange(frames) * hop + n_fft / 2) / sample_rate
    freqs = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    return times, freqs, db.astype(np.float32)


def shared_db_range(*dbs: np.ndarray,
                    dynamic_range: float = DYNAMIC_RANGE_DB) -> tuple[float, float]:
    """``(vmin, vmax)``: the loudest bin of all spectrograms and ``dynamic_range`` below it."""
    vmax = max(float(np.max(d)) for d in dbs)
    return vmax - dynamic_range, vmax


def render_spectrogram(audio: np.ndarray, sample_rate: int, path: str | os.PathLike[str], *,
                       vmin: float | None = None, vmax: float | None = None,
                       title: str = "", max_hz: float = MAX_HZ,
                       mark_hz: float | None = None) -> Path:
    """Write one spectrogram PNG (matplotlib Agg, no global state): frequency axis
    0..``max_hz`` whatever the rate (empty above the Nyquist), colour scale ``vmin..vmax``
    dB (default: this spectrogram's peak and 80 dB below). ``mark_hz``: a dashed line there
    (the original Nyquist)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    times, freqs, db = spectrogram_db(audio, sample_rate)
    if vmin is None or vmax is None:
        vmin, vmax = shared_db_range(db)
    duration = np.shape(audio)[-1] / sample_rate
    fig = Figure(figsize=(5.2, 2.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_facecolor("black")
    image = ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                      extent=(0.0, max(duration, float(times[-1])), 0.0, float(freqs[-1]) / 1000),
                      interpolation="nearest")
    ax.set_ylim(0, max_hz / 1000)
    if mark_hz is not None and mark_hz < max_hz:
        ax.axhline(mark_hz / 1000, color="white", linestyle="--", linewidth=0.8, alpha=0.7)
    ax.set_xlim(0, max(duration, 1e-3))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("kHz")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="dB")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def render_spectrogram_pair(before: np.ndarray, before_rate: int, after: np.ndarray,
                            after_rate: int, before_png: str | os.PathLike[str],
                            after_png: str | os.PathLike[str]) -> tuple[float, float]:
    """Write the before and after spectrograms with one shared dB scale and the same 0-24 kHz
    axis (a dashed line at the original Nyquist); returns the ``(vmin, vmax)`` used."""
    before_db = spectrogram_db(before, before_rate)[2]
    after_db = spectrogram_db(after, after_rate)[2]
    vmin, vmax = shared_db_range(before_db, after_db)
    nyquist = before_rate / 2
    render_spectrogram(before, before_rate, before_png, vmin=vmin, vmax=vmax,
                       title=f"before ({before_rate / 1000:g} kHz)", mark_hz=nyquist)
    render_spectrogram(after, after_rate, after_png, vmin=vmin, vmax=vmax,
                       title=f"after ({after_rate / 1000:g} kHz)", mark_hz=nyquist)
    return vmin, vmax


# ------------------------------------------------------------------------------------ page
def _href(path: str) -> str:
    """A relative URL for a path relative to the page; ValueError for anything else."""
    posix = PurePosixPath(str(path).replace(os.sep, "/"))
    if not str(path) or posix.is_absolute() or ".." in posix.parts or ":" in posix.parts[0]:
        raise ValueError(f"page links must be relative paths inside the page folder, got "
                         f"{path!r}")
    return quote(posix.as_posix())


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}
section{border-top:1px solid #ccc;padding:1em 0}
.text{font-size:1.1em;white-space:pre-wrap}
.pair{display:flex;flex-wrap:wrap;gap:1.5em}
figure{margin:0}
figcaption{font-weight:bold;margin-bottom:.3em}
audio{width:100%;display:block;margin-bottom:.4em}
img{max-width:100%}
.error{color:#a00}
table{border-collapse:collapse}td,th{padding:.1em .8em .1em 0;text-align:left}
"""


def _player(caption: str, audio: str, png: str) -> str:
    return (f'<figure><figcaption>{html.escape(caption)}</figcaption>'
            f'<audio controls preload="metadata" src="{_href(audio)}"></audio>'
            f'<img src="{_href(png)}" alt="{html.escape(caption)} spectrogram" '
            f'width="520" height="240"></figure>')


def page_html(entries: Sequence[PageEntry], title: str = "Before / after AudioSR",
              settings: Mapping[str, object] | None = None) -> str:
    """The page as a string (every user text escaped, every link relative)."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             "<p>Before: the generator's own output at its own sample rate. After: the same "
             "audio enhanced to 48 kHz by AudioSR. Both spectrograms of a pair share the "
             "0-24 kHz axis and the dB colour scale.</p>"]
    if settings:
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                       for k, v in settings.items())
        parts.append(f'<table class="settings">{rows}</table>')
    for entry in entries:
        label = html.escape(entry.label)
        parts.append(f'<section id="item-{label}"><h2>{label}</h2>'
                     f'<p class="text">{html.escape(entry.text)}</p>')
        if entry.error is not None:
            parts.append(f'<p class="error">failed: {html.escape(entry.error)}</p></section>')
            continue
        parts.append('<div class="pair">'
                     + _player(f"before ({entry.before_rate / 1000:g} kHz)", entry.before,
                               entry.before_png)
                     + _player("after (48 kHz)", entry.after, entry.after_png)
                     + "</div></section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_listening_page(folder: str | os.PathLike[str], entries: Sequence[PageEntry],
                         title: str = "Before / after AudioSR",
                         settings: Mapping[str, object] | None = None) -> Path:
    """Write ``folder/index.html`` for ``entries`` (files they link must be inside ``folder``;
    a missing linked file raises FileNotFoundError). Returns the page's path."""
    root = Path(folder)
    for entry in entries:
        if entry.error is None:
            for rel in (entry.before, entry.after, entry.before_png, entry.after_png):
                _href(rel)
                if not (root / rel).is_file():
                    raise FileNotFoundError(f"the page links {rel!r}, which is not in {root}")
    text = page_html(entries, title, settings)
    return write_text(root / "index.html", text)
