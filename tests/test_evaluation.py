"""The evaluation of issue 15: early stopping on PCC or none, HE2RNA's prediction floor, the
linear oracle on slide totals, relative gains, seeds in Table 3's bootstrap, cohort roles."""
from __future__ import annotations

from types import SimpleNamespace
from unittest.mock import patch

import numpy as np
import pandas as pd
import pytest
import torch

from isg_core.config import PROFILES, SimConfig
from isg_core.experiments import Experiment, headline_pcc, paired_slide_bootstrap, seed_auc_bootstrap
from isg_core.experiments.runner import MSIResult
from isg_core.experiments.statistics import paired_auc_difference
from isg_core.metrics import roc_auc
from isg_core.models.linear_totals import cross_validate_linear, ridge_fit_predict
from isg_core.train.engine import TrainConfig, cross_validate, fit, predict, validation_pcc
from tests.test_engine_integrity import LinearMean, overfitting_problem

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- early stopping ------------------------------------------------------------------------------
def test_stop_on_pcc_keeps_the_epoch_of_the_best_validation_pcc():
    data, Y, tr, va = overfitting_problem()
    cfg = TrainConfig(epochs=30, batch_size=6, lr=3e-2, weight_decay=0.0, patience=30, max_patches=None,
                      stop_on="pcc")
    torch.manual_seed(0)
    model, hist = fit(LinearMean(16, 1), data, Y, tr, va, cfg, device="cpu")
    scores = [h["val_score"] for h in hist]  # minus the mean validation PCC
    got = validation_pcc(predict(model, data, va, 6, "cpu"), Y[va])
    assert -got == pytest.approx(min(scores), abs=1e-6)
    # the loss and the PCC pick different epochs here: the criterion matters
    assert int(np.argmin(scores)) != int(np.argmin([h["val_loss"] for h in hist])) or len(set(scores)) == 1


def test_stop_on_last_keeps_the_last_epoch():
    data, Y, tr, va = overfitting_problem()
    cfg = TrainConfig(epochs=12, batch_size=6, lr=3e-2, weight_decay=0.0, patience=3, max_patches=None,
                      stop_on="last")
    torch.manual_seed(0)
    model, hist = fit(LinearMean(16, 1), data, Y, tr, va, cfg, device="cpu")
    assert len(hist) == 12  # no early stopping, whatever the validation loss does
    last = predict(model, data, va, 6, "cpu")
    assert float(np.mean((last - Y[va]) ** 2)) == pytest.approx(hist[-1]["val_loss"], rel=1e-5)


def test_validation_pcc_known_answers():
    y = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, np.nan], [4.0, 5.0]])
    p = np.array([[2.0, 7.0], [4.0, 7.0], [6.0, 0.0], [8.0, 7.0]])  # gene 2: constant on its observed slides
    assert validation_pcc(p, y) == pytest.approx((1.0 + 0.0) / 2)


def test_prediction_floor_raises_low_predictions_in_target_units(tmp_path):
    data, Y, _, _ = overfitting_problem()
    ids = data.slide_ids
    targets = pd.DataFrame(Y - 3.0, index=ids, columns=["g"])  # mostly negative targets
    folds = pd.Series(np.arange(len(ids)) % 3, index=ids)
    patients = pd.Series(ids, index=ids)
    base = dict(epochs=3, batch_size=6, lr=1e-2, patience=3, max_patches=None)
    free = cross_validate(lambda n: LinearMean(16, n), data, targets, folds, patients, TrainConfig(**base),
                          tmp_path / "free", progress=False)
    floored = cross_validate(lambda n: LinearMean(16, n), data, targets, folds, patients,
                             TrainConfig(**base, prediction_floor=-2.5), tmp_path / "floor", progress=False)
    assert (free.predictions.g < -2.5).any()
    np.testing.assert_allclose(floored.predictions.g, np.maximum(free.predictions.g, -2.5), rtol=1e-6)


