"""The fine-tuning objective: official training-fixture parity, draws, EMA, warm-up, overfitting."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from audiosr_core.models.audiosr import AudioSRConfig
from audiosr_core.parity import TrainingParityRunner, parse_training_tolerances
from audiosr_core.parity.training import Tolerance
from audiosr_core.train import objective
from audiosr_core.train.objective import EMA, Draws, FineTuneModel, make_optimizer, warmup_lambda


@pytest.fixture(scope="module")
def tiny_finetune():
    torch.manual_seed(0)
    return FineTuneModel.random(AudioSRConfig.tiny())


# ------------------------------------------------------------------------- official fixture
@pytest.mark.slow  # three official training steps, isolated and chained (about 15 s)
def test_training_fixture_passes_every_check(train_parity_dir):
    proc = subprocess.run([sys.executable, "-m", "audiosr_core.parity", str(train_parity_dir)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    lines = proc.stdout.splitlines()
    passed, failed = (int(w) for w in lines[-1].replace(",", "").split()[::2])
    assert failed == 0 and passed >= 150
    checked = {tuple(line.split()[:3]) for line in lines[1:-1]}
    for case in ("c1_b1", "c2_b2", "c3_b2_drop"):
        for name in ("z0", "x_t", "v_target", "cond_after_drop", "unet_out", "loss", "p0_grad",
                     "p2_after", "p2_ema_after"):
            assert (case, name, "chained") in checked, (case, name)
        for name in ("rng_call_order", "t", "cfg_drop", "post_mean", "unet_out", "p1_after",
                     "p1_ema_after", "gradient", "ema_num_updates_after"):
            assert (case, name, "isolated") in checked or (case, name, "set") in checked
        assert (case, "grad_norms", "backward") in checked
    assert ("c1_b1", "cond_mean", "chained") in checked
    assert ("c3_b2_drop", "cond_mean", "chained") not in checked   # dropped: never encoded


def test_training_tolerances_are_read_from_the_readme(train_parity_dir):
    table = parse_training_tolerances((train_parity_dir / "README.md").read_text())
    assert table[("t", "isolated")] == Tolerance("abs", 0.0)
    assert table[("z0", "isolated")] == Tolerance("abs", 1e-6)
    assert table[("loss", "isolated")] == Tolerance("abs", 1e-6)
    assert table[("loss", "backward")] == Tolerance("abs", 1e-5)
    assert table[("p1_grad", "backward")] == Tolerance("max_rel", 1e-3)
    assert table[("grad_global_norm", "backward")] == Tolerance("rel", 1e-3)
    assert table[("grad_norms", "backward")] == Tolerance("ref_rel", 1e-3, 1e-7)
    assert table[("p2_after", "isolated")] == Tolerance("abs", 3e-8)
    assert table[("p0_ema_after", "isolated")] == Tolerance("abs", 3e-8)
    assert table[("post_*", "chained")] == Tolerance("abs", 1e-3)
    assert table[("p2_grad", "chained")] == Tolerance("max_rel", 2e-3)
    assert table[("p2_ema_after", "chained")] == Tolerance("abs", 1e-6)
    assert table[("unet_out", "isolated")] == Tolerance("abs", 1e-4)


@pytest.fixture(scope="module")
def train_runner(train_parity_dir):
    return TrainingParityRunner(train_parity_dir)


def _failing(runner, stem):
    runner.checks.clear()
    runner.run(stem)
    return {(c.name, c.mode) for c in runner.checks if not c.ok}


@pytest.mark.slow  # three more runs of one fixture case, each with a deliberate bug
@pytest.mark.parametrize("bug, expect", [
    ("eps_target", ("loss", "chained")),
    ("z0_unscaled", ("z0", "chained")),
    ("ema_fixed_decay", ("p0_ema_after", "chained")),
])
def test_the_runner_catches_known_bugs(train_runner, monkeypatch, bug, expect):
    """The fixture's own list of typical bugs: each one fails the check it should."""
    if bug == "eps_target":
        monkeypatch.setattr(FineTuneModel, "v_target", lambda self, z0, t, noise: noise)
    elif bug == "z0_unscaled":
        original = FineTuneModel.encode_target

        def unscaled(self, log_mel):
            mean, std = original(self, log_mel)
            return mean / self.scale_factor, std / self.scale_factor
        monkeypatch.setattr(FineTuneModel, "encode_target", unscaled)
    else:
        monkeypatch.setattr(EMA, "current_decay", lambda self: self.decay)
    assert expect in _failing(train_runner, "c2_b2")


