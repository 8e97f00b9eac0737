"""Tiny random-weight generators for the adapter tests, built offline from configs.

Every builder seeds torch, so two calls give the same weights. Tokenizers are built in memory
(no hub): a character-level byte-BPE vocabulary for CLAP/Roberta and a character Unigram
vocabulary for T5. ``require(module)`` imports an optional dependency: missing, it skips the
test locally with the reason and fails it under ``CI=true`` (``make test`` installs them all).
"""

from __future__ import annotations

import importlib
import os
import string
import warnings
from types import ModuleType
from typing import Any

import pytest
import torch

#: Characters the tiny tokenizers know (others become the unknown token).
CHARS = string.ascii_letters + string.digits + ".,!?'-"


#: How to install audiocraft: it pins torch 2.1, so the Makefile installs it without its
#: dependencies plus only the modules its import needs (target ``$(VENV)/.adapters``).
AUDIOCRAFT_INSTALL = "make .venv/.adapters"


def require(module: str) -> ModuleType:
    """Import ``module``; skip locally, fail under ``CI=true``, when it is not importable.

    audiocraft (and its submodules) counts as not importable whatever its import raises: a
    partial install fails with OSError or RuntimeError as well as ImportError.
    """
    audiocraft = module.split(".")[0] == "audiocraft"
    errors = Exception if audiocraft else ImportError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except errors as exc:
        if audiocraft:
            msg = (f"audiocraft is not importable ({module}: {type(exc).__name__}: {exc}); "
                   f"install it with `{AUDIOCRAFT_INSTALL}` (`make test` does it too)")
        else:
            msg = (f"{module} is not installed ({exc}); `make test` installs it (Makefile "
                   "target $(VENV)/.adapters)")
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


# ------------------------------------------------------------------------------- tokenizers
def char_bpe_tokenizer(max_length: int = 32) -> Any:
    """A ``RobertaTokenizer`` whose vocabulary is the special tokens and single characters.

    Byte-level BPE spells a space before a word as ``"Ġ"``; with no merges every character
    is one token.
    """
    transformers = require("transformers")
    vocab = {tok: i for i, tok in enumerate(["<s>", "<pad>", "</s>", "<unk>"])}
    for ch in ["Ġ", *CHARS]:
        vocab[ch] = len(vocab)
    vocab["<mask>"] = len(vocab)
    return transformers.RobertaTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def char_t5_tokenizer(max_length: int = 32) -> Any:
    """A ``T5Tokenizer`` (Unigram) over single characters, with and without the word marker."""
    transformers = require("transformers")
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -3.0)]
    pieces += [(ch, -6.0) for ch in CHARS] + [("\u2581" + ch, -5.0) for ch in CHARS]
    return transformers.T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=max_length)


def audible(vocoder: Any, gain: float = 3e4) -> Any:
    """Scale a random HiFi-GAN's last convolution so its output peaks near 0.1-0.9.

    Random initialisation gives a peak near 1e-5, which AudioSR treats as silence and passes
    through unchanged; the tests need a signal it enhances. The ``tanh`` after the
    convolution keeps the output within +-1.
    """
    with torch.no_grad():
        vocoder.conv_post.weight.mul_(gain)
        vocoder.conv_post.bias.zero_()
    return vocoder


# ------------------------------------------------------------------------------- diffusers
def _vocoder_16k() -> Any:
    """SpeechT5 HiFi-GAN at 16 kHz from 8 mel bins, hop 64 (4096 samples for the default
    length of the tiny AudioLDM pipelines)."""
    transformers = require("transformers")
    torch.manual_seed(0)
    return audible(transformers.SpeechT5HifiGan(transformers.SpeechT5HifiGanConfig(
        model_in_dim=8, sampling_rate=16000, upsample_initial_channel=16, upsample_rates=[8, 8],
        upsample_kernel_sizes=[16, 16], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
        normalize_before=False)))


