"""Diffusion samplers for AudioSR: the official DDIM (default) and DPM-Solver++(2M).

The UNet predicts v on a cosine schedule with zero terminal SNR (1000 steps, s = 0.008, betas not
clipped, so alphas_cumprod[999] = 0). Conditioning is concatenated along channels, and
classifier-free guidance is applied to v with the conditional and unconditional passes in one
batched UNet call.

Example
-------
>>> import torch
>>> from audiosr_core.models.unet import UNet, UNetConfig
>>> from audiosr_core.sampling import sample_ddim, unconditional_value
>>> unet = UNet(UNetConfig.tiny()).eval()
>>> cond = 0.8371 * torch.randn(1, 16, 16, 32)        # scale_factor * VAE latent of the lowpass mel
>>> x_T = torch.randn(1, 16, 16, 32, generator=torch.Generator().manual_seed(0))
>>> with torch.no_grad():
...     out = sample_ddim(unet, x_T, cond, steps=4, guidance_scale=3.5, eta=0.0,
...                       uncond_value=unconditional_value(0.8371))
>>> tuple(out.latent.shape)
(1, 16, 16, 32)

A progress bar: ``with tqdm(total=sampler.num_steps) as bar:`` and
``callback=lambda i, t, x: bar.update()``.

Relation to diffusers
---------------------
- ``DDIMScheduler(trained_betas=cosine_betas(), prediction_type="v_prediction",
  timestep_spacing="leading", steps_offset=1, set_alpha_to_one=False, clip_sample=False)``
  reproduces the official DDIM only when 1000 % steps == 0 and its ``alphas_cumprod`` is replaced
  by the official buffer: it visits ``steps`` timesteps where the official visits
  ``len(range(0, 1000, 1000 // steps))`` (e.g. 8 for 7 steps), and it builds alphas_cumprod by a
  float32 cumprod (up to 3e-7 off). So DDIM is implemented here (tests compare both).
- ``DPMSolverMultistepScheduler(trained_betas=cosine_betas(), prediction_type="v_prediction",
  algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint", euler_at_final=True,
  final_sigmas_type="sigma_min", timestep_spacing="trailing")`` is the same algorithm as
  :class:`DPMSolverSampler`, except at the zero-SNR start t = 999 where its sigma is infinite
  (NaN) unless ``rescale_betas_zero_snr=True`` replaces alphas_cumprod[999] by 2**-24. We take the
  exact limit instead, and keep diffusers optional (tests compare both on grids without t = 999).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "SAMPLERS",
    "UNCONDITIONAL_VALUE",
    "DDIMSampler",
    "DPMSolverSampler",
    "GuidedUNet",
    "NoiseSchedule",
    "SamplerOutput",
    "cosine_betas",
    "make_sampler",
    "official_ddim_timesteps",
    "sample_ddim",
    "sample_dpmpp_2m",
    "unconditional_value",
]

SAMPLERS = ("ddim", "dpmpp_2m")
"""Sampler names: the official DDIM and DPM-Solver++ (2M)."""
#: Official unconditional latent constant (before the wrapper multiplies it by scale_factor).
UNCONDITIONAL_VALUE = -11.4981

#: ``unet_fn(x [B, 32, T, F], t [B] int64) -> v [B, 16, T, F]``.
UNetFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: ``denoiser(x_t [B, 16, T, F], t) -> guided v [B, 16, T, F]`` for one integer timestep t.
Denoiser = Callable[[torch.Tensor, int], torch.Tensor]
#: ``callback(step_index, timestep, x)``, called after every step with the new latent.
Callback = Callable[[int, int, torch.Tensor], None]
#: ``noise_fn(x) -> tensor shaped like x``: a custom noise source (e.g. shared across channels).
NoiseFn = Callable[[torch.Tensor], torch.Tensor]


def cosine_betas(num_timesteps: int = 1000, s: float = 8e-3) -> np.ndarray:
    """Official cosine beta schedule (``make_beta_schedule("cosine")``), float64, not clipped.

    Returns
    -------
    numpy.ndarray
        ``[num_timesteps]`` float64; the last beta is 1 (zero terminal SNR).
    """
    steps = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps + s
    f = torch.cos(steps / (1 + s) * np.pi / 2).pow(2)
    f = f / f[0]
    return (1 - f[1:] / f[:-1]).numpy()


@dataclass(frozen=True)
class NoiseSchedule:
    """The float32 schedule buffers the official sampler reads, each ``[num_timesteps]``.

    Build with :meth:`cosine` (equal bit for bit to the official checkpoint buffers of the same
    names) or pass the checkpoint's tensors.
    """

    alphas_cumprod: torch.Tensor
    sqrt_alphas_cumprod: torch.Tensor
    sqrt_one_minus_alphas_cumprod: torch.Tensor

    @classmethod
    def from_betas(cls, betas: np.ndarray) -> NoiseSchedule:
        """Official ``register_schedule``: float64 math, stored as float32."""
        ac = np.cumprod(1.0 - np.asarray(betas, dtype=np.float64))

        def f32(a: np.ndarray) -> torch.Tensor:
            return torch.tensor(a, dtype=torch.float32)

        return cls(f32(ac), f32(np.sqrt(ac)), f32(np.sqrt(1.0 - ac)))

    @classmethod
    def cosine(cls, num_timesteps: int = 1000, s: float = 8e-3) -> NoiseSchedule:
        """AudioSR's schedule: cosine, T = 1000, s = 0.008, not clipped."""
        return cls.from_betas(cosine_betas(num_timesteps, s))

    @property
    def num_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])


