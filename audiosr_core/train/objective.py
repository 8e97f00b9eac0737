"""The official AudioSR training objective, its random draws, the AdamW step and the EMA rule.

One training step of the official ``LatentDiffusion.shared_step`` (the loss AudioSR was trained
with; ``../shared/reference/parity/train-dev`` records it from the official code)::

    z0      = s * (mean + std * eps1)          first-stage VAE posterior of the target log-mel
    dropped = u < p_uncond                     one decision for the whole batch (p = 0.1)
    c       = cond-VAE posterior sample of the low-passed log-mel, or -11.4981 when dropped
    t       ~ uniform {0, ..., 999}            one per item
    x_t     = sqrt_ac[t] z0 + sqrt_1mac[t] eps
    v       = sqrt_ac[t] eps - sqrt_1mac[t] z0
    v_hat   = UNet(cat[x_t, s c], t)
    loss    = mean over items of mean((v - v_hat)^2)

``s`` is ``scale_factor``; the schedule is the unclipped cosine one of
:class:`audiosr_core.sampling.NoiseSchedule`. Only the UNet receives gradients: both VAEs are
frozen and run without gradient.

The draws (eps1, u, eps2, t, eps) are a :class:`Draws` value, so a test can inject the ones a
fixture recorded. :meth:`Draws.official` consumes torch's generator exactly as the official code
does (same order, same shapes, eps2 only when not dropped), which reproduces a fixture made with
``torch.manual_seed``; :meth:`Draws.per_item` gives every item its own generator, so an item gets
the same draws whether it sits in a batch of 8 on one GPU or a batch of 1 on each of 8 GPUs (the
trainer's choice: it makes a DDP run equal a single-process run of the same global batch).

Example
-------
>>> import torch
>>> from audiosr_core.models.audiosr import AudioSRConfig
>>> from audiosr_core.train.objective import Draws, FineTuneModel
>>> model = FineTuneModel.random(AudioSRConfig.tiny())
>>> mel = torch.randn(2, 256, 256)                      # [B, frames, 256] target log-mel
>>> low = torch.randn(2, 256, 256)                      # [B, frames, 256] low-passed log-mel
>>> draws = Draws.official(model.latent_shape(2, 256), generator=torch.Generator().manual_seed(0))
>>> out = model.loss(mel, low, draws)
>>> out.loss.backward()                                  # gradients reach model.unet only
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.audiosr import AudioSRConfig, AudioSRModel
from ..models.vae import VAEEncoder
from ..sampling import NoiseSchedule

__all__ = [
    "P_UNCOND",
    "Draws",
    "EMA",
    "FineTuneModel",
    "StepOutput",
    "make_optimizer",
    "warmup_lambda",
]

P_UNCOND = 0.1
"""Official probability of dropping a training batch's condition (``unconditional_prob_cfg``)."""
LR = 1e-4
"""Official learning rate (``base_learning_rate``)."""
WEIGHT_DECAY = 0.01
"""AdamW's default weight decay, which the official optimizer keeps (every UNet tensor)."""
EMA_DECAY = 0.9999
"""Official ``LitEma`` decay (stored as float32: 0.99989998)."""


