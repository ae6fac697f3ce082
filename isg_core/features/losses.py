"""The Feature Extraction network's objective (paper Sec. 3.2, Eq. 2).

L_total = min_{D,E} max_C E_x [ L1 + L_LPIPS + L_C ], with

* L1 = || x - D(E(x)) ||_1 (mean absolute error per pixel),
* L_LPIPS = || phi(x) - phi(D(E(x))) ||_2^2, phi the LPIPS network on an AlexNet trunk
  (Zhang et al., CVPR 2018) from the ``lpips`` package,
* L_C: the logistic GAN loss with u = softplus.

**Sign convention.**  The paper prints L_C = u(C(x)) + u(-C(D(E(x)))), which is the
discriminator's loss when C scores how *fake* an image is.  We use StyleGAN2's convention, in
which C scores how *real* an image is: the discriminator minimises
u(-C(x)) + u(C(x_hat)) and the autoencoder minimises the non-saturating u(-C(x_hat)),
x_hat = D(E(x)).  The two are the same game with C replaced by -C.  R1 (Mescheder et al.
2018) penalises gamma/2 * E ||grad_x C(x)||^2 on real images, applied lazily every k steps
and multiplied by k, as StyleGAN2 does (Sec. 3.1 there).
"""
from __future__ import annotations

import contextlib
import io
import math
import warnings
from pathlib import Path

import lpips
import torch
import torch.nn.functional as F
from torch import nn

#: torchvision's ImageNet AlexNet weights, as the LPIPS trunk loads them from the hub cache.
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
_warned: set[str] = set()


def warn_once(key: str, message: str) -> None:
    """Warn once per process (offline fallbacks would otherwise repeat every batch)."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, stacklevel=3)


def l1_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """L1 = mean |x - D(E(x))|."""
    return (x - x_hat).abs().mean()


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss u(-C(x)) + u(C(x_hat)), u = softplus (C scores realness)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Autoencoder's adversarial loss u(-C(x_hat)): falls as C takes reconstructions for real."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(discriminator: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """E ||grad_x C(x)||^2 on real images (multiply by gamma/2 outside)."""
    real = real.detach().requires_grad_(True)
    logits = discriminator(real)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return grad.square().sum(dim=(1, 2, 3)).mean()


def adaptive_adv_weight(rec_loss: torch.Tensor, adv_loss: torch.Tensor, last_layer: torch.Tensor,
                        delta: float = 1e-4, max_weight: float = 1e4) -> torch.Tensor:
    """VQGAN's adaptive weight of the adversarial term (Esser et al., CVPR 2021, Eq. 7):
    lambda = ||grad_{G_L} L_rec|| / (||grad_{G_L} L_C|| + delta), both gradients taken at the
    decoder's last layer G_L, clipped to [0, ``max_weight``] and detached, so that the adversarial
    term pulls on the decoder as hard as the reconstruction does, whatever their scales."""
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv_loss, last_layer, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + delta)).clamp(0.0, max_weight).detach()


#: skimage.color.hed_from_rgb (Ruifrok & Johnston 2001): optical density (R, G, B) -> (H, E, D)
HED_FROM_RGB = ((1.87798274, -1.00767869, -0.55611582),
                (-0.06590806, 1.13473037, -0.1355218),
                (-0.60190736, -0.48041419, 1.57358807))


def haematoxylin(x: torch.Tensor) -> torch.Tensor:
    """The haematoxylin channel of colour deconvolution (Ruifrok & Johnston 2001), as
    ``skimage.color.rgb2hed(rgb)[..., 0]`` computes it: RGB in [0, 1] (here from x in [-1, 1],
    (B, 3, H, W)) floored at 1e-6, optical density log(rgb) / log(1e-6), times ``hed_from_rgb``,
    floored at 0.  (B, 3, H, W) -> (B, H, W); high where nuclei are."""
    rgb = ((x + 1.0) / 2.0).clamp(min=1e-6)
    od = torch.log(rgb) / math.log(1e-6)
    col = torch.tensor([r[0] for r in HED_FROM_RGB], dtype=x.dtype, device=x.device)
    return torch.einsum("bchw,c->bhw", od, col).clamp(min=0.0)


def haematoxylin_l1(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean |H(x) - H(D(E(x)))| on the haematoxylin channel (:func:`haematoxylin`): a reconstruction
    term that weighs the nuclei, which the RGB L1 spreads over mostly pale pixels."""
    return (haematoxylin(x) - haematoxylin(x_hat)).abs().mean()


def alexnet_weights_cached() -> Path | None:
    """The cached ImageNet AlexNet file, or None (we never download)."""
    p = Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE
    return p if p.exists() else None


class LPIPSLoss(nn.Module):
    """LPIPS(AlexNet) distance, frozen, averaged over the batch.
    The linear heads ship with the ``lpips`` package; the AlexNet trunk is an ImageNet download.
    When it is not in the torch hub cache we warn once and use the package's randomly
    initialised trunk, seeded so that every run gets the same one; ``trunk`` records which
    ("imagenet" or "random") and is stored in every checkpoint and table built on it.
    Inputs smaller than ``min_size`` are upsampled first: AlexNet's first layers have stride 4
    and two poolings, so a 32 px local patch would leave almost no spatial map.
    """
    def __init__(self, min_size: int = 64, allow_random: bool = True):
        super().__init__()

        cached = alexnet_weights_cached()
        if cached is None and not allow_random:
            raise FileNotFoundError(f"LPIPS AlexNet trunk not cached at "
                                    f"{torch.hub.get_dir()}/checkpoints/{ALEXNET_FILE}")
        self.trunk = "imagenet" if cached is not None else "random"
        if cached is None:
            warn_once("lpips", f"LPIPS: ImageNet AlexNet weights not found in {torch.hub.get_dir()}/checkpoints; "
                               "using the lpips package's randomly initialised trunk "
                               "(recorded as lpips_trunk='random')")
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.random.fork_rng(devices=[]):
            warnings.simplefilter("ignore")  # torchvision's 'pretrained' deprecation, from inside lpips
            torch.manual_seed(0)
            self.net = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=cached is None, verbose=False)
        self.net.eval().requires_grad_(False)
        self.min_size = min_size

    def train(self, mode: bool = True) -> "LPIPSLoss":
        super().train(mode)
        self.net.eval()  # always frozen, dropout off
        return self

    def forward(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] < self.min_size:
            size = (self.min_size, self.min_size)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            x_hat = F.interpolate(x_hat, size=size, mode="bilinear", align_corners=False)
        return self.net(x, x_hat, normalize=False).mean()