def unconditional_value(scale_factor: float | torch.Tensor,
                        value: float = UNCONDITIONAL_VALUE) -> float:
    """Value of the unconditional latent as the UNet sees it: float32(value) * scale_factor.

    Parameters
    ----------
    scale_factor : float or torch.Tensor
        The checkpoint's ``scale_factor`` (0-d float32 buffer).
    value : float
        The constant before scaling (official -11.4981).
    """
    sf = torch.as_tensor(scale_factor, dtype=torch.float32)
    return float(torch.tensor(value, dtype=torch.float32) * sf)


def official_ddim_timesteps(steps: int, num_timesteps: int = 1000) -> np.ndarray:
    """Timesteps of the official DDIM, in the order visited (largest first).

    ``range(0, T, T // steps) + 1``, so the count is ``len(range(0, T, T // steps))``, which exceeds
    ``steps`` when T is not divisible by it (7 -> 8 steps). The official code indexes
    ``alphas_cumprod[T]`` and crashes whenever that list reaches T (``T // steps`` divides T - 1):
    for T = 1000, steps in {3, 9, 27, 36, 37, 101-111, 251-333, 501-1000}. Those raise ValueError.

    Returns
    -------
    numpy.ndarray
        int64 timesteps, e.g. ``[751, 501, 251, 1]`` for 4 steps.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
    stride = num_timesteps // steps
    if stride == 0 or (num_timesteps - 1) % stride == 0:
        ok = [s for s in range(1, num_timesteps // 2 + 1)
              if (num_timesteps - 1) % (num_timesteps // s)]
        lower = max((s for s in ok if s < steps), default=None)
        higher = min((s for s in ok if s > steps), default=None)
        near = " or ".join(str(s) for s in (lower, higher) if s is not None)
        raise ValueError(
            f"steps={steps} is not usable with the official DDIM timestep rule (it would visit "
            f"t={num_timesteps}, where the official code crashes); use {near}."
        )
    return np.arange(0, num_timesteps, stride, dtype=np.int64)[::-1] + 1


@dataclass
class SamplerOutput:
    """Result of a sampling run.

    Attributes
    ----------
    latent : torch.Tensor
        ``[B, 16, T, F]`` final latent (scaled latent space, like the official ``samples``).
    timesteps : numpy.ndarray
        int64 timesteps at which the model was evaluated, in order.
    intermediates : list of torch.Tensor or None
        The latent after every step (the last one is ``latent``) if requested.
    """

    latent: torch.Tensor
    timesteps: np.ndarray
    intermediates: list[torch.Tensor] | None = None


class GuidedUNet:
    """Conditioning by concatenation plus classifier-free guidance on v.

    ``v = v_u + g (v_c - v_u)`` with ``v_c = unet_fn(cat[x, cond], t)`` and
    ``v_u = unet_fn(cat[x, uncond], t)`` computed in one call on a batch of 2B (the official code
    makes two calls; results agree to float rounding). With ``g == 1`` only the conditional pass
    runs.

    Parameters
    ----------
    unet_fn : callable
        ``unet_fn(x [N, 32, T, F], t [N] int64) -> v [N, 16, T, F]``, e.g. a :class:`UNet`.
    cond_latent : torch.Tensor
        ``[B or 1, 16, T, F]`` conditioning latent, already multiplied by ``scale_factor``.
    guidance_scale : float
        g; 1 disables guidance.
    uncond_value : float or None
        Constant of the unconditional latent as the UNet sees it (see
        :func:`unconditional_value`); required when g != 1.
    """

    def __init__(
        self,
        unet_fn: UNetFn,
        cond_latent: torch.Tensor,
        guidance_scale: float = 3.5,
        uncond_value: float | None = None,
    ) -> None:
        if guidance_scale != 1.0 and uncond_value is None:
            raise ValueError("uncond_value is required when guidance_scale != 1.")
        self.unet_fn = unet_fn
        self.cond = cond_latent
        self.guidance_scale = float(guidance_scale)
        self.uncond_value = uncond_value
        self._buffer: torch.Tensor | None = None

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        if self.guidance_scale == 1.0:
            return torch.cat([x, self.cond.to(x.dtype).expand(b, -1, -1, -1)], dim=1)
        shape = (2 * b, c + self.cond.shape[1], *x.shape[2:])
        buf = self._buffer
        if buf is None or buf.shape != shape or buf.dtype != x.dtype or buf.device != x.device:
            # Conditioning channels are written once; each step only copies x into both halves.
            buf = torch.empty(shape, dtype=x.dtype, device=x.device)
            buf[:b, c:] = self.cond
            buf[b:, c:] = self.uncond_value
            self._buffer = buf
        buf[:b, :c] = x
        buf[b:, :c] = x
        return buf

    def __call__(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """Guided v for ``x`` ``[B, 16, T, F]`` at integer timestep ``t``."""
        inp = self._input(x)
        ts = torch.full((inp.shape[0],), int(t), dtype=torch.long, device=x.device)
        out = self.unet_fn(inp, ts)
        if self.guidance_scale == 1.0:
            return out
        v_c, v_u = out.chunk(2)
        return v_u + self.guidance_scale * (v_c - v_u)


def _noise(x: torch.Tensor, generator: torch.Generator | NoiseFn | None) -> torch.Tensor:
    if callable(generator):
        return generator(x)
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


class DDIMSampler:
    """The official AudioSR DDIM sampler (``ddim.py``), v-prediction, exactly.

    Timesteps from :func:`official_ddim_timesteps`; ``a_t = abar[t]``, ``a_prev = abar[next t]``
    and ``abar[0]`` (not 1) for the last step; per step, with the float32 buffers
    ``sa = sqrt(abar)[t]`` and ``so = sqrt(1 - abar)[t]``::

        e_t = sa v + so x;  x0 = sa x - so v  (no clipping)
        sigma = eta sqrt((1 - a_prev) / (1 - a_t) (1 - a_t / a_prev))
        x <- sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma^2) e_t + sigma noise

    Parameters
    ----------
    steps : int
        Official ``ddim_steps`` argument S (see :func:`official_ddim_timesteps`).
    eta : float
        0 is deterministic; the official inference default is 1.
    schedule : NoiseSchedule, optional
        Defaults to :meth:`NoiseSchedule.cosine`.

    Notes
    -----
    For eta > 0 the noise is drawn with ``torch.randn(x.shape, generator=generator)`` once per
    step, like the official ``noise_like``; a caller that draws ``x_T`` from the same generator
    first reproduces the official random stream. For eta = 0 nothing is drawn.
    """

    def __init__(self, steps: int, eta: float = 1.0, schedule: NoiseSchedule | None = None):
        self.schedule = schedule if schedule is not None else NoiseSchedule.cosine()
        self.eta = float(eta)
        if self.eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}.")
        self.timesteps = official_ddim_timesteps(steps, self.schedule.num_timesteps)
        ac = self.schedule.alphas_cumprod
        prev = np.append(self.timesteps[1:], 0)
        #: ``[S']`` float32 a_t, a_prev and sigma per visited step.
        self.alphas = ac[torch.from_numpy(self.timesteps)]
        self.alphas_prev = ac[torch.from_numpy(prev)]
        a, ap = self.alphas.double(), self.alphas_prev.double()
        self.sigmas = (self.eta * ((1 - ap) / (1 - a) * (1 - a / ap)).sqrt()).float()

    @property
    def num_steps(self) -> int:
        """Number of model evaluations (``len(timesteps)``)."""
        return len(self.timesteps)

    def step(
        self, v: torch.Tensor, x: torch.Tensor, i: int, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One DDIM update of ``x`` at step index ``i`` given the (guided) v; returns x_prev."""
        t = int(self.timesteps[i])
        dev = x.device
        sa = self.schedule.sqrt_alphas_cumprod[t].to(dev)
        so = self.schedule.sqrt_one_minus_alphas_cumprod[t].to(dev)
        a_prev, sigma = self.alphas_prev[i].to(dev), self.sigmas[i].to(dev)
        e_t = sa * v + so * x
        x0 = sa * x - so * v
        x_prev = a_prev.sqrt() * x0 + (1.0 - a_prev - sigma**2).sqrt() * e_t
        if noise is not None:
            x_prev = x_prev + sigma * noise
        return x_prev

    def sample(
        self,
        denoiser: Denoiser,
        x_T: torch.Tensor,
        generator: torch.Generator | NoiseFn | None = None,
        callback: Callback | None = None,
        return_intermediates: bool = False,
    ) -> SamplerOutput:
        """Run all steps from ``x_T`` ``[B, 16, T, F]``; see :class:`SamplerOutput`."""
        x = x_T
        inter: list[torch.Tensor] | None = [] if return_intermediates else None
        for i, t in enumerate(self.timesteps.tolist()):
            v = denoiser(x, t)
            noise = _noise(x, generator) if self.eta > 0 else None
            x = self.step(v, x, i, noise)
            if inter is not None:
                inter.append(x)
            if callback is not None:
                callback(i, t, x)
        return SamplerOutput(x, self.timesteps.copy(), inter)


