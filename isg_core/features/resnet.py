"""Reference features: torchvision's ResNet50 (He et al., CVPR 2016), average-pooled.

HE2RNA (Schmauch et al. 2020) and the paper's Table 5 use ImageNet-pretrained ResNet50
features.  The weights are a download, so we use them only when they are already in the torch
hub cache; otherwise we warn once and use a randomly initialised ResNet50 (seeded, so every run
gets the same one).  ``trunk`` says which, and every table built on these features names it:
random-ResNet50 features are a lower bound, not the paper's baseline.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet50

from .losses import warn_once

#: torchvision's ImageNet ResNet50 weight files (V2 preferred, then V1) in the hub cache.
RESNET50_FILES = {"IMAGENET1K_V2": "resnet50-11ad3fa6.pth", "IMAGENET1K_V1": "resnet50-0676ba61.pth"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resnet50_weights_cached() -> tuple[str, Path] | None:
    """(weights name, file) of a cached ImageNet ResNet50, or None."""
    ckdir = Path(torch.hub.get_dir()) / "checkpoints"
    for name, fname in RESNET50_FILES.items():
        if (ckdir / fname).exists():
            return name, ckdir / fname
    return None


class ResNet50Features(nn.Module):
    """x in [-1, 1], (B, 3, H, W) -> (B, 2048) pooled features of ResNet50's last block.
    Patches are resized to ``input_size`` (224 px, ImageNet's) and normalised with ImageNet
    statistics."""

    dim = 2048

    def __init__(self, input_size: int = 224, allow_random: bool = True):
        super().__init__()

        cached = resnet50_weights_cached()
        if cached is None and not allow_random:
            raise FileNotFoundError(f"ImageNet ResNet50 weights not cached in {torch.hub.get_dir()}/checkpoints")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = resnet50(weights=None)
        if cached is not None:
            net.load_state_dict(torch.load(cached[1], map_location="cpu", weights_only=True))
            self.trunk = f"imagenet ({cached[0]})"
        else:
            self.trunk = "random"
            warn_once("resnet50", f"ResNet50: ImageNet weights not found in {torch.hub.get_dir()}/checkpoints; "
                                  "using a randomly initialised ResNet50 (named 'random' in every table)")
        net.fc = nn.Identity()
        self.net = net.eval().requires_grad_(False)
        self.input_size = input_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> "ResNet50Features":
        super().train(mode)
        self.net.eval()  # batch-norm statistics stay frozen
        return self

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x + 1) / 2
        if x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
                              antialias=True)
        return self.net((x - self.mean) / self.std)
