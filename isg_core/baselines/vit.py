"""ViT-S (the paper's Table 1 baseline on global features only) and the slide transformer that the
local-feature baselines share.

ViT (Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021) with one token per kept
global patch instead of one per image patch.  The paper uses "ViT-S, a smaller version of ViT-B"
(ViT-S/16: width 384, depth 12, 6 heads); its inputs here are the d-dimensional global features,
so "S" is scaled to our d: width d by default (``dim=None``), depth 4, 4 heads, MLP ratio 4.

:class:`SlideTransformer` is the part every Table 1 transformer baseline has in common: tokens
(B, N, dim) + 2-D sine-cosine embedding of the patch's grid position (the same
:func:`~isg_core.dual_attention.sincos_2d` as the main model) + a learned CLS token + a pre-norm
``nn.TransformerEncoder`` that masks padded keys -> LayerNorm -> linear head on the CLS token.
ViT-MB, CycleMLP and MPViT (``local_tokenizers.py``) differ from it only in how a patch's local
cube R_i becomes its token.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from isg_core.dual_attention import sincos_2d


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


def masked_tokens(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero the padded rows with ``where`` (not a product): garbage there, even inf/NaN, can then
    reach neither the output nor, through the backward pass, the weights."""
    return torch.where(mask[..., None], tokens, torch.zeros((), dtype=tokens.dtype, device=tokens.device))


class SlideTransformer(nn.Module):
    """tokens (B, N, dim), mask (B, N) bool, pos (B, N, 2) long -> (B, n_outputs).

    Invariant to the order of the patches (the position enters through the embedding of ``pos``,
    not the index in the list) and to the padded rows (zeroed, and masked as attention keys; the
    CLS token is always a valid key, so a slide with no real patch cannot make a NaN).
    ``bias_init`` (n_outputs,) sets the head's bias (e.g. the training mean of the targets).
    """

    def __init__(self, dim: int, n_outputs: int, depth: int = 4, heads: int = 4, mlp_ratio: float = 4.0,
                 dropout: float = 0.1, bias_init: torch.Tensor | None = None):
        super().__init__()
        self.dim = dim
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.cls, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=int(dim * mlp_ratio), dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_outputs)
        if bias_init is not None:
            bias_init = torch.as_tensor(bias_init, dtype=torch.float32).reshape(-1)
            if bias_init.numel() != n_outputs:
                raise ValueError(f"bias_init must have {n_outputs} values, got {bias_init.numel()}")
            with torch.no_grad():
                self.head.bias.copy_(bias_init)

    @classmethod
    def from_config(cls, cfg: SlideTransformerConfig, d: int, n_outputs: int,
                    bias_init: torch.Tensor | None = None) -> "SlideTransformer":
        return cls(cfg.width(d), n_outputs, cfg.depth, cfg.heads, cfg.mlp_ratio, cfg.dropout, bias_init)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        b, n = mask.shape
        if tokens.shape != (b, n, self.dim) or pos.shape != (b, n, 2):
            raise ValueError(f"expected tokens (B, N, {self.dim}) and pos (B, N, 2) with (B, N) = {(b, n)}, "
                             f"got {tuple(tokens.shape)} and {tuple(pos.shape)}")
        mask = mask.bool()
        pos = torch.where(mask[..., None], pos, torch.zeros_like(pos))
        x = masked_tokens(tokens, mask) + sincos_2d(pos, self.dim).to(tokens.dtype) * mask[..., None]
        x = torch.cat([self.cls.expand(b, -1, -1).to(x.dtype), x], dim=1)
        pad = torch.cat([mask.new_zeros(b, 1), ~mask], dim=1)
        x = self.encoder(x, src_key_padding_mask=pad)
        return self.head(self.norm(x[:, 0]))


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

    def __init__(self, d: int, grid: int, n_outputs: int, config: SlideTransformerConfig | None = None,
                 bias_init: torch.Tensor | None = None, **overrides):
        super().__init__()
        self.config = cfg = replace(config or SlideTransformerConfig(), **overrides)
        self.d, self.grid = d, grid
        dim = cfg.width(d)
        self.embed = nn.Linear(d, dim)
        self.transformer = SlideTransformer.from_config(cfg, d, n_outputs, bias_init)

    def forward(self, f: torch.Tensor, R: torch.Tensor | None, mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        check_inputs(f, R, mask, pos, self.d, self.grid, need_f=True, need_R=False)
        mask = mask.bool()
        return self.transformer(self.embed(masked_tokens(f, mask)), mask, pos)