# --- the linear oracle ---------------------------------------------------------------------------
def test_ridge_recovers_a_linear_truth_and_never_sees_the_test_fold():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(100, 3)), index=[f"s{i}" for i in range(100)])
    y = 2.0 * X[0] - X[1] + 3.0
    Y = pd.DataFrame({"g": y, "h": np.where(np.arange(100) < 50, y, np.nan)}, index=X.index)
    folds = pd.Series(np.arange(100) % 5, index=X.index)
    pred = cross_validate_linear(X, Y, folds, alpha=1e-8)
    np.testing.assert_allclose(pred.g, y, atol=1e-6)
    assert pred.h.iloc[50:].isna().all() and np.allclose(pred.h.iloc[:50], y.iloc[:50], atol=1e-6)
    # a test slide's own target never reaches its prediction
    Y2 = Y.copy()
    Y2.loc["s0", "g"] = 1e6
    assert cross_validate_linear(X, Y2, folds).loc["s0", "g"] == pytest.approx(
        cross_validate_linear(X, Y, folds).loc["s0", "g"])
    # a constant input column is harmless
    Xc = np.c_[X.to_numpy()[:80], np.ones(80)]
    out = ridge_fit_predict(Xc, y.to_numpy()[:80], np.c_[X.to_numpy()[80:], np.ones(20)], alpha=1e-8)
    np.testing.assert_allclose(out, y.to_numpy()[80:], atol=1e-6)


# --- relative gain --------------------------------------------------------------------------------
def test_relative_gain_is_the_difference_over_b():
    rng = np.random.default_rng(3)
    ids = [f"s{i}" for i in range(80)]
    groups = pd.DataFrame({"fold": np.repeat(np.arange(4), 20), "cancer_type": "LIHC"}, index=ids)
    truth = pd.DataFrame(rng.normal(size=(80, 2)), index=ids, columns=["CD3D", "MKI67"])
    b = truth + rng.normal(0, 1.0, truth.shape)
    r = paired_slide_bootstrap(truth, b, truth, groups, n_boot=400)
    hb = headline_pcc(b, truth, groups)
    assert r["PCC a"] == pytest.approx(1.0) and r["PCC b"] == pytest.approx(hb)
    assert r["relative gain"] == pytest.approx((1.0 - hb) / hb)
    assert r["relative 95% CI low"] <= r["relative gain"] <= r["relative 95% CI high"]
    assert r["relative 95% CI low"] > 0 and r["verdict"] == "a higher"
    # no gain is stated relative to a PCC <= 0
    r0 = paired_slide_bootstrap(truth, -b, truth, groups, n_boot=50)
    assert np.isnan(r0["relative gain"])


# --- Table 3 with seeds ---------------------------------------------------------------------------
def _msi(label, y, prob, seed, folds):
    frame = pd.DataFrame({"label": y, "prob": prob, "fold": folds, "patient_id": np.arange(len(y))},
                         index=[f"s{i}" for i in range(len(y))])
    return MSIResult(Experiment(label, "isg"), "TCGA-CRC-DX", frame, seed=seed)


def test_auc_bootstrap_draws_over_seeds():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(40), np.zeros(160)].astype(int)
    folds = np.arange(200) % 5
    perfect, noise = y * 0.8 + 0.1, rng.random(200)
    one = _msi("A", y, perfect, 0, folds).frame
    two = _msi("A", y, noise, 1, folds).frame
    boot = seed_auc_bootstrap({"A": [one, two]}, n_boot=400)["A"]
    # each replicate is one seed's AUC: perfect (1.0) or noise (~0.5), about half each
    assert ((boot == 1.0).mean() > 0.35) and ((boot == 1.0).mean() < 0.65) and (boot[boot < 1].max() < 0.8)
    res = [_msi("A", y, perfect, 0, folds), _msi("A", y, noise, 1, folds), _msi("B", y, noise, 0, folds)]
    d = paired_auc_difference(res, "A", "B", n_boot=400).iloc[0]
    auc_noise = np.mean([roc_auc(y[folds == k], noise[folds == k]) for k in range(5)])
    assert d["AUC difference"] == pytest.approx((1.0 + auc_noise) / 2 - auc_noise)
    assert d["seeds"] == "a: 2, b: 1" and d["resampled"] == "slides within fold and class"
    assert d["95% CI low"] <= 0.05  # a seed of A is as bad as B: the interval reaches 0


