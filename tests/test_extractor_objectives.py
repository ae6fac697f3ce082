"""Issue 31's study: its slide-resampled statistics on constructed cases with known answers,
and its objectives as config changes of the profile's Eq. 2."""
import numpy as np
import pandas as pd
import pytest

from isg_core.config import get_profile
from isg_core.experiments.slide_draws import SlideDraws, weighted_fold_pcc
from isg_core.features.train import train_config_for
from isg_core.studies.extractor_choices import fold_mean_pcc
from isg_core.studies.extractor_objectives import (
    OBJECTIVES,
    minus,
    nuclear_ratio_stat,
    pixel_errors,
    probe_score,
    r2_stat,
    reached,
)


def preds(seed=0, n_slides=10, per=6):
    rng = np.random.default_rng(seed)
    slide = np.repeat([f"s{k}" for k in range(n_slides)], per)
    fold = np.repeat(np.arange(n_slides) % 5, per)
    df = pd.DataFrame({"slide": slide, "fold": fold})
    for t in ("n_lymphocyte", "n_mitosis", "n_tumour"):
        y = rng.poisson(3, len(df)).astype(float)
        df[t], df[f"{t}:pred"] = y, y + rng.normal(0, 2, len(df))
    return df


def test_weighted_pcc_is_the_fold_mean_pcc_and_weights_are_duplicated_rows():
    df = preds()
    assert probe_score(df)(None) == pytest.approx(np.mean([fold_mean_pcc(df, t) for t in
                                                          ("n_lymphocyte", "n_mitosis", "n_tumour")]))
    w = np.random.default_rng(1).integers(0, 3, len(df)).astype(float)
    dup = df.loc[df.index.repeat(w.astype(int))]
    assert weighted_fold_pcc(df.n_tumour.to_numpy(), df["n_tumour:pred"].to_numpy(), df.fold.to_numpy(), w) == \
        pytest.approx(fold_mean_pcc(dup, "n_tumour"))
    const = df.assign(**{"n_tumour:pred": 1.0})
    assert probe_score(const, ("n_tumour",))(None) == 0.0


def test_draws_resample_slides_within_folds_and_pair_the_arms():
    df = preds()
    draws = SlideDraws(df.slide.to_numpy(), df.fold.to_numpy(), n_boot=200)
    per_fold = pd.Series(df.fold.to_numpy(), index=df.slide).groupby(level=0).first()
    for c in draws.counts[:20]:
        assert np.array_equal(pd.Series(c, index=draws.slides).groupby(per_fold).sum().to_numpy(),
                              per_fold.value_counts().sort_index().to_numpy())
    s = probe_score(df)
    same = draws.interval(minus(s, s), df.slide.to_numpy())
    assert same == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    iv = draws.interval(s, df.slide.to_numpy())
    assert iv["ci_low"] < iv["value"] < iv["ci_high"]
    with pytest.raises(ValueError):
        draws.interval(s, np.array(["unknown"] * len(df)))


