"""The Feature Extraction network (paper Sec. 3.2): a StyleGAN2 autoencoder in one file.

An encoder E maps a patch x to a d-dimensional code f = E(x) (the feature the Dual Attention
network uses); a StyleGAN2 generator D (Karras et al., "Analyzing and Improving the Image
Quality of StyleGAN", CVPR 2020) reconstructs x from it; a residual discriminator C with a
minibatch-standard-deviation layer judges the reconstructions.  Small layers first, then the
three networks, then :class:`StyleAutoencoder` that ties E and D together.

Everything is plain PyTorch (no custom CUDA ops compiled at import), so it runs on a CPU.
Where this differs from the official StyleGAN2, and why:

* Modulated convolution uses the "non-fused" form (scale the input activations by the style,
  convolve with the shared weight, scale the output by the demodulation factor).  It is
  mathematically the same as modulating the weights (StyleGAN2 Eqs. 1-3) and needs no grouped
  convolution, which is slow on CPUs.
* Upsampling is bilinear interpolation before the convolution instead of a transposed
  convolution with a FIR blur filter (the generator is only needed in training).
* Downsampling (encoder and critic, ``downsample="strided"``) is StyleGAN2's: the [1, 3, 3, 1]
  FIR low-pass filter, then a stride-2 convolution, so the residual block's second 3 x 3
  convolution runs at half the resolution (a quarter of its multiply-adds).  ``"pool"``
  (the earlier encoder, kept for comparison) convolves at full resolution and then
  average-pools: the same receptive field at about 1.6-1.8x the encoder's FLOPs
  (``tests/test_features.py`` counts them).
* The synthesis network starts from a learned 4 x 4 constant *plus* a linear projection of the
  style w (``input_mode="projected"``).  A constant input must learn where things are through
  the styles alone; an autoencoder that has to put a gland where the input had one learns much
  faster when the code also shapes the first feature map.  ``input_mode="const"`` gives the
  original StyleGAN2 input.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


def _act(x: torch.Tensor) -> torch.Tensor:
    """LeakyReLU(0.2) of a layer's fresh output; in place when no gradient is recorded (inference:
    one pass and one allocation less, ~15% of E_L's time on a CPU), out of place when training."""
    return F.leaky_relu(x, 0.2, inplace=not torch.is_grad_enabled())


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU with StyleGAN's gain sqrt(2), which keeps unit variance through the layer."""
    return F.leaky_relu(x, 0.2) * SQRT2


