"""Table 1 baselines (isg_core.models.baselines): shapes, padding/permutation invariance, gradients, and
known answers for HE2RNA's top-k pooling, its supertiles and CycleMLP's CycleFC."""
import numpy as np
import pytest
import torch
from torchvision.ops import deform_conv2d

from isg_core.models.baselines import (
    BASELINES,
    HE2RNA,
    CycleFC,
    HE2RNAConfig,
    SlideTransformerConfig,
    build_baseline,
    supertiles,
)

D, G, OUT = 8, 4, 3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_inputs(seed=0, b=2, n=5, n_real=(3, 5)):
    gen = torch.Generator().manual_seed(seed)
    f = torch.randn(b, n, D, generator=gen)
    R = torch.randn(b, n, G, G, D, generator=gen)
    pos = torch.randint(0, 20, (b, n, 2), generator=gen)
    mask = torch.zeros(b, n, dtype=torch.bool)
    for i, k in enumerate(n_real):
        mask[i, :k] = True
    return f, R, mask, pos


def build(name):
    torch.manual_seed(0)
    return build_baseline(name, D, G, OUT)


def test_registry_names_and_unknown():
    assert set(BASELINES) == {"he2rna", "he2rna-msi", "vit-s", "vit-mb", "cyclemlp", "mpvit", "abmil", "mean-mlp"}
    with pytest.raises(KeyError):
        build_baseline("resnet", D, G, OUT)