def _vae_and_scheduler() -> tuple[Any, Any]:
    diffusers = require("diffusers")
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(
        block_out_channels=[8, 16], in_channels=1, out_channels=1, latent_channels=4,
        norm_num_groups=8, down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2)
    scheduler = diffusers.DDIMScheduler(beta_start=0.00085, beta_end=0.012,
                                        beta_schedule="scaled_linear", clip_sample=False,
                                        set_alpha_to_one=False)
    return vae, scheduler


#: The UNet sizes both AudioLDM test pipelines share.
TINY_UNET = dict(sample_size=32, in_channels=4, out_channels=4, layers_per_block=1,
                 block_out_channels=(16, 32), norm_num_groups=8, attention_head_dim=4,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))


def tiny_audioldm() -> Any:
    """``AudioLDMPipeline`` (16 kHz, 4096 samples by default) with random weights."""
    diffusers = require("diffusers")
    transformers = require("transformers")
    vae, scheduler = _vae_and_scheduler()
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(**TINY_UNET, cross_attention_dim=(16, 32),
        class_embed_type="simple_projection", projection_class_embeddings_input_dim=16,
        class_embeddings_concat=True)
    torch.manual_seed(0)
    text_encoder = transformers.ClapTextModelWithProjection(transformers.ClapTextConfig(
        bos_token_id=0, eos_token_id=2, pad_token_id=1, vocab_size=100, hidden_size=16,
        intermediate_size=24, num_attention_heads=2, num_hidden_layers=1, projection_dim=16,
        max_position_embeddings=40))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = diffusers.AudioLDMPipeline(
            vae=vae, text_encoder=text_encoder, tokenizer=char_bpe_tokenizer(), unet=unet,
            scheduler=scheduler, vocoder=_vocoder_16k())
    return _ready(pipe)


def tiny_audioldm2() -> Any:
    """``AudioLDM2Pipeline`` (16 kHz, 4096 samples by default) with random weights.

    The language model is a ``GPT2LMHeadModel``: the bare ``GPT2Model`` of diffusers' own
    tests no longer generates under transformers 5.
    """
    diffusers = require("diffusers")
    transformers = require("transformers")
    vae, scheduler = _vae_and_scheduler()
    torch.manual_seed(0)
    unet = diffusers.AudioLDM2UNet2DConditionModel(
        **TINY_UNET, cross_attention_dim=([None, 16, 24], [None, 16, 24]))
    torch.manual_seed(0)
    text_config = transformers.ClapTextConfig(
        bos_token_id=0, eos_token_id=2, pad_token_id=1, vocab_size=100, hidden_size=16,
        intermediate_size=24, num_attention_heads=2, num_hidden_layers=1, projection_dim=16,
        max_position_embeddings=40)
    audio_config = transformers.ClapAudioConfig(
        spec_size=64, window_size=4, num_mel_bins=64, intermediate_size=24, depths=[1, 1],
        num_attention_heads=[2, 2], num_hidden_layers=2, patch_embeds_hidden_size=16,
        hidden_size=32, projection_dim=16,
        patch_size=2, patch_stride=2, patch_embed_input_channels=4)
    clap = transformers.ClapModel(transformers.ClapConfig(
        text_config=text_config.to_dict(), audio_config=audio_config.to_dict(),
        projection_dim=16))
    t5 = transformers.T5EncoderModel(transformers.T5Config(
        vocab_size=200, d_model=24, d_ff=32, d_kv=8, num_heads=2, num_layers=1))
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_embd=16, n_head=2, n_layer=1, vocab_size=100, n_ctx=64, n_positions=64, bos_token_id=0,
        eos_token_id=2))
    gpt2.config.max_new_tokens = 4
    projection = diffusers.AudioLDM2ProjectionModel(
        text_encoder_dim=16, text_encoder_1_dim=24, langauge_model_dim=16)
    pipe = diffusers.AudioLDM2Pipeline(
        vae=vae, text_encoder=clap, text_encoder_2=t5, projection_model=projection,
        language_model=gpt2, tokenizer=char_bpe_tokenizer(), tokenizer_2=char_t5_tokenizer(),
        feature_extractor=transformers.ClapFeatureExtractor(hop_length=7900), unet=unet,
        scheduler=scheduler, vocoder=_vocoder_16k())
    return _ready(pipe)


