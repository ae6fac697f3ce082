"""The Table 1 baselines that "downsample the local features, then ViT-S": ViT-MB, CycleMLP, MPViT.

The paper (Sec. 4): a ViT cannot take the local features directly (there are (p/q)^2 of them per
kept patch), "therefore, we use MBConv blocks, CycleMLP and MPViT to downsample the local
features for the ViT-S".  Each baseline here is a *tokenizer* that turns one patch's local cube
R_i (g x g x d) into one token -- a couple of blocks of the cited architecture at width d, a
stride-2 downsampling to the token width, and an average pool -- followed by the shared
:class:`~isg_core.models.layers.SlideTransformer` (ViT-S).

These baselines use the local features only: f_i does not enter the token (the paper contrasts
ViT-S on global features with these on local ones; only ISG combines both).  Normalisation in
the convolutional parts is GroupNorm(1, c) (per-patch LayerNorm), not BatchNorm, so that the
patches of one slide, or the padding, never change another slide's output (the same choice as
the main model's MBConv blocks).  The tokenizers run on the real patches only.

Small layers first (CycleFC, CycleMLP block, MPViT pieces), then the three tokenizers, then
the model classes.
"""
from __future__ import annotations

import abc
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from isg_core.models.baselines.vit import SlideTransformerConfig, check_inputs, vit_s
from isg_core.models.layers import EncoderBlock, group_norm, make_mbconv
from isg_core.models.traits import DEFAULT_TRAITS


# --- ViT-MB: EfficientNet MBConv blocks --------------------------------------------------------------
class MBTokenizer(nn.Module):
    """ViT-MB's tokenizer: (blocks - 1) MBConv d -> d, one stride-2 MBConv d -> dim, mean pool.
    R (M, g, g, d) -> (M, dim)."""

    def __init__(self, d: int, dim: int, blocks: int = 2, expand_ratio: float = 4.0, kernel: int = 3):
        super().__init__()
        if blocks < 1:
            raise ValueError(f"local_blocks must be >= 1, got {blocks}")
        layers = [make_mbconv(d, expand_ratio, kernel) for _ in range(blocks - 1)]
        self.blocks = nn.Sequential(*layers, make_mbconv(d, expand_ratio, kernel, c_out=dim, stride=2))

    def forward(self, R: torch.Tensor) -> torch.Tensor:
        return self.blocks(R.permute(0, 3, 1, 2)).mean(dim=(2, 3))


# --- CycleMLP (Chen et al., "CycleMLP: A MLP-like Architecture for Dense Prediction", ICLR 2022) ---
class CycleFC(nn.Module):
    """Cycle fully-connected layer (CycleMLP Sec. 3.1, Eq. 3).

    A channel FC whose input for channel c is read at a spatial offset that cycles with c along
    one axis: with pseudo-kernel size k on that axis, delta_c = (c + k // 2) mod k - k // 2, i.e.
    0, +1, -1, 0, +1, -1, ... for k = 3 (the offsets of the official code).  Positions read
    outside the map count as zero (the official code uses a 1x1 deformable convolution with
    these integer offsets, whose bilinear sampling is zero outside).  Implemented as an index
    gather on the zero-padded map followed by a 1x1 convolution -- no deformable-conv op.

    ``kernel_size`` (1, k) shifts along the width, (k, 1) along the height.  x (B, C, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int], bias: bool = True):
        super().__init__()
        kh, kw = kernel_size
        if min(kh, kw) != 1:
            raise ValueError(f"CycleFC needs a 1 x k or k x 1 pseudo-kernel, got {kernel_size}")
        self.axis = 3 if kh == 1 else 2  # (1, k): width; (k, 1): height
        k = max(kh, kw)
        self.pad = k // 2
        offsets = torch.tensor([(c + k // 2) % k - k // 2 for c in range(in_channels)])
        self.register_buffer("offsets", offsets, persistent=False)  # derived, not learned
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's initialisation
        if self.bias is not None:
            nn.init.uniform_(self.bias, -1 / math.sqrt(in_channels), 1 / math.sqrt(in_channels))

    def shift(self, x: torch.Tensor) -> torch.Tensor:
        """out[:, c, ...] at position p reads x[:, c, ...] at p + delta_c along the axis (0 outside)."""
        b, c, h, w = x.shape
        length, p = x.shape[self.axis], self.pad
        idx = torch.arange(length, device=x.device)[None, :] + p + self.offsets[:, None]  # (C, L)
        if self.axis == 3:
            return F.pad(x, (p, p)).gather(3, idx[None, :, None, :].expand(b, c, h, w))
        return F.pad(x, (0, 0, p, p)).gather(2, idx[None, :, :, None].expand(b, c, h, w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.shift(x), self.weight[:, :, None, None], self.bias)


class CycleMLPBlock(nn.Module):
    """CycleMLP block on channels-last maps (B, H, W, C): x + Mix(LN(x)), then x + MLP(LN(x)).

    Mix = Proj(mean(CycleFC_H(x), CycleFC_W(x), FC_C(x))): the official block weights the three
    branches with a split attention ("reweight", softmax over branches from a pooled MLP); here
    that is simplified to the plain mean (the weighting it learns starts close to uniform).
    """

    def __init__(self, dim: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.cfc_h = CycleFC(dim, dim, (3, 1))
        self.cfc_w = CycleFC(dim, dim, (1, 3))
        self.fc_c = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        xc = x.permute(0, 3, 1, 2)
        h = self.cfc_h(xc).permute(0, 2, 3, 1)
        w = self.cfc_w(xc).permute(0, 2, 3, 1)
        return self.proj((h + w + self.fc_c(x)) / 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mix(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CycleTokenizer(nn.Module):
    """CycleMLP's tokenizer: CycleMLP blocks at width d, the official stride-2 3x3 convolution
    "Downsample" (patch merging) to dim, mean pool, LayerNorm.  R (M, g, g, d) -> (M, dim)."""

    def __init__(self, d: int, dim: int, blocks: int = 2, mlp_ratio: float = 4.0):
        super().__init__()
        self.blocks = nn.Sequential(*[CycleMLPBlock(d, mlp_ratio) for _ in range(blocks)])
        self.down = nn.Conv2d(d, dim, kernel_size=3, stride=2, padding=1)
        self.norm = nn.LayerNorm(dim)

    def forward(self, R: torch.Tensor) -> torch.Tensor:
        x = self.blocks(R).permute(0, 3, 1, 2)
        return self.norm(self.down(x).mean(dim=(2, 3)))


# --- MPViT (Lee et al., "MPViT: Multi-Path Vision Transformer for Dense Prediction", CVPR 2022) ----
class DWSepConv(nn.Module):
    """MPViT's DWConv2d_BN patch embedding: depthwise 3x3 (stride) -> pointwise 1x1 -> norm ->
    Hardswish."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.dw = nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False)
        self.pw = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.norm, self.act = group_norm(c_out), nn.Hardswish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.pw(self.dw(x))))