def test_overrides_reach_the_config():
    m = build_baseline("vit-s", D, G, OUT, depth=1, dim=16)
    assert m.config == SlideTransformerConfig(dim=16, depth=1)
    assert len(m.transformer.encoder.layers) == 1
    assert build_baseline("mpvit", D, G, OUT, local_paths=2).config.local_paths == 2
    assert build_baseline("he2rna", D, G, OUT, ks=(1, 3)).net.config.ks == (1, 3)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_shape_padding_and_permutation_invariance(name):
    model = build(name).eval()
    f, R, mask, pos = make_inputs()
    with torch.no_grad():
        out = model(f, R, mask, pos)
        assert out.shape == (2, OUT) and torch.isfinite(out).all()

        # three more padded patches holding garbage (large values, a NaN, odd positions)
        gen = torch.Generator().manual_seed(1)
        f2 = torch.cat([f, 1e3 * torch.randn(2, 3, D, generator=gen)], dim=1)
        R2 = torch.cat([R, 1e3 * torch.randn(2, 3, G, G, D, generator=gen)], dim=1)
        f2[0, -1, 0] = float("nan")
        R2[1, -1, 0, 0, 0] = float("nan")
        # the garbage also overwrites the existing padded rows of slide 0
        f2[0, 3:5] = 1e4
        R2[0, 3:5] = -1e4
        pos2 = torch.cat([pos, torch.full((2, 3, 2), 10 ** 6)], dim=1)
        mask2 = torch.cat([mask, torch.zeros(2, 3, dtype=torch.bool)], dim=1)
        out2 = model(f2, R2, mask2, pos2)
        torch.testing.assert_close(out2, out, rtol=1e-4, atol=1e-5)

        perm = torch.randperm(f2.shape[1], generator=gen)
        out3 = model(f2[:, perm], R2[:, perm], mask2[:, perm], pos2[:, perm])
        torch.testing.assert_close(out3, out, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_gradients_reach_the_inputs(name):
    model = build(name).train()
    f, R, mask, pos = make_inputs()
    f[0, 3:] = float("nan")  # padding garbage must not poison the gradients
    R[0, 3:] = float("nan")
    f.requires_grad_(True)
    R.requires_grad_(True)
    model(f, R, mask, pos).sum().backward()
    uses_local = name in ("vit-mb", "cyclemlp", "mpvit")
    x = R if uses_local else f
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad[mask].abs().sum() > 0
    assert (x.grad[~mask] == 0).all()
    for p in model.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()


def test_bias_init_on_transformer_baselines():
    m = build_baseline("vit-mb", D, G, OUT, bias_init=torch.tensor([1.0, 2.0, 3.0]))
    assert torch.equal(m.transformer.head.bias.detach(), torch.tensor([1.0, 2.0, 3.0]))


# --- HE2RNA ------------------------------------------------------------------------------------------
def identity_he2rna(ks=(1, 2, 5, 10, 20, 50, 100)):
    """HE2RNA with no hidden layer and score = the tile's single feature."""
    m = HE2RNA(1, 1, HE2RNAConfig(layers=(), ks=ks, dropout=0.0))
    with torch.no_grad():
        m.layers[0].weight.fill_(1.0)
        m.layers[0].bias.zero_()
    return m.eval()


def test_he2rna_topk_known_answer():
    m = identity_he2rna()
    x = torch.tensor([[1.0, 5.0, 3.0, 1e6], [2.0, -1.0, 7.0, 4.0]])[..., None]  # (2, 4, 1)
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    assert m.forward_fixed_k(x, mask, 1)[:, 0].tolist() == [5.0, 7.0]
    assert m.forward_fixed_k(x, mask, 2)[:, 0].tolist() == [4.0, 5.5]
    # k capped at the number of real tiles: 3 for slide 0, 4 for slide 1
    assert m.forward_fixed_k(x, mask, 50)[:, 0].tolist() == [3.0, 3.0]
    # eval: average over ks = 1, 2, 5, 10, 20, 50, 100 (five of them capped)
    expected = torch.tensor([(5 + 4 + 5 * 3) / 7, (7 + 5.5 + 5 * 3) / 7])
    torch.testing.assert_close(m(x, mask)[:, 0], expected)


def test_he2rna_tile_scores_are_the_per_tile_mlp():
    """The 1x1 convolutions (run on a contiguous copy for speed) equal the MLP written as matrices."""
    torch.manual_seed(0)
    m = HE2RNA(6, 3).eval()
    x = torch.randn(2, 5, 6)
    h = x
    for layer in m.layers[:-1]:
        h = torch.relu(h @ layer.weight[:, :, 0].T + layer.bias)
    expected = h @ m.layers[-1].weight[:, :, 0].T + m.layers[-1].bias
    torch.testing.assert_close(m.tile_scores(x), expected, rtol=1e-5, atol=1e-5)


def test_he2rna_masked_tiles_never_selected():
    m = identity_he2rna(ks=(1,))
    x = torch.tensor([[-3.0, -2.0, 1e9, float("inf")]])[..., None]
    mask = torch.tensor([[True, True, False, False]])
    assert m(x, mask).item() == -2.0  # real scores are negative: the zeros of padding must not win
    # order of the tiles does not matter
    assert m(x.flip(1), mask.flip(1)).item() == -2.0


def test_he2rna_bias_init_and_default_size():
    bias = torch.tensor([0.5, -1.0, 2.0])
    m = HE2RNA(6, 3, bias_init=bias)
    assert [layer.weight.shape[0] for layer in m.layers] == [256, 256, 3]
    assert torch.equal(m.layers[-1].bias.detach(), bias)
    with torch.no_grad():
        m.layers[-1].weight.zero_()
    torch.testing.assert_close(m.eval()(torch.randn(2, 7, 6)), bias.expand(2, 3))
    with pytest.raises(ValueError):
        HE2RNA(6, 3, bias_init=torch.zeros(2))


def test_he2rna_random_k_in_training():
    x = torch.arange(30, dtype=torch.float32).reshape(1, 30, 1)

    def draws(seed):
        m = identity_he2rna().train()
        m.generator = torch.Generator().manual_seed(seed)
        ks, outs = [], []
        for _ in range(12):
            outs.append(m(x).item())
            ks.append(m.last_k)
        return ks, outs

    ks, outs = draws(0)
    assert len(set(ks)) > 1 and len(set(outs)) > 1
    assert set(ks) <= {1, 2, 5, 10, 20, 50, 100}
    assert draws(0) == (ks, outs)  # reproducible for a seed
    # each output is the mean of the top-min(k, 30) of 0..29
    for k, o in zip(ks, outs):
        kk = min(k, 30)
        assert o == pytest.approx(np.mean(np.arange(30 - kk, 30)))


# --- supertiles -----------------------------------------------------------------------------------------
def test_supertiles_two_clusters():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (5, 2))
    b = rng.normal(100, 1, (4, 2))
    coords = np.concatenate([a, b])
    feats = rng.normal(size=(9, 3))
    order = rng.permutation(9)
    cf, cc = supertiles(coords[order], feats[order], n_clusters=2, seed=0)
    assert cf.shape == (2, 3) and cc.shape == (2, 2)
    i = int(np.argmin(cc[:, 0]))  # the cluster near the origin
    np.testing.assert_allclose(cf[i], feats[:5].mean(axis=0))
    np.testing.assert_allclose(cf[1 - i], feats[5:].mean(axis=0))
    np.testing.assert_allclose(cc[i], a.mean(axis=0))
    np.testing.assert_allclose(cc[1 - i], b.mean(axis=0))