# --- small layers -----------------------------------------------------------------------------
class EqualLinear(nn.Module):
    """Linear layer with the equalised learning rate of ProGAN/StyleGAN: weights are drawn from
    N(0, 1/lr_mul^2) and scaled at run time by lr_mul / sqrt(fan_in)."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0, act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init) / lr_mul))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # lrelu(a) * sqrt(2) = lrelu(sqrt(2) a): the activation's gain is folded into the weights
        g = SQRT2 if self.act else 1.0
        out = F.linear(x, self.weight * (self.scale * g), self.bias * (self.lr_mul * g))
        return _act(out) if self.act else out


class EqualConv2d(nn.Module):
    """Convolution with equalised learning rate (weights scaled by 1/sqrt(fan_in) at run time).
    ``padding`` defaults to "same" (kernel // 2); a strided convolution after :class:`Blur` uses 0."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, bias: bool = True, act: bool = False,
                 stride: int = 1, padding: int | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.padding = kernel // 2 if padding is None else padding
        self.stride = stride
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # lrelu(a) * sqrt(2) = lrelu(sqrt(2) a): the gain goes into the weights (one pass less over
        # the activations, a tenth of E_L's time on a CPU)
        g = SQRT2 if self.act else 1.0
        bias = None if self.bias is None else (self.bias * g if self.act else self.bias)
        out = F.conv2d(x, self.weight * (self.scale * g), bias, stride=self.stride, padding=self.padding)
        return _act(out) if self.act else out


#: StyleGAN2's FIR low-pass filter (the binomial [1, 3, 3, 1], as an outer product)
BLUR_TAPS = (1.0, 3.0, 3.0, 1.0)


class Blur(nn.Module):
    """Depthwise 4 x 4 FIR low-pass filter (StyleGAN2's ``Blur``, Karras et al. 2020, App. B;
    Zhang 2019, "Making convolutional networks shift-invariant again"): the binomial kernel
    [1, 3, 3, 1]^T [1, 3, 3, 1] / 64 after zero-padding ``pad`` = (before, after) on each side.
    Followed by a stride-2 convolution it is StyleGAN2's anti-aliased downsampling.  The kernel
    is a non-persistent buffer: checkpoints are unchanged."""

    def __init__(self, channels: int, pad: tuple[int, int]):
        super().__init__()
        k = torch.tensor(BLUR_TAPS)
        k = torch.outer(k, k) / k.sum() ** 2
        self.register_buffer("kernel", k.expand(channels, 1, 4, 4).clone(), persistent=False)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.pad
        k = self.kernel.to(x.dtype)
        if a == b:  # the convolution's own zero padding: no padded copy of x
            return F.conv2d(x, k, padding=a, groups=x.shape[1])
        return F.conv2d(F.pad(x, (a, b, a, b)), k, groups=x.shape[1])


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated convolution (Karras et al. 2020, Sec. 2.2, Eqs. 1-3).

    Modulation: w'_ijk = s_i * w_ijk, with s = A(w) an affine map of the style (Eq. 1).
    Demodulation: w''_ijk = w'_ijk / sqrt(sum_{i,k} w'_ijk^2 + eps) (Eq. 3), so that for
    inputs of unit variance the outputs have unit variance again (Eq. 2).  Computed in the
    equivalent non-fused form: conv(x * s, w) * demod.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False, eps: float = 1e-8):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)  # s starts at 1: plain conv
        self.demodulate, self.upsample, self.eps = demodulate, upsample, eps
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        s = self.modulation(w)  # (B, in)
        weight = self.weight * self.scale
        x = x * s[:, :, None, None]
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        out = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            # sigma_j = sqrt(sum_{i,k} (s_i w_ijk)^2): Eq. 3 without building per-sample weights
            demod = torch.rsqrt(torch.einsum("oikl,bi->bo", weight.square(), s.square()) + self.eps)
            out = out * demod[:, :, None, None]
        return out


class NoiseInjection(nn.Module):
    """Per-pixel noise scaled by a learned per-layer strength (StyleGAN's noise inputs B)."""

    def __init__(self):
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        return x + self.strength * noise


class StyledConv(nn.Module):
    """Modulated 3 x 3 convolution + noise + bias + leaky ReLU: one synthesis layer."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int, upsample: bool = False, noise: bool = True):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, style_dim, upsample=upsample)
        self.noise = NoiseInjection() if noise else None
        self.bias = nn.Parameter(torch.zeros(1, out_ch, 1, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = self.conv(x, w)
        if self.noise is not None:
            x = self.noise(x)
        return lrelu(x + self.bias)


class ToRGB(nn.Module):
    """1 x 1 modulated convolution to RGB (not demodulated), added to the upsampled RGB of the
    previous resolution: StyleGAN2's skip-connection generator (Fig. 7b of the paper)."""

    def __init__(self, in_ch: int, style_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, w) + self.bias
        if skip is not None:
            out = out + F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
        return out


DOWNSAMPLES = ("strided", "pool")