# --- cohorts ----------------------------------------------------------------------------------------
def test_development_and_held_out_cohorts_have_their_own_seeds_and_folders():
    from isg_core.cohorts.folder import cohort_role
    from isg_core.paths import cohort_dir

    quick = PROFILES["quick"]
    assert quick.sim.seed_of("held-out") != quick.sim.seed_of("development")
    assert PROFILES["paper"].sim.seed != PROFILES["paper"].sim.dev_seed
    assert cohort_dir("quick").name == "isg-sim-quick"
    assert cohort_dir("quick", "development").name == "isg-sim-quick-dev"
    with pytest.raises(ValueError):
        SimConfig().seed_of("test")

    def cohort(seed, simulated=True):
        return SimpleNamespace(simulated=simulated, meta={"parameters": {"seed": seed}})

    assert cohort_role(quick, cohort(quick.sim.seed)) == "held-out"
    assert cohort_role(quick, cohort(quick.sim.dev_seed)) == "development"
    assert cohort_role(quick, cohort(7)) == "user cohort"
    assert cohort_role(quick, cohort(quick.sim.seed, simulated=False)) == "user cohort"
    assert cohort_role(PROFILES["smoke"], cohort(0)) == "held-out and development"


# --- the tables' rows -----------------------------------------------------------------------------
def test_table_rows_share_one_network_and_name_their_controls():
    from isg_core.experiments import BEST_BASELINE, LINEAR_TOTALS, he2rna_label, table_experiments

    t1 = {e.label: e for e in table_experiments(1)}
    h = he2rna_label()
    assert h == he2rna_label("random") or h == he2rna_label("imagenet")
    assert he2rna_label("random") == "HE2RNA (random ResNet50)"
    # the paper's control differs from HE2RNA as published only in its selection
    ctrl = t1[f"{h} + Shannon"]
    assert ctrl.run_spec() == {**t1[h].run_spec(), "selection": "shannon"} and t1[h].selection == "otsu"
    assert (t1[h].features, t1[h].supertiles, t1[h].model) == ("resnet50", 100, "he2rna")
    # headline rows (the profile's seeds): ISG, the development cohort's best baseline, HE2RNA as published
    assert {k for k, e in t1.items() if e.headline} == {"ISG", BEST_BASELINE, h}
    # the oracle rows and the linear model on totals
    assert t1["ISG (oracle features)"].features == "oracle"
    assert t1[f"{BEST_BASELINE} (oracle features)"].model == BEST_BASELINE.lower()
    assert any(e.model == LINEAR_TOTALS for e in t1.values())
    # Tables 1, 2, 4 and 6: one ISG network (the profile's width); only Table 1's side row is full width
    isg_rows = [e for n in (1, 2, 4, 6) for e in table_experiments(n) if e.model == "isg"]
    full = [e for e in isg_rows if ("width", None) in e.overrides]
    assert [e.label for e in full] == ["ISG (full width d)"]
    t1_isg = t1["ISG"].run_spec()
    assert t1_isg == {**[e for e in table_experiments(2) if e.label == "ISG"][0].run_spec()}  # one run, shared
    # the headline flag and the label do not change which run a row reads
    assert Experiment("x", headline=True).run_spec() == Experiment("y").run_spec()


