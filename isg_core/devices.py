"""Where tensors go: one rule for every part of the package that picks a device."""
from __future__ import annotations

import torch


def resolve_device(device: "str | torch.device | None" = None) -> torch.device:
    """``device`` as a :class:`torch.device`; None picks CUDA when it is available, else the CPU."""
    if device is not None and str(device) != "":
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