class ConvResBlock(nn.Module):
    """MPViT's local convolution path (its "InvRes" ResBlock): x + conv1x1(act(norm(dw3x3(
    act(norm(conv1x1(x))))))) with a norm at the end of the branch."""

    def __init__(self, c: int):
        super().__init__()
        self.branch = nn.Sequential(
            nn.Conv2d(c, c, 1, bias=False), group_norm(c), nn.Hardswish(),
            nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), group_norm(c), nn.Hardswish(),
            nn.Conv2d(c, c, 1, bias=False), group_norm(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class PathEncoder(nn.Module):
    """One path's transformer over the g x g positions of a cube: a convolutional position
    encoding (x + depthwise 3x3(x), MPViT's ConvPosEnc) before each pre-norm encoder layer.

    MPViT's factorized attention with convolutional relative positions is a linear-cost
    approximation for long sequences; a cube has only g^2 (<= 64) positions, so plain softmax
    attention is used.
    """

    def __init__(self, c: int, heads: int, mlp_ratio: float, depth: int):
        super().__init__()
        self.cpe = nn.ModuleList([nn.Conv2d(c, c, 3, padding=1, groups=c) for _ in range(depth)])
        self.layers = nn.ModuleList([EncoderBlock(c, heads, int(c * mlp_ratio), dropout=0.0) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, c, h, w = x.shape
        for cpe, layer in zip(self.cpe, self.layers):
            x = x + cpe(x)
            x = layer(x.flatten(2).transpose(1, 2))[0].transpose(1, 2).reshape(m, c, h, w)
        return x


class MPTokenizer(nn.Module):
    """MPViT's tokenizer: one multi-path stage at width d, then downsample and pool.

    Multi-scale patch embedding: ``paths`` depthwise-separable 3x3 convolutions applied one after
    the other (as in the official Patch_Embed_stage), path j taking the output of path j - 1, so
    the paths see receptive fields 3, 5, 7; each feeds its own transformer encoder; a
    convolutional local path (ConvResBlock on the first embedding) runs beside them; the outputs
    are concatenated and aggregated by a 1x1 convolution (+ norm, Hardswish).  Then a stride-2
    depthwise-separable convolution to dim (MPViT's next-stage embedding) and a mean pool.
    R (M, g, g, d) -> (M, dim).
    """

    def __init__(self, d: int, dim: int, paths: int = 3, heads: int = 2, mlp_ratio: float = 2.0, depth: int = 1):
        super().__init__()
        if d % heads:
            raise ValueError(f"d ({d}) must be divisible by local_heads ({heads})")
        self.embeds = nn.ModuleList([DWSepConv(d, d) for _ in range(paths)])
        self.encoders = nn.ModuleList([PathEncoder(d, heads, mlp_ratio, depth) for _ in range(paths)])
        self.local = ConvResBlock(d)
        self.aggregate = nn.Sequential(nn.Conv2d((paths + 1) * d, d, 1, bias=False), group_norm(d), nn.Hardswish())
        self.down = DWSepConv(d, dim, stride=2)

    def forward(self, R: torch.Tensor) -> torch.Tensor:
        x = R.permute(0, 3, 1, 2)
        embedded = []
        for embed in self.embeds:
            x = embed(x)
            embedded.append(x)
        outs = [self.local(embedded[0])] + [enc(e) for enc, e in zip(self.encoders, embedded)]
        return self.down(self.aggregate(torch.cat(outs, dim=1))).mean(dim=(2, 3))


# --- configurations and the slide models -------------------------------------------------------------
@dataclass(frozen=True)
class ViTMBConfig(SlideTransformerConfig):
    """ViT-S size plus the MBConv tokenizer: ``local_blocks`` MBConv blocks (the last one strided),
    expansion ratio and depthwise kernel."""

    local_blocks: int = 2
    local_expand: float = 4.0
    local_kernel: int = 3


@dataclass(frozen=True)
class CycleMLPConfig(SlideTransformerConfig):
    """ViT-S size plus the CycleMLP tokenizer: ``local_blocks`` CycleMLP blocks, their MLP ratio."""

    local_blocks: int = 2
    local_mlp_ratio: float = 4.0


@dataclass(frozen=True)
class MPViTConfig(SlideTransformerConfig):
    """ViT-S size plus the MPViT tokenizer: ``local_paths`` paths (receptive fields 3, 5, 7, ...),
    heads / MLP ratio / layers of each path's encoder."""

    local_paths: int = 3
    local_heads: int = 2
    local_mlp_ratio: float = 2.0
    local_depth: int = 1


class LocalTokenViT(nn.Module, abc.ABC):
    """Tokenizer on the local cube of each real patch + the slide transformer (ViT-S).

    ``forward(f, R, mask, pos)`` -> (B, n_outputs); f is ignored (may be None).  Subclasses set
    ``config_class`` and ``make_tokenizer``.
    """

    config_class = SlideTransformerConfig
    traits = DEFAULT_TRAITS  # R (f is ignored), for either task, trained by the engine
    #: tokenise every slot, padding included (vmap over members, :mod:`isg_core.train.members`)
    dense_patches: bool = False

    def __init__(self, d: int, grid: int, n_outputs: int, config: SlideTransformerConfig | None = None,
                 bias_init: torch.Tensor | None = None, **overrides):
        super().__init__()
        self.config = cfg = replace(config or self.config_class(), **overrides)
        self.d, self.grid = d, grid
        self.tokenizer = self.make_tokenizer(cfg, d, cfg.width(d))
        self.transformer = vit_s(cfg, d, n_outputs, bias_init)

    @abc.abstractmethod
    def make_tokenizer(self, cfg, d: int, dim: int) -> nn.Module:
        """The module that turns one local cube (M, g, g, d) into a token (M, dim)."""

    def forward(self, f: torch.Tensor | None, R: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        check_inputs(f, R, mask, pos, self.d, self.grid, need_f=False, need_R=True)
        mask = mask.bool()
        if self.dense_patches:  # every slot (vmap over members): the transformer masks padded tokens
            return self.transformer(self.tokenizer(R.flatten(0, 1)).unflatten(0, mask.shape), mask, pos)
        tok = self.tokenizer(R[mask])  # real patches only: padding never enters a tokenizer
        tokens = tok.new_zeros(*mask.shape, tok.shape[-1])
        tokens[mask] = tok
        return self.transformer(tokens, mask, pos)


class ViTMB(LocalTokenViT):
    """ViT-MB: MBConv tokenizer (EfficientNet's blocks) + ViT-S."""

    config_class = ViTMBConfig

    def make_tokenizer(self, cfg: ViTMBConfig, d: int, dim: int) -> nn.Module:
        return MBTokenizer(d, dim, cfg.local_blocks, cfg.local_expand, cfg.local_kernel)


class CycleMLPNet(LocalTokenViT):
    """CycleMLP tokenizer + ViT-S."""

    config_class = CycleMLPConfig

    def make_tokenizer(self, cfg: CycleMLPConfig, d: int, dim: int) -> nn.Module:
        return CycleTokenizer(d, dim, cfg.local_blocks, cfg.local_mlp_ratio)


class MPViTNet(LocalTokenViT):
    """MPViT tokenizer + ViT-S."""

    config_class = MPViTConfig

    def make_tokenizer(self, cfg: MPViTConfig, d: int, dim: int) -> nn.Module:
        return MPTokenizer(d, dim, cfg.local_paths, cfg.local_heads, cfg.local_mlp_ratio, cfg.local_depth)
