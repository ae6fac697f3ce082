"""The Feature Extraction network (isg_core.features): StyleGAN2 layers, Eq. 2's losses,
training with resume, extraction into the slides' HDF5, and the ResNet50 reference.

Networks here are tiny (8-16 px, a few channels) so every test runs in seconds on a CPU.
"""
from __future__ import annotations

import math
import shutil
import warnings
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from isg_core.config import FeatureConfig, TilingConfig
from isg_core.errors import IsgError
from isg_core.features.losses import d_logistic_loss, g_nonsaturating_loss, r1_penalty
from isg_core.features.stylegan import (
    AutoencoderConfig,
    Discriminator,
    Encoder,
    Generator,
    MinibatchStdDev,
    ModulatedConv2d,
    StyleAutoencoder,
)

TINY = AutoencoderConfig(resolution=16, code_dim=8, style_dim=16, channel_base=128, channel_max=16)
TINY_FEATURES = FeatureConfig(global_resolution=16, local_resolution=16, code_dim=8, channel_base=128, channel_max=16,
                              global_steps=6, local_steps=6, batch_size=4, bank_size=32, checkpoint_every=2,
                              extract_batch=3, resnet_input=32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- layers and shapes ------------------------------------------------------------------------------
@pytest.mark.parametrize("res", [8, 16, 32])
def test_shapes(res):
    cfg = replace(TINY, resolution=res)
    x = torch.randn(4, 3, res, res)
    code = Encoder(cfg)(x)
    assert code.shape == (4, cfg.code_dim)
    assert Generator(cfg)(code).shape == (4, 3, res, res)
    assert Discriminator(cfg)(x).shape == (4,)
    assert StyleAutoencoder(cfg)(x).shape == x.shape


@pytest.mark.parametrize("downsample", ["strided", "pool"])
def test_resblock_flops_match_a_hand_count(downsample):
    """StyleGAN2's downsampling (blur + stride-2) against the legacy conv-then-pool, counted by
    hand: 2 FLOPs per multiply-add; a depthwise 4 x 4 blur is 16 per output value."""
    from isg_core.features.flops import count_flops
    from isg_core.features.stylegan import ResBlock

    c, c2, h = 8, 16, 16
    block = ResBlock(c, c2, downsample)
    x = torch.randn(2, c, h, h)
    assert block(x).shape == (2, c2, h // 2, h // 2)
    conv1 = 2 * (c * h * h) * (c * 9)
    skip = 2 * (c2 * (h // 2) ** 2) * c  # the 1 x 1 runs at the output size either way
    if downsample == "strided":
        hand = conv1 + 2 * c * (h + 1) ** 2 * 16 + 2 * (c2 * (h // 2) ** 2) * (c * 9) + 2 * c * (h - 1) ** 2 * 16 + skip
    else:
        hand = conv1 + 2 * (c2 * h * h) * (c * 9) + skip
    assert count_flops(block, x[:1]) == hand


def test_strided_encoder_is_cheaper_and_old_configs_stay_pooled():
    from isg_core.features.flops import count_flops, extraction_flops
    from isg_core.features.stylegan import Blur

    x = torch.zeros(1, 3, 32, 32)
    strided, pool = (count_flops(Encoder(replace(TINY, resolution=32, downsample=d)), x) for d in ("strided", "pool"))
    assert 1.3 < pool / strided < 2.0
    # a config saved before the field existed was trained with pooling
    legacy = {k: v for k, v in TINY.to_dict().items() if k != "downsample"}
    assert AutoencoderConfig.from_dict(legacy).downsample == "pool"
    assert AutoencoderConfig.from_dict(TINY.to_dict()).downsample == "strided"
    # the blur is a normalised binomial low-pass: a constant image stays constant inside
    out = Blur(3, (1, 1))(torch.ones(1, 3, 8, 8))
    assert torch.allclose(out[..., 1:-1, 1:-1], torch.ones(1, 3, 5, 5))
    # no parameters, no state: checkpoints are those of the pooling encoder
    assert set(Encoder(TINY).state_dict()) == set(Encoder(replace(TINY, downsample="pool")).state_dict())
    # issue 16's budget: per kept patch, E_G + 64 E_L cost at most ResNet50's at quick and at paper
    for profile in ("quick", "paper"):
        assert extraction_flops(profile)["ISG / ResNet50"] <= 1.0


def test_demodulation_keeps_unit_variance():
    """StyleGAN2 Eq. 3: with unit-variance i.i.d. inputs the demodulated output has unit
    variance whatever the style; without demodulation the style's scale goes through."""
    torch.manual_seed(0)
    conv = ModulatedConv2d(64, 32, 3, style_dim=16)
    with torch.no_grad():
        conv.modulation.bias.fill_(3.0)  # styles around 3: a plain modulated conv would triple the output
    x, w = torch.randn(4, 64, 40, 40), torch.randn(4, 16)
    inner = (slice(None), slice(None), slice(1, -1), slice(1, -1))  # zero padding lowers the border's variance
    with torch.no_grad():
        out = conv(x, w)[inner]
    per_channel = out.std(dim=(2, 3))
    assert abs(float(out.std()) - 1.0) < 0.05
    assert float((per_channel - 1).abs().max()) < 0.15
    conv.demodulate = False
    with torch.no_grad():
        assert float(conv(x, w)[inner].std()) > 2.0


def test_modulated_conv_equals_per_sample_weights():
    """The non-fused form equals convolving each sample with its own w''_ijk (Eqs. 1 and 3)."""
    torch.manual_seed(1)
    conv = ModulatedConv2d(5, 7, 3, style_dim=6)
    x, w = torch.randn(3, 5, 9, 9), torch.randn(3, 6)
    got = conv(x, w)
    s = conv.modulation(w)
    for b in range(3):
        wb = conv.weight * conv.scale * s[b][None, :, None, None]  # Eq. 1
        wb = wb / torch.sqrt(wb.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8)  # Eq. 3
        assert torch.allclose(got[b], F.conv2d(x[b:b + 1], wb, padding=1)[0], atol=1e-5)


def test_minibatch_stddev_sees_variety():
    mb = MinibatchStdDev(group=4)
    same = torch.ones(4, 2, 3, 3)
    varied = torch.randn(4, 2, 3, 3) * 5
    assert mb(same).shape == (4, 3, 3, 3)
    assert float(mb(same)[:, -1].max()) < 1e-3 < float(mb(varied)[:, -1].min())


# --- losses ---------------------------------------------------------------------------------------
def test_loss_signs():
    big = torch.full((8,), 10.0)
    assert float(d_logistic_loss(big, -big)) < 1e-3  # C calls real real and fake fake: no loss
    assert float(d_logistic_loss(-big, big)) > 19.0  # the other way round: large
    assert float(g_nonsaturating_loss(big)) < float(g_nonsaturating_loss(-big))  # E, D win when C is fooled


def test_discriminator_loss_falls_as_it_separates():
    torch.manual_seed(0)
    cfg = replace(TINY, resolution=8)
    disc = Discriminator(cfg)
    opt = torch.optim.Adam(disc.parameters(), lr=2e-3, betas=(0.0, 0.99))
    real = torch.rand(8, 3, 8, 8) * 0.5 + 0.5  # bright
    fake = -torch.rand(8, 3, 8, 8) * 0.5 - 0.5  # dark
    losses = []
    for _ in range(40):
        loss = d_logistic_loss(disc(real), disc(fake))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[0] > 1.0 and losses[-1] < 0.3 * losses[0]
    with torch.no_grad():
        assert float(disc(real).mean()) > 0 > float(disc(fake).mean())  # C scores realness


def test_r1_known_answer():
    """For a linear critic C(x) = <a, x>, ||grad C||^2 = ||a||^2 for every x."""

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.randn(3, 4, 4))

        def forward(self, x):
            return (x * self.a).sum(dim=(1, 2, 3))

    c = Linear()
    assert math.isclose(float(r1_penalty(c, torch.randn(5, 3, 4, 4)).detach()), float(c.a.detach().square().sum()),
                        rel_tol=1e-5)


# --- a tiny prepared cohort -----------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    from isg_core.cohorts.prepare import prepare_cohort
    from isg_core.simulate import simulate_cohort

    root = simulate_cohort(tmp_path_factory.mktemp("fe") / "sim", n_slides=3, seed=5, size=768, workers=1,
                           tiling=TilingConfig(), progress=False)
    prepare_cohort(root, config=TilingConfig(), progress=False)
    return root


def _train(cohort, out, steps=6, **kw):
    from isg_core.features.train import train_config_for, train_extractor

    cfg = train_config_for("global", TINY_FEATURES, steps=steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train_extractor(cohort, cfg, out, progress=False, **kw)


def test_resume_equals_uninterrupted(tiny_cohort, tmp_path):
    from isg_core.features.train import load_checkpoint

    straight = load_checkpoint(_train(tiny_cohort, tmp_path / "a"))
    _train(tiny_cohort, tmp_path / "b", max_steps=3)  # "killed" after a checkpoint at step 3
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 3
    with pytest.raises(IsgError, match="--resume"):
        _train(tiny_cohort, tmp_path / "b")
    resumed = load_checkpoint(_train(tiny_cohort, tmp_path / "b", resume=True))
    assert resumed["step"] == straight["step"] == 6
    for part in ("encoder", "generator", "discriminator"):
        for k, v in straight[part].items():
            assert torch.equal(v, resumed[part][k]), f"{part}.{k}"
    assert resumed["history"] == straight["history"]
    assert resumed["lpips_trunk"] in ("imagenet", "random")
    for f in ("history.csv", "losses.png", "reconstructions.png", "bank.npy"):
        assert (tmp_path / "b" / f).exists(), f


def test_checkpoint_guards(tiny_cohort, tmp_path):
    from isg_core.features.train import load_checkpoint

    ck = _train(tiny_cohort, tmp_path / "a", steps=2)
    with pytest.raises(IsgError, match="another config"):
        _train(tiny_cohort, tmp_path / "a", steps=4)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(ck.read_bytes()[:200])
    with pytest.raises(IsgError, match="corrupt"):
        load_checkpoint(bad)
    torch.save({"weights": torch.zeros(2)}, bad)
    with pytest.raises(IsgError, match="not an ISG"):
        load_checkpoint(bad)


def test_training_reduces_reconstruction_loss(tiny_cohort, tmp_path):
    from isg_core.features.train import load_checkpoint

    hist = load_checkpoint(_train(tiny_cohort, tmp_path / "a", steps=40))["history"]
    first = np.mean([h["l1"] for h in hist[:5]])
    last = np.mean([h["l1"] for h in hist[-5:]])
    assert last < 0.8 * first


# --- extraction -------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_checkpoints(tiny_cohort, tmp_path_factory):
    from isg_core.features.train import train_config_for, train_extractor

    out = tmp_path_factory.mktemp("ckpt")
    paths = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for scale in ("global", "local"):
            paths[scale] = train_extractor(tiny_cohort, train_config_for(scale, TINY_FEATURES, steps=2), out / scale,
                                           progress=False)
    return paths


def test_extract_writes_features_in_grid_order(tiny_cohort, tiny_checkpoints):
    from isg_core.data.manifest import read_manifest
    from isg_core.data.slides import open_slide
    from isg_core.data.tiling import read_global_patch, read_tiling_h5, split_local
    from isg_core.features.bank import to_tensor
    from isg_core.features.extract import StyleGANEncoder, extract_cohort, read_features

    enc = StyleGANEncoder(tiny_checkpoints["global"], tiny_checkpoints["local"], device="cpu")
    df = extract_cohort(tiny_cohort, enc, progress=False, batch_size=3)
    assert not df.skipped.any() and df.attrs["patches_per_second"] > 0
    man = read_manifest(tiny_cohort / "manifest.csv")
    row = man.iloc[0]
    h5 = tiny_cohort / "tiles" / f"{row.slide_id}.h5"
    feats = read_features(h5, "fe")
    with h5py.File(h5, "r") as f:
        keep = f["selection/shannon/keep"][:]
    assert np.array_equal(feats.index, np.flatnonzero(keep))
    n, d = len(feats.index), TINY_FEATURES.code_dim
    assert feats.global_.shape == (n, d) and feats.local.shape == (n, 8, 8, d)
    # R_i[r, c] is E_L of the local patch at row r, column c of global patch i
    tiling = read_tiling_h5(h5)
    with open_slide(row.path) as slide:
        patch = read_global_patch(slide, tiling, int(feats.index[-1]))
    cells = split_local(patch, tiling.config.local_size)
    with torch.no_grad():
        e_l = enc.encoders["local"]
        for r, c in [(0, 0), (0, 7), (5, 2)]:
            x = F.interpolate(to_tensor(cells[r, c][None]), size=(16, 16), mode="area")
            assert np.allclose(feats.local[-1, r, c], e_l(x)[0].numpy(), atol=2e-2), (r, c)
        x = F.interpolate(to_tensor(patch[None]), size=(16, 16), mode="area")
        assert np.allclose(feats.global_[-1], enc.encoders["global"](x)[0].numpy(), atol=1e-4)
    again = extract_cohort(tiny_cohort, enc, progress=False, batch_size=3)
    assert again.skipped.all()
    # the same weights at another path (a moved checkout) are the same encoder: skipped ...
    import shutil
    moved = {k: Path(shutil.copytree(v.parent, v.parent.parent / f"moved-{k}")) / v.name
             for k, v in tiny_checkpoints.items()}
    assert extract_cohort(tiny_cohort, StyleGANEncoder(moved["global"], moved["local"], device="cpu"),
                          progress=False, batch_size=3).skipped.all()
    # ... other weights at the same path are not
    ck = torch.load(moved["local"], weights_only=True)
    ck["encoder"] = {k: v + 0.01 if v.is_floating_point() else v for k, v in ck["encoder"].items()}
    torch.save(ck, moved["local"])
    assert not extract_cohort(tiny_cohort, StyleGANEncoder(moved["global"], moved["local"], device="cpu"),
                              progress=False, batch_size=3).skipped.any()
    assert not extract_cohort(tiny_cohort, enc, progress=False, batch_size=3).skipped.any()  # back, for later tests


def test_untrained_control_and_scale_check(tiny_cohort, tiny_checkpoints):
    from isg_core.features.extract import StyleGANEncoder

    with pytest.raises(IsgError, match="local extractor, given as --global"):
        StyleGANEncoder(tiny_checkpoints["local"], None, device="cpu")
    trained = StyleGANEncoder(tiny_checkpoints["global"], None, device="cpu")
    random = StyleGANEncoder(tiny_checkpoints["global"], None, device="cpu", untrained=True)
    x = np.random.default_rng(0).integers(0, 255, (2, 256, 256, 3), dtype=np.uint8)
    assert random.name == "fe-untrained" and random.local_dim is None
    assert not np.allclose(trained.encode(x, 32)[0], random.encode(x, 32)[0])


def test_resnet50_reference_features():
    from isg_core.features.extract import ResNet50Encoder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enc = ResNet50Encoder(input_size=64, device="cpu")
    x = np.random.default_rng(0).integers(0, 255, (2, 128, 128, 3), dtype=np.uint8)
    f, r = enc.encode(x, 32)
    assert f.shape == (2, 2048) and r is None and np.isfinite(f).all()
    assert enc.describe()["trunk"] in ("random",) or enc.describe()["trunk"].startswith("imagenet")


def test_cli_errors_are_one_line(tmp_path, capsys):
    from isg_core.cli import main

    assert main(["extract", "--cohort", str(tmp_path)]) == 2
    assert main(["train-extractor", "--scale", "global", "--cohort", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("isg: error:") and "manifest.csv" in line for line in err)


# --- Table 5 inputs ---------------------------------------------------------------------------------
def test_pooled_and_patch_features_line_up(tiny_cohort, tiny_checkpoints):
    from isg_core.cohorts.folder import load_cohort
    from isg_core.experiments.table5 import patch_features, slide_features
    from isg_core.features.extract import StyleGANEncoder, extract_cohort, read_features

    extract_cohort(tiny_cohort, StyleGANEncoder(tiny_checkpoints["global"], tiny_checkpoints["local"], device="cpu"),
                   progress=False)
    cohort = load_cohort(tiny_cohort)
    tiles = tiny_cohort / "tiles"
    pooled = slide_features(cohort.manifest, tiles, "fe")
    sid = cohort.manifest.slide_id.iloc[1]
    f = read_features(tiles / f"{sid}.h5", "fe")
    want = np.concatenate([f.global_.mean(0), f.local.reshape(len(f.index), -1, f.local.shape[-1]).mean((0, 1))])
    assert pooled.shape == (len(cohort.manifest), 2 * TINY_FEATURES.code_dim)
    assert np.allclose(pooled.loc[sid].to_numpy(), want, atol=1e-5)
    assert slide_features(cohort.manifest, tiles, "fe:global").shape[1] == TINY_FEATURES.code_dim
    X, meta = patch_features(cohort.manifest, tiles, "fe:global", cohort.patches)
    assert len(X) == len(meta) == sum(
        len(read_features(tiles / f"{s}.h5", "fe").index) for s in cohort.manifest.slide_id
    )
    # each feature row is matched to the simulator's record of the same patch (same level-0 corner)
    with h5py.File(tiles / f"{sid}.h5", "r") as h:
        coords = h["coords"][:][f.index]
    rows = meta[meta.slide_id == sid]
    assert np.array_equal(rows[["x", "y"]].to_numpy(), coords)


def test_knn_agreement_known_answer():
    from isg_core.experiments.table5 import knn_agreement

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (100, 4)), rng.normal(50, 1, (100, 4))])
    lab = np.array(["a"] * 100 + ["b"] * 100)
    out = knn_agreement(x, lab, k=5).set_index("class")
    assert np.allclose(out["knn5_same_class"], 1.0) and np.allclose(out["chance"], 0.5)
    mixed = knn_agreement(rng.normal(0, 1, (200, 4)), lab, k=5).set_index("class")
    assert (mixed["knn5_same_class"] < 0.7).all()


def test_encoder_chunks_give_what_one_call_gives(monkeypatch):
    """The encoders take a batch in chunks (bounded memory at paper sizes): same features."""
    from isg_core.config import get_profile
    from isg_core.features import extract
    from isg_core.features.train import train_config_for

    fc = get_profile("smoke").features
    enc = extract.StyleGANEncoder.from_configs(train_config_for("global", fc), train_config_for("local", fc),
                                               device="cpu")
    x = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    f1, r1 = enc.encode(x, 16)
    calls = {"global": 0, "local": 0}
    for k in calls:
        enc.encoders[k].register_forward_hook(lambda m, i, o, k=k: calls.__setitem__(k, calls[k] + 1))
    monkeypatch.setattr(extract, "GLOBAL_CHUNK", 2)
    monkeypatch.setattr(extract, "LOCAL_CHUNK", 7)
    f2, r2 = enc.encode(x, 16)
    assert calls == {"global": 3, "local": 12}  # 5 patches by 2; 5 * 4 * 4 = 80 local patches by 7
    assert f2.shape == (5, fc.code_dim) and r2.shape == (5, 4, 4, fc.code_dim)
    np.testing.assert_allclose(f2, f1, atol=1e-5)
    np.testing.assert_allclose(r2, r1, atol=1e-5)


# --- the training bank: rare content is seen --------------------------------------------------------
def test_balanced_choice_water_fills():
    from isg_core.features.bank import balanced_choice

    rng = np.random.default_rng(0)
    labels = np.array([0] * 90 + [1] * 10)
    pick = balanced_choice(labels, 20, rng)
    assert len(set(pick)) == 20 and np.bincount(labels[pick]).tolist() == [10, 10]
    labels = np.array([0] * 50 + [1] * 3 + [2] * 47)
    counts = np.bincount(labels[balanced_choice(labels, 30, rng)]).tolist()
    assert counts[1] == 3 and sorted(counts[::2]) == [13, 14]  # the rare group gives all it has
    assert balanced_choice(labels, 100, rng).tolist() == list(range(100))
    with pytest.raises(ValueError):
        balanced_choice(labels, 101, rng)


def test_appearance_descriptor_sees_dark_nuclei():
    from isg_core.features.bank import appearance_descriptor

    pink = np.zeros((1, 32, 32, 3), np.uint8) + np.array([230, 160, 200], np.uint8)
    nucleus = pink.copy()
    nucleus[0, 12:19, 12:19] = (60, 30, 110)  # a 7-px haematoxylin-dark blob: a lymphocyte at 0.5 mpp
    d = appearance_descriptor(np.concatenate([pink, nucleus]))
    assert d.shape == (2, 13) and np.isfinite(d).all()
    h99, h50 = 6 + 4, 6
    assert d[1, h99] > d[0, h99] + 0.3 and d[1, h50] == pytest.approx(d[0, h50])  # the median stays pink
    assert d[1, 12] > d[0, 12] == 0  # texture: a flat patch has no gradient


@pytest.mark.parametrize("scale", ["local", "global"])
def test_balanced_bank_reads_its_origins(tiny_cohort, scale):
    from isg_core.data.manifest import read_manifest
    from isg_core.data.tiling import open_tiled_slide, read_global_patch, read_tiling_h5, split_local
    from isg_core.features.bank import BankConfig, build_bank

    man = read_manifest(tiny_cohort / "manifest.csv")
    tiles = tiny_cohort / "tiles"
    cfg = BankConfig(scale, 24, 16, clusters=4, local_per_global=4)
    bank, origins = build_bank(man, tiles, cfg, progress=False, return_origins=True)
    assert bank.shape == (24, 16, 16, 3) and bank.dtype == np.uint8 and len(origins) == 24
    assert np.array_equal(bank, build_bank(man, tiles, cfg, progress=False))  # deterministic
    assert not np.array_equal(bank, build_bank(man, tiles, replace(cfg, sampling="uniform"), progress=False))
    for j in (0, 7, 23):  # each bank patch is the patch its origin names
        sid, i, c = origins.iloc[j]
        tiling = read_tiling_h5(tiles / f"{sid}.h5")
        with open_tiled_slide(dict(zip(man["slide_id"], man["path"]))[sid], tiling, tiles / f"{sid}.h5") as slide:
            patch = read_global_patch(slide, tiling, int(i))
        if scale == "local":
            assert c >= 0
            q = tiling.config.local_size
            patch = split_local(patch, q).reshape(-1, q, q, 3)[c]
        else:
            assert c == -1
        from isg_core.features.bank import to_tensor, to_uint8
        assert np.array_equal(to_uint8(to_tensor(patch[None], 16))[0], bank[j])
    with pytest.raises(IsgError, match="sampling"):
        BankConfig("local", 8, 16, sampling="rare")


def test_superseded_extractor_is_kept_and_retrained(tiny_checkpoints, tmp_path):
    import shutil

    from isg_core.data.tiling import StaleResultWarning
    from isg_core.features.train import ExtractorTrainConfig, load_checkpoint
    from isg_core.features.workflow import set_aside_if_superseded

    out = tmp_path / "extractors" / "without-fold1" / "local"
    shutil.copytree(tiny_checkpoints["local"].parent, out)
    cfg = ExtractorTrainConfig.from_dict(load_checkpoint(out / "checkpoint.pt")["config"])
    assert set_aside_if_superseded(out, cfg) is None and out.exists()  # same config: left alone
    with pytest.warns(StaleResultWarning, match="kept in"):
        dest = set_aside_if_superseded(out, replace(cfg, lambda_adv=0.5))
    assert not out.exists() and (dest / "checkpoint.pt").exists()
    assert dest.parent == tmp_path / "extractors" / "superseded" and dest.name.startswith("without-fold1-local-")
    shutil.copytree(dest, out)  # the same old run again: kept beside, never overwritten
    with pytest.warns(StaleResultWarning):
        assert set_aside_if_superseded(out, replace(cfg, lambda_adv=0.5)).name == dest.name + "-2"


def test_descriptor_encoder_lays_local_descriptors_on_the_grid():
    from isg_core.data.tiling import split_local
    from isg_core.features.bank import DESCRIPTOR_DIM, appearance_descriptor
    from isg_core.features.extract import DescriptorEncoder

    x = np.random.default_rng(3).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    enc = DescriptorEncoder()
    f, R = enc.encode(x, 16)
    assert f.shape == (2, DESCRIPTOR_DIM) and R.shape == (2, 4, 4, DESCRIPTOR_DIM) and f.dtype == np.float32
    cells = split_local(x[1], 16)
    assert np.allclose(R[1, 2, 3], appearance_descriptor(cells[2, 3][None])[0], atol=1e-6)
    assert np.allclose(f[0], appearance_descriptor(x[:1])[0], atol=1e-6)
    assert enc.name == "descriptor" and enc.describe()["dim"] == DESCRIPTOR_DIM


def test_candidate_patches_cover_every_table_and_drop_the_rest(tiny_cohort, tmp_path):
    """``patches="candidates"`` is the union of every stored selection and of Table 4's other Shannon
    thresholds (checked against masks recomputed here), a subset of all patches; a model whose
    selection keeps a patch without features gets a one-line error, never a smaller slide."""

    from isg_core.experiments.inputs import load_experiment_data
    from isg_core.experiments.specs import Experiment
    from isg_core.features.extract import DescriptorEncoder, extract_slide, patch_index
    from isg_core.selection import ShannonSelector, select
    from isg_core.selection.thresholds import table4_thresholds

    man = pd.read_csv(tiny_cohort / "manifest.csv")
    sid = man.slide_id[0]
    h5 = tmp_path / f"{sid}.h5"
    shutil.copyfile(tiny_cohort / "tiles" / f"{sid}.h5", h5)
    with h5py.File(h5, "r") as f:
        n = f["coords"].shape[0]
        want = np.zeros(n, bool)
        for m in f["selection"]:
            want |= f[f"selection/{m}/keep"][:]
        union = np.flatnonzero(want)
        scores = f["selection/shannon/scores"][:]
        for th in table4_thresholds(float(ShannonSelector.default_threshold.value)):
            want |= select(scores, th, 256 * 256)
        cand = patch_index(f, "shannon", "candidates")
        np.testing.assert_array_equal(cand, np.flatnonzero(want))
        np.testing.assert_array_equal(patch_index(f, "shannon", "union"), union)
        np.testing.assert_array_equal(patch_index(f, "x", "kept:shannon"), patch_index(f, "shannon", "kept"))
        with pytest.raises(IsgError, match="no 'otsu' selection"):
            patch_index(f, "shannon", "kept:shannon,otsu")
        assert len(cand) >= len(union) and len(cand) <= n
        with pytest.raises(IsgError, match="candidates"):
            patch_index(f, "shannon", "glass")
    # features of a stricter selection's patches only (its 2 best): the Shannon row keeps more, so must refuse
    from isg_core.selection import add_selection_to_h5

    strict = scores >= np.sort(scores)[-2]
    add_selection_to_h5(h5, "strict", scores, strict)
    extract_slide(h5, tiny_cohort / man.path[0], DescriptorEncoder(), selection="strict", patches="kept")
    with h5py.File(h5, "r") as f:
        extra = int(np.count_nonzero(f["selection/shannon/keep"][:] & ~strict))
    assert extra > 0
    shannon = Experiment("shannon row", "isg", features="descriptor", selection="shannon")
    with pytest.raises(IsgError, match=f"{extra} patches that 'shannon row' keeps"):
        load_experiment_data(tmp_path, [sid], shannon, 256 * 256)
    extract_slide(h5, tiny_cohort / man.path[0], DescriptorEncoder(), patches="candidates")
    data = load_experiment_data(tmp_path, [sid], shannon, 256 * 256)
    with h5py.File(h5, "r") as f:
        assert len(data.f[0]) == len(patch_index(f, "shannon", "kept"))


def test_one_read_scores_equal_one_selector_at_a_time(tiny_cohort):
    """The cohort preparation scores every selector in one pass over the patches: the same scores
    as scoring with each selector alone (Otsu's per-slide fit included)."""
    from isg_core.data.tiling import open_tiled_slide, read_tiling_h5
    from isg_core.selection.slide import score_slide, score_slide_many

    man = pd.read_csv(tiny_cohort / "manifest.csv")
    h5 = tiny_cohort / "tiles" / f"{man.slide_id[1]}.h5"
    t = read_tiling_h5(h5)
    methods = ["shannon", "otsu", "dog"]
    with open_tiled_slide(tiny_cohort / man.path[1], t, h5) as s:
        many = score_slide_many(s, t, methods)
        one = np.stack([score_slide(s, t, m, progress=False) for m in methods], 1)
    assert many.shape == (t.n_patches, 3)
    np.testing.assert_array_equal(many, one)


def test_loss_figure_names_the_lpips_trunk():
    """Offline the LPIPS trunk is random: the loss curve's label must say which trunk it is."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from isg_core.features.figures import plot_losses

    hist = pd.DataFrame({"l1": [1.0, 0.5], "lpips": [0.3, 0.2], "d": [1.0, 1.1], "adv": [1.0, 0.9]},
                        index=pd.Index([1, 2], name="step"))
    fig = plot_losses(hist, lpips_trunk="random")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["L1", "LPIPS (random AlexNet trunk)"]
    assert all(ax.get_xlabel() == "step" and ax.get_ylabel().startswith("loss") for ax in fig.axes)
    plt.close(fig)
