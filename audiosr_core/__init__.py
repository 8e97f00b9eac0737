"""audiosr-plug engine: AudioSR latent-diffusion super-resolution to 48 kHz."""

__version__ = "0.1.0"
