"""What every slide model shares: the 2-D sine-cosine embedding, the MBConv builder and the slide
transformer.

* :func:`sincos_2d`: the computed position embedding of a patch's (row, col) in the slide's grid;
* :func:`make_mbconv`: one EfficientNet MBConv block with per-patch normalisation (the blocks of
  ISG-a-b, paper Sec. 3.3, and of the ViT-MB baseline's tokenizer);
* :class:`SlideTransformer`: tokens (one per kept patch) + position embedding + a class token (or
  a mean readout) -> pre-norm transformer blocks that mask padded keys -> LayerNorm -> linear head:
  the ViT of the Dual Attention network (Fig. 3, its last stage) and of every transformer baseline
  of Table 1.

The transformer blocks are written here on ``F.scaled_dot_product_attention`` instead of
``nn.TransformerEncoderLayer``, so that one forward pass can also return the class token's
attention, and so that the bounded-memory slide path needs no private attribute of a torch
layer.  Their parameters have the names, shapes and initialisation of
``nn.TransformerEncoderLayer(norm_first=True, activation="gelu", batch_first=True)`` stacked by
``nn.TransformerEncoder`` (``layers.<i>.self_attn.in_proj_weight``, ``linear1``, ``norm1`` ...), and
their training-mode forward is the same computation, operation for operation (dropout included):
checkpoints written with the torch layers load unchanged and give the same numbers.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.efficientnet import MBConv, MBConvConfig

READOUTS = ("cls", "mean")


# --- small pieces ---------------------------------------------------------------------------------
def sincos_2d(pos: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """2-D sine-cosine positional embedding of integer grid positions.

    ``pos`` (..., 2) holds (row, col); the result is (..., dim): the first half of the channels
    encodes the row, the second half the column, each as [sin(x w_k), cos(x w_k)] with
    frequencies w_k = temperature^(-k / (dim // 4)) (the 1-D embedding of Vaswani et al. 2017,
    Sec. 3.5, applied per axis, as in MAE / ViT-sincos).  It is computed, not learned, so a slide
    of any size gets an embedding; if ``dim`` is not a multiple of 4 the last channels are zero.
    """
    if pos.shape[-1] != 2:
        raise ValueError(f"pos must end in (row, col), got shape {tuple(pos.shape)}")
    quarter = dim // 4
    if quarter == 0:
        return torch.zeros(*pos.shape[:-1], dim, dtype=torch.float32, device=pos.device)
    omega = temperature ** (-torch.arange(quarter, dtype=torch.float32, device=pos.device) / quarter)
    angles = pos.to(torch.float32)[..., None] * omega  # (..., 2, quarter)
    emb = torch.cat([angles[..., 0, :].sin(), angles[..., 0, :].cos(),
                     angles[..., 1, :].sin(), angles[..., 1, :].cos()], dim=-1)
    # zero-padded, not written into a zeros tensor: out of place, so it runs under torch.func.vmap
    return F.pad(emb, (0, dim - 4 * quarter))


def group_norm(c: int) -> nn.GroupNorm:
    """GroupNorm with one group: LayerNorm over (C, H, W) of each patch on its own."""
    return nn.GroupNorm(1, c)


def make_mbconv(c_in: int, expand_ratio: float, kernel: int, c_out: int | None = None, stride: int = 1) -> MBConv:
    """One EfficientNet MBConv block (Tan & Le, ICML 2019; Sandler et al., MobileNetV2) from
    torchvision: expand 1x1 -> depthwise k x k (``stride``) -> squeeze-excitation -> project 1x1,
    with a skip connection when the shape is kept.  ``c_in`` -> ``c_out`` (default ``c_in``) channels.

    Normalisation is GroupNorm(1, c) (LayerNorm over (C, H, W) of one patch), not BatchNorm:
    slides have different numbers of patches, the per-patch batch is made of whatever patches
    the slides in the batch kept, and with BatchNorm one slide's statistics (and any padding)
    would change another slide's prediction, and eval mode would differ from training.
    """
    c_out = c_in if c_out is None else c_out
    cnf = MBConvConfig(expand_ratio, kernel, stride, c_in, c_out, 1)
    # MBConvConfig rounds the channel numbers to a multiple of 8 (EfficientNet's width rule); the
    # cube has exactly c_in channels, so set them back (the expanded width stays rounded).
    cnf.input_channels, cnf.out_channels = c_in, c_out
    return MBConv(cnf, stochastic_depth_prob=0.0, norm_layer=group_norm)


# --- the transformer block ---------------------------------------------------------------------------
class SelfAttention(nn.Module):
    """Multi-head self-attention softmax(Q K^T / sqrt(d_h) + M) V (Vaswani et al. 2017, Eqs. 1-2)
    with M = 0 on real keys and -inf on padded ones.

    Parameters and their initialisation are those of ``nn.MultiheadAttention(dim, heads)``: the
    packed [W_q; W_k; W_v] ``in_proj_weight`` (Xavier-uniform) and ``in_proj_bias`` (zeros), and
    ``out_proj`` (a Linear, its bias zeroed).  The forward follows the layout of
    ``F.multi_head_attention_forward`` (sequence first inside), so that the numbers are the same.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} must be divisible by the number of heads ({heads})")
        self.dim, self.heads, self.dropout = dim, heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        self.out_proj = nn.Linear(dim, dim)  # its own initial draws come first, as in nn.MultiheadAttention
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.constant_(self.in_proj_bias, 0.0)
        nn.init.constant_(self.out_proj.bias, 0.0)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None,
                cls_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, S, E), ``pad`` (B, S) additive float mask (0 real, -inf padded) or None (no
        padding) -> (out (B, S, E), the attention of token 0 to every token (B, S), averaged
        over heads, or None).  The weights of token 0 come from its own row of Q K^T: no S x S
        matrix is kept."""
        b, s, e = x.shape
        h, hd = self.heads, e // self.heads
        xt = x.transpose(1, 0)  # (S, B, E)
        qkv = F.linear(xt, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.unflatten(-1, (3, e)).unsqueeze(0).transpose(0, -2).squeeze(-2).contiguous()
        q, k, v = (t.view(s, b * h, hd).transpose(0, 1).view(b, h, s, hd) for t in qkv)
        mask = None
        if pad is not None:  # per head, as nn.MultiheadAttention expands a key padding mask
            mask = pad.view(b, 1, 1, s).expand(-1, h, -1, -1).reshape(b * h, 1, s).view(b, h, 1, s)
        o = F.scaled_dot_product_attention(q, k, v, mask, self.dropout if self.training else 0.0, False)
        o = self.out_proj(o.permute(2, 0, 1, 3).reshape(s * b, e)).view(s, b, e).transpose(1, 0)
        w = None
        if cls_weights:  # softmax(q_0 K^T / sqrt(d_h) + M) per head, then the mean over heads
            logits = (q[:, :, :1] * math.sqrt(1.0 / hd)) @ k.transpose(-2, -1)
            if mask is not None:
                logits = logits + mask
            w = torch.softmax(logits, dim=-1).mean(dim=1)[:, 0]
        return o, w


class EncoderBlock(nn.Module):
    """One pre-norm transformer block (Xiong et al. 2020, Fig. 1b):
    x + Dropout(Attention(LN_1(x))), then x + Dropout(W_2 Dropout(GELU(W_1 LN_2(x)))).
    Names, initialisation and computation of ``nn.TransformerEncoderLayer(norm_first=True,
    activation="gelu", batch_first=True)``."""

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float = 0.1):
        super().__init__()
        self.self_attn = SelfAttention(dim, heads, dropout)
        self.linear1 = nn.Linear(dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None,
                cls_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        a, w = self.self_attn(self.norm1(x), pad, cls_weights)
        x = x + self.dropout1(a)
        x = x + self.dropout2(self.linear2(self.dropout(F.gelu(self.linear1(self.norm2(x))))))
        return x, w


class TransformerEncoder(nn.Module):
    """``depth`` copies of one :class:`EncoderBlock`: every block starts with the same weights, as
    ``nn.TransformerEncoder`` makes them (it deep-copies the layer it is given)."""

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float, depth: int):
        super().__init__()
        if depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}")
        block = EncoderBlock(dim, heads, hidden, dropout)
        self.layers = nn.ModuleList([copy.deepcopy(block) for _ in range(depth)])

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None,
                cls_weights: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """-> (x, the attention of token 0 in each block (B, S), or [] without ``cls_weights``)."""
        weights = []
        for layer in self.layers:
            x, w = layer(x, pad, cls_weights)
            if w is not None:
                weights.append(w)
        return x, weights


# --- the slide transformer ---------------------------------------------------------------------------
class SlideTransformer(nn.Module):
    """tokens (B, N, dim), mask (B, N) bool, pos (B, N, 2) long -> (B, n_outputs): one token per
    kept patch + the 2-D sine-cosine embedding of its grid position (``pos_embed``) -> a learned
    class token (``readout="cls"``, ViT, Dosovitskiy et al. 2021, Eq. 1) -> ``depth`` pre-norm
    blocks that mask padded keys -> LayerNorm -> a linear head on the class token, or on the mean
    of the real tokens (``readout="mean"``).

    Invariant to the order of the patches (the position enters through the embedding of ``pos``,
    not the index in the list) and to what the padded rows hold (zeroed, and masked as attention
    keys; the class token is always a valid key, and with the mean readout a slide with no real
    patch attends to its zero padding, so no NaN arises).  ``bias_init`` (n_outputs,) sets the
    head's bias (e.g. the training mean of the targets).

    A subclass whose tokens come from its own modules (the Dual Attention network) creates them
    first and then calls :meth:`init_transformer` instead of this constructor, so that its
    modules come first in the random initialisation and in ``state_dict``.
    """

    def __init__(self, dim: int, n_outputs: int, depth: int = 4, heads: int = 4, mlp_ratio: float = 4.0,
                 dropout: float = 0.1, *, readout: str = "cls", pos_embed: bool = True,
                 bias_init: torch.Tensor | None = None):
        super().__init__()
        self.init_transformer(dim, n_outputs, depth, heads, mlp_ratio, dropout, readout=readout, pos_embed=pos_embed,
                              bias_init=bias_init)

    def init_transformer(self, dim: int, n_outputs: int, depth: int = 4, heads: int = 4, mlp_ratio: float = 4.0,
                         dropout: float = 0.1, *, readout: str = "cls", pos_embed: bool = True,
                         bias_init: torch.Tensor | None = None) -> None:
        """Create the class token, the blocks, the norm and the head (in this order)."""
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        self.dim, self.readout, self.pos_embed = dim, readout, pos_embed
        self.cls = nn.Parameter(torch.zeros(1, 1, dim)) if readout == "cls" else None
        if self.cls is not None:
            nn.init.trunc_normal_(self.cls, std=0.02)
        self.encoder = TransformerEncoder(dim, heads, int(dim * mlp_ratio), dropout, depth)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_outputs)
        if bias_init is not None:
            bias_init = torch.as_tensor(bias_init, dtype=torch.float32).reshape(-1)
            if bias_init.numel() != n_outputs:
                raise ValueError(f"bias_init must have {n_outputs} values, got {bias_init.numel()}")
            with torch.no_grad():
                self.head.bias.copy_(bias_init)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None, pos: torch.Tensor,
                return_attention: bool = False):
        """See :meth:`encode`."""
        return self.encode(tokens, mask, pos, return_attention)

    def encode(self, tokens: torch.Tensor, mask: torch.Tensor | None, pos: torch.Tensor,
               return_attention: bool = False):
        """The prediction (B, n_outputs) from the tokens; ``mask`` None means no padding (one
        slide, every token real: no attention mask at all).  With ``return_attention`` also the
        class token's attention to each token slot in every block, averaged over heads, from the
        same pass: a list of (B, N) (empty with the mean readout)."""
        b, n = tokens.shape[:2]
        if tokens.shape != (b, n, self.dim) or pos.shape != (b, n, 2) or (mask is not None and mask.shape != (b, n)):
            got = (tuple(tokens.shape), None if mask is None else tuple(mask.shape), tuple(pos.shape))
            raise ValueError(f"expected tokens (B, N, {self.dim}), mask (B, N) and pos (B, N, 2), got {got}")
        x, pad = self._embed(tokens, None if mask is None else mask.bool(), pos)
        use_cls = self.cls is not None
        x, weights = self.encoder(x, pad, cls_weights=return_attention and use_cls)
        if use_cls:
            pooled = x[:, 0]
        elif mask is None:
            pooled = x.mean(dim=1)
        else:
            w = mask.to(x.dtype)[..., None]
            pooled = (x * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)
        out = self.head(self.norm(pooled))
        if not return_attention:
            return out
        return out, [w[:, 1:] for w in weights]

    def _embed(self, tokens: torch.Tensor, mask: torch.Tensor | None,
               pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Tokens + position (padded rows zeroed with ``where``, so that garbage there, even
        inf/NaN, reaches neither the output nor the gradients), the class token in front, and
        the additive key mask (0 real, -inf padded; None without ``mask``)."""
        b = tokens.shape[0]
        if mask is None:
            x = tokens
            if self.pos_embed:
                x = x + sincos_2d(pos, self.dim).to(x.dtype)
        else:
            keep = mask[..., None]
            x = torch.where(keep, tokens, torch.zeros((), dtype=tokens.dtype, device=tokens.device))
            if self.pos_embed:
                pos = torch.where(keep, pos, torch.zeros_like(pos))
                x = x + sincos_2d(pos, self.dim).to(x.dtype) * keep
        pad = None if mask is None else ~mask
        if self.cls is not None:
            x = torch.cat([self.cls.expand(b, -1, -1).to(x.dtype), x], dim=1)
            pad = None if pad is None else torch.cat([pad.new_zeros(b, 1), pad], dim=1)
        elif pad is not None:
            # a slide with no real patch would mask every key (NaN attention): let it attend to
            # its (zero) padding instead; its prediction is then the head's bias
            pad = pad & mask.any(dim=1, keepdim=True)
        if pad is None:
            return x, None
        return x, torch.zeros_like(pad, dtype=x.dtype).masked_fill_(pad, float("-inf"))