class DPMSolverSampler:
    """DPM-Solver++(2M) (multistep, second order, data prediction) for the v-model.

    The model's x0 estimate ``sqrt(abar) x - sqrt(1 - abar) v`` is integrated along the
    probability-flow ODE in log-SNR. Default timesteps are "trailing",
    ``round(arange(T, 0, -T / steps)) - 1`` (999, 949, ..., 49 for 20 steps); the last update goes
    to ``abar[0]`` like the official DDIM. On a Gaussian toy problem with a known answer, 20 steps
    are about as accurate as 200 official DDIM steps (eta 0).

    Zero terminal SNR: at t = 999 ``abar = 0`` (log-SNR -inf). The first update from there is
    taken in its exact limit, ``x <- sqrt(1 - abar_next) x + sqrt(abar_next) x0`` (the DDIM step
    from pure noise), and the next one is first order (the 2M correction vanishes as the previous
    log-SNR step becomes infinite). The final update is first order too (diffusers'
    ``euler_at_final``): it spans a long log-SNR interval (2.4 -> 5.0 for 20 steps) where the
    multistep extrapolation overshoots.

    Same algorithm as diffusers' ``DPMSolverMultistepScheduler(trained_betas=cosine_betas(),
    prediction_type="v_prediction", algorithm_type="dpmsolver++", solver_order=2,
    solver_type="midpoint", euler_at_final=True, final_sigmas_type="sigma_min",
    timestep_spacing="trailing")`` apart from the t = 999 start (see the module docstring).

    Parameters
    ----------
    steps : int
        Number of model evaluations (ignored when ``timesteps`` is given).
    schedule : NoiseSchedule, optional
        Defaults to :meth:`NoiseSchedule.cosine`.
    timesteps : sequence of int, optional
        Explicit strictly decreasing timesteps (all > 0).
    """

    def __init__(
        self,
        steps: int = 20,
        schedule: NoiseSchedule | None = None,
        timesteps: list[int] | np.ndarray | None = None,
    ) -> None:
        self.schedule = schedule if schedule is not None else NoiseSchedule.cosine()
        n = self.schedule.num_timesteps
        if timesteps is None:
            if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
                raise ValueError(f"steps must be an integer, got {steps!r}.")
            if not 1 <= steps <= n - 1:
                raise ValueError(f"steps must be in 1..{n - 1}, got {steps}.")
            timesteps = np.round(np.arange(n, 0, -n / steps)).astype(np.int64) - 1
        ts = np.asarray(timesteps, dtype=np.int64)
        if ts.ndim != 1 or len(ts) == 0 or ts[0] >= n or ts[-1] < 1 or np.any(np.diff(ts) >= 0):
            raise ValueError(f"timesteps must decrease strictly within 1..{n - 1}, got {ts}.")
        self.timesteps = ts
        # alpha, sigma (float64 from the float32 buffers) at each model point, then the target.
        idx = torch.from_numpy(np.append(ts, 0))
        self._alpha = self.schedule.sqrt_alphas_cumprod[idx].double().tolist()
        self._sigma = self.schedule.sqrt_one_minus_alphas_cumprod[idx].double().tolist()

    @property
    def num_steps(self) -> int:
        """Number of model evaluations."""
        return len(self.timesteps)

    def _log_snr(self, j: int) -> float:
        a = self._alpha[j]
        return math.log(a / self._sigma[j]) if a > 0 else -math.inf

    def sample(
        self,
        denoiser: Denoiser,
        x_T: torch.Tensor,
        generator: torch.Generator | NoiseFn | None = None,
        callback: Callback | None = None,
        return_intermediates: bool = False,
    ) -> SamplerOutput:
        """Run all steps from ``x_T`` ``[B, 16, T, F]``; deterministic (``generator`` unused)."""
        del generator
        x = x_T
        inter: list[torch.Tensor] | None = [] if return_intermediates else None
        prev_x0: torch.Tensor | None = None
        last = self.num_steps - 1
        for i, t in enumerate(self.timesteps.tolist()):
            a_s, s_s = self._alpha[i], self._sigma[i]
            a_t, s_t = self._alpha[i + 1], self._sigma[i + 1]
            v = denoiser(x, t)
            x0 = a_s * x - s_s * v
            # exp(-h), h = lambda_t - lambda_s, as a ratio so that a_s = 0 gives exactly 0.
            exp_neg_h = (a_s * s_t) / (s_s * a_t)
            d = x0
            if prev_x0 is not None and self._alpha[i - 1] > 0 and i != last:
                r = (self._log_snr(i) - self._log_snr(i - 1)) / (
                    self._log_snr(i + 1) - self._log_snr(i)
                )
                d = x0 + (0.5 / r) * (x0 - prev_x0)
            x = (s_t / s_s) * x + (a_t * (1.0 - exp_neg_h)) * d
            prev_x0 = x0
            if inter is not None:
                inter.append(x)
            if callback is not None:
                callback(i, t, x)
        return SamplerOutput(x, self.timesteps.copy(), inter)


