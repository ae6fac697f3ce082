"""ViT-S, the paper's Table 1 baseline on global features only, and the size of the slide-level ViT
that every transformer baseline shares.

ViT (Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021) with one token per kept
global patch instead of one per image patch.  The paper uses "ViT-S, a smaller version of ViT-B"
(ViT-S/16: width 384, depth 12, 6 heads); its inputs here are the d-dimensional global features,
so "S" is scaled to our d: width d by default (``dim=None``), depth 4, 4 heads, MLP ratio 4.

The transformer itself is :class:`~isg_core.models.layers.SlideTransformer` (the one of the main
model): tokens + 2-D sine-cosine embedding of the patch's grid position + a learned class token +
pre-norm blocks that mask padded keys -> LayerNorm -> linear head on the class token.  ViT-MB,
CycleMLP and MPViT (``local_tokenizers.py``) differ from ViT-S only in how a patch becomes its token.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from isg_core.models.layers import SlideTransformer
from isg_core.models.traits import GLOBAL, ModelTraits


@dataclass(frozen=True)
class SlideTransformerConfig:
    """Size of the slide-level ViT: ``dim`` the token width (None -> d, the feature size),
    ``depth`` encoder layers, ``heads`` attention heads, ``mlp_ratio`` the feed-forward width
    over ``dim``, ``dropout`` in attention and feed-forward.  Defaults: ViT-S scaled to d."""

    dim: int | None = None
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.dim is not None and self.dim < 1:
            raise ValueError(f"dim must be >= 1, got {self.dim}")
        if self.depth < 0 or self.heads < 1:
            raise ValueError(f"need depth >= 0 and heads >= 1, got {self.depth}, {self.heads}")

    def width(self, d: int) -> int:
        """Token width for feature size d; checked against the number of heads."""
        dim = d if self.dim is None else self.dim
        if dim % self.heads:
            raise ValueError(f"token width {dim} must be divisible by heads ({self.heads})")
        return dim

    def to_dict(self) -> dict:
        return asdict(self)


def vit_s(cfg: SlideTransformerConfig, d: int, n_outputs: int,
          bias_init: torch.Tensor | None = None) -> SlideTransformer:
    """The slide transformer of the Table 1 baselines at size ``cfg`` for d-dimensional features."""
    return SlideTransformer(cfg.width(d), n_outputs, cfg.depth, cfg.heads, cfg.mlp_ratio, cfg.dropout,
                            bias_init=bias_init)


def masked_tokens(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero the padded rows with ``where`` (not a product): garbage there, even inf/NaN, can then
    reach neither the output nor, through the backward pass, the weights."""
    return torch.where(mask[..., None], tokens, torch.zeros((), dtype=tokens.dtype, device=tokens.device))


def check_inputs(f: torch.Tensor | None, R: torch.Tensor | None, mask: torch.Tensor, pos: torch.Tensor,
                 d: int, grid: int, need_f: bool, need_R: bool) -> None:
    """Shape checks shared by the baselines (the common (f, R, mask, pos) signature)."""
    b, n = mask.shape
    if need_f and (f is None or f.shape != (b, n, d)):
        raise ValueError(f"expected f (B, N, {d}) with (B, N) = {(b, n)}, got {None if f is None else tuple(f.shape)}")
    if need_R and (R is None or R.shape != (b, n, grid, grid, d)):
        raise ValueError(f"expected R (B, N, {grid}, {grid}, {d}) with (B, N) = {(b, n)}, "
                         f"got {None if R is None else tuple(R.shape)}")
    if pos.shape != (b, n, 2):
        raise ValueError(f"expected pos (B, N, 2), got {tuple(pos.shape)}")


class ViTS(nn.Module):
    """ViT-S over the global features only: token_i = Linear(f_i) (+ position), R is ignored
    (it may be None).  The paper's point with this baseline: without the local features the
    fine-grained patch content is lost (Table 1, 0.234 average PCC vs 0.338 for ViT-MB).

    ``forward(f, R, mask, pos)`` -> (B, n_outputs).  ``config`` or keyword ``overrides`` of
    :class:`SlideTransformerConfig` set the size.
    """

    config_class = SlideTransformerConfig
    traits = ModelTraits(reads=GLOBAL)  # R is ignored: InputStandardizer leaves it alone

    def __init__(self, d: int, grid: int, n_outputs: int, config: SlideTransformerConfig | None = None,
                 bias_init: torch.Tensor | None = None, **overrides):
        super().__init__()
        self.config = cfg = replace(config or SlideTransformerConfig(), **overrides)
        self.d, self.grid = d, grid
        self.embed = nn.Linear(d, cfg.width(d))
        self.transformer = vit_s(cfg, d, n_outputs, bias_init)

    def forward(self, f: torch.Tensor, R: torch.Tensor | None, mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        check_inputs(f, R, mask, pos, self.d, self.grid, need_f=True, need_R=False)
        mask = mask.bool()
        return self.transformer(self.embed(masked_tokens(f, mask)), mask, pos)
