"""Where the networks run: the default device and the check of a requested one.

Example
-------
>>> from audiosr_core.devices import resolve_device
>>> resolve_device(None)                 # cuda > mps > cpu             # doctest: +SKIP
device(type='cpu')
>>> resolve_device("gpu")                                               # doctest: +SKIP
DeviceError: device 'gpu' is not a device name; available here: cpu
"""

from __future__ import annotations

import torch

from .errors import DeviceError

__all__ = ["available_devices", "default_device", "resolve_device"]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def available_devices() -> list[str]:
    """Names of the devices this machine can run on, e.g. ``["cpu", "cuda:0", "cuda:1"]``."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return names


def default_device() -> torch.device:
    """``cuda`` if available, else ``mps``, else ``cpu``."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device to use for ``device`` (None: :func:`default_device`), checked to exist.

    Raises
    ------
    DeviceError
        Not a device name (``"gpu"``), or a device this machine does not have (``"cuda"``
        without CUDA, ``"cuda:3"`` on a two-GPU machine, ``"mps"`` off Apple silicon). The
        message lists the devices that exist.
    """
    if device is None:
        return default_device()
    here = ", ".join(available_devices())
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"device {str(device)!r} is not a device name; available here: "
                          f"{here}") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {str(device)!r} needs CUDA, which this machine (or this "
                              f"PyTorch build) does not have; available here: {here}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {str(device)!r} does not exist: this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s); available here: "
                              f"{here}")
        return dev
    if dev.type == "mps":
        if not _mps_available():
            raise DeviceError(f"device {str(device)!r} (Apple MPS) is not available here; "
                              f"available here: {here}")
        return dev
    raise DeviceError(f"device {str(device)!r} is not supported; available here: {here}")
