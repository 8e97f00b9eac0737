"""Samplers: official DDIM parity, CFG batching, timestep rules, DPM-Solver++ accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiosr_core.models.unet import UNet, UNetConfig
from audiosr_core.sampling import (
    DDIMSampler,
    DPMSolverSampler,
    GuidedUNet,
    NoiseSchedule,
    cosine_betas,
    make_sampler,
    official_ddim_timesteps,
    sample_ddim,
    sample_dpmpp_2m,
    unconditional_value,
)
from audiosr_core.weights import load_official_checkpoint

from conftest import PARITY_STEMS, f32_atol

SCHEDULE = NoiseSchedule.cosine()


@pytest.fixture(scope="module")
def tiny_unet(official_parts):
    unet = UNet(UNetConfig.tiny()).eval()
    unet.load_state_dict(official_parts["unet"], strict=True)
    return unet


@pytest.fixture(scope="module")
def scale_factor(official_parts):
    return official_parts["scale_factor"]["scale_factor"]


@pytest.fixture(scope="module")
def random_unet(tiny_audiosr):
    """A tiny UNet with seeded random weights (conftest), for tests that need some UNet."""
    return tiny_audiosr.model.unet


def _small_inputs(seed: int = 0, size: int = 16):
    g = torch.Generator().manual_seed(seed)
    x_T = torch.randn(1, 16, size, size, generator=g)
    cond = 0.8371 * torch.randn(1, 16, size, size, generator=g)
    return x_T, cond


class GaussianV:
    """Exact v-prediction E[v | x_t] for data x0 ~ N(mu, sd^2) (independent elements)."""

    def __init__(self, shape, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.mu = torch.randn(shape, generator=g, dtype=torch.float64)
        self.sd = 0.5 + torch.rand(shape, generator=g, dtype=torch.float64)
        self.calls = 0

    def _ab(self, t):
        return (SCHEDULE.sqrt_alphas_cumprod[t].double(),
                SCHEDULE.sqrt_one_minus_alphas_cumprod[t].double())

    def __call__(self, x, t):
        self.calls += 1
        a, b = self._ab(t)
        var = a * a * self.sd**2 + b * b
        r = x.double() - a * self.mu
        eps = b / var * r
        x0 = self.mu + a * self.sd**2 / var * r
        return (a * eps - b * x0).float()

    def exact(self, x_T, t_start):
        """Probability-flow ODE solution from x_T at t_start to abar[0]."""
        a, b = self._ab(t_start)
        z = (x_T.double() - a * self.mu) / torch.sqrt(a * a * self.sd**2 + b * b)
        a0, b0 = self._ab(0)
        return (a0 * self.mu + torch.sqrt(a0 * a0 * self.sd**2 + b0 * b0) * z).float()


def _rms(x):
    return float(x.pow(2).mean().sqrt())


# --- schedule and constants -------------------------------------------------------------------


def test_schedule_equals_checkpoint_buffers(parity_dir):
    state = load_official_checkpoint(parity_dir / "checkpoint.ckpt")
    for name in ("alphas_cumprod", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod"):
        assert torch.equal(getattr(SCHEDULE, name), state[name]), name
    assert torch.equal(torch.tensor(cosine_betas(), dtype=torch.float32), state["betas"])
    assert SCHEDULE.alphas_cumprod[-1] == 0 and cosine_betas()[-1] == 1.0


def test_unconditional_value(parity_expected, scale_factor):
    for stem in PARITY_STEMS:
        assert unconditional_value(scale_factor) == parity_expected[stem]["uncond_latent_value"]


# --- official DDIM ----------------------------------------------------------------------------


def test_ddim_parameters_match_official(parity_expected):
    exp = parity_expected[PARITY_STEMS[0]]
    sampler = DDIMSampler(int(exp["ddim_steps_arg"]), eta=float(exp["ddim_eta"]))
    np.testing.assert_array_equal(sampler.timesteps, exp["ddim_timesteps"])
    for ours, key in ((sampler.alphas, "ddim_alphas"), (sampler.alphas_prev, "ddim_alphas_prev"),
                      (sampler.sigmas, "ddim_sigmas")):
        np.testing.assert_allclose(ours.numpy(), exp[key], rtol=0, atol=1e-7, err_msg=key)


@pytest.mark.parametrize("stem", PARITY_STEMS)
def test_ddim_matches_official(tiny_unet, parity_expected, scale_factor, stem):
    exp = parity_expected[stem]
    steps = []
    with torch.no_grad():
        out = sample_ddim(
            tiny_unet,
            torch.from_numpy(exp["x_T"]),
            scale_factor * torch.from_numpy(exp["cond_mean"]),
            steps=4,
            guidance_scale=float(exp["guidance_scale"]),
            eta=0.0,
            uncond_value=unconditional_value(scale_factor),
            callback=lambda i, t, x: steps.append((i, t)),
            return_intermediates=True,
        )
    np.testing.assert_array_equal(out.timesteps, exp["ddim_timesteps"])
    assert steps == list(enumerate(exp["ddim_timesteps"].tolist()))
    inter = torch.stack(out.intermediates[:-1]).numpy()
    np.testing.assert_allclose(inter, exp["ddim_x_intermediate"], rtol=0, atol=2e-4)
    assert out.intermediates[-1] is out.latent
    np.testing.assert_allclose(out.latent.numpy(), exp["ddim_latent"], rtol=0, atol=2e-4)


def test_official_timesteps():
    np.testing.assert_array_equal(official_ddim_timesteps(50), np.arange(981, 0, -20))
    np.testing.assert_array_equal(official_ddim_timesteps(4), [751, 501, 251, 1])
    np.testing.assert_array_equal(official_ddim_timesteps(2), [501, 1])
    np.testing.assert_array_equal(official_ddim_timesteps(1), [1])
    # Not a divisor of 1000: more steps than asked, like the official.
    np.testing.assert_array_equal(official_ddim_timesteps(7), np.arange(995, 0, -142))
    assert len(official_ddim_timesteps(200)) == 200 and official_ddim_timesteps(200)[0] == 996
    ts500 = official_ddim_timesteps(500)
    assert len(ts500) == 500 and ts500[0] == 999 and ts500[-1] == 1


@pytest.mark.parametrize("steps", [0, -1, 3, 9, 105, 300, 501, 1000, 5000, 2.5, True])
def test_invalid_steps(steps):
    with pytest.raises(ValueError, match="steps"):
        official_ddim_timesteps(steps)


def test_invalid_step_message_suggests_neighbours():
    with pytest.raises(ValueError, match="use 250 or 334"):
        DDIMSampler(300)
    with pytest.raises(ValueError, match="use 500"):
        DDIMSampler(501)


def test_ddim_eta_one_reproducible(random_unet):
    x_T, cond = _small_inputs()
    kw = dict(steps=4, guidance_scale=3.5, uncond_value=-9.625)

    def run(eta, seed):
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            return sample_ddim(random_unet, x_T, cond, eta=eta, generator=g, **kw).latent

    a, b, c = run(1.0, 7), run(1.0, 7), run(1.0, 8)
    det = run(0.0, 7)
    assert torch.equal(a, b)
    assert torch.isfinite(a).all()
    assert (a - c).abs().max() > 1e-2
    assert (a - det).abs().max() > 1e-2


def test_ddim_eta_noise_formula():
    """eta = 1 adds sigma * randn(generator) to the deterministic update, at every step."""
    den = GaussianV((1, 4, 4, 4))
    x_T = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    sampler = DDIMSampler(4, eta=1.0)
    out = sampler.sample(den, x_T, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    x = x_T
    for i, t in enumerate(sampler.timesteps.tolist()):
        a_t = float(sampler.alphas[i])
        a_p = float(sampler.alphas_prev[i])
        sigma = np.sqrt((1 - a_p) / (1 - a_t) * (1 - a_t / a_p))
        v = den(x, t)
        sa, so = np.sqrt(a_t), np.sqrt(1 - a_t)
        x0, e = sa * x - so * v, sa * v + so * x
        x = np.sqrt(a_p) * x0 + np.sqrt(1 - a_p - sigma**2) * e + sigma * torch.randn(
            x.shape, generator=g
        )
    torch.testing.assert_close(out.latent, x, rtol=0, atol=1e-5)


def test_batched_cfg_equals_two_passes(random_unet):
    x, cond = _small_inputs(seed=1)
    x = torch.cat([x, -x])  # batch of 2
    g, uncond = 3.5, -9.625
    calls = []

    def unet_fn(inp, t):
        calls.append((inp.shape[0], t.tolist()))
        return random_unet(inp, t)

    with torch.no_grad():
        batched = GuidedUNet(unet_fn, cond, g, uncond)(x, 251)
        t = torch.full((2,), 251)
        v_c = random_unet(torch.cat([x, cond.expand(2, -1, -1, -1)], dim=1), t)
        v_u = random_unet(torch.cat([x, torch.full_like(x, uncond)], dim=1), t)
        single = GuidedUNet(unet_fn, cond, 1.0)(x, 251)
    assert calls == [(4, [251] * 4), (2, [251] * 2)]
    # One pass of batch 4 vs two of batch 2 may take other kernels: each UNet output moves by
    # float32 rounding (up to ~32 ulps of its peak, see test_weights.py), and v_u + g (v_c - v_u)
    # carries that times up to 2g - 1 = 6, against a peak of v ~3.6x the v_c/v_u peaks:
    # ~50 ulps of v's peak (8 measured). 128 ulps of the peak.
    expected = v_u + g * (v_c - v_u)
    torch.testing.assert_close(batched, expected, rtol=0, atol=f32_atol(expected, 128))
    torch.testing.assert_close(single, v_c, rtol=0, atol=f32_atol(v_c, 128))
    with pytest.raises(ValueError, match="uncond_value"):
        GuidedUNet(unet_fn, cond, 3.5)


# --- DPM-Solver++(2M) -------------------------------------------------------------------------


def test_dpm_timesteps():
    np.testing.assert_array_equal(DPMSolverSampler(20).timesteps, np.arange(999, 0, -50))
    assert DPMSolverSampler(1).timesteps.tolist() == [999]
    for bad in ([500, 600], [1000, 1], [10, 0], []):
        with pytest.raises(ValueError, match="timesteps"):
            DPMSolverSampler(timesteps=bad)
    with pytest.raises(ValueError, match="steps"):
        DPMSolverSampler(1000)
    with pytest.raises(ValueError, match="unknown sampler"):
        make_sampler("euler", 20)
    assert isinstance(make_sampler("dpmpp_2m", 20), DPMSolverSampler)


def test_dpm_random_unet_deterministic(random_unet):
    x_T, cond = _small_inputs(seed=2)
    with torch.no_grad():
        runs = [
            sample_dpmpp_2m(random_unet, x_T, cond, steps=20, uncond_value=-9.625).latent
            for _ in range(2)
        ]
    assert torch.isfinite(runs[0]).all()
    assert torch.equal(runs[0], runs[1])


def test_dpm_solves_gaussian_toy_problem():
    """On Gaussian data the ODE answer is known: DPM-Solver++ 20 steps ~ DDIM 200 steps."""
    shape = (2, 16, 8, 8)
    den = GaussianV(shape)
    x_T = torch.randn(shape, generator=torch.Generator().manual_seed(1))

    dpm = DPMSolverSampler(20).sample(den, x_T).latent
    assert den.calls == 20
    ddim20 = DDIMSampler(20, eta=0.0).sample(den, x_T).latent
    ddim500 = DDIMSampler(500, eta=0.0).sample(den, x_T).latent
    exact = den.exact(x_T, 999)  # both DPM and DDIM-500 start at t = 999 (pure noise)

    assert _rms(ddim500 - exact) < 5e-3  # sanity: the reference converges
    assert _rms(dpm - exact) < 1.5e-2
    assert (dpm - exact).abs().max() < 0.1
    assert (dpm - ddim500).abs().max() < 0.1
    assert _rms(dpm - exact) < 0.25 * _rms(ddim20 - den.exact(x_T, 951))


# --- diffusers cross-checks (optional dependency) -----------------------------------------------


def _with_official_buffers(scheduler):
    scheduler.alphas_cumprod = SCHEDULE.alphas_cumprod.clone()
    return scheduler


@pytest.mark.parametrize("steps,eta", [(4, 0.0), (50, 0.0), (50, 1.0)])
def test_diffusers_ddim_matches_when_steps_divide_1000(steps, eta):
    diffusers = pytest.importorskip("diffusers")
    sch = _with_official_buffers(
        diffusers.DDIMScheduler(
            trained_betas=cosine_betas(), prediction_type="v_prediction",
            timestep_spacing="leading", steps_offset=1, set_alpha_to_one=False, clip_sample=False,
        )
    )
    sch.final_alpha_cumprod = SCHEDULE.alphas_cumprod[0]
    sch.set_timesteps(steps)
    den = GaussianV((1, 4, 8, 8))
    x_T = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    ours = DDIMSampler(steps, eta=eta)
    assert sch.timesteps.tolist() == ours.timesteps.tolist()
    out = ours.sample(den, x_T, generator=torch.Generator().manual_seed(5)).latent
    g, x = torch.Generator().manual_seed(5), x_T
    for t in sch.timesteps:
        x = sch.step(den(x, int(t)), int(t), x, eta=eta, generator=g).prev_sample
    torch.testing.assert_close(out, x, rtol=0, atol=2e-5)
    # ...but not when 1000 % steps != 0: diffusers visits `steps` timesteps, the official more.
    sch.set_timesteps(7)
    assert len(sch.timesteps) == 7 != len(official_ddim_timesteps(7))


def test_diffusers_dpmsolver_matches_away_from_zero_snr():
    diffusers = pytest.importorskip("diffusers")
    sch = _with_official_buffers(
        diffusers.DPMSolverMultistepScheduler(
            trained_betas=cosine_betas(), prediction_type="v_prediction",
            algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint",
            euler_at_final=True, final_sigmas_type="sigma_min",
        )
    )
    timesteps = np.arange(951, 0, -50)  # no t = 999, where diffusers' sigma is infinite
    sch.set_timesteps(timesteps=timesteps.tolist())
    den = GaussianV((1, 4, 8, 8))
    x_T = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    out = DPMSolverSampler(timesteps=timesteps).sample(den, x_T).latent
    x = x_T
    for t in sch.timesteps:
        x = sch.step(den(x, int(t)), t, x).prev_sample
    torch.testing.assert_close(out, x, rtol=0, atol=1e-4)