@dataclass
class Draws:
    """The random numbers of one training step (official order 1-5).

    Attributes
    ----------
    post_noise : Tensor
        eps1, ``[B, 16, T/8, 32]``: the first-stage posterior sample's noise.
    cfg_u : float
        u in [0, 1): the batch's condition is dropped when ``u < p_uncond``.
    cond_noise : Tensor or None
        eps2, ``[B, 16, T/8, 32]``: the condition posterior's noise; ``None`` when the official
        code would not draw it (dropped batch).
    t : Tensor
        ``[B]`` int64 timesteps in ``0 .. timesteps - 1``.
    noise : Tensor
        eps, ``[B, 16, T/8, 32]``: the diffusion noise.
    """

    post_noise: Tensor
    cfg_u: float
    cond_noise: Tensor | None
    t: Tensor
    noise: Tensor

    @classmethod
    def official(cls, shape: Sequence[int], p_uncond: float = P_UNCOND,
                 generator: torch.Generator | None = None, timesteps: int = 1000,
                 device: str | torch.device = "cpu", first_call: bool = False) -> Draws:
        """Draw as the official ``shared_step`` does, from one generator (CPU by default).

        Order: ``randn(L)``, ``rand(1)`` (not on a model object's first call), ``randn(L)``
        only if not dropped, ``randint(0, timesteps, (B,))``, ``randn(L)``. With
        ``generator=None`` torch's global generator is used, so after
        ``torch.manual_seed(seed)`` this reproduces a fixture's ``draws_natural`` case.
        """
        shape = tuple(int(n) for n in shape)
        kw = {"generator": generator}
        post = torch.randn(shape, **kw)
        u = 1.0 if first_call else float(torch.rand(1, **kw))
        cond = None if u < p_uncond else torch.randn(shape, **kw)
        t = torch.randint(0, timesteps, (shape[0],), **kw)
        noise = torch.randn(shape, **kw)
        return cls(post, u, cond, t, noise).to(device)

    @classmethod
    def per_item(cls, shape: Sequence[int], item_seeds: Sequence[int], batch_seed: int,
                 p_uncond: float = P_UNCOND, timesteps: int = 1000,
                 device: str | torch.device = "cpu") -> Draws:
        """Draws that depend only on each item's seed (and the batch's seed for u).

        Parameters
        ----------
        shape : sequence of int
            ``[B, 16, T/8, 32]``; ``B == len(item_seeds)``.
        item_seeds : sequence of int
            One seed per item: its eps1, eps2, t and eps come from its own CPU generator.
        batch_seed : int
            Seed of the (global) batch's one drop decision u.
        """
        shape = tuple(int(n) for n in shape)
        if len(item_seeds) != shape[0]:
            raise ValueError(f"{len(item_seeds)} item seeds for a batch of {shape[0]}")
        post, cond, ts, noise = [], [], [], []
        for seed in item_seeds:
            g = torch.Generator().manual_seed(int(seed))
            post.append(torch.randn(shape[1:], generator=g))
            cond.append(torch.randn(shape[1:], generator=g))
            ts.append(torch.randint(0, timesteps, (1,), generator=g))
            noise.append(torch.randn(shape[1:], generator=g))
        u = float(torch.rand(1, generator=torch.Generator().manual_seed(int(batch_seed))))
        drop = u < p_uncond
        return cls(torch.stack(post), u, None if drop else torch.stack(cond), torch.cat(ts),
                   torch.stack(noise)).to(device)

    def to(self, device: str | torch.device) -> Draws:
        def move(x: Tensor | None) -> Tensor | None:
            return None if x is None else x.to(device)

        return Draws(move(self.post_noise), self.cfg_u, move(self.cond_noise),
                     self.t.to(device), move(self.noise))


@dataclass
class StepOutput:
    """Every intermediate of one training step (shapes ``[B, 16, T/8, 32]`` unless noted)."""

    post_mean: Tensor
    post_std: Tensor
    z0: Tensor
    dropped: bool
    cond_mean: Tensor | None
    cond_std: Tensor | None
    cond: Tensor
    """The condition c before the wrapper's ``scale_factor`` (the constant when dropped)."""
    t: Tensor
    x_t: Tensor
    v_target: Tensor
    unet_out: Tensor
    loss_simple: Tensor
    """``[B]`` per-item mean squared error."""
    loss: Tensor
    """Scalar: the mean of ``loss_simple`` (the official reduction)."""