def test_the_runner_passes_one_case_quickly(train_runner):
    assert _failing(train_runner, "c3_b2_drop") == set()


# ---------------------------------------------------------------------------------- draws
def test_per_item_draws_do_not_depend_on_the_batch():
    shape = (3, 16, 8, 32)
    seeds = [11, 22, 33]
    together = Draws.per_item(shape, seeds, batch_seed=5, p_uncond=0.0)
    for i, seed in enumerate(seeds):
        alone = Draws.per_item((1, *shape[1:]), [seed], batch_seed=5, p_uncond=0.0)
        for name in ("post_noise", "cond_noise", "noise"):
            assert torch.equal(getattr(alone, name)[0], getattr(together, name)[i])
        assert alone.t[0] == together.t[i]
    assert together.t.dtype == torch.int64 and 0 <= int(together.t.min())
    assert int(together.t.max()) < 1000


def test_drop_decision_is_one_per_batch_at_the_official_rate():
    drops = [Draws.per_item((2, 16, 8, 32), [i, i + 1], batch_seed=i).cond_noise is None
             for i in range(400)]
    rate = float(np.mean(drops))
    assert 0.06 < rate < 0.14            # 0.1 +- 4.5 sigma of a 400-draw binomial
    official = [Draws.official((1, 16, 8, 32), generator=torch.Generator().manual_seed(i))
                for i in range(200)]
    assert any(d.cond_noise is None for d in official) and any(
        d.cond_noise is not None for d in official)
    first = Draws.official((1, 16, 8, 32), p_uncond=1.0, first_call=True)
    assert first.cond_noise is not None   # the very first call never drops


def test_kept_batch_without_condition_noise_is_refused(tiny_finetune):
    draws = Draws.official(tiny_finetune.latent_shape(1, 128), p_uncond=0.0)
    draws.cond_noise = None
    mel = torch.zeros(1, 128, 256)
    with pytest.raises(ValueError, match="no condition noise"):
        tiny_finetune.loss(mel, mel, draws, p_uncond=0.0)


# ---------------------------------------------------------------------- model, EMA, schedule
def test_gradients_reach_only_the_unet(tiny_finetune):
    m = tiny_finetune
    mel = torch.randn(1, 128, 256)
    out = m.loss(mel, mel, Draws.official(m.latent_shape(1, 128), p_uncond=0.0), p_uncond=0.0)
    m.unet.zero_grad()
    out.loss.backward()
    assert all(p.grad is not None for p in m.unet.parameters())
    frozen = [m.target_encoder, m.model.vae_encoder, m.model.vae_decoder, m.model.vocoder]
    assert all(p.grad is None and not p.requires_grad for f in frozen for p in f.parameters())
    assert float(out.loss.detach()) == float(out.loss_simple.detach().mean())
    m.unet.zero_grad(set_to_none=True)


def test_gradient_checkpointing_gives_the_same_gradients(tiny_finetune):
    m = tiny_finetune
    z = torch.randn(m.latent_shape(2, 128), generator=torch.Generator().manual_seed(3))
    t = torch.tensor([10, 900])
    grads = []
    for flag in (False, True):
        m.unet.gradient_checkpointing = flag
        m.train()
        m.unet.zero_grad(set_to_none=True)
        *_, ls = m.diffusion_loss(z, z, t, z)
        ls.mean().backward()
        grads.append([p.grad.clone() for p in m.unet.parameters()])
    m.unet.gradient_checkpointing = False
    m.eval()
    m.unet.zero_grad(set_to_none=True)
    for a, b in zip(*grads, strict=True):
        # recomputation repeats the same float32 kernels on the same shapes: a few ulps at most
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7 * float(b.abs().max()) + 1e-12)


