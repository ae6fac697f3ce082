"""What feature extraction costs per kept patch, in FLOPs.

A kept global patch costs ISG one pass of E_G on the p x p patch (resized to the global
extractor's resolution) and (p/q)^2 passes of E_L, one per local patch; it costs HE2RNA one
ResNet50 pass at its input size.  FLOPs are counted by running the networks once under
``torch.utils.flop_counter.FlopCounterMode`` (2 per multiply-add of every convolution and matrix
product: what "GFLOP" means in the model-zoo tables), so the count is the code's, not a formula
kept beside it.  Element-wise work (activations, pooling, normalisation) is not counted, as in
those tables.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..config import PROFILES, Profile
from .stylegan import Encoder
from .train import train_config_for


def count_flops(module: nn.Module, *inputs: torch.Tensor) -> int:
    """FLOPs of one forward pass of ``module`` on ``inputs`` (no gradient)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return int(counter.get_total_flops())


def encoder_flops(resolution: int, features, scale: str, downsample: str | None = None) -> int:
    """FLOPs of the profile's E_G or E_L on one patch at ``resolution`` px."""
    cfg = train_config_for(scale, features)
    model = cfg.model if downsample is None else replace(cfg.model, downsample=downsample)
    return count_flops(Encoder(model).eval(), torch.zeros(1, 3, resolution, resolution))


def resnet50_flops(input_size: int) -> int:
    """FLOPs of torchvision's ResNet50 trunk (no classifier) on one patch."""
    from torchvision.models import resnet50

    net = resnet50(weights=None)
    net.fc = nn.Identity()
    return count_flops(net.eval(), torch.zeros(1, 3, input_size, input_size))


def extraction_flops(profile: "str | Profile", downsample: str | None = None) -> dict[str, float]:
    """GFLOP per kept global patch at a profile: ``E_G``, ``E_L`` (all (p/q)^2 local patches),
    ``ISG`` (their sum), ``E_L share``, ``ResNet50`` and ``ISG / ResNet50``."""
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    f, grid = prof.features, prof.tiling.grid
    g = encoder_flops(f.global_resolution, f, "global", downsample) / 1e9
    loc = grid * grid * encoder_flops(f.local_resolution, f, "local", downsample) / 1e9
    r = resnet50_flops(f.resnet_input) / 1e9
    return {"E_G": g, "E_L": loc, "ISG": g + loc, "E_L share": loc / (g + loc), "ResNet50": r,
            "ISG / ResNet50": (g + loc) / r}