def _ready(pipe: Any) -> Any:
    """Inference mode as ``from_pretrained`` leaves it: every network in eval (dropout off,
    deterministic for a seed), no progress bar."""
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ---------------------------------------------------------------------------- transformers
#: Audio codebooks and codebook size of the tiny MusicGen models.
N_Q, CARD = 4, 64


def _musicgen_parts(sample_rate: int) -> tuple[Any, Any, Any]:
    transformers = require("transformers")
    text = transformers.T5Config(vocab_size=200, d_model=16, d_ff=32, d_kv=8, num_heads=2,
                                 num_layers=1)
    # hop 8*5*4*4 = 640 samples: 50 frames/s at 32 kHz, as the real checkpoints
    codec = transformers.EncodecConfig(
        sampling_rate=sample_rate, audio_channels=1, hidden_size=16, num_filters=4,
        upsampling_ratios=[8, 5, 4, 4], codebook_size=CARD, target_bandwidths=[2.2],
        num_lstm_layers=1, compress=2, norm_type="weight_norm")
    decoder = transformers.MusicgenDecoderConfig(
        vocab_size=CARD, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=32,
        num_codebooks=N_Q, max_position_embeddings=128, pad_token_id=CARD, bos_token_id=CARD)
    return text, codec, decoder


def _generation_defaults(model: Any) -> Any:
    model.generation_config.pad_token_id = CARD
    model.generation_config.decoder_start_token_id = CARD
    return model.eval()


def tiny_musicgen(sample_rate: int = 32000) -> Any:
    """transformers ``MusicgenForConditionalGeneration`` (mono, 32 kHz, 640 samples/token)."""
    transformers = require("transformers")
    torch.manual_seed(0)
    text, codec, decoder = _musicgen_parts(sample_rate)
    config = transformers.MusicgenConfig(text_encoder=text, audio_encoder=codec, decoder=decoder)
    return _generation_defaults(transformers.MusicgenForConditionalGeneration(config))


def tiny_musicgen_melody(sample_rate: int = 32000) -> Any:
    """transformers ``MusicgenMelodyForConditionalGeneration`` with random weights."""
    transformers = require("transformers")
    torch.manual_seed(0)
    text, codec, decoder = _musicgen_parts(sample_rate)
    melody_decoder = transformers.MusicgenMelodyDecoderConfig(**{
        k: getattr(decoder, k) for k in ("vocab_size", "hidden_size", "num_hidden_layers",
                                         "num_attention_heads", "ffn_dim", "num_codebooks",
                                         "max_position_embeddings", "pad_token_id",
                                         "bos_token_id")})
    config = transformers.MusicgenMelodyConfig(text_encoder=text, audio_encoder=codec,
                                               decoder=melody_decoder, num_chroma=12,
                                               chroma_length=16)
    return _generation_defaults(transformers.MusicgenMelodyForConditionalGeneration(config))


