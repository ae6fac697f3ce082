"""The Dual Attention network M(F_G, F_L) (paper Sec. 3.3, Eqs. 3-8, Fig. 3).

Every kept global patch i of a slide brings a global feature f_i in R^d and a local cube
R_i in R^{(p/q) x (p/q) x d} (the features of its p/q x p/q local sub-patches).  Per patch, a
sequence of MBConv blocks refines the cube; after every b-th MBConv an attention-fusion block
lets the global feature steer the local one (local feature updater, Eqs. 4-5) and the local
cube refine the global feature (global feature updater, Eqs. 6-8).  The paper names the
sequence ISG-a-b (a MBConv blocks, a fusion block after every b of them; ISG-10-2 is its final
choice).  Each patch then becomes one token and a small ViT over the tokens of the slide
(:class:`~isg_core.models.layers.SlideTransformer`) predicts the expression vector Y; the loss
is L2 (Eq. 3).

:class:`AttentionFusion` first, then the configuration and :class:`DualAttentionNetwork`.  The
choices the paper leaves open are listed, with reasons, in the docstring of
:class:`DualAttentionConfig`.

Shapes: a batch holds B slides padded to N patches; ``mask`` (B, N) marks real patches.  Only
the real patches go through the per-patch part (MBConv + fusion), so padding costs nothing
there and can never leak into a real patch; the transformer masks padded keys.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn

from isg_core.models.layers import READOUTS, SlideTransformer, make_mbconv, sincos_2d
from isg_core.models.traits import DEFAULT_TRAITS

TOKENS = ("keep", "pool", "concat", "sum")
NORMS = ("layer", "none")
POS_EMBEDS = ("sincos", "none")

__all__ = ["AttentionFusion", "DualAttentionConfig", "DualAttentionNetwork", "NORMS", "POS_EMBEDS", "READOUTS",
           "TOKENS", "make_mbconv", "sincos_2d"]


# --- the attention-fusion block ----------------------------------------------------------------------
class AttentionFusion(nn.Module):
    """One attention-fusion block: the local and the global feature updaters (Fig. 3).

    For each patch, with N = grid^2 local positions, f in R^d and R in R^{grid x grid x d}
    (channels last):

    * Local feature updater (global guides local):
      Q = Reshape(W_q f) in R^{grid x grid x 1}, K = R W_k, V = R W_v,
      A = Sigmoid(Q (.) K) (Q broadcast over channels)                          (Eq. 4)
      R_new = (A (.) V) W_r                                                        (Eq. 5)
    * Global feature updater (local guides global):
      Z = Softmax over the N positions of Reshape(W_z f)                         (Eq. 6)
      P = R W_p                                                                    (Eq. 7)
      f_new = (Sum over positions of Z (.) P) W_f                                 (Eq. 8)

    Both updaters read the *previous* f and R (a parallel update, as in the equations, which
    index both inputs by t - 1).  With ``norm="layer"`` they read LayerNorm(f) and LayerNorm(R)
    (pre-norm, over channels); with ``residual=True`` the block returns f + f_new and
    R + R_new.  The linear maps are ``nn.Linear`` with bias (the biases of W_q and W_z give
    each local position a learned prior in A and Z).
    """

    def __init__(self, d: int, grid: int, residual: bool = True, norm: str = "layer"):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.d, self.grid, self.residual = d, grid, residual
        n = grid * grid
        self.w_q, self.w_k, self.w_v, self.w_r = nn.Linear(d, n), nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.w_z, self.w_p, self.w_f = nn.Linear(d, n), nn.Linear(d, d), nn.Linear(d, d)
        self.norm_f = nn.LayerNorm(d) if norm == "layer" else nn.Identity()
        self.norm_r = nn.LayerNorm(d) if norm == "layer" else nn.Identity()

    def forward(self, f: torch.Tensor, R: torch.Tensor):
        """f (M, d), R (M, grid, grid, d) -> (f_out, R_out, {"A": (M, g, g, d), "Z": (M, g, g)})."""
        m, g = f.shape[0], self.grid
        if R.shape != (m, g, g, self.d) or f.shape != (m, self.d):
            raise ValueError(f"expected f (M, {self.d}) and R (M, {g}, {g}, {self.d}), "
                             f"got {tuple(f.shape)} and {tuple(R.shape)}")
        fn, Rn = self.norm_f(f), self.norm_r(R)
        # local feature updater, Eqs. 4-5
        q = self.w_q(fn).view(m, g, g, 1)
        a = torch.sigmoid(q * self.w_k(Rn))
        r_new = self.w_r(a * self.w_v(Rn))
        # global feature updater, Eqs. 6-8
        z = torch.softmax(self.w_z(fn), dim=-1).view(m, g, g)
        f_new = self.w_f((z[..., None] * self.w_p(Rn)).sum(dim=(1, 2)))
        if self.residual:
            f_new, r_new = f + f_new, R + r_new
        return f_new, r_new, {"A": a, "Z": z}



# --- configuration ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DualAttentionConfig:
    """Size and the open choices of the Dual Attention network ISG-a-b.

    Sizes: ``d`` is the feature size (f_i and the channels of R_i, the code size of the
    feature extractors); ``grid`` is p/q, the side of the local cube (N = grid^2 positions);
    ``n_outputs`` the number of genes predicted.  ``n_mbconv`` is "a" and ``fusion_every``
    "b" of ISG-a-b (Table 6): a fusion block follows every b-th MBConv, so there are a // b
    of them.  ``mbconv_expand`` / ``mbconv_kernel`` are the MBConv expansion ratio and
    depthwise kernel (EfficientNet's usual 4-6 and 3; 4 keeps the small cubes cheap).

    Choices the paper leaves open (Sec. 3.3 names the blocks, not these details), and why these
    defaults:

    * ``residual`` (True): Eqs. 5 and 8 *replace* R and f.  Ten MBConv blocks (each with its
      own skip) with five plain replacements in between train poorly, and a replacement
      throws away what the MBConv blocks computed; x + update keeps an identity path through
      the whole stack, as every block of a modern ViT/ResNet does.  False gives the equations
      literally.
    * ``norm`` ("layer"): pre-norm LayerNorm over channels on f and R before each fusion block.
      Q (.) K is a product of two learned projections, so its scale grows with the scale of
      f and R and the sigmoid/softmax saturate; normalising the inputs keeps A and Z in their
      useful range.  "none" gives the equations literally.
    * ``token`` ("keep"): how a kept patch becomes a ViT token.  The text average-pools R_i
      only ("pool"); then f_i, the global feature refined by the fusion blocks, reaches the
      prediction only indirectly.  "keep" = [pool(R_i); f_i] as it is, 2 x width channels, and
      the ViT is that wide: nothing either feature carries is cut before the transformer.
      "concat" = Linear([pool(R_i); f_i]) to the ViT's width (the earlier default: at
      initialisation its random 2d -> d map cut a count signal that a linear probe read at
      R^2 0.41 after the per-patch stack to 0.17 at the token); "sum" =
      pool(R_i) + f_i is the parameter-free middle ground.
    * ``zero_init`` (True): every residual branch of the per-patch stack starts at zero: the last
      GroupNorm of each MBConv (its weight) and W_r, W_f of each fusion block (weight and bias),
      as Goyal et al. 2017 (zero-gamma), Fixup and ReZero start residual networks.  At
      initialisation ISG-a-b is then the identity on (f_i, R_i), so the ViT sees the extractor's
      features unchanged and training moves away from them only as far as the loss asks (with
      random branches a count signal read at R^2 0.90 from the input fell to 0.41 after
      ISG-10-2's stack).  Needs ``residual=True``; False gives PyTorch's default
      initialisation.
    * ``pos_embed`` ("sincos"): a computed 2-D sine-cosine embedding of the patch's (row, col)
      position in the slide's patch grid is added to its token, so the ViT can relate
      neighbouring patches; computed rather than learned so any slide size works, and tied to
      the grid position (not the index in the list) so the model stays invariant to the order
      of the patches.  "none" turns it off.
    * ViT size ("small"): ``vit_dim`` (None -> d), ``vit_depth`` 2, ``vit_heads`` 4,
      ``vit_mlp_ratio`` 2.0, ``dropout`` 0.1.  Bulk expression of a slide is a weak,
      slide-level label and cohorts have hundreds of slides: a small encoder is enough and
      overfits less.
    * ``readout`` ("cls"): a learned class token (ViT) or the mean over the real tokens
      ("mean").  Both ignore padding.
    * ``width`` (None): channels inside the network.  None keeps d, as in the paper's equations;
      an int first maps f_i and every position of R_i to ``width`` channels with a learned linear
      layer (one for f, one for R).  The per-patch cost grows with width^2: the CPU profile uses
      16 so that the tables run in minutes.
    """

    d: int = 64
    grid: int = 8
    n_outputs: int = 10
    n_mbconv: int = 10
    fusion_every: int = 2
    mbconv_expand: int = 4
    mbconv_kernel: int = 3
    residual: bool = True
    norm: str = "layer"
    token: str = "keep"
    zero_init: bool = True
    pos_embed: str = "sincos"
    vit_dim: int | None = None
    vit_depth: int = 2
    vit_heads: int = 4
    vit_mlp_ratio: float = 2.0
    dropout: float = 0.1
    readout: str = "cls"
    width: int | None = None

    def __post_init__(self) -> None:
        for name, value, allowed in (("norm", self.norm, NORMS), ("token", self.token, TOKENS),
                                     ("pos_embed", self.pos_embed, POS_EMBEDS), ("readout", self.readout, READOUTS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        for name in ("d", "grid", "n_outputs", "n_mbconv", "fusion_every", "vit_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.width is not None and self.width < 1:
            raise ValueError(f"width must be >= 1 or None, got {self.width}")
        if self.vit_depth < 0:
            raise ValueError(f"vit_depth must be >= 0, got {self.vit_depth}")
        if self.zero_init and not self.residual:
            raise ValueError("zero_init needs residual=True: a zero replacement would erase f and R")
        if self.token == "keep" and self.vit_dim not in (None, 2 * self.inner_dim):
            raise ValueError(f"token='keep' makes tokens of 2 x width = {2 * self.inner_dim} channels; "
                             f"vit_dim must be None or that, got {self.vit_dim}")
        if self.model_dim % self.vit_heads:
            raise ValueError(f"vit_dim ({self.model_dim}) must be divisible by vit_heads ({self.vit_heads})")

    @property
    def inner_dim(self) -> int:
        """Channels of f and R inside the network (``width``, or d when it is None)."""
        return self.d if self.width is None else self.width

    @property
    def model_dim(self) -> int:
        """Width of the ViT tokens (``vit_dim``; when it is None the inner width, twice that with
        ``token="keep"``)."""
        if self.vit_dim is not None:
            return self.vit_dim
        return 2 * self.inner_dim if self.token == "keep" else self.inner_dim

    @property
    def name(self) -> str:
        """The paper's name of the configuration, e.g. "ISG-10-2"."""
        return f"ISG-{self.n_mbconv}-{self.fusion_every}"

    def to_dict(self) -> dict:
        return asdict(self)


# --- the network -----------------------------------------------------------------------------------
class DualAttentionNetwork(SlideTransformer):
    """M(F_G, F_L): per-patch MBConv + attention fusion (ISG-a-b), then a ViT over the patches.

    ``forward(f, R, mask, pos)`` with f (B, N, d), R (B, N, grid, grid, d), mask (B, N) bool
    (True = real patch) and pos (B, N, 2) long (row, col) returns (B, n_outputs).  The output
    does not depend on the order of the patches, nor on what the padded rows hold.  The ViT is
    the inherited :class:`~isg_core.models.layers.SlideTransformer` (``cls``, ``encoder``,
    ``norm``, ``head``).
    """

    traits = DEFAULT_TRAITS  # f and R, for either task, trained by the engine
    #: run the per-patch part on every slot, padding included (see :meth:`forward`)
    dense_patches: bool = False

    def __init__(self, cfg: DualAttentionConfig):
        # The per-patch modules are created before the transformer's (the order of the random
        # initialisation, and of state_dict and of the optimiser's state, of every saved model).
        nn.Module.__init__(self)
        self.cfg = cfg
        d, dim = cfg.inner_dim, cfg.model_dim
        same = cfg.width is None or cfg.width == cfg.d
        self.in_f = nn.Identity() if same else nn.Linear(cfg.d, d)
        self.in_R = nn.Identity() if same else nn.Linear(cfg.d, d)
        self.mbconvs = nn.ModuleList([make_mbconv(d, cfg.mbconv_expand, cfg.mbconv_kernel)
                                      for _ in range(cfg.n_mbconv)])
        self.fusions = nn.ModuleList([AttentionFusion(d, cfg.grid, cfg.residual, cfg.norm)
                                      for _ in range(cfg.n_mbconv // cfg.fusion_every)])
        token_in = 2 * d if cfg.token in ("concat", "keep") else d
        # "keep" is the ViT's width by construction; "pool"/"sum" keep the paper's token as it is
        # unless the ViT is wider than d
        self.token_proj = nn.Linear(token_in, dim) if (cfg.token == "concat" or dim != token_in) else nn.Identity()
        self.init_transformer(dim, cfg.n_outputs, depth=cfg.vit_depth, heads=cfg.vit_heads,
                              mlp_ratio=cfg.vit_mlp_ratio, dropout=cfg.dropout, readout=cfg.readout,
                              pos_embed=cfg.pos_embed == "sincos")
        if cfg.zero_init:
            self.zero_residual_branches()

    @torch.no_grad()
    def zero_residual_branches(self) -> None:
        """Start every residual branch of the per-patch stack at zero (``cfg.zero_init``): the
        weight of each MBConv's last norm, and W_r and W_f of each fusion block.  Done after all
        the random draws, so the other weights are those of the same seed without it."""
        for mb in self.mbconvs:
            nn.init.zeros_(mb.block[-1][1].weight)  # project 1x1 conv -> GroupNorm: the branch's output scale
        for fu in self.fusions:
            for lin in (fu.w_r, fu.w_f):
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)

    def n_fusion_blocks(self) -> int:
        return len(self.fusions)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per part of the network: the input maps (``width``), the MBConv blocks, the
        fusion blocks (Eqs. 4-8), the token projection and the transformer with its head."""
        parts = {"input maps": [self.in_f, self.in_R], "MBConv": [self.mbconvs], "fusion": [self.fusions],
                 "token": [self.token_proj], "ViT + head": [self.encoder, self.norm, self.head]}
        return {k: sum(p.numel() for m in ms for p in m.parameters()) for k, ms in parts.items()}

    def layer_plan(self) -> list[str]:
        """The ISG-a-b sequence, e.g. ["mbconv", "mbconv", "fusion", ...] for ISG-10-2."""
        plan = []
        for k in range(1, self.cfg.n_mbconv + 1):
            plan.append("mbconv")
            if k % self.cfg.fusion_every == 0:
                plan.append("fusion")
        return plan

    # -- per-patch part ---------------------------------------------------------------------------
    def patch_features(self, f: torch.Tensor, R: torch.Tensor):
        """Run the ISG-a-b sequence on M patches: f (M, d), R (M, g, g, d) channels last.

        Returns the updated (f, R) and the list of attention maps of every fusion block."""
        x = R.permute(0, 3, 1, 2)  # MBConv works channels first, the fusion blocks channels last
        maps, i, fusions = [], 0, iter(self.fusions)
        for step in self.layer_plan():
            if step == "mbconv":
                x = self.mbconvs[i](x)
                i += 1
            else:
                f, r, att = next(fusions)(f, x.permute(0, 2, 3, 1))
                x = r.permute(0, 3, 1, 2)
                maps.append(att)
        return f, x.permute(0, 2, 3, 1), maps

    def make_tokens(self, f: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
        """One token per patch from its refined f (M, d) and R (M, g, g, d) (``cfg.token``)."""
        pooled = R.mean(dim=(1, 2))
        if self.cfg.token == "pool":
            tok = pooled
        elif self.cfg.token == "sum":
            tok = pooled + f
        else:  # "keep" and "concat": [pool(R_i); f_i]
            tok = torch.cat([pooled, f], dim=-1)
        return self.token_proj(tok)

    # -- whole slide --------------------------------------------------------------------------------
    def forward(self, f: torch.Tensor, R: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor,
                return_attention: bool = False):
        """(B, n_outputs); with ``return_attention`` also a dict of the maps: ``A`` and ``Z`` of
        every fusion block (Eqs. 4 and 6; (B, N, g, g, d) and (B, N, g, g), zero on padding) and
        ``cls_attention``, the class token's attention to each patch in every ViT block (B, N),
        heads averaged, from the same pass (empty with the mean readout)."""
        cfg = self.cfg
        b, n = mask.shape
        g, d = cfg.grid, cfg.d
        if f.shape != (b, n, d) or R.shape != (b, n, g, g, d) or pos.shape != (b, n, 2):
            raise ValueError(f"expected f (B, N, {d}), R (B, N, {g}, {g}, {d}), pos (B, N, 2) with "
                             f"(B, N) = {(b, n)}; got {tuple(f.shape)}, {tuple(R.shape)}, {tuple(pos.shape)}")
        mask = mask.bool()
        if self.dense_patches and not return_attention:
            # every slot, padding too: no shape depends on the mask (torch.func.vmap over members,
            # isg_core.train.members); each patch is computed on its own, and the transformer zeroes
            # and masks the padded tokens, so the output is the same
            fm, Rm, _ = self.patch_features(self.in_f(f.flatten(0, 1)), self.in_R(R.flatten(0, 1)))
            return self.encode(self.make_tokens(fm, Rm).unflatten(0, (b, n)), mask, pos)
        # Per-patch part on the real patches only: cheaper, and padding cannot reach a real patch.
        fm, Rm, maps = self.patch_features(self.in_f(f[mask]), self.in_R(R[mask]))
        tok = self.make_tokens(fm, Rm)
        tokens = tok.new_zeros(b, n, tok.shape[-1])
        tokens[mask] = tok
        if not return_attention:
            return self.encode(tokens, mask, pos)
        out, cls_att = self.encode(tokens, mask, pos, return_attention=True)

        def scatter(t: torch.Tensor) -> torch.Tensor:
            full = t.new_zeros(b, n, *t.shape[1:])
            full[mask] = t
            return full

        info = {"A": [scatter(m["A"]) for m in maps], "Z": [scatter(m["Z"]) for m in maps],
                "cls_attention": cls_att}
        return out, info

    # -- one whole slide in bounded memory (inference) ----------------------------------------------
    @torch.no_grad()
    def forward_slide(self, f: torch.Tensor, R: torch.Tensor, pos: torch.Tensor, chunk: int = 512,
                      prepare: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The prediction for one slide of N patches (f (N, d), R (N, g, g, d), pos (N, 2); no
        padding) and the class token's attention to each patch in the last ViT block (N,) (None
        with ``readout="mean"`` or no block), in memory that grows linearly with N:

        * the per-patch part (MBConv + fusion) runs ``chunk`` patches at a time (each patch is
          independent there: GroupNorm and LayerNorm are per sample), so its activations are
          those of ``chunk`` patches, not N;
        * self-attention uses ``scaled_dot_product_attention`` and the class token's weights come
          from its own row of Q K^T: no N x N matrix is kept.

        Equals ``forward(f[None], R[None], mask, pos[None])`` in eval mode (a test checks it).
        ``prepare(f, R)`` is applied to each chunk first (the input standardiser)."""
        toks = []
        for k in range(0, f.shape[0], chunk):
            fc, Rc = f[k:k + chunk].float(), R[k:k + chunk].float()
            if prepare is not None:
                fc, Rc = prepare(fc, Rc)
            fm, Rm, _ = self.patch_features(self.in_f(fc), self.in_R(Rc))
            toks.append(self.make_tokens(fm, Rm))
        out, cls_att = self.encode(torch.cat(toks)[None], None, pos[None], return_attention=True)
        return out[0], (cls_att[-1][0] if cls_att else None)
