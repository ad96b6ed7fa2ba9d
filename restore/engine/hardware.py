"""Where training runs, as the engine records it per chunk in ``hardware.jsonl`` and model cards quote it."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any


def hardware(device: Any = None) -> dict[str, str]:
    """What training runs on, for the card: the CUDA device's name, or the CPU and its thread count. ``device``:
    the torch device in use (None: CUDA when available)."""
    import torch

    dev = torch.device(device) if device is not None else None
    if (dev is None and torch.cuda.is_available()) or (dev is not None and dev.type == "cuda"):
        return {"trained_on": "cuda", "device": torch.cuda.get_device_name(dev)}
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"trained_on": "cpu", "device": f"{cpu} ({torch.get_num_threads()} threads)"}
