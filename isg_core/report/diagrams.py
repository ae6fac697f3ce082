"""Diagrams drawn from the actual configs: the two-resolution tiling (paper Sec. 3.1), the two
StyleGAN2 autoencoders (Sec. 3.2, Eq. 2) and the Dual Attention network ISG-a-b (Sec. 3.3,
Eqs. 3-8), each block labelled with the tensor shape it outputs.

The shapes are not written out by hand: :func:`traced_shapes` runs the real module once on a
dummy input with forward hooks and reads them, so a diagram cannot disagree with the code.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass

import torch
from torch import nn

from ..config import FeatureConfig, TilingConfig


@dataclass(frozen=True)
class Stage:
    """One box of a diagram: what it is, the shape it outputs (batch axis left out), a note."""

    label: str
    shape: tuple[int, ...]
    note: str = ""


def _shape(out) -> tuple[int, ...]:
    t = out[0] if isinstance(out, (tuple, list)) else out
    return tuple(int(s) for s in t.shape[1:])


@torch.no_grad()
def traced_shapes(model: nn.Module, inputs: tuple, modules: dict[str, nn.Module]) -> dict[str, tuple[int, ...]]:
    """Run ``model(*inputs)`` once and return, per label of ``modules``, the shape of that
    module's output (its first tensor; without the leading batch axis).  A module called several
    times keeps its last call's shape."""
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, key=k: shapes.__setitem__(key, _shape(out)))
             for k, m in modules.items()]
    try:
        model.eval()(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return shapes


# --- the stages, from the configs ------------------------------------------------------------------
def encoder_stages(features: FeatureConfig, scale: str) -> list[Stage]:
    """E_G (``scale="global"``) or E_L: the input, from-RGB, each down-sampling residual block and
    the code f (d values), with the shapes the real :class:`~isg_core.features.stylegan.Encoder` gives."""
    from ..features.stylegan import Encoder
    from ..features.train import train_config_for

    cfg = train_config_for(scale, features).model
    enc = Encoder(cfg)
    r = cfg.resolution
    mods = {"from RGB": enc.from_rgb, **{f"ResBlock {i + 1}": b for i, b in enumerate(enc.blocks)}, "code": enc.out}
    shapes = traced_shapes(enc, (torch.zeros(1, 3, r, r),), mods)
    name = "E_G" if scale == "global" else "E_L"
    return ([Stage(f"{name} input", (3, r, r), "patch resized")]
            + [Stage(k, shapes[k], "down x2" if k.startswith("ResBlock") else "") for k in mods if k != "code"]
            + [Stage("code " + ("f_i" if scale == "global" else "(one R_i cell)"), shapes["code"], "FC layers")])


def dual_attention_stages(d: int, grid: int, n_outputs: int, n_patches: int = 5, **config) -> list[Stage]:
    """ISG-a-b on one slide of ``n_patches`` kept patches: inputs f (N, d) and R (N, g, g, d), the
    width maps, each MBConv and fusion block of the a-b plan, the tokens, the ViT and the head, with
    the shapes the real :class:`~isg_core.models.dual_attention.DualAttentionNetwork` gives (N is
    the slide's kept patches: here ``n_patches``, shown as N)."""
    from ..models.dual_attention import DualAttentionConfig, DualAttentionNetwork

    cfg = DualAttentionConfig(d=d, grid=grid, n_outputs=n_outputs, **config)
    net = DualAttentionNetwork(cfg)
    n = n_patches
    inputs = (torch.zeros(1, n, d), torch.zeros(1, n, grid, grid, d), torch.ones(1, n, dtype=torch.bool),
              torch.zeros(1, n, 2, dtype=torch.long))
    mods = {"width map f": net.in_f, "width map R": net.in_R, "MBConv": net.mbconvs[0], "fusion": net.fusions[0],
            "token": net.token_proj, "ViT": net.encoder, "head": net.head}
    s = traced_shapes(net, inputs, mods)
    w = cfg.inner_dim
    plan = net.layer_plan()
    r_shape = fmt_shape((n,) + s["width map R"], n)
    return [Stage("f (global features)", (n, d), "E_G codes"),
            Stage("R (local cubes)", (n, grid, grid, d), "E_L codes"),
            Stage("width maps", (n,) + s["width map R"], "Linear d -> width" if w != d else "identity (width = d)"),
            Stage("MBConv", (n,) + s["MBConv"], f"x {plan.count('mbconv')}, on R, channels first"),
            Stage("fusion (Eqs. 3-8)", (n,) + s["fusion"],
                  f"x {plan.count('fusion')}: f and R attend to each other; R stays {r_shape}"),
            Stage("token [pool R; f]", (n,) + s["token"], f"token = {cfg.token}"),
            Stage("ViT", (n + (cfg.readout == "cls"),) + s["ViT"][1:],
                  f"depth {cfg.vit_depth}, {cfg.vit_heads} heads, +class token"),
            Stage("head: genes", s["head"], "log10(1 + FPKM-UQ), standardised")]


def fmt_shape(shape: tuple[int, ...], n_patches: int | None = None) -> str:
    """"(N, 8, 8, 16)": the patch axis named N where ``n_patches`` says which number it is."""
    parts = [str(x) for x in shape]
    if n_patches is not None and parts and shape[0] in (n_patches, n_patches + 1):
        parts[0] = "N" if shape[0] == n_patches else "N+1"
    return "(" + ", ".join(parts) + ")"


# --- drawing ---------------------------------------------------------------------------------------
def draw_stages(stages: list[Stage], ax=None, title: str = "", n_patches: int | None = None,
                colours: dict[str, str] | None = None):
    """Boxes left to right joined by arrows, each with its label, output shape and note."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    if ax is None:
        _, ax = plt.subplots(figsize=(1.55 * len(stages) + 0.5, 2.3))
    colours = colours or {}
    for i, st in enumerate(stages):
        face = next((c for key, c in colours.items() if st.label.startswith(key)), "#dce9f5")
        ax.add_patch(FancyBboxPatch((i * 1.5, 0), 1.2, 1.0, boxstyle="round,pad=0.04", fc=face, ec="#335"))
        ax.text(i * 1.5 + 0.6, 0.72, textwrap.fill(st.label, 18), ha="center", va="center", fontsize=7.5,
                weight="bold")
        ax.text(i * 1.5 + 0.6, 0.42, fmt_shape(st.shape, n_patches), ha="center", va="center", fontsize=7.5,
                family="monospace")
        if st.note:
            ax.text(i * 1.5 + 0.6, -0.1, textwrap.fill(st.note, 22), ha="center", va="top", fontsize=6.5, color="#444")
        if i:
            ax.annotate("", xy=(i * 1.5 - 0.04, 0.5), xytext=(i * 1.5 - 0.26, 0.5),
                        arrowprops=dict(arrowstyle="->", color="#335"))
    ax.set_xlim(-0.2, len(stages) * 1.5)
    ax.set_ylim(-0.9, 1.25)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9, loc="left")
    return ax


def draw_autoencoders(features: FeatureConfig, tiling: TilingConfig):
    """The two autoencoders of Sec. 3.2 (encoders drawn stage by stage; each decoder is the
    StyleGAN2 generator from the code back to the patch, trained by Eq. 2)."""
    import matplotlib.pyplot as plt

    glob, loc = encoder_stages(features, "global"), encoder_stages(features, "local")
    fig, axes = plt.subplots(2, 1, figsize=(1.55 * max(len(glob), len(loc)) + 3.5, 4.8))
    eq2 = "decoder: StyleGAN2 generator, code -> patch; trained by Eq. 2: L1 + LPIPS + adversarial"
    for ax, stages, name, px in ((axes[0], glob, "E_G", tiling.global_size), (axes[1], loc, "E_L", tiling.local_size)):
        draw_stages(stages + [Stage("decoder -> patch", stages[0].shape, "")], ax,
                    f"{name}: one {px} px patch at {tiling.mpp} um/px, resized to {stages[0].shape[-1]} px; {eq2}",
                    colours={"code": "#f5e3c3", "decoder": "#e6e6e6"})
    fig.tight_layout()
    return fig


def draw_dual_attention(d: int, grid: int, n_outputs: int, **config):
    """ISG-a-b with the shapes of one slide (N kept patches)."""
    import matplotlib.pyplot as plt

    n = 5
    stages = dual_attention_stages(d, grid, n_outputs, n_patches=n, **config)
    fig, ax = plt.subplots(figsize=(1.55 * len(stages) + 0.5, 2.4))
    a, b = config.get("n_mbconv", 10), config.get("fusion_every", 2)
    every = {1: "every", 2: "every 2nd", 3: "every 3rd"}.get(b, f"every {b}th")
    draw_stages(stages, ax, f"ISG-{a}-{b}: a fusion block after {every} of {a} MBConv blocks; N = the slide's "
                            "kept patches", n_patches=n, colours={"fusion": "#f5d0d0", "MBConv": "#d6efd6"})
    return fig


def draw_tiling(tiling: TilingConfig, features: FeatureConfig, ax=None):
    """One global patch (p x p px) cut into its (p/q)^2 local patches, with what each extractor
    sees: E_G the whole patch resized, E_L each local patch."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if ax is None:
        _, ax = plt.subplots(figsize=(6.2, 4.2))
    p, q, g = tiling.global_size, tiling.local_size, tiling.grid
    ax.add_patch(Rectangle((0, 0), p, p, fc="#f3e1ee", ec="k", lw=1.5))
    for k in range(1, g):
        ax.plot([k * q, k * q], [0, p], color="#8a4f7d", lw=0.5)
        ax.plot([0, p], [k * q, k * q], color="#8a4f7d", lw=0.5)
    ax.add_patch(Rectangle((0, p - q), q, q, fc="#c46aa8", ec="k", lw=1))
    um = p * tiling.mpp
    ax.text(p / 2, p + 8, f"global patch: p = {p} px = {um:g} um at {tiling.mpp} um/px", ha="center", fontsize=8)
    ax.text(p + 10, p - q / 2, f"local patch: q = {q} px ({q * tiling.mpp:g} um)\n"
                               f"-> E_L at {features.local_resolution} px -> one cell of R_i (d = {features.code_dim})",
            va="center", fontsize=8)
    ax.text(p + 10, p / 2 - 30, f"{g} x {g} = {g * g} local patches per global patch\n"
                                f"whole patch -> E_G at {features.global_resolution} px -> f_i (d = "
                                f"{features.code_dim})\nR_i: ({g}, {g}, {features.code_dim})", va="center", fontsize=8)
    ax.set(xlim=(-10, 2.3 * p), ylim=(-10, p + 30), aspect="equal", xlabel="x (px at the tiling's mpp)",
           ylabel="y (px)", title="Two-resolution tiling (Sec. 3.1)")
    return ax