def test_ema_follows_the_lit_ema_rule():
    module = torch.nn.Linear(2, 1)
    ema = EMA(module, decay=0.9999)
    shadow = module.weight.detach().clone().double()
    for n in range(1, 60):
        with torch.no_grad():
            module.weight.add_(0.1)
        decay = min(np.float32(0.9999), np.float32((1 + n) / (10 + n)))
        ema.update(module)
        shadow = shadow - (1 - float(decay)) * (shadow - module.weight.detach().double())
        assert ema.num_updates == n
    assert torch.allclose(ema.shadows["weight"].double(), shadow, atol=1e-6)
    late = EMA(module, decay=0.9999, num_updates=89949)
    assert float(late.current_decay()) == float(np.float32(0.9999))
    state = ema.state_dict()
    other = EMA(torch.nn.Linear(2, 1))
    other.load_state_dict(state)
    assert other.num_updates == ema.num_updates
    assert torch.equal(other.shadows["weight"], ema.shadows["weight"])


def test_ema_refuses_incomplete_shadows():
    with pytest.raises(ValueError, match="lack 1 parameters"):
        EMA(torch.nn.Linear(2, 1), shadows={"weight": torch.zeros(1, 2)})


def test_warmup_rules():
    official = warmup_lambda(5000, official=True)
    assert official(0) == 0.0 and official(2500) == 0.5 and official(5000) == 1.0
    ours = warmup_lambda(4)
    assert [ours(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    cosine = warmup_lambda(2, total_steps=12, schedule="cosine", min_ratio=0.1)
    values = [cosine(s) for s in range(2, 13)]
    assert values[0] == pytest.approx(1.0) and values[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    with pytest.raises(ValueError, match="schedule"):
        warmup_lambda(1, schedule="linear")


def test_optimizer_is_the_official_adamw():
    p = torch.nn.Parameter(torch.ones(3))
    opt = make_optimizer([p])
    group = opt.param_groups[0]
    assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (
        objective.LR, (0.9, 0.999), 1e-8, 0.01)
    p.grad = torch.tensor([1e-3, -2.0, 0.5])
    opt.step()
    expected = 1 * (1 - 1e-6) - 1e-4 * np.sign([1e-3, -2.0, 0.5]) * (
        np.abs([1e-3, -2.0, 0.5]) / (np.abs([1e-3, -2.0, 0.5]) + 1e-8))
    assert np.allclose(p.detach().numpy(), expected, atol=3e-8)


def _overfit(trainable: str, steps: int = 120) -> tuple[list[float], FineTuneModel, dict]:
    """Train the tiny model on one fixed batch with fixed draws; the losses, the model and its
    initial UNet weights."""
    from audiosr_core.train.audiosr import trainable_parameters

    torch.manual_seed(0)
    m = FineTuneModel.random(AudioSRConfig.tiny())
    initial = {k: v.clone() for k, v in m.unet.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    mel = torch.randn(1, 128, 256, generator=gen) * 2 - 5
    low = mel.clone()
    low[:, :, 100:] = -11.5                                     # a low-passed copy
    draws = Draws.official(m.latent_shape(1, 128), p_uncond=0.0, generator=gen)
    opt = make_optimizer(trainable_parameters(m.unet, trainable), lr=1e-3)
    m.train()
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        out = m.loss(mel, low, draws, p_uncond=0.0)
        out.loss.backward()
        opt.step()
        losses.append(float(out.loss.detach()))
    return losses, m, initial


@pytest.mark.slow  # 120 training steps of the tiny model (about 20 s)
def test_tiny_model_overfits_one_batch():
    losses, _, _ = _overfit("all")
    assert losses[-1] < losses[0] / 10, losses[::10]


@pytest.mark.slow  # 120 training steps of the tiny model's attention blocks (about 20 s)
def test_attention_blocks_alone_train():
    """Only the SpatialTransformer blocks move, and the loss still falls (more slowly: on a
    random-weight model the other layers are random too; measured 0.97 -> 0.77)."""
    from audiosr_core.models.unet import SpatialTransformer

    losses, m, initial = _overfit("attention")
    assert losses[-1] < 0.9 * losses[0], losses[::10]
    attention = {f"{prefix}.{name}" for prefix, module in m.unet.named_modules()
                 if isinstance(module, SpatialTransformer)
                 for name, _ in module.named_parameters()}
    for name, value in m.unet.state_dict().items():
        assert torch.equal(value, initial[name]) != (name in attention), name
