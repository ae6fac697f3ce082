"""Tests of the Dual Attention network (paper Sec. 3.3, Eqs. 4-8): the fusion equations
recomputed by hand, the ISG-a-b layer plan, padding / permutation invariance, gradients, and
that a tiny model can fit a few slides."""
import numpy as np
import pytest
import torch

from isg_core.models import AttentionFusion, DualAttentionConfig, DualAttentionNetwork, make_mbconv, sincos_2d

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def lin(layer, x):
    return x @ layer.weight.T + layer.bias


def small_cfg(**kw) -> DualAttentionConfig:
    base = dict(d=8, grid=3, n_outputs=5, n_mbconv=2, fusion_every=1, mbconv_expand=2,
                vit_depth=1, vit_heads=2, dropout=0.0)
    base.update(kw)
    return DualAttentionConfig(**base)


def random_batch(cfg, b=2, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(b, n, cfg.d, generator=g)
    R = torch.randn(b, n, cfg.grid, cfg.grid, cfg.d, generator=g)
    mask = torch.ones(b, n, dtype=torch.bool)
    mask[1, -2:] = False  # the second slide has 3 real patches
    pos = torch.randint(0, 20, (b, n, 2), generator=g)
    return f, R, mask, pos


# --- attention fusion: the equations -----------------------------------------------------------------
def test_fusion_matches_equations_4_to_8():
    torch.manual_seed(0)
    d, grid, m = 6, 3, 2
    fus = AttentionFusion(d, grid, residual=False, norm="none")
    f, R = torch.randn(m, d), torch.randn(m, grid, grid, d)
    f_out, R_out, att = fus(f, R)

    # Eq. 4: Q = Reshape(W_q f) (grid x grid x 1), K = R W_k, A = sigmoid(Q (.) K)
    Q = lin(fus.w_q, f).reshape(m, grid, grid, 1)
    K, V = lin(fus.w_k, R), lin(fus.w_v, R)
    A = torch.sigmoid(Q * K)
    # Eq. 5: R_new = (A (.) V) W_r
    R_ref = lin(fus.w_r, A * V)
    # Eq. 6: Z = softmax over the N positions of Reshape(W_z f)
    Z = torch.softmax(lin(fus.w_z, f), dim=1).reshape(m, grid, grid)
    # Eqs. 7-8: P = R W_p; f_new = (sum_positions Z (.) P) W_f
    P = lin(fus.w_p, R)
    f_ref = lin(fus.w_f, torch.einsum("mij,mijc->mc", Z, P))

    assert torch.allclose(att["A"], A, atol=1e-6)
    assert torch.allclose(att["Z"], Z, atol=1e-6)
    assert torch.allclose(R_out, R_ref, atol=1e-5)
    assert torch.allclose(f_out, f_ref, atol=1e-5)

    # Q broadcasts over channels: position (i, j) of W_q f scales every channel of K there
    i, j = 1, 2
    assert torch.allclose(A[0, i, j], torch.sigmoid(lin(fus.w_q, f)[0, i * grid + j] * K[0, i, j]))

    # residual=True adds the input to the same updates
    fus.residual = True
    f_res, R_res, _ = fus(f, R)
    assert torch.allclose(f_res, f + f_ref, atol=1e-5)
    assert torch.allclose(R_res, R + R_ref, atol=1e-5)


def test_fusion_layer_norm_is_pre_norm():
    torch.manual_seed(1)
    fus = AttentionFusion(6, 3, residual=True, norm="layer")
    f, R = torch.randn(2, 6) * 5 + 3, torch.randn(2, 3, 3, 6) * 5 + 3
    f_out, R_out, _ = fus(f, R)
    plain = AttentionFusion(6, 3, residual=False, norm="none")
    plain.load_state_dict({k: v for k, v in fus.state_dict().items() if not k.startswith("norm_")})
    f_upd, R_upd, _ = plain(fus.norm_f(f), fus.norm_r(R))
    assert torch.allclose(f_out, f + f_upd, atol=1e-5)
    assert torch.allclose(R_out, R + R_upd, atol=1e-5)


def test_attention_ranges():
    torch.manual_seed(2)
    fus = AttentionFusion(6, 3, residual=True, norm="none")
    _, _, att = fus(torch.randn(4, 6) * 3, torch.randn(4, 3, 3, 6) * 3)
    assert torch.allclose(att["Z"].sum(dim=(1, 2)), torch.ones(4), atol=1e-6)
    assert (att["Z"] > 0).all()
    assert ((att["A"] > 0) & (att["A"] < 1)).all()
    assert att["A"].shape == (4, 3, 3, 6) and att["Z"].shape == (4, 3, 3)


def test_fusion_rejects_wrong_shapes():
    fus = AttentionFusion(6, 3)
    with pytest.raises(ValueError):
        fus(torch.randn(2, 6), torch.randn(2, 6, 3, 3))  # channels first


# --- building blocks and configuration ----------------------------------------------------------------
def test_mbconv_keeps_shape_for_any_d():
    # torchvision would round 6 channels up to 8; the cube must keep exactly d channels
    block = make_mbconv(6, 4, 3)
    x = torch.randn(3, 6, 3, 3)
    assert block(x).shape == x.shape
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in block.modules())


