"""The development-cohort study that chooses how the extractors train (issue 16, item 1): the
probe, its scores, the slide bootstrap and the convergence measure, on constructed inputs."""
import numpy as np
import pandas as pd
import pytest

from isg_core.config import PROFILES
from isg_core.features.oracle import COUNT_COLUMNS
from isg_core.studies.extractor_choices import (
    CELL_TARGETS,
    VARIANTS,
    ProbeUnits,
    convergence,
    fold_mean_pcc,
    probe_predictions,
    slide_bootstrap_difference,
)


def units(n_slides=20, per=6, g=4, seed=0):
    rng = np.random.default_rng(seed)
    n = n_slides * per
    counts = rng.poisson(1.0, (n, g, g, len(COUNT_COLUMNS)))
    slide = np.repeat([f"s{k}" for k in range(n_slides)], per)
    fold = np.repeat(np.arange(n_slides) % 5, per)
    return ProbeUnits(np.zeros((n, g, g, 2, 2, 3), np.uint8), counts, slide, fold)


def test_a_code_that_carries_the_counts_is_read_and_noise_is_not():
    u = units()
    idx = [COUNT_COLUMNS.index(t) for t in CELL_TARGETS]
    rng = np.random.default_rng(1)
    mix = rng.normal(size=(len(idx), 16))
    good = u.counts[..., idx] @ mix + 0.01 * rng.normal(size=(*u.counts.shape[:3], 16))
    noise = rng.normal(size=good.shape)
    pg, pn = probe_predictions(good, u), probe_predictions(noise, u)
    for level in ("local", "patch"):
        for t in CELL_TARGETS:
            assert fold_mean_pcc(pg[level], t) > 0.99
            assert abs(fold_mean_pcc(pn[level], t)) < 0.3
    # out of fold: a slide's units are never in the fit that predicts them
    assert pg["local"].groupby("slide").fold.nunique().eq(1).all()
    d = slide_bootstrap_difference(pg["local"], pn["local"], n_boot=200)
    assert d["diff"] > 0.7 and 0 < d["ci_low"] <= d["diff"] <= d["ci_high"]
    same = slide_bootstrap_difference(pg["local"], pg["local"], n_boot=50)
    assert same["diff"] == same["ci_low"] == same["ci_high"] == 0


def test_convergence_is_the_last_window_change():
    flat = pd.DataFrame({"l1": np.r_[np.linspace(1, 0.2, 80), np.full(20, 0.2)]})
    assert convergence(flat) == pytest.approx(0.0)
    falling = pd.DataFrame({"l1": np.linspace(1.0, 0.1, 100)})
    # last 10 steps mean 0.1 + 4.5 * 0.00909 against the 10 before: a clear fall
    assert convergence(falling) < -0.3


def test_variants_change_only_what_they_name():
    f = PROFILES["quick"].features
    eq2, late = VARIANTS[0].config(f), VARIANTS[2].config(f)
    assert (eq2.lambda_adv, eq2.adv_start, eq2.scale) == (1.0, 0, "local")
    assert late.adv_start == int(2 / 3 * f.local_steps) and late.lambda_adv == 0.05
    assert VARIANTS[4].config(f).lambda_lpips == 0 and VARIANTS[5].config(f).bank_sampling == "uniform"
    assert eq2.model.channel_base == 512 and VARIANTS[7].config(f).model.channel_base == 256
    assert VARIANTS[7].config(f).model.channel_max == eq2.model.channel_max
    assert len({v.slug for v in VARIANTS}) == len(VARIANTS)


def test_codes_keep_the_grid_layout():
    """E_L's code and the descriptor of local patch (r, c) of global patch i land at [i, r, c]."""
    import torch

    from isg_core.features.bank import appearance_descriptor
    from isg_core.studies.extractor_choices import descriptor_codes, local_codes

    u = units(n_slides=2, per=2, g=3)
    rng = np.random.default_rng(2)
    u.patches = rng.integers(0, 256, (4, 3, 3, 8, 8, 3), dtype=np.uint8)
    d = descriptor_codes(u)
    assert d.shape == (4, 3, 3, 13)
    assert np.allclose(d[2, 1, 0], appearance_descriptor(u.patches[2, 1, 0][None])[0])
    enc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 5))
    codes = local_codes(enc, u, resolution=8, batch=7)  # batches cut across global patches
    from isg_core.features.bank import to_tensor
    with torch.no_grad():
        want = enc(to_tensor(u.patches[3, 2, 1][None], 8)).numpy()[0]
    assert codes.shape == (4, 3, 3, 5) and np.allclose(codes[3, 2, 1], want, atol=1e-6)