def test_extractors_without_a_fold_never_train_on_its_slides(tmp_path, monkeypatch):
    """``fe-without-fold<k>``: both extractors are trained on the other folds only, in their own folder,
    and stored as their own feature set beside ``fe``."""
    from isg_core.config import get_profile
    from isg_core.features import registry, workflow

    root = tmp_path / "cohort"
    root.mkdir()
    pd.DataFrame({"slide_id": ["a", "b", "c"], "fold": [0, 1, 2]}).to_csv(root / "manifest.csv", index=False)
    calls = []
    monkeypatch.setattr(workflow, "ensure_prepared", lambda *a, **k: None)
    monkeypatch.setattr(workflow, "read_manifest", lambda p: pd.read_csv(p))
    monkeypatch.setattr(workflow, "train_extractor",
                        lambda root_, cfg, out, **kw: calls.append((cfg.scale, out, kw["folds"])) or out / "ck.pt")
    monkeypatch.setattr(registry, "StyleGANEncoder", lambda g, lo, device=None: SimpleNamespace(name="fe", g=g, lo=lo))
    enc = workflow.make_encoder("fe-without-fold1", get_profile("smoke"), root, progress=False)
    assert enc.name == "fe-without-fold1"
    assert [(s, f) for s, _, f in calls] == [("global", (0, 2)), ("local", (0, 2))]
    assert calls[0][1] == root / "extractors" / "without-fold1" / "global"
    assert workflow.extractor_dir(root, "local") == root / "extractors" / "local"  # the all-slide ones stay put
    assert registry.get_feature_set("fe").fold is None and registry.get_feature_set("fe-without-fold12").fold == 12
    assert registry.get_feature_set("fe-without-fold12").key == "fe-without-fold12"
    with pytest.raises(Exception, match="no fold 7"):
        workflow.ensure_extractor("global", get_profile("smoke"), root, progress=False, held_out=7)


def test_global_only_models_get_f_standardised_and_r_untouched():
    """InputStandardizer: f is standardised and clamped as Eq. (x - mu) / sd; R is passed through
    unchanged to a model that declares it ignores R (HE2RNA), and standardised for one that reads it."""
    from isg_core.models import CLAMP, InputStandardizer
    from isg_core.models.traits import GLOBAL, ModelTraits

    class Probe(torch.nn.Module):
        def __init__(self, reads_local):
            super().__init__()
            if not reads_local:
                self.traits = ModelTraits(reads=GLOBAL)

        def forward(self, f, R, mask, pos):
            self.seen = (f, R)
            return f.sum(1)

    stats = {"f_mean": np.full(3, 1.0), "f_std": np.full(3, 2.0), "R_mean": np.full(3, 5.0), "R_std": np.full(3, 0.5)}
    f = torch.tensor([[[3.0, 1.0, 100.0]]])
    R = torch.full((1, 1, 1, 1, 3), 6.0)
    for reads in (False, True):
        m = InputStandardizer(Probe(reads), stats)
        m(f, R, torch.ones(1, 1, dtype=torch.bool), torch.zeros(1, 1, 2, dtype=torch.long))
        fs, rs = m.model.seen
        assert torch.allclose(fs, torch.tensor([[[1.0, 0.0, CLAMP]]]))
        assert torch.equal(rs, R) if not reads else torch.allclose(rs, torch.full_like(R, 2.0))


