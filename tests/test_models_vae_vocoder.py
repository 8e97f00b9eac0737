"""VAE encoder/decoder and HiFi-GAN: official key layout, sizes, and parity with the dev fixture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from audiosr_core.models.vae import VAEConfig, VAEDecoder, VAEEncoder, sample_posterior
from audiosr_core.models.vocoder import HifiGan, HifiGanConfig

from conftest import PARITY_STEMS, manifest_subset, module_shapes

# Fixture README section 7 tolerances (isolated stages).
TOL_COND = 1e-4
TOL_DECODE = 2e-4
TOL_VOCODER = 1e-4


def _max_err(actual: torch.Tensor, expected: np.ndarray) -> float:
    assert tuple(actual.shape) == expected.shape
    return float(np.abs(actual.detach().numpy() - expected).max())


# --------------------------------------------------------------------------- fixture models


@pytest.fixture(scope="module")
def fixture_params(parity_dir: Path) -> dict:
    return json.loads((parity_dir / "config.json").read_text())["model"]["params"]


@pytest.fixture(scope="module")
def vae_config(fixture_params: dict) -> VAEConfig:
    params = fixture_params["cond_stage_config"]["concat_lowpass_cond"]["params"]
    first_stage = params["first_stage_config"]["params"]
    return VAEConfig.from_official(first_stage["ddconfig"], first_stage["embed_dim"])


@pytest.fixture(scope="module")
def encoder(vae_config: VAEConfig, official_parts) -> VAEEncoder:
    model = VAEEncoder(vae_config).eval()
    model.load_state_dict(official_parts["vae_encoder"], strict=True)
    return model


@pytest.fixture(scope="module")
def decoder(fixture_params: dict, official_parts) -> VAEDecoder:
    first_stage = fixture_params["first_stage_config"]["params"]
    config = VAEConfig.from_official(first_stage["ddconfig"], first_stage["embed_dim"])
    model = VAEDecoder(config).eval()
    model.load_state_dict(official_parts["vae_decoder"], strict=True)
    return model


@pytest.fixture(scope="module")
def vocoder(fixture_params: dict, official_parts) -> HifiGan:
    model = HifiGan(HifiGanConfig.from_official(fixture_params["vocoder_config"])).eval()
    model.load_state_dict(official_parts["vocoder"], strict=True)
    return model


def test_fixture_configs_are_the_tiny_configs(vae_config: VAEConfig, fixture_params: dict):
    assert vae_config == VAEConfig.tiny()
    assert HifiGanConfig.from_official(fixture_params["vocoder_config"]) == HifiGanConfig.tiny()


# --------------------------------------------------------------------------- parity (isolated)


@pytest.mark.parametrize("stem", PARITY_STEMS)
def test_cond_encode_matches_official(stem, encoder, official_parts, parity_expected):
    exp = parity_expected[stem]
    scale_factor = official_parts["scale_factor"]["scale_factor"]
    mel = torch.from_numpy(exp["mel_lowpass"])[None, None]  # [1, 1, 512, 256]
    with torch.no_grad():
        mean, logvar = encoder(mel)
    errors = {
        "cond_mean": _max_err(mean, exp["cond_mean"]),
        "cond_logvar": _max_err(logvar, exp["cond_logvar"]),
        "cond_latent": _max_err(scale_factor * mean, exp["cond_latent"]),
    }
    assert max(errors.values()) < TOL_COND, errors


@pytest.mark.parametrize("stem", PARITY_STEMS)
def test_decode_matches_official(stem, decoder, official_parts, parity_expected):
    exp = parity_expected[stem]
    inv_scale = 1.0 / official_parts["scale_factor"]["scale_factor"]  # reciprocal of the buffer
    with torch.no_grad():
        mel = decoder(inv_scale * torch.from_numpy(exp["ddim_latent"]))
    error = _max_err(mel, exp["mel_decoded"])
    assert error < TOL_DECODE, error


@pytest.mark.parametrize("stem", PARITY_STEMS)
def test_vocoder_matches_official(stem, vocoder, parity_expected):
    exp = parity_expected[stem]
    mel = torch.from_numpy(exp["mel_replaced"])[:, 0].permute(0, 2, 1)  # [1, 256, 512]
    with torch.no_grad():
        wave = vocoder(mel)
    assert wave.shape == (1, 1, 480 * 512 + 16)
    error = _max_err(wave, exp["vocoder_wave"])
    assert error < TOL_VOCODER, error


# --------------------------------------------------------------------------- full-size layout


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_basic_layout_matches_official_manifest(official_manifest):
    manifest = official_manifest
    with torch.device("meta"):
        enc = VAEEncoder(VAEConfig.basic())
        dec = VAEDecoder(VAEConfig.basic())
        voc = HifiGan(HifiGanConfig.basic())

    vae = "cond_stage_models.0.vae."
    first = "first_stage_model."
    enc_keys = (vae + "encoder.", vae + "quant_conv.")
    assert module_shapes(enc) == manifest_subset(manifest, enc_keys, vae)
    assert module_shapes(dec) == manifest_subset(
        manifest, (first + "decoder.", first + "post_quant_conv."), first
    )
    voc_keys = (first + "vocoder.",)
    assert module_shapes(voc) == manifest_subset(manifest, voc_keys, first + "vocoder.")

    # Parameter counts quoted in official-audiosr.md section 2.
    assert _count(enc.encoder) == 90_010_272
    assert _count(enc.quant_conv) == 1_056
    assert _count(dec.decoder) == 133_523_969
    assert _count(dec.post_quant_conv) == 272
    assert _count(voc) == 190_281_889


def test_basic_from_official_ddconfig():
    ddconfig = {
        "double_z": True, "mel_bins": 256, "z_channels": 16, "resolution": 256,
        "downsample_time": False, "in_channels": 1, "out_ch": 1, "ch": 128,
        "ch_mult": [1, 2, 4, 8], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.1,
    }  # fmt: skip
    assert VAEConfig.from_official(ddconfig, 16) == VAEConfig.basic()
    with pytest.raises(ValueError, match="attn_resolutions"):
        VAEConfig.from_official({**ddconfig, "attn_resolutions": [32]}, 16)
    with pytest.raises(ValueError, match="resblock"):
        HifiGanConfig.from_official({"resblock": "2"})


# --------------------------------------------------------------------------- loading, sampling


@pytest.mark.parametrize(
    ("part", "build"),
    [
        ("vae_encoder", lambda: VAEEncoder(VAEConfig.tiny())),
        ("vae_decoder", lambda: VAEDecoder(VAEConfig.tiny())),
        ("vocoder", lambda: HifiGan(HifiGanConfig.tiny())),
    ],
)
def test_strict_load_rejects_missing_and_unexpected_keys(part, build):
    torch.manual_seed(0)
    state = dict(build().state_dict())
    model = build()
    model.load_state_dict(state, strict=True)
    missing = dict(state)
    missing.pop(next(k for k in state if k.endswith(".bias")))
    with pytest.raises(RuntimeError, match="Missing key"):
        build().load_state_dict(missing, strict=True)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        build().load_state_dict({**state, "extra.weight": torch.zeros(1)}, strict=True)


def test_posterior_sample_uses_generator(tiny_audiosr):
    encoder = tiny_audiosr.model.vae_encoder
    mel = torch.randn(1, 1, 64, 256, generator=torch.Generator().manual_seed(0)) - 5.0
    with torch.no_grad():
        mean, logvar = encoder(mel)
        a = encoder.sample(mel, torch.Generator().manual_seed(7))
        b = sample_posterior(mean, logvar, torch.Generator().manual_seed(7))
    noise = torch.randn(mean.shape, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    torch.testing.assert_close(a, mean + torch.exp(0.5 * logvar) * noise)
    assert a.shape == (1, 16, 8, 32)
    assert logvar.min() >= -30.0 and logvar.max() <= 20.0


def test_backward_runs_through_in_place_ops():
    torch.manual_seed(0)
    enc, dec = VAEEncoder(VAEConfig.tiny()), VAEDecoder(VAEConfig.tiny())
    voc = HifiGan(HifiGanConfig.tiny())
    mel = torch.randn(1, 1, 16, 256)
    mean, logvar = enc(mel)
    out = dec(mean + logvar)
    wave = voc(out[:, 0].transpose(1, 2))
    assert wave.shape == (1, 1, 480 * 16 + 16)
    (out.square().mean() + wave.square().mean()).backward()
    for module in (enc, dec, voc):
        assert all(p.grad is not None for p in module.parameters())


def test_group_norm_is_precise_on_channels_last_input_with_a_large_mean():
    from audiosr_core.models.layers import GroupNorm

    torch.manual_seed(0)
    x = 100.0 + torch.randn(1, 64, 32, 16)
    norm = GroupNorm(32, 64, eps=1e-6)
    reference = torch.nn.functional.group_norm(x.double(), 32, eps=1e-6)
    out = norm(x.contiguous(memory_format=torch.channels_last))
    assert (out.double() - reference).abs().max().item() < 1e-4
    assert set(norm.state_dict()) == {"weight", "bias"}
