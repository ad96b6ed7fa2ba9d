"""Choosing the torch device from a user's ``--device`` (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``)."""

from __future__ import annotations

import torch


class DeviceUnavailable(ValueError):
    """The device asked for does not exist on this machine (a ValueError, so the CLI prints one line)."""


def choose_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or None): CUDA when torch sees a GPU, else the CPU. A CUDA device that is not there is an error
    that says so, rather than a failure deep inside the first ``.to(device)``."""
    if isinstance(name, torch.device):
        name = str(name)
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceUnavailable(f"--device {name!r} is not a device name (auto, cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable(f"--device {name} was asked for, but torch sees no CUDA device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceUnavailable(f"--device {name} was asked for, but torch sees "
                                    f"{torch.cuda.device_count()} CUDA device(s)")
    return device