def test_table5_probes_give_the_same_numbers_in_parallel(tmp_path):
    """table5(jobs=2) probes the feature sets in two processes: every probe is seeded, so the long
    table and the slide-level predictions equal those of one process, in the order of ``specs``.
    With ``cache_dir`` the workers store what they trained where this process finds it next time."""
    from isg_core.cohorts.folder import load_cohort
    from isg_core.experiments.table5 import table5
    from isg_core.features.workflow import ensure_features
    from isg_core.train.probe import ProbeConfig

    from .helpers import smoke_cohort

    root = smoke_cohort()
    ensure_features(("descriptor",), "smoke", root, progress=False)
    cohort, cfg, specs = load_cohort(root), ProbeConfig(epochs=3, patience=2), ("descriptor", "descriptor:global")
    one, p1 = table5(cohort, root / "tiles", specs, cfg, progress=False)
    two, p2 = table5(cohort, root / "tiles", specs, cfg, progress=False, jobs=2, cache_dir=tmp_path)
    assert list(dict.fromkeys(two.features)) == list(specs) and set(two.level) == {"slide", "patch"}
    pd.testing.assert_frame_equal(one, two)
    for s in specs:
        pd.testing.assert_frame_equal(p1[s], p2[s])
    assert len(list(tmp_path.glob("table5-*.npz"))) == len(specs)
    with patch("isg_core.experiments.table5._table5_job", side_effect=AssertionError("trained again")):
        found, p3 = table5(cohort, root / "tiles", specs, cfg, progress=False, jobs=2, cache_dir=tmp_path)
    pd.testing.assert_frame_equal(found, two, check_exact=True)
    for s in specs:
        pd.testing.assert_frame_equal(p3[s], p2[s], check_exact=True)


def test_table5_summary_quotes_the_paper_only_in_its_setting():
    """The paper's ResNet50 is ImageNet-pretrained: beside a random one its number is withheld, beside an
    ImageNet one it is quoted; the FE row always has its paper value, the descriptor never."""
    import pandas as pd

    from isg_core.experiments.table5 import table5_summary

    long = pd.DataFrame([{"features": f, "level": lv, "task": "t", "target": g, "pcc": p, "pcc_fold_std": 0.1}
                         for f in ("resnet50", "fe", "descriptor") for lv in ("slide", "patch")
                         for g, p in (("a", 0.2), ("b", 0.4))])
    rnd = table5_summary(long, "random").set_index(["level", "features"])
    assert rnd.loc[("slide (stands in for TCGA)", "ResNet50 (random)"), "paper"] != rnd.loc[
        ("slide (stands in for TCGA)", "ResNet50 (random)"), "paper"]  # NaN
    assert "not in the paper" in rnd.loc[("slide (stands in for TCGA)", "ResNet50 (random)"), "paper setting"]
    fe = ("slide (stands in for TCGA)", "Feature Extraction network (f_i + mean R_i)")
    assert rnd.loc[fe, "paper"] == pytest.approx(0.223)
    assert rnd.loc[("patch (stands in for STNet)", "Feature Extraction network (f_i + mean R_i)"), "paper"] == \
        pytest.approx(0.178)
    assert rnd.loc[fe, "pcc"] == pytest.approx(0.3)  # mean over the two targets
    img = table5_summary(long, "imagenet").set_index(["level", "features"])
    assert img.loc[("slide (stands in for TCGA)", "ResNet50 (imagenet)"), "paper"] == pytest.approx(0.123)
    desc = img.xs("appearance descriptor (no network, 13 colour statistics)", level="features")
    assert desc.paper.isna().all()


def test_plot_table5_draws_the_paper_only_where_quoted():
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    from isg_core.experiments.table5 import plot_table5, table5_summary

    long = pd.DataFrame([{"features": f, "level": lv, "task": "t", "target": "a", "pcc": 0.3, "pcc_fold_std": 0.1}
                         for f in ("resnet50", "fe", "descriptor") for lv in ("slide", "patch")])
    fig = plot_table5(table5_summary(long, "random"))
    axes = fig.axes
    assert len(axes) == 2
    for ax in axes:
        diamonds = [c for c in ax.collections if len(c.get_offsets()) and c.get_offsets().shape[1] == 2
                    and c.__class__.__name__ == "PathCollection"]
        assert sum(len(c.get_offsets()) for c in diamonds) == 1  # the FE row only: the random ResNet50 has none
        assert ax.get_xlabel().startswith("average PCC") and ax.get_legend() is None
    assert fig.legends  # one legend, outside the panels