def test_mbconv_is_per_patch():
    # GroupNorm, not BatchNorm: a patch's output does not depend on the other patches
    block = make_mbconv(8, 2, 3).train()
    x = torch.randn(4, 8, 3, 3)
    assert torch.allclose(block(x)[:1], block(x[:1]), atol=1e-5)


@pytest.mark.parametrize("a,b,n_fusion", [(10, 2, 5), (10, 3, 3), (6, 2, 3)])
def test_layer_plan(a, b, n_fusion):
    net = DualAttentionNetwork(DualAttentionConfig(d=8, grid=2, n_mbconv=a, fusion_every=b, vit_heads=2,
                                                   mbconv_expand=1, vit_depth=1))
    plan = net.layer_plan()
    assert plan.count("mbconv") == a and plan.count("fusion") == n_fusion == net.n_fusion_blocks()
    expected = []
    for k in range(1, a + 1):
        expected += ["mbconv"] + (["fusion"] if k % b == 0 else [])
    assert plan == expected
    assert net.cfg.name == f"ISG-{a}-{b}"


def test_isg_10_2_plan_order():
    net = DualAttentionNetwork(DualAttentionConfig(d=8, grid=2, vit_heads=2, mbconv_expand=1, vit_depth=1))
    assert net.layer_plan() == ["mbconv", "mbconv", "fusion"] * 5
    assert net.cfg.name == "ISG-10-2"


def test_config_validation_and_dict():
    cfg = DualAttentionConfig()
    assert cfg.to_dict()["token"] == "keep" and cfg.model_dim == 2 * cfg.d and cfg.to_dict()["zero_init"]
    assert DualAttentionConfig(token="concat").model_dim == cfg.d
    assert DualAttentionConfig(width=16).model_dim == 32
    for bad in (dict(token="max"), dict(norm="batch"), dict(readout="max"), dict(pos_embed="learned"),
                dict(d=10, vit_heads=4, token="concat"), dict(residual=False), dict(vit_dim=64)):
        with pytest.raises(ValueError):
            DualAttentionConfig(**bad)


def test_sincos_2d():
    pos = torch.tensor([[0, 0], [3, 5], [3, 6]])
    e = sincos_2d(pos, 16)
    assert e.shape == (3, 16)
    assert torch.allclose(e[0], torch.tensor([0.0] * 4 + [1.0] * 4 + [0.0] * 4 + [1.0] * 4))
    assert torch.allclose(e[1, :8], e[2, :8]) and not torch.allclose(e[1, 8:], e[2, 8:])  # same row
    assert sincos_2d(pos, 10)[:, 8:].abs().sum() == 0  # channels beyond 4 * (dim // 4) are zero


