"""Diagrams from the configs (isg_core.report.diagrams): the traced shapes equal hand-computed ones."""
import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from isg_core.config import get_profile  # noqa: E402
from isg_core.report.diagrams import (  # noqa: E402
    draw_autoencoders,
    draw_dual_attention,
    draw_tiling,
    dual_attention_stages,
    encoder_stages,
    fmt_shape,
    traced_shapes,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_traced_shapes_of_a_known_module():
    lin = nn.Linear(4, 3)
    net = nn.Sequential(lin, nn.ReLU(), nn.Linear(3, 2))
    assert traced_shapes(net, (torch.zeros(7, 4),), {"first": lin, "last": net[2]}) == {"first": (3,), "last": (2,)}


def test_encoder_stages_halve_to_4_px_and_end_in_the_code():
    f = get_profile("quick").features
    for scale, r in (("global", f.global_resolution), ("local", f.local_resolution)):
        st = encoder_stages(f, scale)
        assert st[0].shape == (3, r, r) and st[-1].shape == (f.code_dim,)
        sizes = [s.shape[-1] for s in st[1:-1]]  # from RGB, then each ResBlock
        assert sizes[0] == r and sizes[-1] == 4
        assert all(b == a // 2 for a, b in zip(sizes[1:], sizes[2:]))  # every block halves
        assert sum(s.label.startswith("ResBlock") for s in st) == {64: 4, 32: 3, 16: 2}[r]


def test_dual_attention_stages_known_shapes():
    st = {s.label: s for s in dual_attention_stages(16, 4, 3, n_patches=5, width=8)}
    assert st["width maps"].shape == (5, 4, 4, 8) and st["MBConv"].shape == (5, 8, 4, 4)
    assert st["fusion (Eqs. 3-8)"].shape == (5, 8)
    assert st["token [pool R; f]"].shape == (5, 16)  # "keep": [pool(R); f] = 2 x width
    assert st["ViT"].shape == (6, 16) and st["head: genes"].shape == (3,)
    assert "x 10" in st["MBConv"].note and "x 5" in st["fusion (Eqs. 3-8)"].note
    full = {s.label: s for s in dual_attention_stages(16, 4, 3, n_patches=5, n_mbconv=6, fusion_every=3)}
    assert full["width maps"].shape == (5, 4, 4, 16) and "identity" in full["width maps"].note
    assert "x 2" in full["fusion (Eqs. 3-8)"].note
    assert fmt_shape((5, 4, 4, 8), 5) == "(N, 4, 4, 8)" and fmt_shape((6, 16), 5) == "(N+1, 16)"


def test_drawings_carry_the_shapes():
    p = get_profile("smoke")
    texts = lambda fig: " ".join([t.get_text() for ax in fig.axes for t in ax.texts]  # noqa: E731
                                 + [ax.get_title(loc="left") for ax in fig.axes])
    ae = texts(draw_autoencoders(p.features, p.tiling))
    assert f"({p.features.code_dim})" in ae and "Eq. 2" in ae
    da = texts(draw_dual_attention(p.features.code_dim, p.tiling.grid, 10, width=8))
    assert f"(N, {p.tiling.grid}, {p.tiling.grid}, 8)" in da and "(10)" in da
    ax = draw_tiling(p.tiling, p.features)
    assert f"{p.tiling.grid * p.tiling.grid} local patches" in " ".join(t.get_text() for t in ax.texts)


def test_scale_bar_lengths():
    import matplotlib.pyplot as plt
    import numpy as np

    from isg_core.data.thumbnails import nice_length, scale_bar

    assert [nice_length(x) for x in (1.0, 3.7, 9.99, 10, 260, 1999)] == [1, 2, 5, 10, 200, 1000]
    fig, ax = plt.subplots()
    ax.imshow(np.zeros((100, 400, 3)))
    # 400 px at 2.5 um/px = 1 mm wide: 20% is 200 um = 80 px
    assert scale_bar(ax, 2.5, 400) == 200
    (line,) = ax.lines
    assert np.diff(line.get_xdata())[0] == pytest.approx(80)
    assert any(t.get_text() == "200 \u00b5m" for t in ax.texts)
    assert scale_bar(ax, float("nan"), 400) is None and len(ax.lines) == 1  # unknown resolution: no bar
    assert scale_bar(ax, 50.0, 400) == 2000 and ax.texts[-1].get_text() == "2 mm"
    plt.close(fig)