class ResBlock(nn.Module):
    """Residual block that halves the resolution (StyleGAN2's residual discriminator, Fig. 7c):
    two 3 x 3 convolutions on the main path, a 1 x 1 on the skip, summed and divided by sqrt(2).

    ``downsample="strided"`` is StyleGAN2's: the second 3 x 3 and the skip's 1 x 1 are stride-2
    convolutions after :class:`Blur` (padding (2, 2) and (1, 1): StyleGAN2's
    ``(taps - 2) + (kernel - 1)`` split in two), so they run at the output resolution.
    ``"pool"`` convolves at the input resolution and average-pools afterwards (2 x 2 mean)."""

    def __init__(self, in_ch: int, out_ch: int, downsample: str = "strided"):
        super().__init__()
        if downsample not in DOWNSAMPLES:
            raise ValueError(f"downsample must be one of {DOWNSAMPLES}, got {downsample!r}")
        self.downsample = downsample
        strided = downsample == "strided"
        self.conv1 = EqualConv2d(in_ch, in_ch, 3, act=True)
        self.conv2 = EqualConv2d(in_ch, out_ch, 3, act=True, stride=2 if strided else 1, padding=0 if strided else None)
        self.skip = EqualConv2d(in_ch, out_ch, 1, bias=False, stride=2 if strided else 1)
        if strided:
            self.blur2, self.blur_skip = Blur(in_ch, (2, 2)), Blur(in_ch, (1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample == "strided":
            out = self.conv2(self.blur2(self.conv1(x)))
            return (out + self.skip(self.blur_skip(x))) / SQRT2
        out = F.avg_pool2d(self.conv2(self.conv1(x)), 2)
        return (out + self.skip(F.avg_pool2d(x, 2))) / SQRT2


# --- configuration ------------------------------------------------------------------------------
@dataclass(frozen=True)
class AutoencoderConfig:
    """Size of one StyleGAN2 autoencoder (global or local).

    ``resolution`` is the side of the patch the networks see; ``code_dim`` is d, the feature
    size.  Channels at resolution r are ``min(channel_max, channel_base // r)``.  ``downsample``
    is how the encoder's and the critic's residual blocks halve the resolution
    (:class:`ResBlock`): StyleGAN2's blur + stride-2 convolution, or the legacy pooling.
    """

    resolution: int = 64
    code_dim: int = 64
    style_dim: int = 128
    n_mapping: int = 2
    mapping_lr_mul: float = 1.0  # StyleGAN2 uses 0.01 for a GAN; an autoencoder needs w to follow E at once
    channel_base: int = 2048
    channel_max: int = 128
    input_mode: str = "projected"  # or "const" (StyleGAN2's learned constant only)
    mbstd_group: int = 4
    downsample: str = "strided"
    # StyleGAN2's per-pixel noise inputs B in every synthesis layer (Karras et al. 2019, Sec. 3.2).
    # In a GAN they draw stochastic detail; in an autoencoder the generator may draw detail from
    # them that the code then need not carry.  False: no noise inputs (a departure from the
    # paper, measured by `isg study extractor-limits`)
    noise_inputs: bool = True

    def __post_init__(self) -> None:
        if self.downsample not in DOWNSAMPLES:
            raise ValueError(f"downsample must be one of {DOWNSAMPLES}, got {self.downsample!r}")
        if self.resolution < 8 or self.resolution & (self.resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 8, got {self.resolution}")
        if self.input_mode not in ("projected", "const"):
            raise ValueError(f"input_mode must be 'projected' or 'const', got {self.input_mode!r}")

    def channels(self, res: int) -> int:
        return int(min(self.channel_max, self.channel_base // res))

    @property
    def resolutions(self) -> list[int]:
        """4, 8, ..., resolution."""
        return [2 ** k for k in range(2, int(math.log2(self.resolution)) + 1)]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AutoencoderConfig":
        """Rebuild a saved config.  A config saved before ``downsample`` existed was trained with
        pooling: it gets ``"pool"``, so its weights compute what they were trained to."""
        return cls(**{"downsample": "pool", **d})


# --- the three networks ---------------------------------------------------------------------------
class MappingNetwork(nn.Module):
    """Code -> style w: ``n_mapping`` fully connected layers (StyleGAN's f: Z -> W)."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        dims = [cfg.code_dim] + [cfg.style_dim] * cfg.n_mapping
        self.layers = nn.Sequential(*[EqualLinear(a, b, lr_mul=cfg.mapping_lr_mul, act=True)
                                      for a, b in zip(dims[:-1], dims[1:])])

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.layers(code)


class Generator(nn.Module):
    """StyleGAN2 synthesis network with skip-connected to-RGB outputs: from 4 x 4 to
    ``resolution``, two styled convolutions per resolution (the first one upsampling)."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.cfg = cfg
        self.mapping = MappingNetwork(cfg)
        c4 = cfg.channels(4)
        self.const = nn.Parameter(torch.randn(1, c4, 4, 4))
        self.project = EqualLinear(cfg.style_dim, c4 * 16) if cfg.input_mode == "projected" else None
        self.conv4 = StyledConv(c4, c4, cfg.style_dim, noise=cfg.noise_inputs)
        self.rgb4 = ToRGB(c4, cfg.style_dim)
        self.convs, self.rgbs = nn.ModuleList(), nn.ModuleList()
        for res in cfg.resolutions[1:]:
            cin, cout = cfg.channels(res // 2), cfg.channels(res)
            noise = cfg.noise_inputs
            self.convs.append(nn.ModuleList([StyledConv(cin, cout, cfg.style_dim, upsample=True, noise=noise),
                                             StyledConv(cout, cout, cfg.style_dim, noise=noise)]))
            self.rgbs.append(ToRGB(cout, cfg.style_dim))

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        """(B, d) codes -> (B, 3, R, R) images in [-1, 1] (not clamped)."""
        w = self.mapping(code)
        x = self.const.expand(code.shape[0], -1, -1, -1)
        if self.project is not None:
            x = x + self.project(w).view_as(x)
        x = self.conv4(x, w)
        rgb = self.rgb4(x, w)
        for (up, conv), to_rgb in zip(self.convs, self.rgbs):
            x = conv(up(x, w), w)
            rgb = to_rgb(x, w, skip=rgb)
        return rgb


class Encoder(nn.Module):
    """E: image -> d-dimensional code, a residual down-sampling network (the mirror of the
    generator) ending in a fully connected layer.  Its output is the feature f of Sec. 3.2."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        res = cfg.resolutions[::-1]  # R, R/2, ..., 4
        self.from_rgb = EqualConv2d(3, cfg.channels(res[0]), 1, act=True)
        self.blocks = nn.Sequential(*[ResBlock(cfg.channels(r), cfg.channels(r // 2), cfg.downsample)
                                      for r in res[:-1]])
        c4 = cfg.channels(4)
        self.out = nn.Sequential(nn.Flatten(), EqualLinear(c4 * 16, c4, act=True), EqualLinear(c4, cfg.code_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(self.from_rgb(x)))


class MinibatchStdDev(nn.Module):
    """Appends the standard deviation over groups of samples as one extra feature map
    (Karras et al. 2018, ProGAN Sec. 3), which lets C see a lack of variety in a batch."""

    def __init__(self, group: int = 4):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = min(self.group, b)
        while b % g:  # the largest group size that divides the batch
            g -= 1
        y = x.view(g, b // g, c, h, w)
        y = torch.sqrt(y.var(dim=0, unbiased=False) + 1e-8).mean(dim=(1, 2, 3))  # (b // g,)
        y = y.repeat(g).view(b, 1, 1, 1).expand(b, 1, h, w)
        return torch.cat([x, y], dim=1)


class Discriminator(nn.Module):
    """C: StyleGAN2's residual discriminator; returns one realness logit per image."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        res = cfg.resolutions[::-1]
        self.from_rgb = EqualConv2d(3, cfg.channels(res[0]), 1, act=True)
        self.blocks = nn.Sequential(*[ResBlock(cfg.channels(r), cfg.channels(r // 2), cfg.downsample)
                                      for r in res[:-1]])
        c4 = cfg.channels(4)
        self.mbstd = MinibatchStdDev(cfg.mbstd_group)
        self.conv = EqualConv2d(c4 + 1, c4, 3, act=True)
        self.out = nn.Sequential(nn.Flatten(), EqualLinear(c4 * 16, c4, act=True), EqualLinear(c4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.conv(self.mbstd(self.blocks(self.from_rgb(x))))).squeeze(1)


class StyleAutoencoder(nn.Module):
    """D(E(x)): the encoder and the StyleGAN2 generator trained together (Sec. 3.2)."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.generator = Generator(cfg)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator(self.encoder(x))