def test_supertiles_deterministic_and_capped():
    rng = np.random.default_rng(1)
    coords = rng.integers(0, 50, (60, 2)) * 1.0 + rng.random((60, 2))
    feats = rng.normal(size=(60, 4))
    r1, r2 = supertiles(coords, feats, 10, seed=3), supertiles(coords, feats, 10, seed=3)
    assert np.array_equal(r1[0], r2[0]) and np.array_equal(r1[1], r2[1])
    assert len(r1[0]) <= 10
    cf, _ = supertiles(coords[:5], feats[:5], n_clusters=100)
    assert cf.shape == (5, 4)  # k = min(100, 5): every tile its own supertile
    np.testing.assert_allclose(np.sort(cf, axis=0), np.sort(feats[:5], axis=0))


# --- CycleFC --------------------------------------------------------------------------------------------
def test_cyclefc_shift_known_answer():
    c, h, w = 3, 3, 4
    x = (100 * torch.arange(c)[:, None, None] + 10 * torch.arange(h)[:, None] + torch.arange(w) + 1.0)[None]
    along_w = CycleFC(c, c, (1, 3)).shift(x)[0]
    assert CycleFC(c, c, (1, 3)).offsets.tolist() == [0, 1, -1]
    assert torch.equal(along_w[0], x[0, 0])
    assert torch.equal(along_w[1, :, :-1], x[0, 1, :, 1:]) and (along_w[1, :, -1] == 0).all()
    assert torch.equal(along_w[2, :, 1:], x[0, 2, :, :-1]) and (along_w[2, :, 0] == 0).all()
    along_h = CycleFC(c, c, (3, 1)).shift(x)[0]
    assert torch.equal(along_h[0], x[0, 0])
    assert torch.equal(along_h[1, :-1], x[0, 1, 1:]) and (along_h[1, -1] == 0).all()
    assert torch.equal(along_h[2, 1:], x[0, 2, :-1]) and (along_h[2, 0] == 0).all()
    # with identity weights and no bias the layer is the shift
    fc = CycleFC(c, c, (1, 3), bias=False)
    with torch.no_grad():
        fc.weight.copy_(torch.eye(c))
    assert torch.equal(fc(x), along_w[None])