def musicgen_inputs(texts: list[str]) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` for the tiny MusicGen text encoders."""
    return dict(char_t5_tokenizer()(texts, padding=True, return_tensors="pt"))


def musicgen_text_to_audio(model: Any) -> Any:
    """transformers ``pipeline("text-to-audio")`` around a tiny MusicGen."""
    transformers = require("transformers")
    extractor = transformers.EncodecFeatureExtractor(
        feature_size=1, sampling_rate=model.config.audio_encoder.sampling_rate)
    return transformers.pipeline("text-to-audio", model=model, tokenizer=char_t5_tokenizer(),
                                 feature_extractor=extractor)


#: Vocabulary size of the tiny FastSpeech2 (ids 1..38 are symbols, 39 is <sos/eos>).
FS2_VOCAB = 40


def tiny_fastspeech2_parts() -> tuple[Any, Any]:
    """Configs of a tiny FastSpeech2-Conformer acoustic model and HiFi-GAN (hop 256)."""
    transformers = require("transformers")
    model = transformers.FastSpeech2ConformerConfig(
        hidden_size=16, vocab_size=FS2_VOCAB, num_mel_bins=20, encoder_layers=1, decoder_layers=1,
        encoder_linear_units=32, decoder_linear_units=32, encoder_num_attention_heads=2,
        decoder_num_attention_heads=2, speech_decoder_postnet_layers=1,
        speech_decoder_postnet_units=16, duration_predictor_channels=16,
        duration_predictor_layers=1, energy_predictor_channels=16, energy_predictor_layers=1,
        pitch_predictor_channels=16, pitch_predictor_layers=1, decoder_kernel_size=7)
    vocoder = transformers.FastSpeech2ConformerHifiGanConfig(
        model_in_dim=20, upsample_initial_channel=16, upsample_rates=[8, 8, 4],
        upsample_kernel_sizes=[16, 16, 8], resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]])
    return model, vocoder


def tiny_fastspeech2_with_hifigan() -> Any:
    """transformers ``FastSpeech2ConformerWithHifiGan`` with random weights."""
    transformers = require("transformers")
    model, vocoder = tiny_fastspeech2_parts()
    torch.manual_seed(0)
    config = transformers.FastSpeech2ConformerWithHifiGanConfig(
        model_config=model.to_dict(), vocoder_config=vocoder.to_dict())
    model = transformers.FastSpeech2ConformerWithHifiGan(config).eval()
    audible(model.vocoder)
    return model


def tiny_fastspeech2_model_and_hifigan() -> tuple[Any, Any]:
    """transformers ``FastSpeech2ConformerModel`` and ``FastSpeech2ConformerHifiGan``."""
    transformers = require("transformers")
    model, vocoder = tiny_fastspeech2_parts()
    torch.manual_seed(0)
    return (transformers.FastSpeech2ConformerModel(model).eval(),
            audible(transformers.FastSpeech2ConformerHifiGan(vocoder).eval()))


def phoneme_ids(batch: int = 1, length: int = 24, seed: int = 0) -> torch.Tensor:
    """Random symbol ids ``[batch, length]`` ending with ``<sos/eos>`` (no tokenizer: the real
    one needs g2p_en and NLTK data from the network)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, FS2_VOCAB - 1, (batch, length), generator=gen)
    ids[:, -1] = FS2_VOCAB - 1
    return ids


# ------------------------------------------------------------------------------- audiocraft
def _audiocraft_config(sample_rate: int, melody: bool) -> dict[str, Any]:
    """An audiocraft solver config for a tiny EnCodec (hop 640) + transformer LM."""
    fuser = {"cross_attention_pos_emb": False, "cross_attention_pos_emb_scale": 1, "sum": [],
             "prepend": ["self_wav"] if melody else [], "cross": ["description"],
             "input_interpolate": []}
    return {
        "device": "cpu", "dtype": "float32", "sample_rate": sample_rate, "channels": 1,
        "compression_model": "encodec",
        "encodec": {"autoencoder": "seanet", "quantizer": "rvq", "sample_rate": sample_rate,
                    "channels": 1, "causal": False, "renormalize": False},
        "seanet": {"dimension": 16, "channels": 1, "causal": False, "n_filters": 4,
                   "n_residual_layers": 1, "ratios": [8, 5, 4, 4], "activation": "ELU",
                   "activation_params": {"alpha": 1.0}, "norm": "weight_norm",
                   "norm_params": {}, "kernel_size": 7, "residual_kernel_size": 3,
                   "last_kernel_size": 7, "dilation_base": 2, "pad_mode": "constant",
                   "true_skip": True, "compress": 2, "lstm": 1, "disable_norm_outer_blocks": 0,
                   "decoder": {"trim_right_ratio": 1.0, "final_activation": None,
                               "final_activation_params": None},
                   "encoder": {}},
        "rvq": {"n_q": N_Q, "q_dropout": False, "bins": CARD, "decay": 0.99,
                "kmeans_init": False, "kmeans_iters": 1, "threshold_ema_dead_code": 2,
                "orthogonal_reg_weight": 0.0, "orthogonal_reg_active_codes_only": False},
        "lm_model": "transformer_lm",
        "codebooks_pattern": {"modeling": "delay",
                              "delay": {"delays": list(range(N_Q)), "flatten_first": 0,
                                        "empty_initial": 0}},
        "transformer_lm": {"n_q": N_Q, "card": CARD, "dim": 16, "num_heads": 2, "num_layers": 1,
                           "hidden_scale": 2, "dropout": 0.0, "activation": "gelu",
                           "norm_first": True, "bias_ff": False, "bias_attn": False,
                           "bias_proj": False, "causal": True, "custom": False,
                           "memory_efficient": False, "attention_as_float32": False,
                           "positional_embedding": "sin", "xpos": False, "checkpointing": "none",
                           "weight_init": "gaussian", "depthwise_init": "current",
                           "zero_bias_init": True, "norm": "layer_norm", "cross_attention": False},
        "classifier_free_guidance": {"training_dropout": 0.0, "inference_coef": 3.0},
        "attribute_dropout": {},
        "fuser": fuser,
        "conditioners": {"description": {"model": "lut",
                                         "lut": {"n_bins": 64, "dim": 16, "tokenizer": "noop"}}},
        "dataset": {"segment_duration": 30.0},
    }


def _tiny_melody_conditioner(output_dim: int) -> Any:
    """A ``self_wav`` waveform conditioner without demucs: frame RMS per 640-sample hop.

    The real ``ChromaStemConditioner`` loads pretrained demucs weights from the network;
    ``generate_with_chroma`` only needs some conditioner registered as ``self_wav``.
    """
    conditioners = require("audiocraft.modules.conditioners")
    hop, dim = 640, 4

    class FrameRMS(conditioners.WaveformConditioner):
        def __init__(self) -> None:
            super().__init__(dim=dim, output_dim=output_dim, device="cpu")

        def _downsampling_factor(self) -> int:
            return hop

        def _get_wav_embedding(self, x: Any) -> torch.Tensor:
            wav = x.wav.mean(dim=1)                                   # [B, T]
            frames = max(1, wav.shape[-1] // hop)
            wav = torch.nn.functional.pad(wav, (0, frames * hop - wav.shape[-1]))
            rms = wav[:, :frames * hop].reshape(len(wav), frames, hop).pow(2).mean(-1).sqrt()
            return rms[..., None].expand(-1, -1, dim)

    return FrameRMS()


def tiny_audiocraft(kind: str = "MusicGen", sample_rate: int = 32000,
                    melody: bool = False) -> Any:
    """audiocraft ``MusicGen`` or ``AudioGen`` (mono, 50 frames/s, top_k 16, 0.32 s)."""
    models = require("audiocraft.models")          # first: its skip names the install command
    omegaconf = require("omegaconf")
    cfg = omegaconf.OmegaConf.create(_audiocraft_config(sample_rate, melody))
    torch.manual_seed(0)
    codec = models.builders.get_compression_model(cfg).eval()
    lm = models.builders.get_lm_model(cfg).eval()
    if melody:
        lm.condition_provider.conditioners["self_wav"] = _tiny_melody_conditioner(16)
    model = getattr(models, kind)(f"tiny-{kind.lower()}", codec, lm, max_duration=30.0)
    model.set_generation_params(duration=0.32, top_k=16, extend_stride=2.0)
    return model
