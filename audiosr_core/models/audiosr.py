"""The AudioSR model: config -> modules, official checkpoints in, safetensors folders in and out.

This is the one place that turns a configuration into the four inference components::

    vae_encoder  low-passed log-mel [B,1,T,256] -> posterior (mean, logvar) [B,16,T/8,32]
    unet         cat[x_t, scale_factor * cond] [B,32,T/8,32], t -> v [B,16,T/8,32]
    vae_decoder  latent / scale_factor -> log-mel [B,1,T,256]
    vocoder      log-mel [B,256,T] -> waveform [B,1,480 T + 16] at 48 kHz

Example
-------
>>> from audiosr_core.models.audiosr import AudioSRConfig, AudioSRModel
>>> model = AudioSRModel(AudioSRConfig.tiny())          # random weights, for tests
>>> model.save_pretrained("tiny-audiosr")                # config.json + model.safetensors
>>> same = AudioSRModel.from_pretrained("tiny-audiosr")
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .. import atomic
from ..errors import WeightsError
from .unet import UNet, UNetConfig
from .vae import VAEConfig, VAEDecoder, VAEEncoder
from .vocoder import HifiGan, HifiGanConfig

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: Beside the weights of a converted or fine-tuned folder: the official first-stage encoder
#: (``encoder.*``, ``quant_conv.*``), which encodes fine-tuning targets; inference ignores it.
TARGET_ENCODER_NAME = "first_stage_encoder.safetensors"
MODEL_TYPE = "audiosr-latent-diffusion"


@dataclass(frozen=True)
class AudioSRConfig:
    """Everything needed to build an AudioSR model and its diffusion process.

    Attributes
    ----------
    unet, vae, vocoder
        Component architectures.
    timesteps : int
        Length of the training diffusion (1000).
    cosine_s : float
        Offset of the cosine noise schedule (8e-3), betas not clipped.
    unconditional_value : float
        Constant filling the unconditional latent before scaling (-11.4981).
    scale_factor : float
        Latent scale; the loaded checkpoint's buffer is authoritative, this is the default for
        freshly built models.
    """

    unet: UNetConfig = field(default_factory=UNetConfig.basic)
    vae: VAEConfig = field(default_factory=VAEConfig.basic)
    vocoder: HifiGanConfig = field(default_factory=HifiGanConfig.basic)
    timesteps: int = 1000
    cosine_s: float = 8e-3
    unconditional_value: float = -11.4981
    scale_factor: float = 1.0

    @classmethod
    def basic(cls) -> AudioSRConfig:
        """The official 'basic' and 'speech' architecture (same for both)."""
        return cls()

    @classmethod
    def tiny(cls) -> AudioSRConfig:
        """Widths of the parity fixture (about 4 M parameters), for tests and examples."""
        return cls(unet=UNetConfig.tiny(), vae=VAEConfig.tiny(), vocoder=HifiGanConfig.tiny(),
                   scale_factor=0.8371000289916992)

    @classmethod
    def from_official(cls, config: Mapping[str, Any]) -> AudioSRConfig:
        """Read the official ``get_basic_config()`` dictionary (as in a fixture's config.json)."""
        params = config["model"]["params"]
        cond = next(iter(params["cond_stage_config"].values()))
        cond_vae = cond["params"]["first_stage_config"]["params"]
        return cls(
            unet=UNetConfig.from_official(params["unet_config"]["params"]),
            vae=VAEConfig.from_official(cond_vae["ddconfig"], int(cond_vae["embed_dim"])),
            vocoder=HifiGanConfig.from_official(params["vocoder_config"]),
            timesteps=int(params.get("timesteps", 1000)),
            cosine_s=float(params.get("cosine_s", 8e-3)),
            unconditional_value=float(cond.get("unconditional_value", -11.4981)),
            scale_factor=float(params.get("scale_factor", 1.0)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": MODEL_TYPE, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AudioSRConfig:
        data = {k: v for k, v in data.items() if k != "model_type"}
        nested = {"unet": UNetConfig, "vae": VAEConfig, "vocoder": HifiGanConfig}
        kwargs = {k: (nested[k](**_tuples(v)) if k in nested else v) for k, v in data.items()}
        return cls(**kwargs)


def _tuples(d: Mapping[str, Any]) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        return tuple(conv(x) for x in v) if isinstance(v, list) else v

    return {k: conv(v) for k, v in d.items()}


class AudioSRModel(nn.Module):
    """The four inference components of AudioSR and the latent ``scale_factor``.

    State-dict keys are ``unet.*``, ``vae_encoder.*``, ``vae_decoder.*``, ``vocoder.*`` and
    ``scale_factor``; each component uses the official key names below its prefix.
    """

    def __init__(self, config: AudioSRConfig) -> None:
        super().__init__()
        self.config = config
        self.unet = UNet(config.unet)
        self.vae_encoder = VAEEncoder(config.vae)
        self.vae_decoder = VAEDecoder(config.vae)
        self.vocoder = HifiGan(config.vocoder)
        self.register_buffer("scale_factor", torch.tensor(config.scale_factor,
                                                          dtype=torch.float32))

    def load_official(self, parts: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        """Load components split by :func:`audiosr_core.weights.split_official_state_dict`.

        Every component is loaded with ``strict=True``: a missing or unexpected key raises.
        """
        for name in ("unet", "vae_encoder", "vae_decoder", "vocoder"):
            getattr(self, name).load_state_dict(parts[name], strict=True)
        self.scale_factor.copy_(parts["scale_factor"]["scale_factor"])

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (fp32) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {**self.config.to_dict(), "scale_factor": float(self.scale_factor)}
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
        with atomic.atomic_path(directory / WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt", "model_type": MODEL_TYPE})
        atomic.write_text(directory / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> AudioSRModel:
        """Load a folder written by :meth:`save_pretrained` (strict: every key must match)."""
        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        if not config_path.is_file() or not weights_path.is_file():
            raise WeightsError(f"{directory}: not a converted AudioSR folder (expected "
                               f"{CONFIG_NAME} and {WEIGHTS_NAME}).")
        data = json.loads(config_path.read_text())
        if data.get("model_type") != MODEL_TYPE:
            raise WeightsError(f"{config_path}: model_type {data.get('model_type')!r} is not "
                               f"{MODEL_TYPE!r}.")
        with torch.device("meta"):
            model = cls(AudioSRConfig.from_dict(data))
        try:
            state = load_file(str(weights_path), device=str(torch.device(device)))
            model.load_state_dict(state, strict=True, assign=True)
        except (OSError, RuntimeError, SafetensorError) as exc:
            raise WeightsError(f"{weights_path}: unreadable or does not match {CONFIG_NAME} "
                               f"({exc}). Delete {directory} and convert again.") from exc
        return model.to(device=device, dtype=dtype).eval()