@pytest.mark.parametrize("kernel", [(1, 3), (3, 1), (1, 5)])
def test_cyclefc_matches_official_deformable_form(kernel):
    """The official CycleFC: a 1x1 deform_conv2d whose offsets (dy, dx) per channel cycle."""
    torch.manual_seed(0)
    c_in, c_out = 7, 4
    fc = CycleFC(c_in, c_out, kernel)
    x = torch.randn(2, c_in, 5, 6)
    k = max(kernel)
    offset = torch.zeros(1, 2 * c_in, 1, 1)
    for i in range(c_in):
        delta = (i + k // 2) % k - k // 2
        offset[0, 2 * i + (1 if kernel[0] == 1 else 0)] = delta
    ref = deform_conv2d(x, offset.expand(2, -1, 5, 6), fc.weight[:, :, None, None], fc.bias)
    torch.testing.assert_close(fc(x), ref, rtol=1e-5, atol=1e-5)


def test_global_only_inputs_placeholder_and_supertiles():
    from isg_core.models.baselines.he2rna import global_only_inputs

    rng = np.random.default_rng(0)
    pos = np.array([[r, c] for r in range(6) for c in range(6)])
    f = rng.normal(size=(len(pos), 5)).astype(np.float32)
    f1, R1, p1 = global_only_inputs(f, pos)  # no supertiles: the patches as they are
    assert np.array_equal(f1, f) and np.array_equal(p1, pos) and R1.shape == (36, 1, 1, 5) and not R1.any()
    assert f1.dtype == np.float32 and R1.dtype == np.float16 and p1.dtype == np.int64
    f2, R2, p2 = global_only_inputs(f, pos, n_supertiles=4)
    assert len(f2) <= 4 and R2.shape == (len(f2), 1, 1, 5) and p2.shape == (len(f2), 2)
    assert np.all(p2 >= 0) and np.all(p2 <= 5)
    f3, _, p3 = global_only_inputs(f, pos, n_supertiles=1)  # one supertile: the slide's mean tile
    np.testing.assert_allclose(f3[0], f.mean(0), rtol=1e-5, atol=1e-6)
    assert p3.tolist() == [[2, 2]]  # rint(2.5, 2.5): round half to even


def test_he2rna_follows_its_published_code():
    """The head and schedule of owkin/HE2RNA_code (configs/config_*_all_TCGA.ini, model.py,
    msi_prediction.py), and the engine's config of a table's HE2RNA row takes them."""
    from isg_core.config import get_profile
    from isg_core.experiments import Experiment, train_config
    from isg_core.models.baselines.he2rna import (
        MAX_TILES,
        MSI_PUBLISHED_SCHEDULE,
        PUBLISHED_SCHEDULE,
        HE2RNAConfig,
        cap_tiles,
    )

    c = HE2RNAConfig()
    assert c.layers == (256, 256) and c.dropout == 0.25 and c.ks == (1, 2, 5, 10, 20, 50, 100)
    assert PUBLISHED_SCHEDULE == {"epochs": 200, "patience": 50, "lr": 3e-4, "batch_size": 16, "weight_decay": 0.0,
                                  "max_patches": None, "stop_on": "pcc", "prediction_floor": 0.0,
                                  "lr_schedule": "constant"}
    assert MSI_PUBLISHED_SCHEDULE["lr"] == 1e-3 and MSI_PUBLISHED_SCHEDULE["epochs"] == 50
    assert MSI_PUBLISHED_SCHEDULE["batch_size"] == 10 and MSI_PUBLISHED_SCHEDULE["stop_on"] == "last"
    assert MAX_TILES == 8000
    quick = get_profile("quick")
    cfg = train_config(quick, Experiment("HE2RNA", "he2rna", features="resnet50", selection="otsu", supertiles=100),
                       seed=2)
    assert (cfg.epochs, cfg.patience, cfg.lr, cfg.batch_size, cfg.weight_decay, cfg.max_patches, cfg.stop_on,
            cfg.prediction_floor, cfg.seed, cfg.lr_schedule) == (200, 50, 3e-4, 16, 0.0, None, "pcc", 0.0, 2,
                                                                 "constant")
    isg_cfg = train_config(quick, Experiment("ISG"))
    assert (isg_cfg.lr, isg_cfg.stop_on, isg_cfg.epochs, isg_cfg.lr_schedule) == (
        quick.models.lr, "loss", quick.models.epochs, quick.models.lr_schedule)
    assert train_config(quick, Experiment("M", "he2rna-msi"), kind="classification").lr_schedule == "constant"
    smoke = train_config(get_profile("smoke"), Experiment("HE2RNA", "he2rna"))
    assert smoke.epochs == 2 and smoke.patience == 2 and smoke.lr == 3e-4  # capped, still HE2RNA's
    f, pos = np.arange(20000, dtype=np.float32)[:, None], np.zeros((20000, 2), np.int64)
    f2, _ = cap_tiles(f, pos)
    assert len(f2) == 8000 and len(np.unique(f2)) == 8000 and np.all(np.diff(f2[:, 0]) > 0)
    assert cap_tiles(f[:10], pos[:10])[0].shape == (10, 1)


# --- ABMIL and the mean-pool MLP (issue 32) ------------------------------------------------------------
def test_abmil_is_the_attention_weighted_mean_of_gated_attention():
    """Ilse et al. (2018) Eq. 9 written out by hand on one slide equals the module."""
    torch.manual_seed(0)
    m = build_baseline("abmil", D, G, OUT, hidden=6, attention=5, dropout=0.0).eval()
    f, R, mask, pos = make_inputs()
    with torch.no_grad():
        h = torch.relu(f[0, :3] @ m.embed[0].weight.T + m.embed[0].bias)  # slide 0's 3 real patches
        score = (torch.tanh(h @ m.V.weight.T + m.V.bias) * torch.sigmoid(h @ m.U.weight.T + m.U.bias)) @ m.w.weight.T
        a = torch.softmax(score[:, 0] + m.w.bias, dim=0)
        expected = (a[:, None] * h).sum(0) @ m.head.weight.T + m.head.bias
        torch.testing.assert_close(m(f, R, mask, pos)[0], expected, rtol=1e-5, atol=1e-6)
        w = m.attention_weights(f, mask)
        torch.testing.assert_close(w.sum(1), torch.ones(2))
        assert (w[~mask] == 0).all()
        torch.testing.assert_close(w[0, :3], a)


def test_abmil_attends_to_the_patch_that_decides():
    """One informative patch among copies of a decoy: after a short fit, the attention finds it."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    n, k = 64, 8
    y = torch.randn(n, generator=gen)
    f = torch.zeros(n, k, 4)
    f[:, :, 0] = torch.randn(n, k, generator=gen) * 0.1  # decoys: noise
    where = torch.randint(0, k, (n,), generator=gen)
    f[torch.arange(n), where, 0] = y  # the one patch that carries the target ...
    f[torch.arange(n), where, 1] = 1.0  # ... and says so
    mask = torch.ones(n, k, dtype=torch.bool)
    m = build_baseline("abmil", 4, G, 1, hidden=16, attention=8, dropout=0.0)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        loss = ((m(f, None, mask)[:, 0] - y) ** 2).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        w = m.eval().attention_weights(f, mask)
    assert w[torch.arange(n), where].mean() > 0.5  # at least 4x the 1/8 a mean pool gives
    assert loss.item() < 0.1 * y.var().item()


def test_mean_mlp_reads_the_masked_mean_alone():
    torch.manual_seed(0)
    m = build_baseline("mean-mlp", D, G, OUT, dropout=0.0).eval()
    f, R, mask, pos = make_inputs()
    with torch.no_grad():
        out = m(f, R, mask, pos)
        # slide 0: another set of patches with the same mean gives the same output
        g = f.clone()
        g[0, 0], g[0, 1] = f[0, 0] + 1.0, f[0, 1] - 1.0
        torch.testing.assert_close(m(g, R, mask, pos), out)
        pooled = f[0, :3].mean(0)
        torch.testing.assert_close(out[0], m.head(m.embed(pooled)), rtol=1e-5, atol=1e-6)