# --- the network ------------------------------------------------------------------------------------
def test_zero_start_is_the_identity_and_the_token_keeps_both():
    """Issue 16: at initialisation the per-patch stack of ISG-10-2 returns f and R unchanged, and
    the token is exactly [mean over positions of R; f] (no random map before the ViT)."""
    torch.manual_seed(11)
    cfg = DualAttentionConfig(d=8, grid=3, n_outputs=4, vit_heads=2, mbconv_expand=2, vit_depth=1)
    net = DualAttentionNetwork(cfg)
    assert net.layer_plan().count("fusion") == 5 and isinstance(net.token_proj, torch.nn.Identity)
    f, R = torch.randn(6, 8) * 3, torch.randn(6, 3, 3, 8) * 3
    fo, Ro, _ = net.patch_features(f, R)
    assert torch.equal(fo, f) and torch.allclose(Ro, R, atol=1e-6)
    tok = net.make_tokens(fo, Ro)
    assert torch.allclose(tok, torch.cat([R.mean(dim=(1, 2)), f], dim=-1), atol=1e-6)
    # the zeroed branches still learn: the zeroed weights get a gradient at the first step
    net(f[None], R[None], torch.ones(1, 6, dtype=torch.bool), torch.zeros(1, 6, 2, dtype=torch.long)).sum().backward()
    assert net.mbconvs[0].block[-1][1].weight.grad.abs().sum() > 0
    assert net.fusions[0].w_r.weight.grad.abs().sum() > 0 and net.fusions[0].w_f.weight.grad.abs().sum() > 0
    # without zero_init the stack is not the identity (so the assertion above can fail)
    torch.manual_seed(11)
    plain = DualAttentionNetwork(DualAttentionConfig(**{**cfg.to_dict(), "zero_init": False}))
    assert not torch.allclose(plain.patch_features(f, R)[1], R, atol=1e-3)
    # only the branches' last weights differ from the same seed without zero_init
    differ = {k for k, v in net.state_dict().items() if not torch.equal(v, plain.state_dict()[k])}
    assert differ and all(k.endswith(("block.3.1.weight", "w_r.weight", "w_r.bias", "w_f.weight", "w_f.bias"))
                          for k in differ)


@pytest.mark.parametrize("token,readout,pos_embed", [("keep", "cls", "sincos"), ("concat", "cls", "sincos"),
                                                     ("pool", "mean", "sincos"),
                                                     ("sum", "cls", "none")])
def test_output_shape_and_padding_invariance(token, readout, pos_embed):
    torch.manual_seed(3)
    cfg = small_cfg(token=token, readout=readout, pos_embed=pos_embed)
    net = DualAttentionNetwork(cfg).eval()
    f, R, mask, pos = random_batch(cfg)
    with torch.no_grad():
        out = net(f, R, mask, pos)
        assert out.shape == (2, cfg.n_outputs)
        # garbage in the padded rows changes nothing
        f2, R2, pos2 = f.clone(), R.clone(), pos.clone()
        f2[~mask], R2[~mask], pos2[~mask] = 1e4, -1e4, 99999
        assert torch.allclose(net(f2, R2, mask, pos2), out, atol=1e-5)
        # nor do extra padded patches
        k = 3
        fp = torch.cat([f, torch.randn(2, k, cfg.d) * 100], 1)
        Rp = torch.cat([R, torch.randn(2, k, cfg.grid, cfg.grid, cfg.d) * 100], 1)
        mp = torch.cat([mask, torch.zeros(2, k, dtype=torch.bool)], 1)
        pp = torch.cat([pos, torch.randint(0, 1000, (2, k, 2))], 1)
        assert torch.allclose(net(fp, Rp, mp, pp), out, atol=1e-5)
        # a slide's prediction does not depend on the other slides of the batch
        assert torch.allclose(net(f[1:], R[1:], mask[1:], pos[1:]), out[1:], atol=1e-5)


