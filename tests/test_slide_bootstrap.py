"""Known answers for the paired slide (and seed) bootstrap of :mod:`isg_core.experiments.slide_bootstrap`:
constructed inputs whose PCCs, headline and intervals are known by hand, each able to fail."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from isg_core.experiments import slide_bootstrap as sb
from isg_core.experiments.scoring import cv_metrics
from isg_core.experiments.slide_bootstrap import (
    GENE_PROGRAMMES,
    RESAMPLED,
    bootstrap_sentence,
    headline_pcc,
    paired_slide_bootstrap,
    pcc_or_zero,
    per_programme_differences,
)
from isg_core.experiments.statistics import VERDICTS
from isg_core.metrics import pearson_per_column


def cohort(per_stratum: int, folds: int = 5, types: tuple[str, ...] = ("LIHC", "COAD"), genes: int = 4,
           seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``truth`` (slides x genes, standard normal) and ``groups`` with ``per_stratum`` slides in every
    (fold, cancer type)."""
    rng = np.random.default_rng(seed)
    keys = [(f, ct) for f in range(folds) for ct in types for _ in range(per_stratum)]
    ids = [f"s{i:04d}" for i in range(len(keys))]
    groups = pd.DataFrame(keys, index=ids, columns=["fold", "cancer_type"])
    truth = pd.DataFrame(rng.normal(size=(len(ids), genes)), index=ids, columns=[f"g{j}" for j in range(genes)])
    return truth, groups


