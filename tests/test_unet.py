"""UNet: official key layout, parity with the official fixture, full-size shapes on meta."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from audiosr_core.models.unet import UNet, UNetConfig, timestep_embedding

from conftest import PARITY_STEMS, manifest_subset, module_shapes

UNET_PREFIX = "model.diffusion_model."


@pytest.fixture(scope="module")
def official_unet_params(parity_dir):
    config = json.loads((parity_dir / "config.json").read_text())
    return config["model"]["params"]["unet_config"]["params"]


@pytest.fixture(scope="module")
def tiny_unet(official_parts, official_unet_params):
    unet = UNet(UNetConfig.from_official(official_unet_params)).eval()
    unet.load_state_dict(official_parts["unet"], strict=True)
    return unet


@pytest.fixture(scope="module")
def random_unet(tiny_audiosr):
    """A tiny UNet with seeded random weights (conftest), for tests that need some UNet."""
    return tiny_audiosr.model.unet


def test_from_official_is_tiny(official_unet_params):
    assert UNetConfig.from_official(official_unet_params) == UNetConfig.tiny()


def test_state_dict_is_official(tiny_unet, official_parts):
    ours = tiny_unet.state_dict()
    assert list(ours) == list(official_parts["unet"])
    assert all(ours[k].shape == v.shape for k, v in official_parts["unet"].items())


@pytest.mark.parametrize("stem", PARITY_STEMS)
def test_unet_matches_official(tiny_unet, parity_expected, stem):
    exp = parity_expected[stem]
    x = torch.from_numpy(exp["unet_x"])
    cond = torch.from_numpy(exp["cond_latent"])
    uncond = torch.full_like(cond, float(exp["uncond_latent_value"]))
    t = torch.tensor([int(exp["unet_t"])])
    with torch.no_grad():
        v_c = tiny_unet(torch.cat([x, cond], dim=1), t).numpy()
        v_u = tiny_unet(torch.cat([x, uncond], dim=1), t).numpy()
    assert v_c.shape == exp["unet_out_cond"].shape
    np.testing.assert_allclose(v_c, exp["unet_out_cond"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(v_u, exp["unet_out_uncond"], rtol=0, atol=1e-4)


def test_timestep_forms_agree(random_unet):
    x = torch.randn(2, 32, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        v_int = random_unet(x, torch.tensor([623, 623]))
        v_float = random_unet(x, torch.tensor([623.0, 623.0]))
        v_scalar = random_unet(x, 623)
    assert torch.equal(v_int, v_float)
    assert torch.equal(v_int, v_scalar)


def test_timestep_embedding_is_cos_then_sin():
    emb = timestep_embedding(torch.tensor([0, 5]), 8)
    assert emb.shape == (2, 8) and emb.dtype == torch.float32
    assert torch.equal(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    freqs = torch.exp(-np.log(10000.0) * torch.arange(4, dtype=torch.float32) / 4)
    torch.testing.assert_close(emb[1], torch.cat([torch.cos(5 * freqs), torch.sin(5 * freqs)]))


def test_rejects_sizes_the_official_cannot_take(random_unet):
    # Conv stride-2 then nearest x2 gives 2*ceil(n/2) != n: the official fails in torch.cat.
    with pytest.raises(ValueError, match="divisible by 8"):
        random_unet(torch.zeros(1, 32, 60, 32), torch.tensor([1]))
    with pytest.raises(ValueError, match=r"\[B, 32, T, F\]"):
        random_unet(torch.zeros(1, 16, 64, 32), torch.tensor([1]))


def test_basic_from_official_and_rejects_unsupported():
    # the official get_basic_config() unet_config params
    params = {
        "image_size": 64, "in_channels": 32, "out_channels": 16, "model_channels": 128,
        "attention_resolutions": [8, 4, 2], "num_res_blocks": 2, "channel_mult": [1, 2, 3, 5],
        "num_head_channels": 32, "extra_sa_layer": True, "use_spatial_transformer": True,
        "transformer_depth": 1,
    }  # fmt: skip
    assert UNetConfig.from_official(params) == UNetConfig.basic()
    with pytest.raises(ValueError, match="context_dim"):
        UNetConfig.from_official({**params, "context_dim": 768})
    with pytest.raises(ValueError, match="multiples of 32"):
        UNetConfig(model_channels=48)


def test_basic_matches_official_manifest(official_manifest):
    expected = manifest_subset(official_manifest, (UNET_PREFIX,), UNET_PREFIX)
    with torch.device("meta"):
        unet = UNet(UNetConfig.basic())
    got = module_shapes(unet)
    assert list(got.items()) == list(expected.items())  # same keys, shapes and order
    assert sum(p.numel() for p in unet.parameters()) == 258_195_088