def test_real_patches_matter():
    torch.manual_seed(4)
    cfg = small_cfg()
    net = DualAttentionNetwork(cfg).eval()
    f, R, mask, pos = random_batch(cfg)
    with torch.no_grad():
        out = net(f, R, mask, pos)
        R2 = R.clone()
        R2[0, 0] += 1.0
        assert not torch.allclose(net(f, R2, mask, pos)[0], out[0], atol=1e-4)
        pos2 = pos.clone()
        pos2[0, 0] += 7  # the grid position reaches the output through the sincos embedding
        assert not torch.allclose(net(f, R, mask, pos2)[0], out[0], atol=1e-6)


@pytest.mark.parametrize("readout", ["cls", "mean"])
def test_slide_without_patches_gives_finite_output(readout):
    torch.manual_seed(9)
    cfg = small_cfg(readout=readout)
    net = DualAttentionNetwork(cfg).eval()
    f, R, mask, pos = random_batch(cfg)
    mask[1] = False
    with torch.no_grad():
        out = net(f, R, mask, pos)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("readout", ["cls", "mean"])
def test_permutation_invariance(readout):
    torch.manual_seed(5)
    cfg = small_cfg(readout=readout)
    net = DualAttentionNetwork(cfg).eval()
    f, R, mask, pos = random_batch(cfg)
    perm = torch.tensor([3, 0, 4, 2, 1])
    with torch.no_grad():
        out = net(f, R, mask, pos)
        out_p = net(f[:, perm], R[:, perm], mask[:, perm], pos[:, perm])
    assert torch.allclose(out, out_p, atol=1e-5)


def test_gradient_reaches_f_and_R():
    torch.manual_seed(6)
    cfg = small_cfg(token="concat")
    net = DualAttentionNetwork(cfg)
    f, R, mask, pos = random_batch(cfg)
    f.requires_grad_(True)
    R.requires_grad_(True)
    net(f, R, mask, pos).square().sum().backward()
    assert f.grad[mask].abs().sum() > 0 and R.grad[mask].abs().sum() > 0
    assert f.grad[~mask].abs().sum() == 0 and R.grad[~mask].abs().sum() == 0  # padding is not used
    assert all(p.grad is not None for p in net.parameters())


def test_return_attention_shapes():
    torch.manual_seed(7)
    cfg = small_cfg(n_mbconv=4, fusion_every=2, vit_depth=2)
    net = DualAttentionNetwork(cfg).eval()
    f, R, mask, pos = random_batch(cfg)
    b, n = mask.shape
    with torch.no_grad():
        out, info = net(f, R, mask, pos, return_attention=True)
        assert torch.allclose(out, net(f, R, mask, pos), atol=1e-5)  # same result as the plain call
    assert len(info["A"]) == len(info["Z"]) == 2
    for a, z in zip(info["A"], info["Z"]):
        assert a.shape == (b, n, cfg.grid, cfg.grid, cfg.d) and z.shape == (b, n, cfg.grid, cfg.grid)
        assert torch.allclose(z[mask].sum(dim=(1, 2)), torch.ones(int(mask.sum())), atol=1e-5)
        assert z[~mask].abs().sum() == 0
    assert len(info["cls_attention"]) == 2
    t = info["cls_attention"][0]
    assert t.shape == (b, n)  # the class token's attention to each patch slot (its weight on itself left out)
    assert t[1, -2:].abs().sum() == 0  # it does not attend to padding
    assert (t.sum(dim=1) < 1).all() and (t >= 0).all()


