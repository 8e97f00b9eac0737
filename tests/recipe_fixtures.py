"""Tiny random-weight generators saved to folders, loadable by ``recipes.generators``.

``save_tiny_generator(kind, folder)`` writes the tiny generator of ``tests.adapter_fixtures``
for a kind of :data:`recipes.generators.KINDS` into ``folder`` in the layout its library's
``from_pretrained``/``get_pretrained`` reads (with tokenizer/processor), and returns the
string to pass to ``load_generator(kind, ...)``. Nothing touches the network.

FastSpeech2: the real tokenizer needs g2p_en and NLTK data, so the tiny folder holds a
character-level fast tokenizer instead (letters, digits, space and punctuation -> ids 1..38,
``<sos/eos>`` = 39 appended), which ``AutoTokenizer`` loads from the same folder.
"""

from __future__ import annotations

import os
import string
import warnings
from pathlib import Path

import adapter_fixtures as af
import torch

__all__ = ["TINY_KINDS", "save_tiny_generator", "char_tokenizer_fs2", "tiny_tts", "failing_tts"]

TINY_KINDS = ("audioldm", "audioldm2", "musicgen", "musicgen-audiocraft",
              "audiogen-audiocraft", "fastspeech2", "fastspeech2-split")
"""Kinds :func:`save_tiny_generator` knows (``fastspeech2-split``: acoustic model and HiFi-GAN
in two sub-folders, loaded as kind ``fastspeech2`` with ``vocoder=``)."""

#: Symbols of the tiny FastSpeech2 tokenizer: ids 1..38 (0 is <unk>/padding, 39 <sos/eos>).
_FS2_SYMBOLS = (string.ascii_lowercase + " .,!?'-0123456789")[:af.FS2_VOCAB - 2]


def char_tokenizer_fs2():
    """A character-level ``PreTrainedTokenizerFast`` for the tiny FastSpeech2 (lower-cases)."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, **{ch: i + 1 for i, ch in enumerate(_FS2_SYMBOLS)},
             "<sos/eos>": af.FS2_VOCAB - 1}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(
        single="$A <sos/eos>", special_tokens=[("<sos/eos>", af.FS2_VOCAB - 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<unk>",
                                   eos_token="<sos/eos>")


def tiny_tts(text: str, seed: int = 0):
    """A TTS callable for ``--callable tests.recipe_fixtures:tiny_tts --sample-rate 16000``:
    a 0.25 s chord per word (200-3000 Hz, below 8 kHz), deterministic for (text, seed)."""
    import numpy as np

    words = max(1, len(text.split()))
    rng = np.random.default_rng(seed + sum(map(ord, text)))
    t = np.arange(int(0.25 * 16000 * words)) / 16000
    freqs = rng.uniform(200, 3000, size=4)
    wave = sum(np.sin(2 * np.pi * f * t) for f in freqs) * 0.15
    return wave.astype(np.float32)


def failing_tts(text: str, seed: int = 0):
    """Like :func:`tiny_tts` but raises RuntimeError for a text containing ``FAIL`` and
    KeyboardInterrupt (as Ctrl-C would) for one containing ``STOP``."""
    if "STOP" in text:
        raise KeyboardInterrupt
    if "FAIL" in text:
        raise RuntimeError(f"cannot speak {text!r}")
    return tiny_tts(text, seed)


tiny_tts.sample_rate = 16000  # type: ignore[attr-defined]


def _save_audiocraft(kind: str, folder: Path) -> None:
    from omegaconf import OmegaConf

    sample_rate = 32000 if kind == "MusicGen" else 16000
    model = af.tiny_audiocraft(kind, sample_rate=sample_rate)
    cfg = OmegaConf.to_yaml(OmegaConf.create(af._audiocraft_config(sample_rate, False)))
    torch.save({"xp.cfg": cfg, "best_state": model.compression_model.state_dict()},
               folder / "compression_state_dict.bin")
    torch.save({"xp.cfg": cfg, "best_state": model.lm.state_dict()}, folder / "state_dict.bin")


def save_tiny_generator(kind: str, folder: str | os.PathLike[str]) -> str:
    """Save the tiny generator of ``kind`` (see :data:`TINY_KINDS`) into ``folder``.

    Returns the ``name_or_path`` for ``load_generator`` (the folder itself, or for
    ``fastspeech2-split`` the acoustic model's sub-folder; the HiFi-GAN is in
    ``<folder>/hifigan``).
    """
    import transformers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "audioldm":
            af.tiny_audioldm().save_pretrained(folder)
        elif kind == "audioldm2":
            af.tiny_audioldm2().save_pretrained(folder)
        elif kind == "musicgen":
            model = af.tiny_musicgen()
            torch.manual_seed(1)
            with torch.no_grad():  # random codebooks: zeros would make every code sound alike
                for layer in model.audio_encoder.quantizer.layers:
                    layer.codebook.embed.normal_()
                    layer.codebook.embed_avg.copy_(layer.codebook.embed)
            model.save_pretrained(folder)
            extractor = transformers.EncodecFeatureExtractor(
                feature_size=1, sampling_rate=model.config.audio_encoder.sampling_rate)
            transformers.MusicgenProcessor(feature_extractor=extractor,
                                           tokenizer=af.char_t5_tokenizer()).save_pretrained(folder)
        elif kind == "musicgen-audiocraft":
            _save_audiocraft("MusicGen", folder)
        elif kind == "audiogen-audiocraft":
            _save_audiocraft("AudioGen", folder)
        elif kind == "fastspeech2":
            af.tiny_fastspeech2_with_hifigan().save_pretrained(folder)
            char_tokenizer_fs2().save_pretrained(folder)
        elif kind == "fastspeech2-split":
            model, vocoder = af.tiny_fastspeech2_model_and_hifigan()
            model.save_pretrained(folder / "model")
            char_tokenizer_fs2().save_pretrained(folder / "model")
            vocoder.save_pretrained(folder / "hifigan")
            return str(folder / "model")
        else:
            raise ValueError(f"no tiny generator for kind {kind!r}; known: {', '.join(TINY_KINDS)}")
    return str(folder)