def make_sampler(
    name: str, steps: int, *, eta: float = 1.0, schedule: NoiseSchedule | None = None
) -> DDIMSampler | DPMSolverSampler:
    """Sampler by name (one of :data:`SAMPLERS`): ``"ddim"`` (official, uses ``eta``) or
    ``"dpmpp_2m"`` (deterministic)."""
    if name == "ddim":
        return DDIMSampler(steps, eta=eta, schedule=schedule)
    if name == "dpmpp_2m":
        return DPMSolverSampler(steps, schedule=schedule)
    raise ValueError(f"unknown sampler {name!r}; use one of {', '.join(SAMPLERS)}")


def sample_ddim(
    unet_fn: UNetFn,
    x_T: torch.Tensor,
    cond_latent: torch.Tensor,
    *,
    steps: int = 50,
    guidance_scale: float = 3.5,
    eta: float = 1.0,
    generator: torch.Generator | NoiseFn | None = None,
    uncond_value: float | None = None,
    schedule: NoiseSchedule | None = None,
    callback: Callback | None = None,
    return_intermediates: bool = False,
) -> SamplerOutput:
    """Official DDIM with concat conditioning and CFG on v.

    Parameters
    ----------
    unet_fn : callable
        ``unet_fn(x [N, 32, T, F], t [N] int64) -> v [N, 16, T, F]``.
    x_T : torch.Tensor
        ``[B, 16, T, F]`` initial latent (standard normal).
    cond_latent : torch.Tensor
        ``[B or 1, 16, T, F]``, already multiplied by ``scale_factor``.
    steps : int
        Official ``ddim_steps`` (visited count may be larger, see :func:`official_ddim_timesteps`).
    guidance_scale : float
        CFG scale g on v (official default 3.5); 1 runs only the conditional pass.
    eta : float
        DDIM eta (official inference default 1.0).
    generator : torch.Generator or callable, optional
        Source of the per-step noise when eta > 0: a generator, or ``noise_fn(x)`` returning a
        tensor shaped like ``x``.
    uncond_value : float, optional
        Unconditional latent value, already scaled (:func:`unconditional_value`); needed if g != 1.
    schedule : NoiseSchedule, optional
        Defaults to the cosine schedule (identical to the checkpoint buffers).
    callback : callable, optional
        ``callback(step_index, timestep, x)`` after every step.
    return_intermediates : bool
        Keep the latent after every step.

    Returns
    -------
    SamplerOutput
    """
    sampler = DDIMSampler(steps, eta=eta, schedule=schedule)
    denoiser = GuidedUNet(unet_fn, cond_latent, guidance_scale, uncond_value)
    return sampler.sample(denoiser, x_T, generator, callback, return_intermediates)


def sample_dpmpp_2m(
    unet_fn: UNetFn,
    x_T: torch.Tensor,
    cond_latent: torch.Tensor,
    *,
    steps: int = 20,
    guidance_scale: float = 3.5,
    uncond_value: float | None = None,
    schedule: NoiseSchedule | None = None,
    timesteps: list[int] | np.ndarray | None = None,
    callback: Callback | None = None,
    return_intermediates: bool = False,
) -> SamplerOutput:
    """DPM-Solver++(2M) with concat conditioning and CFG on v (see :class:`DPMSolverSampler`).

    Arguments as in :func:`sample_ddim`; ``timesteps`` overrides the trailing spacing.
    """
    sampler = DPMSolverSampler(steps, schedule=schedule, timesteps=timesteps)
    denoiser = GuidedUNet(unet_fn, cond_latent, guidance_scale, uncond_value)
    return sampler.sample(denoiser, x_T, None, callback, return_intermediates)
