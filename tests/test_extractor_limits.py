"""Where E_L loses the cells (issue 16, item 5): the reconstruction's nuclear error, the noise
inputs switched off and back on, and the MLP probe, on constructed inputs."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from isg_core.config import PROFILES
from isg_core.data.tiling import split_local
from isg_core.features.oracle import COUNT_COLUMNS
from isg_core.features.stylegan import AutoencoderConfig, NoiseInjection, StyleAutoencoder
from isg_core.features.train import same_config, train_config_for
from isg_core.studies.extractor_choices import CELL_TARGETS, ProbeUnits, fold_mean_pcc, probe_predictions
from isg_core.studies.extractor_limits import (
    TRAININGS,
    changed_config,
    global_units,
    haematoxylin_density,
    mlp_probe_predictions,
    noise_off,
    noise_strengths,
    nuclear_l1,
    paired_differences,
    reconstruct,
)
from isg_core.train.probe import ProbeConfig

TINY = AutoencoderConfig(resolution=16, code_dim=8, style_dim=16, channel_base=128, channel_max=16)


def tiny_ae(strength: float = 0.5) -> StyleAutoencoder:
    torch.manual_seed(0)
    ae = StyleAutoencoder(TINY).eval()
    with torch.no_grad():
        for m in ae.generator.modules():
            if isinstance(m, NoiseInjection):
                m.strength.fill_(strength)
    return ae


def test_nuclear_l1_puts_the_error_where_the_dark_pixels_are():
    x = np.full((4, 10, 10, 3), 230, np.uint8)  # pale background
    x[:, :, :1] = (60, 40, 120)  # a dark purple column: 10% of the pixels, the densest haematoxylin
    assert (haematoxylin_density(x[:, :, :1]) > haematoxylin_density(x[:, :, 1:]).max()).all()
    r = x.copy()
    r[:, :, :1] = (110, 90, 170)  # the nuclei washed out by 50 grey levels, the rest exact
    out = nuclear_l1(x, r, quantile=0.85)
    assert out["L1, nuclear pixels"] == pytest.approx(50 / 255)
    assert out["L1, other pixels"] == 0
    assert out["nuclear share of pixels"] == pytest.approx(0.1)
    assert np.isnan(out["pixel R2"])  # the inputs are all one picture: no variance to explain


def test_pixel_r2_is_one_for_a_copy_and_zero_for_the_mean_image():
    x = np.random.default_rng(0).integers(0, 256, (50, 8, 8, 3)).astype(np.uint8)
    assert nuclear_l1(x, x)["pixel R2"] == pytest.approx(1.0)
    mean = np.broadcast_to(x.astype(np.float64).mean(0), x.shape)
    # the mean image, rounded to bytes: R^2 about 0 (the rounding costs a hair)
    assert nuclear_l1(x, np.round(mean).astype(np.uint8))["pixel R2"] == pytest.approx(0.0, abs=1e-3)
    # one input's picture for every input: worse than the mean image
    assert nuclear_l1(x, np.broadcast_to(x[:1], x.shape))["pixel R2"] < -0.5


def test_noise_off_silences_the_noise_inputs_and_restores_them():
    ae = tiny_ae()
    x = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    # noise on: two draws of the noise give two pictures; off: the seed no longer matters
    assert not np.array_equal(reconstruct(ae, x, seed=0), reconstruct(ae, x, seed=1))
    np.testing.assert_array_equal(reconstruct(ae, x, noise=False, seed=0), reconstruct(ae, x, noise=False, seed=1))
    with noise_off(ae):
        assert (noise_strengths(ae).strength == 0).all()
    s = noise_strengths(ae)
    assert (s.strength == 0.5).all()
    # one noise input at 4 px, two per doubling up to 16 px
    assert list(s.resolution) == [4, 8, 8, 16, 16]


def test_reconstruct_keeps_the_units_shape_and_refuses_another_size():
    ae = tiny_ae()
    x = np.zeros((2, 2, 2, 16, 16, 3), np.uint8)
    assert reconstruct(ae, x).shape == x.shape
    with pytest.raises(ValueError, match="16 px"):
        reconstruct(ae, np.zeros((2, 32, 32, 3), np.uint8))


def constructed_units(rng, n_slides: int, per: int, g: int, mean_count: float) -> ProbeUnits:
    """``per`` global patches of ``g`` x ``g`` local patches on each of ``n_slides`` slides (5 folds
    by slide), Poisson cell counts; the pixels are blank (the probes here read given codes)."""
    n = n_slides * per
    counts = rng.poisson(mean_count, (n, g, g, len(COUNT_COLUMNS)))
    slide = np.repeat([f"s{k}" for k in range(n_slides)], per)
    return ProbeUnits(np.zeros((n, g, g, 2, 2, 3), np.uint8), counts, slide, np.repeat(np.arange(n_slides) % 5, per))


def test_the_mlp_probe_reads_a_nonlinear_code_that_ridge_misses():
    rng = np.random.default_rng(0)
    u = constructed_units(rng, n_slides=20, per=4, g=4, mean_count=2.0)
    counts = u.counts
    idx = [COUNT_COLUMNS.index(t) for t in CELL_TARGETS]
    # each count enters the code only through a random sign: code = s * count, s = +-1 per unit.
    # |code| is the count, which a ridge probe cannot take (the sign averages the slope to 0)
    sign = rng.choice([-1.0, 1.0], size=(*counts.shape[:3], 1))
    code = counts[..., idx] * sign + 0.05 * rng.normal(size=(*counts.shape[:3], len(idx)))
    ridge = probe_predictions(code, u)["local"]
    mlp = mlp_probe_predictions(code, u, ProbeConfig(hidden=32, epochs=150, patience=20, lr=1e-2))["local"]
    for t in CELL_TARGETS:
        assert abs(fold_mean_pcc(ridge, t)) < 0.2
        assert fold_mean_pcc(mlp, t) > 0.8
    # out of fold, as ridge: a slide's units are predicted by one fold's probe
    assert mlp.groupby("slide").fold.nunique().eq(1).all()


def test_without_noise_inputs_the_generator_is_deterministic_and_has_no_strengths():
    torch.manual_seed(0)
    ae = StyleAutoencoder(replace(TINY, noise_inputs=False)).eval()
    x = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    np.testing.assert_array_equal(reconstruct(ae, x, seed=0), reconstruct(ae, x, seed=1))
    assert noise_strengths(ae).empty
    assert not any(isinstance(m, NoiseInjection) for m in ae.modules())
    # the same weights otherwise: the state dict lacks exactly the five strengths
    with_noise = set(StyleAutoencoder(TINY).state_dict())
    assert with_noise - set(ae.state_dict()) == {k for k in with_noise if k.endswith("noise.strength")}
    assert len(with_noise - set(ae.state_dict())) == 5


def test_a_checkpoint_config_from_before_noise_inputs_existed_is_still_the_same_config():
    cfg = train_config_for("local", PROFILES["quick"].features)
    old = cfg.to_dict()
    del old["model"]["noise_inputs"]  # as stored before the field existed: noise inputs on
    assert same_config(old, cfg)
    assert not same_config(old, replace(cfg, model=replace(cfg.model, noise_inputs=False)))
    assert not same_config({**cfg.to_dict(), "a_field_since_removed": 1}, cfg)


def test_changed_config_changes_only_what_it_names():
    base = train_config_for("local", PROFILES["quick"].features)
    c = changed_config(base, {"model.noise_inputs": False, "lambda_adv": 0.0})
    assert (c.model.noise_inputs, c.lambda_adv) == (False, 0.0)
    assert c.model.channel_base == base.model.channel_base and c.lambda_lpips == base.lambda_lpips
    assert changed_config(base, {}) == base
    assert TRAININGS["local"]["as the profile"] == TRAININGS["global"]["as the profile"] == {}


def test_global_units_put_the_local_grid_back_together():
    rng = np.random.default_rng(0)
    whole = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    local = np.stack([split_local(w, 16) for w in whole])  # (3, 4, 4, 16, 16, 3)
    counts = rng.poisson(1.0, (3, 4, 4, len(COUNT_COLUMNS)))
    u = ProbeUnits(local, counts, np.array(["a", "b", "c"]), np.array([0, 1, 2]))
    g = global_units(u)
    np.testing.assert_array_equal(g.patches[:, 0, 0], whole)
    np.testing.assert_array_equal(g.counts[:, 0, 0], counts.sum(axis=(1, 2)))
    assert list(g.slide) == ["a", "b", "c"]


def test_paired_differences_put_a_reading_code_above_noise_and_a_readout_level_with_itself():
    rng = np.random.default_rng(1)
    u = constructed_units(rng, n_slides=30, per=4, g=2, mean_count=3.0)
    idx = [COUNT_COLUMNS.index(t) for t in CELL_TARGETS]
    good = u.counts[..., idx] + 0.5 * rng.normal(size=(*u.counts.shape[:3], len(idx)))
    noise = rng.normal(size=good.shape)
    preds = {("E_L", "good"): probe_predictions(good, u), ("E_L", "noise"): probe_predictions(noise, u)}
    comparisons = (("local", ("E_L", "good"), ("E_L", "noise"), "q"),
                   ("local", ("E_L", "good"), ("E_L", "good"), "q"),
                   ("local", ("E_L", "good"), ("E_G", "absent"), "q"))
    d = paired_differences(preds, comparisons, n_boot=200)
    assert len(d) == 2  # the pair with an unprobed readout is left out
    above, same = d.iloc[0], d.iloc[1]
    assert above["diff"] > 0.5 and above.ci_low > 0.3 and above.ci_low <= above["diff"] <= above.ci_high
    assert same["diff"] == same.ci_low == same.ci_high == 0.0
    # readouts probed on other units are refused, not silently paired
    shuffled = {k: {lvl: df.sample(frac=1.0, random_state=0) for lvl, df in v.items()} for k, v in preds.items()}
    with pytest.raises(ValueError, match="different units"):
        paired_differences({**preds, ("E_L", "noise"): shuffled[("E_L", "noise")]}, comparisons[:1], n_boot=10)