def test_pixel_r2_and_nuclear_l1_on_known_reconstructions():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 8, 8, 3)).astype(np.uint8)
    perfect = pixel_errors(x, x, nuclear_level=0.5)
    assert r2_stat(perfect)(None) == 1.0
    mean_image = np.broadcast_to(x.astype(np.float32).mean(0).round().astype(np.uint8), x.shape)
    assert r2_stat(pixel_errors(x, mean_image, 0.5))(None) == pytest.approx(0.0, abs=1e-3)
    # an error of 51 levels (0.2) on nuclear pixels only, none elsewhere: ratio far above 1; and on
    # every pixel alike: ratio 1
    from isg_core.studies.extractor_limits import haematoxylin_density
    nuc = haematoxylin_density(x) > 0.5
    off = x.astype(int)
    off[nuc] = np.clip(off[nuc] + 51, 0, 255)
    e = pixel_errors(x, off.astype(np.uint8), 0.5)
    assert nuclear_ratio_stat(e)(None) > 10
    dark = (x // 2).astype(np.uint8)  # half of every value: errors alike, not equal; ratio finite
    assert 0.1 < nuclear_ratio_stat(pixel_errors(x, dark, 0.5))(None) < 10
    w = np.zeros(20)
    w[:10] = 1
    assert r2_stat(perfect)(w) == 1.0


def test_objectives_are_config_changes_of_the_profile():
    prof = get_profile("smoke")
    base = train_config_for("local", prof.features)
    assert OBJECTIVES[0].config("local", prof.features, seed=0) == base  # Eq. 2 as printed
    adaptive = OBJECTIVES[2].config("local", prof.features, seed=1)
    assert adaptive.adv_weight == "adaptive" and adaptive.adv_start == round(0.5 * base.steps)
    assert adaptive.seed == 1
    quiet = OBJECTIVES[-1].config("local", prof.features, seed=0, **{"model.code_dim": 16})
    assert not quiet.model.noise_inputs and quiet.model.code_dim == 16 and quiet.lambda_adv == 0
    assert len({o.slug for o in OBJECTIVES}) == len(OBJECTIVES)


def test_targets_are_reached_by_the_interval():
    row = {"pixel R2": 0.85, "pixel R2 low": 0.8, "pixel R2 high": 0.91,
           "nuclear / other L1": 1.3, "nuclear / other L1 low": 1.25, "nuclear / other L1 high": 1.4}
    assert reached(row, "local") == "pixel R2 reached; nuclear L1 missed"
    assert reached({**row, "pixel R2 high": 0.89}, "local").startswith("pixel R2 missed")


def test_split_by_scale_keeps_each_scales_rows_and_the_classical_cube_with_e_l():
    from isg_core.studies.extractor_objectives import CLASSICAL_ROW, split_by_scale

    out = {"summary": pd.DataFrame({"extractor": ["none", "E_L", "E_G", "E_L"],
                                    "objective": [CLASSICAL_ROW, "a", "a", "b"]}),
           "seeds": pd.DataFrame({"scale": ["local", "global", "local"], "seed": [0, 0, 1]}),
           "rate_distortion": pd.DataFrame({"extractor": ["E_G", "E_L"], "code width d": [16, 16]})}
    loc, glo = split_by_scale(out, "local"), split_by_scale(out, "global")
    assert list(loc["summary"].objective) == [CLASSICAL_ROW, "a", "b"]
    assert list(glo["summary"].extractor) == ["E_G"]
    assert list(loc["seeds"].seed) == [0, 1] and list(glo["seeds"].seed) == [0]
    assert list(loc["rate_distortion"].extractor) == ["E_L"] and list(glo["rate_distortion"].extractor) == ["E_G"]
    # the code-width curve alone (no objective ran): empty tables without columns
    alone = split_by_scale({**out, "summary": pd.DataFrame([]), "seeds": pd.DataFrame([])}, "local")
    assert alone["summary"].empty and list(alone["rate_distortion"]["code width d"]) == [16]


def test_with_local_size_changes_q_and_e_ls_resolution_only_and_tiles_apart():
    from isg_core.config import tiles_folder, with_local_size
    from isg_core.errors import IsgError

    quick = get_profile("quick")
    q16 = with_local_size(quick, 16)
    assert (q16.tiling.local_size, q16.tiling.global_size, q16.tiling.grid) == (16, 256, 16)
    assert q16.features.local_resolution == 16 and q16.features.global_resolution == quick.features.global_resolution
    assert train_config_for("local", q16.features).model.resolution == 16
    assert (tiles_folder(quick), tiles_folder(q16)) == ("tiles", "tiles-q16")
    assert with_local_size(get_profile("smoke"), 16).features.local_resolution == 16  # never upsampled
    with pytest.raises(IsgError, match="multiple of local size"):
        with_local_size(quick, 24)


def test_the_figure_puts_each_objective_on_one_row_in_every_panel():
    """A row without a pixel R^2 (the classical cube) must not shift the other panel's rows."""
    import matplotlib.pyplot as plt

    from isg_core.studies.extractor_objectives import objectives_figure

    key = "local: code minus input descriptor (MLP)"
    s = pd.DataFrame({"extractor": ["E_L"] * 3, "objective": ["a", "b", "classical"],
                      "pixel R2": [0.3, 0.8, np.nan], "pixel R2 low": [0.2, 0.7, np.nan],
                      "pixel R2 high": [0.4, 0.9, np.nan],
                      key: [-0.2, -0.1, 0.0], f"{key} low": [-0.3, -0.2, -0.1], f"{key} high": [-0.1, 0.0, 0.1]})
    fig = objectives_figure({"summary": s})
    axes = fig.axes
    assert len(axes) == 2 and all(ax.get_ylim() == (2.5, -0.5) for ax in axes)
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["E_L: a", "E_L: b", "E_L: classical"]
    plt.close(fig)


def test_the_rate_distortion_figure_plots_each_measure_against_the_code_width():
    import matplotlib.pyplot as plt

    from isg_core.studies.extractor_objectives import rate_distortion_figure

    key = "local: code, MLP"
    rd = pd.DataFrame({"extractor": ["E_L"] * 3, "code width d": [16, 32, 64],
                       "encoder GFLOPs per patch": [0.01, 0.011, 0.012],
                       "pixel R2": [0.5, 0.7, 0.8], "pixel R2 low": [0.4, 0.6, 0.7], "pixel R2 high": [0.6, 0.8, 0.9],
                       key: [0.40, 0.44, 0.45], f"{key} low": [0.3, 0.4, 0.4], f"{key} high": [0.5, 0.5, 0.5]})
    fig = rate_distortion_figure(rd)
    axes = fig.axes
    assert len(axes) == 2  # no 'minus input' column: no third panel
    assert axes[0].get_xscale() == "log" and axes[0].get_xlabel() == "code width d (channels)"
    line = axes[1].get_lines()[0]
    assert list(line.get_xdata()) == [16, 32, 64] and list(line.get_ydata()) == [0.40, 0.44, 0.45]
    plt.close(fig)


def test_only_with_no_index_runs_no_objective(monkeypatch):
    """``--only`` alone (the --widths curve by itself) must not fall back to every objective."""
    import argparse

    from isg_core.studies import extractor_objectives as eo

    seen = {}

    def fake_study(prof, **kw):
        seen["objectives"] = kw["objectives"]
        return {"summary": pd.DataFrame([]), "seeds": pd.DataFrame([]), "rate_distortion": pd.DataFrame([]),
                "units": {}}

    written = []
    monkeypatch.setattr(eo, "objectives_study", fake_study)
    monkeypatch.setattr(eo, "write_table", lambda df, name, *a, **k: written.append(name))
    monkeypatch.setattr(eo, "save_figure", lambda fig, name, *a, **k: written.append(name))
    monkeypatch.setattr(eo, "objectives_figure", lambda part: None)
    args = argparse.Namespace(threads=1, profile="smoke", scales=["local"], seeds=[0], widths=None,
                              device=None, local_size=None, only=[])
    eo.run(args, "isg study extractor-objectives --only")
    assert seen["objectives"] == () and written == []  # nothing ran: the objectives' tables are kept
    eo.run(argparse.Namespace(**{**vars(args), "only": None}), "isg study extractor-objectives")
    assert seen["objectives"] == eo.OBJECTIVES
    eo.run(argparse.Namespace(**{**vars(args), "only": [0, 5]}), "isg study extractor-objectives --only 0 5")
    assert [o.name for o in seen["objectives"]] == [eo.OBJECTIVES[0].name, eo.OBJECTIVES[5].name]


def test_each_objective_is_compared_with_eq2_on_the_same_draws():
    """summarise(..., versus=Eq. 2's runs): '<measure> minus Eq. 2 as printed' is the paired
    difference of the seed means, with an interval from the same slide draws."""
    from types import SimpleNamespace

    from isg_core.studies.extractor_objectives import VERSUS_MEASURES, summarise

    n_slides, per, g = 10, 6, 2
    units = SimpleNamespace(slide=np.repeat([f"s{k}" for k in range(n_slides)], per),
                            patches=np.zeros((n_slides * per, g, g, 1)))
    rng = np.random.default_rng(0)

    def run(seed, noise):
        x = rng.integers(0, 256, (n_slides * per * g * g, 4, 4, 3)).astype(np.uint8)
        r = np.clip(x.astype(int) + rng.normal(0, noise, x.shape), 0, 255).astype(np.uint8)
        code = {lv: preds(seed) for lv in ("local", "patch")}
        return {"step": 10, "errors": pixel_errors(x, r, 0.5), "code": code, "reconstruction": code}

    ref = {lv: preds(9) for lv in ("local", "patch")}
    draws = SlideDraws(units.slide, np.arange(len(units.slide)) // per % 5, n_boot=100)
    eq2 = [run(0, 60.0), run(1, 60.0)]
    better = [run(2, 5.0), run(3, 5.0)]
    base = summarise("Eq. 2 as printed", eq2, ref, ref, units, draws)
    row = summarise("sharper", better, ref, ref, units, draws, versus=("Eq. 2 as printed", eq2))
    key = "pixel R2 minus Eq. 2 as printed"
    assert not any(k.endswith("minus Eq. 2 as printed") for k in base)
    assert row[key] == pytest.approx(row["pixel R2"] - base["pixel R2"])
    assert 0 < row[f"{key} low"] <= row[key] <= row[f"{key} high"]
    assert {f"{m} minus Eq. 2 as printed" for m in VERSUS_MEASURES} <= set(row)
    # against itself: exactly 0, on every draw
    same = summarise("Eq. 2 as printed", eq2, ref, ref, units, draws, versus=("Eq. 2 as printed", eq2))
    assert same[key] == same[f"{key} low"] == same[f"{key} high"] == 0.0