class FineTuneModel(nn.Module):
    """What fine-tuning needs: the inference model plus the frozen first-stage encoder.

    Attributes
    ----------
    model : AudioSRModel
        UNet (trained), conditioning encoder ``model.vae_encoder``, decoder and vocoder (frozen;
        used by validation and export).
    target_encoder : VAEEncoder
        The official ``first_stage_model.{encoder, quant_conv}``: encodes the target log-mel.
        Not part of inference, so a folder converted for inference does not hold it.
    """

    def __init__(self, model: AudioSRModel, target_encoder: VAEEncoder) -> None:
        super().__init__()
        self.model = model
        self.target_encoder = target_encoder
        schedule = NoiseSchedule.cosine(model.config.timesteps, model.config.cosine_s)
        self.register_buffer("sqrt_ac", schedule.sqrt_alphas_cumprod, persistent=False)
        self.register_buffer("sqrt_1mac", schedule.sqrt_one_minus_alphas_cumprod,
                             persistent=False)
        for module in (self.target_encoder, model.vae_encoder, model.vae_decoder, model.vocoder):
            module.requires_grad_(False).eval()

    @classmethod
    def random(cls, config: AudioSRConfig) -> FineTuneModel:
        """Random weights (tests and benchmarks)."""
        return cls(AudioSRModel(config), VAEEncoder(config.vae))

    @property
    def unet(self) -> nn.Module:
        return self.model.unet

    @property
    def scale_factor(self) -> Tensor:
        return self.model.scale_factor

    @property
    def timesteps(self) -> int:
        return int(self.sqrt_ac.shape[0])

    def train(self, mode: bool = True) -> FineTuneModel:
        """Only the UNet changes mode; the frozen parts stay in eval (``disabled_train``)."""
        self.training = mode
        self.model.unet.train(mode)
        return self

    def latent_shape(self, batch: int, frames: int) -> tuple[int, int, int, int]:
        """``[B, embed_dim, frames / 8, 256 / 8]``: the shape of z0 and of every draw."""
        f = self.target_encoder.config.downsample_factor
        return (batch, self.target_encoder.config.embed_dim, frames // f, 256 // f)

    @torch.no_grad()
    def encode_target(self, log_mel: Tensor) -> tuple[Tensor, Tensor]:
        """First-stage posterior ``(mean, std)`` of ``[B, T, 256]`` target log-mels."""
        mean, logvar = self.target_encoder(log_mel.unsqueeze(1).float())
        return mean, torch.exp(0.5 * logvar)

    @torch.no_grad()
    def encode_condition(self, lowpass_mel: Tensor) -> tuple[Tensor, Tensor]:
        """Conditioning posterior ``(mean, std)`` of ``[B, T, 256]`` low-passed log-mels."""
        mean, logvar = self.model.vae_encoder(lowpass_mel.unsqueeze(1).float())
        return mean, torch.exp(0.5 * logvar)

    def q_sample(self, z0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        return _at(self.sqrt_ac, t) * z0 + _at(self.sqrt_1mac, t) * noise

    def v_target(self, z0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        return _at(self.sqrt_ac, t) * noise - _at(self.sqrt_1mac, t) * z0

    def loss(self, log_mel: Tensor, lowpass_mel: Tensor, draws: Draws,
             p_uncond: float = P_UNCOND, unet: Callable[..., Tensor] | None = None,
             autocast_dtype: torch.dtype | None = None) -> StepOutput:
        """One official training step's forward pass.

        Parameters
        ----------
        log_mel, lowpass_mel : Tensor
            ``[B, T, 256]`` target and low-passed log-mel spectrograms (official features).
        draws : Draws
            The step's random numbers (:meth:`Draws.official` or :meth:`Draws.per_item`).
        p_uncond : float
            Probability of dropping the condition (0.1 in training, 0 for evaluation).
        unet : callable, optional
            The UNet to call (e.g. the DistributedDataParallel wrapper of ``self.unet``).
        autocast_dtype : torch.dtype, optional
            Run the UNet under ``torch.autocast`` in this dtype (bf16 on GPUs); the loss is
            computed in float32.
        """
        post_mean, post_std = self.encode_target(log_mel)
        z0 = (self.scale_factor * (post_mean + post_std * draws.post_noise)).detach()
        dropped = draws.cfg_u < p_uncond
        if dropped:
            cond_mean = cond_std = None
            value = torch.tensor(self.model.config.unconditional_value, dtype=torch.float32)
            cond = value.to(z0.device).expand_as(z0)
        else:
            if draws.cond_noise is None:
                raise ValueError("the draws have no condition noise but the batch is kept "
                                 f"(u = {draws.cfg_u} >= p_uncond = {p_uncond})")
            cond_mean, cond_std = self.encode_condition(lowpass_mel)
            cond = (cond_mean + cond_std * draws.cond_noise).detach()
        t = draws.t.to(z0.device)
        x_t, v, v_hat, loss_simple = self.diffusion_loss(z0, cond, t, draws.noise, unet=unet,
                                                         autocast_dtype=autocast_dtype)
        return StepOutput(post_mean, post_std, z0, dropped, cond_mean, cond_std, cond, t, x_t,
                          v, v_hat, loss_simple, loss_simple.mean())

    def diffusion_loss(self, z0: Tensor, cond: Tensor, t: Tensor, noise: Tensor,
                       unet: Callable[..., Tensor] | None = None,
                       autocast_dtype: torch.dtype | None = None,
                       ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The diffusion part of the step: ``(x_t, v, v_hat, loss_simple [B])`` from a scaled
        latent ``z0``, an unscaled condition ``cond``, timesteps and noise."""
        x_t = self.q_sample(z0, t, noise)
        v = self.v_target(z0, t, noise)
        unet = unet or self.model.unet
        xin = torch.cat([x_t, self.scale_factor * cond], dim=1)
        if autocast_dtype is not None:
            with torch.autocast(device_type=z0.device.type, dtype=autocast_dtype):
                v_hat = unet(xin, t)
        else:
            v_hat = unet(xin, t)
        v_hat = v_hat.float()
        loss_simple = F.mse_loss(v, v_hat, reduction="none").mean(dim=(1, 2, 3))
        return x_t, v, v_hat, loss_simple


def _at(buffer: Tensor, t: Tensor) -> Tensor:
    """``buffer[t]`` shaped ``[B, 1, 1, 1]`` (official ``extract_into_tensor``)."""
    return buffer.to(t.device)[t].reshape(-1, 1, 1, 1)


# ------------------------------------------------------------------------------- optimisation
def make_optimizer(params: Iterable[Tensor], lr: float = LR,
                   weight_decay: float = WEIGHT_DECAY) -> torch.optim.AdamW:
    """The official optimizer: AdamW, betas (0.9, 0.999), eps 1e-8, one parameter group."""
    return torch.optim.AdamW(list(params), lr=lr, betas=(0.9, 0.999), eps=1e-8,
                             weight_decay=weight_decay)


def warmup_lambda(warmup_steps: int, total_steps: int | None = None,
                  schedule: str = "constant", official: bool = False,
                  min_ratio: float = 0.0) -> Callable[[int], float]:
    """Learning-rate multiplier for ``torch.optim.lr_scheduler.LambdaLR``.

    Linear warm-up over ``warmup_steps`` optimizer steps, then ``"constant"`` (the official
    behaviour) or ``"cosine"`` decay to ``min_ratio`` at ``total_steps``. The official upstream
    loop (AudioLDM-training) multiplies by ``step / warmup_steps`` (so its very first step has
    learning rate 0 and moves only Adam's moments); ``official=True`` keeps that, the default
    uses ``(step + 1) / warmup_steps`` so no step is wasted.
    """
    if warmup_steps < 0:
        raise ValueError("warmup_steps must be >= 0")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"unknown learning-rate schedule {schedule!r} (constant or cosine)")

    def factor(step: int) -> float:
        done = step if official else step + 1
        if warmup_steps and done < warmup_steps:
            return max(done, 0) / warmup_steps
        if schedule == "cosine" and total_steps and total_steps > warmup_steps:
            progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
            return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0

    return factor


class EMA:
    """Exponential moving average of the UNet weights with the official ``LitEma`` rule.

    After every optimizer step: ``n += 1``, ``decay = min(decay0, (1 + n) / (10 + n))`` in
    float32, and ``shadow -= (1 - decay) * (shadow - param)`` for every trained tensor.

    Parameters
    ----------
    module : nn.Module
        The averaged module (the UNet); shadows start as copies of its parameters unless
        ``shadows`` is given (an official checkpoint's ``model_ema.*``).
    decay : float
        ``decay0``, stored as float32.
    num_updates : int
        Updates already made (the official checkpoint stores it).
    shadows : mapping of str to Tensor, optional
        Initial shadows by parameter name.
    """

    def __init__(self, module: nn.Module, decay: float = EMA_DECAY, num_updates: int = 0,
                 shadows: Mapping[str, Tensor] | None = None) -> None:
        self.decay = torch.tensor(decay, dtype=torch.float32)
        self.num_updates = int(num_updates)
        params = dict(module.named_parameters())
        if shadows is not None:
            missing = sorted(params.keys() - shadows.keys())
            if missing:
                raise ValueError(f"EMA shadows lack {len(missing)} parameters "
                                 f"(e.g. {', '.join(missing[:3])})")
        source = shadows if shadows is not None else params
        self.shadows = {name: source[name].detach().to(p.device, p.dtype).clone()
                        for name, p in params.items() if p.requires_grad}

    def current_decay(self) -> Tensor:
        """The decay the next update will use (float32 0-d tensor)."""
        n = torch.tensor(self.num_updates + 1)
        return torch.minimum(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        one_minus = 1.0 - self.current_decay()
        self.num_updates += 1
        for name, p in module.named_parameters():
            if name in self.shadows:
                shadow = self.shadows[name]
                shadow.sub_(one_minus.to(shadow.device) * (shadow - p.detach()))

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Write the shadows into ``module``'s parameters."""
        for name, p in module.named_parameters():
            if name in self.shadows:
                p.copy_(self.shadows[name])

    def state_dict(self) -> dict:
        return {"decay": float(self.decay), "num_updates": self.num_updates,
                "shadows": {k: v.detach().cpu() for k, v in self.shadows.items()}}

    def load_state_dict(self, state: Mapping) -> None:
        self.decay = torch.tensor(state["decay"], dtype=torch.float32)
        self.num_updates = int(state["num_updates"])
        for name, value in state["shadows"].items():
            self.shadows[name].copy_(value)