def noise_like(truth: pd.DataFrame, scale: float = 1.0, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(scale * rng.normal(size=truth.shape), index=truth.index, columns=truth.columns)


def width(res: dict) -> float:
    return res["95% CI high"] - res["95% CI low"]


# --- pcc_or_zero --------------------------------------------------------------------------------------
def test_pcc_or_zero_known_values():
    y = [1.0, 2.0, 3.0]
    assert pcc_or_zero(y, [1, 2, 3]) == pytest.approx(1.0)
    assert pcc_or_zero(y, [3, 2, 1]) == pytest.approx(-1.0)
    assert pcc_or_zero(y, [1, 3, 2]) == pytest.approx(0.5)
    assert pcc_or_zero(y, [5, 5, 5]) == 0.0                   # constant prediction: a score of 0
    assert pcc_or_zero([4, 4, 4], [1, 2, 3]) == 0.0           # constant truth: 0 too
    assert pcc_or_zero([1, np.nan, 3], [2, 7, 2]) == 0.0      # constant over the finite pairs
    assert np.isnan(pcc_or_zero([1, np.nan, 3], [1, 2, np.nan]))  # one finite pair: no score
    assert np.isnan(pcc_or_zero([1.0], [2.0]))
    # agrees with metrics.pearson_per_column wherever that one is defined
    rng = np.random.default_rng(0)
    t, p = rng.normal(size=(30, 5)), rng.normal(size=(30, 5))
    ref = pearson_per_column(t, p)
    assert [pcc_or_zero(t[:, j], p[:, j]) for j in range(5)] == pytest.approx(list(ref), abs=1e-12)


def test_constant_prediction_is_counted_as_zero():
    """Two folds, one type, two genes.  ``good`` is exact (PCC 1 everywhere); ``flat`` is exact except
    that it predicts one value for gene g0 in fold 0.  Counted as 0, that cell costs exactly
    (1 - 0) / 2 cells / 2 folds = 0.25 of the headline; dropped (NaN) it would cost nothing."""
    truth, groups = cohort(6, folds=2, types=("LIHC",), genes=2)
    good = truth.copy()
    flat = truth.copy()
    flat.loc[groups.fold == 0, "g0"] = 0.3
    assert headline_pcc(good, truth, groups) == pytest.approx(1.0)
    assert headline_pcc(flat, truth, groups) == pytest.approx(0.75)
    res = paired_slide_bootstrap([good], [flat], truth, groups, n_boot=200)
    assert res["mean PCC difference"] == pytest.approx(0.25)


# --- the one aggregation ----------------------------------------------------------------------------
def test_headline_by_hand_two_folds_two_types():
    """Type X scores genes g1, g2; type Y only g3 (NaN truth elsewhere).  Cell PCCs, by hand:
    fold 0: X g1 = 1, X g2 = 0.5, Y g3 = 0 (constant) -> (1 + 0.5 + 0) / 3 = 0.5;
    fold 1: X g1 = -1, X g2 = -0.5, Y g3 = 0.5       -> -1 / 3;
    headline = (0.5 - 1/3) / 2 = 1/12.  (Equal weight per task would give (0.375 - 0.125) / 2 = 0.125;
    dropping the constant cell, (0.75 - 1/3) / 2 = 0.208: each alternative fails here.)"""
    nan = np.nan
    ids = [f"s{i}" for i in range(12)]
    groups = pd.DataFrame({"fold": [0] * 6 + [1] * 6, "cancer_type": (["X"] * 3 + ["Y"] * 3) * 2}, index=ids)
    tx, ty = [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]
    truth = pd.DataFrame({"g1": tx + [nan] * 3 + tx + [nan] * 3,
                          "g2": tx + [nan] * 3 + tx + [nan] * 3,
                          "g3": [nan] * 3 + ty + [nan] * 3 + ty}, index=ids)
    pred = pd.DataFrame({"g1": [1, 2, 3, 9, 9, 9, 3, 2, 1, 9, 9, 9],
                         "g2": [1, 3, 2, 9, 9, 9, 2, 3, 1, 9, 9, 9],
                         "g3": [0, 0, 0, 7, 7, 7, 0, 0, 0, 2, 1, 3]}, index=ids, dtype=float)
    assert headline_pcc(pred, truth, groups) == pytest.approx(1 / 12, abs=1e-12)


def test_headline_matches_the_tables_pcc_mean_when_nothing_is_constant():
    """The table's ``PCC mean`` (cv_metrics rows, mean over (task, gene) per fold, then over folds)
    equals the headline when no prediction is constant: one aggregation."""
    from isg_core.config import TASK_GENES

    rng = np.random.default_rng(3)
    ids, rows, types = [], [], ("LIHC", "COAD", "PRAD")
    for f in range(3):
        for ct in types:
            for _ in range(8):
                ids.append(f"s{len(ids)}")
                rows.append((f, ct))
    groups = pd.DataFrame(rows, index=ids, columns=["fold", "cancer_type"])
    genes = list(dict.fromkeys(g for ct in types for g in TASK_GENES[ct]))
    truth = pd.DataFrame(np.nan, index=ids, columns=genes)
    for ct in types:
        s = groups.index[groups.cancer_type == ct]
        truth.loc[s, list(TASK_GENES[ct])] = rng.normal(size=(len(s), len(TASK_GENES[ct])))
    pred = truth + rng.normal(size=truth.shape)
    table = cv_metrics(pred, truth, groups.fold, groups.cancer_type).groupby("fold").pcc.mean().mean()
    assert headline_pcc(pred, truth, groups) == pytest.approx(table, abs=1e-12)


# --- the bootstrap ----------------------------------------------------------------------------------
def test_method_against_itself_is_exactly_zero():
    truth, groups = cohort(10)
    pred = truth + noise_like(truth)
    res = paired_slide_bootstrap([pred], [pred.copy()], truth, groups, n_boot=300)
    assert res["mean PCC difference"] == 0.0
    assert (res["95% CI low"], res["95% CI high"]) == (0.0, 0.0)
    assert res["a wins"] == 0.0
    assert res["verdict"] == "not distinguishable"


def test_signal_beats_noise_with_the_right_sign():
    truth, groups = cohort(20)
    good = truth + noise_like(truth, 0.3)
    noise = noise_like(truth, 1.0, seed=2)
    res = paired_slide_bootstrap([good], [noise], truth, groups, n_boot=500, comparison="good - noise")
    assert res["95% CI low"] > 0 and res["verdict"] == "a higher" and res["a wins"] == 1.0
    assert res["95% CI low"] <= res["mean PCC difference"] <= res["95% CI high"]
    back = paired_slide_bootstrap([noise], [good], truth, groups, n_boot=500)
    assert back["95% CI high"] < 0 and back["verdict"] == "a lower"
    for key, value in {"n_boot": 500, "resampled": RESAMPLED, "seeds": "a: 1, b: 1"}.items():
        assert res[key] == value
    s = bootstrap_sentence(res)
    assert s.startswith("good - noise: +") and VERDICTS["a higher"].format(a="good") in s and RESAMPLED in s


def test_interval_widens_with_fewer_slides_per_stratum():
    widths = {}
    for n in (2, 40):
        truth, groups = cohort(n, seed=5)
        a = truth + noise_like(truth, 1.0, seed=6)
        b = noise_like(truth, 1.0, seed=7)
        widths[n] = width(paired_slide_bootstrap([a], [b], truth, groups, n_boot=400))
    assert widths[2] > 2 * widths[40] > 0


def test_resamples_stay_within_their_stratum_draws():
    truth, groups = cohort(7, folds=3, types=("LIHC", "COAD", "PRAD"))
    d = sb._Design(truth, groups)
    keys = list(groups.loc[truth.index].itertuples(index=False, name=None))
    for stratum, draws in zip(d.strata, d.draw(200, np.random.default_rng(0))):
        assert draws.shape == (200, 7)
        assert {keys[i] for i in draws.ravel()} == {stratum}


def test_resamples_stay_within_their_stratum_answer():
    """``b`` = 3 * truth + a large offset that differs per (fold, type): within a stratum it is a
    perfect predictor (PCC 1, like ``a`` = truth), across strata it is not.  So every replicate's
    difference is 0 unless a resample mixes strata."""
    truth, groups = cohort(6, folds=3, types=("LIHC", "COAD"))
    code = groups.fold * 10 + (groups.cancer_type == "COAD")
    b = 3 * truth + 50.0 * code.to_numpy()[:, None]
    pooled = pd.DataFrame({"fold": 0, "cancer_type": "all"}, index=groups.index)
    assert headline_pcc(b, truth, pooled) < 0.5            # crossing strata would change the answer
    res = paired_slide_bootstrap([truth], [b], truth, groups, n_boot=300)
    assert abs(res["95% CI low"]) < 1e-9 and abs(res["95% CI high"]) < 1e-9


def test_spy_sees_only_one_stratum_per_cell(monkeypatch):
    """Each stratum's truth lies in its own band [100 k + 46, 100 k + 54]; every PCC the bootstrap computes
    must see values from one band only."""
    truth, groups = cohort(5, folds=2, types=("LIHC", "COAD"))
    code = (groups.fold * 2 + (groups.cancer_type == "COAD")).to_numpy()
    truth = truth.clip(-4, 4) + 100.0 * code[:, None] + 50.0
    seen = []
    real = sb._pcc_cells

    def spy(t, p):
        bands = np.floor(np.asarray(t) / 100.0)
        seen.append(bool((bands.min(-2) == bands.max(-2)).all()))
        return real(t, p)

    monkeypatch.setattr(sb, "_pcc_cells", spy)
    paired_slide_bootstrap([truth + 1], [truth * 2], truth, groups, n_boot=50)
    assert seen and all(seen)


def test_a_noisy_seed_widens_the_interval():
    truth, groups = cohort(20, seed=8)
    perfect = truth + noise_like(truth, 0.1, seed=9)
    noisy = noise_like(truth, 1.0, seed=10)
    b = truth + noise_like(truth, 1.0, seed=11)
    one = paired_slide_bootstrap([perfect], [b], truth, groups, n_boot=400)
    two = paired_slide_bootstrap([perfect, noisy], [b], truth, groups, n_boot=400)
    assert two["seeds"] == "a: 2, b: 1" and one["seeds"] == "a: 1, b: 1"
    assert width(two) > 3 * width(one)
    # the point estimate averages the seeds' headlines
    mean_a = (headline_pcc(perfect, truth, groups) + headline_pcc(noisy, truth, groups)) / 2
    assert two["mean PCC difference"] == pytest.approx(mean_a - headline_pcc(b, truth, groups))


def test_seed_counts_may_differ_and_a_single_frame_is_one_seed():
    truth, groups = cohort(8)
    a = [truth + noise_like(truth, 1.0, seed=s) for s in (1, 2, 3)]
    res = paired_slide_bootstrap(a, truth + noise_like(truth, 1.0, seed=4), truth, groups, n_boot=100)
    assert res["seeds"] == "a: 3, b: 1"


def test_deterministic_for_a_fixed_seed():
    truth, groups = cohort(10)
    a = [truth + noise_like(truth, 1.0, seed=s) for s in (1, 2)]
    b = [noise_like(truth, 1.0, seed=s) for s in (3, 4, 5)]
    r1 = paired_slide_bootstrap(a, b, truth, groups, n_boot=300, seed=4)
    r2 = paired_slide_bootstrap(a, b, truth, groups, n_boot=300, seed=4)
    r3 = paired_slide_bootstrap(a, b, truth, groups, n_boot=300, seed=5)
    assert pd.Series(r1).equals(pd.Series(r2))  # NaN (an undefined relative gain) equals itself here
    assert (r1["95% CI low"], r1["95% CI high"]) != (r3["95% CI low"], r3["95% CI high"])


def test_bad_inputs_are_refused():
    truth, groups = cohort(4)
    with pytest.raises(ValueError, match="lacks"):
        paired_slide_bootstrap([truth.iloc[:-1]], [truth], truth, groups, n_boot=10)
    with pytest.raises(ValueError, match="cancer_type"):
        headline_pcc(truth, truth, groups[["fold"]])
    with pytest.raises(ValueError, match="no prediction frame"):
        paired_slide_bootstrap([], [truth], truth, groups, n_boot=10)


# --- per programme -----------------------------------------------------------------------------------
def test_per_programme_rows_for_the_programmes_present():
    truth, groups = cohort(10, genes=5)
    truth.columns = ["CD3D", "CD3E", "MS4A1", "MKI67", "OTHER"]
    good = truth + noise_like(truth, 0.3)
    noise = noise_like(truth, 1.0, seed=2)
    out = per_programme_differences([good], [noise], truth, groups, n_boot=200)
    assert list(out.programme) == ["T-cell", "B-cell", "MKI67"]
    assert list(out.genes) == ["CD3D, CD3E", "MS4A1", "MKI67"]
    assert (out.verdict == "a higher").all() and (out.resampled == RESAMPLED).all() and (out.n_boot == 200).all()
    t_cell = paired_slide_bootstrap([good], [noise], truth, groups, n_boot=200, genes=["CD3D", "CD3E"])
    assert out.iloc[0]["mean PCC difference"] == pytest.approx(t_cell["mean PCC difference"])
    assert out.iloc[0]["95% CI low"] == t_cell["95% CI low"]
    assert set(GENE_PROGRAMMES) == {"T-cell", "B-cell", "MKI67", "TP63", "epithelial"}


def test_two_thousand_replicates_run_in_seconds():
    """450 slides x 10 genes x 5 folds (3 cancer types), 2 + 3 seeds, 2000 replicates."""
    truth, groups = cohort(30, folds=5, types=("LIHC", "COAD", "PRAD"), genes=10)
    assert truth.shape == (450, 10)
    a = [truth + noise_like(truth, 2.0, seed=s) for s in (1, 2)]
    b = [noise_like(truth, 1.0, seed=s) for s in (3, 4, 5)]
    t0 = time.perf_counter()
    res = paired_slide_bootstrap(a, b, truth, groups, n_boot=2000)
    assert time.perf_counter() - t0 < 20
    assert res["verdict"] == "a higher"


def test_table5_differences_columns_and_a_clear_winner():
    """Table 5's paired differences carry ``comparison, level, diff, ci_low, ci_high`` first; a feature
    set whose predictions track the truth beats one that predicts noise, with the interval above 0."""
    from types import SimpleNamespace

    from isg_core.config import TASK_GENES
    from isg_core.experiments.table5 import PATCH_TARGETS, ProbePredictions, table5_differences

    rng = np.random.default_rng(0)
    rows, genes = [], sorted({g for gs in TASK_GENES.values() for g in gs})
    for ct in TASK_GENES:
        rows += [{"slide_id": f"{ct}-{i}", "cancer_type": ct, "fold": i % 5} for i in range(30)]
    manifest = pd.DataFrame(rows)
    targets = pd.DataFrame(rng.normal(size=(len(manifest), len(genes))), index=manifest.slide_id, columns=genes)
    cohort = SimpleNamespace(manifest=manifest, targets=targets)
    good = targets + 0.3 * rng.normal(size=targets.shape)
    noise = pd.DataFrame(rng.normal(size=targets.shape), index=targets.index, columns=genes)
    # patch level: 40 slides x 25 patches; set a tracks each cell count, set b predicts noise
    patches = pd.DataFrame({"slide_id": np.repeat([f"s{k}" for k in range(40)], 25),
                            "row": np.tile(np.arange(25), 40), "col": 0})
    patches["fold"] = patches.slide_id.str[1:].astype(int) % 5
    pa, pb = patches.copy(), patches.sample(frac=1.0, random_state=1)  # b in another row order
    for t in PATCH_TARGETS:
        y = rng.normal(size=len(patches))
        pa[t], pa[f"{t}:pred"] = y, y + 0.5 * rng.normal(size=len(y))
        pb[t] = pd.Series(y, index=patches.index).loc[pb.index].to_numpy()
        pb[f"{t}:pred"] = rng.normal(size=len(y))
    long = pd.DataFrame(columns=["features", "level", "target", "pcc"])
    preds = ProbePredictions({"a": good, "b": noise}, {"a": pa, "b": pb})
    d = table5_differences(long, preds, cohort, [("a", "b")], n_boot=200)
    assert list(d.columns[:5]) == ["comparison", "level", "diff", "ci_low", "ci_high"]
    assert list(d.level) == ["slide", "patch"] and set(d.comparison) == {"a - b"}
    assert (d["diff"] > 0.5).all() and (d.ci_low > 0).all() and (d.ci_low <= d["diff"]).all()
    patch = d[d.level == "patch"].iloc[0]
    assert patch["PCC a"] == pytest.approx(1 / np.sqrt(1.25), abs=0.03)  # corr(y, y + 0.5 e)
    assert abs(patch["PCC b"]) < 0.05 and "slides within folds (40)" in patch.resampled
    # without patch predictions (a plain dict) there is no patch-level row, never a target resample
    assert list(table5_differences(long, {"a": good, "b": noise}, cohort, [("a", "b")], n_boot=50).level) == ["slide"]
    # adjusted as one family: a clear winner stays one after Holm; a set against its own copy
    # (a tie by construction) is not distinguishable, at both levels
    preds3 = ProbePredictions({"a": good, "b": noise, "c": good.copy()}, {"a": pa, "b": pb, "c": pa.copy()})
    adj = table5_differences(long, preds3, cohort, [("a", "b"), ("a", "c")], n_boot=200, adjust=True)
    assert {"seeds", "adjusted", "p", "p Holm", "Holm CI low", "Holm CI high", "verdict (Holm)"} <= set(adj.columns)
    assert list(adj.level) == ["slide", "slide", "patch", "patch"]
    win, tie = adj[adj.comparison == "a - b"], adj[adj.comparison == "a - c"]
    assert (win["verdict (Holm)"] == "a higher").all() and (win["Holm CI low"] <= win.ci_low).all()
    assert (tie["verdict (Holm)"] == "not distinguishable").all() and (tie["diff"] == 0).all()
    assert (adj["p Holm"] >= adj["p"]).all()


def test_patch_level_intervals_resample_slides_not_patches():
    """Patches of one slide share its tissue: with a per-slide effect, the slide bootstrap's interval
    is wider than a bootstrap of independent patches would be; the point value is unchanged."""
    from isg_core.experiments.slide_draws import SlideDraws
    from isg_core.experiments.table5 import patch_probe_score

    rng = np.random.default_rng(3)
    n_slides, per = 30, 40
    pred = pd.DataFrame({"slide_id": np.repeat(np.arange(n_slides), per)})
    pred["fold"] = pred.slide_id % 5
    slide_effect = np.repeat(rng.normal(size=n_slides), per)  # the prediction errs by slide
    y = rng.normal(size=len(pred))
    pred["n_lymphocyte"], pred["n_lymphocyte:pred"] = y, y + 2.0 * slide_effect
    score = patch_probe_score(pred, ("n_lymphocyte",))
    by_slide = SlideDraws(pred.slide_id.to_numpy(), pred.fold.to_numpy(), 300).interval(score,
                                                                                        pred.slide_id.to_numpy())
    unit = np.arange(len(pred))  # every patch its own unit: the wrong resampling
    by_patch = SlideDraws(unit, pred.fold.to_numpy(), 300).interval(score, unit)
    assert by_slide["value"] == by_patch["value"]
    assert by_slide["ci_high"] - by_slide["ci_low"] > 2 * (by_patch["ci_high"] - by_patch["ci_low"])


def test_slide_draws_scored_in_batches_give_the_one_draw_values():
    """Table 5's patch intervals score 64 slide draws at a time; the values and the interval are
    those of the draw-by-draw loop, a fold with a constant prediction scoring 0 in both."""
    from isg_core.experiments.slide_draws import SlideDraws, probe_score, weighted_fold_pcc

    rng = np.random.default_rng(0)
    n = 3000
    slides = rng.integers(0, 60, n)
    df = pd.DataFrame({"slide": slides, "fold": slides % 5})
    for t in "ab":
        df[t] = rng.normal(size=n)
        df[f"{t}:pred"] = df[t] + rng.normal(size=n)
    df.loc[df.fold == 2, "b:pred"] = 1.0
    draws = SlideDraws(df.slide.to_numpy(), df.fold.to_numpy(), 200)
    stat = probe_score(df, ["a", "b"])
    reps: list = []
    one, many = draws.interval(stat, df.slide.to_numpy()), draws.interval(stat, df.slide.to_numpy(), batched=True,
                                                                           replicates=reps)
    assert one["value"] == many["value"]
    assert len(reps) == 1 and reps[0].shape == (200,)  # the draws' values, for a family adjustment
    assert np.percentile(reps[0], 2.5) == pytest.approx(many["ci_low"], abs=1e-15)
    assert abs(one["ci_low"] - many["ci_low"]) < 1e-12 and abs(one["ci_high"] - many["ci_high"]) < 1e-12
    w = draws.counts[:5][:, pd.Index(draws.slides).get_indexer(df.slide.to_numpy())]
    np.testing.assert_allclose(stat(w), [stat(x) for x in w], rtol=0, atol=1e-14)
    m = (df.fold == 2).to_numpy()
    assert weighted_fold_pcc(df.b[m].to_numpy(), df["b:pred"][m].to_numpy(), df.fold[m].to_numpy(), None) == 0.0