def test_tiny_model_overfits():
    torch.manual_seed(8)
    cfg = DualAttentionConfig(d=8, grid=4, n_outputs=4, n_mbconv=2, fusion_every=1, mbconv_expand=2,
                              vit_depth=1, vit_heads=2, dropout=0.0)
    net = DualAttentionNetwork(cfg)
    b, n = 8, 5
    f, R = torch.randn(b, n, cfg.d), torch.randn(b, n, cfg.grid, cfg.grid, cfg.d)
    mask, pos = torch.ones(b, n, dtype=torch.bool), torch.randint(0, 10, (b, n, 2))
    y = torch.randn(b, cfg.n_outputs)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    with torch.no_grad():
        start = torch.mean((net(f, R, mask, pos) - y) ** 2).item()
    for _ in range(150):
        loss = torch.mean((net(f, R, mask, pos) - y) ** 2)  # Eq. 3, the L2 loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        end = torch.mean((net(f, R, mask, pos) - y) ** 2).item()
    assert end < 0.2 * start, (start, end)


def test_inner_width_maps_d_to_width_and_keeps_invariances():
    torch.manual_seed(8)
    cfg = small_cfg(width=4, vit_heads=2)
    assert cfg.inner_dim == 4 and cfg.model_dim == 8  # the token keeps [pool(R); f]
    net = DualAttentionNetwork(cfg).eval()
    assert isinstance(net.in_f, torch.nn.Linear) and net.in_f.out_features == 4 and net.in_R.in_features == cfg.d
    assert all(fu.d == 4 for fu in net.fusions)
    f, R, mask, pos = random_batch(cfg)
    perm = torch.tensor([3, 0, 4, 2, 1])
    with torch.no_grad():
        out, info = net(f, R, mask, pos, return_attention=True)
        assert torch.allclose(out, net(f[:, perm], R[:, perm], mask[:, perm], pos[:, perm]), atol=1e-5)
    assert info["A"][0].shape[-1] == 4
    # width None (or = d) is the paper's network: no extra maps
    assert isinstance(DualAttentionNetwork(small_cfg()).in_f, torch.nn.Identity)
    with pytest.raises(ValueError):
        small_cfg(width=0)


def test_slide_attention_reports_maps_per_patch():
    from isg_core.deploy.attention import slide_attention
    from isg_core.train.engine import SlideData

    torch.manual_seed(9)
    cfg = small_cfg(n_mbconv=4, fusion_every=2)
    net = DualAttentionNetwork(cfg)
    f, R, mask, pos = random_batch(cfg)
    k = int(mask[1].sum())
    data = SlideData(["s"], [f[1, :k].numpy()], [R[1, :k].numpy()], [pos[1, :k].numpy()])
    att = slide_attention(net, data, 0)
    assert att["A"].shape == (2, k, cfg.grid, cfg.grid) and att["Z"].shape == (2, k, cfg.grid, cfg.grid)
    assert np.allclose(att["Z"].sum(axis=(2, 3)), 1.0, atol=1e-5)
    assert att["token"].shape == (k,) and att["token"].sum() <= 1.0 + 1e-5
    with torch.no_grad():
        assert np.allclose(att["pred"], net.eval()(f[1:2, :k], R[1:2, :k], mask[1:2, :k], pos[1:2, :k])[0].numpy(),
                           atol=1e-5)


def test_forward_slide_equals_forward_in_bounded_chunks():
    """The chunked single-slide inference gives the batched forward's output and class-token
    attention, whatever the chunk size."""
    torch.manual_seed(0)
    net = DualAttentionNetwork(DualAttentionConfig(d=8, grid=2, n_outputs=3, n_mbconv=4, fusion_every=2)).eval()
    n = 37
    f, R = torch.randn(1, n, 8), torch.randn(1, n, 2, 2, 8)
    pos = torch.randint(0, 20, (1, n, 2))
    with torch.no_grad():
        out, info = net(f, R, torch.ones(1, n, dtype=torch.bool), pos, return_attention=True)
    for chunk in (5, 64):
        y, att = net.forward_slide(f[0], R[0], pos[0], chunk=chunk)
        assert torch.allclose(y, out[0], atol=1e-5)
        assert torch.allclose(att, info["cls_attention"][-1][0], atol=1e-6)
