"""Tables 1/2/4/6 machinery (isg_core.experiments): targets per task, per-task metrics, the paired
bootstrap, feature standardisation, reading a variant's patches, and saved fold models."""
from __future__ import annotations

from types import SimpleNamespace

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from isg_core.config import TASK_GENES
from isg_core.experiments import (
    ALL_TASKS,
    Experiment,
    cv_metrics,
    headline_pcc,
    isg,
    load_experiment_data,
    summarise,
    table4_experiments,
    table_experiments,
    task_targets,
)
from isg_core.train.engine import (
    InputStandardizer,
    SlideData,
    TrainConfig,
    cross_validate,
    feature_stats,
    load_fold_model,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_cohort(n_per_type: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows, genes = [], sorted({g for gs in TASK_GENES.values() for g in gs})
    for ct in TASK_GENES:
        for i in range(n_per_type):
            rows.append({"slide_id": f"{ct}-{i}", "cancer_type": ct, "patient_id": f"{ct}-{i}", "fold": i % 5})
    m = pd.DataFrame(rows)
    targets = pd.DataFrame(rng.normal(size=(len(m), len(genes))), index=m.slide_id, columns=genes)
    return SimpleNamespace(manifest=m, targets=targets, noise_ceiling=None)


def test_all_tasks_targets_are_nan_outside_a_slides_task():
    c = toy_cohort()
    Y = task_targets(c, ALL_TASKS)
    for sid, ct in zip(c.manifest.slide_id, c.manifest.cancer_type):
        observed = set(Y.columns[Y.loc[sid].notna()])
        assert observed == set(TASK_GENES[ct])
        assert np.allclose(Y.loc[sid, list(TASK_GENES[ct])], c.targets.loc[sid, list(TASK_GENES[ct])])
    assert list(task_targets(c, "PRAD").columns) == list(TASK_GENES["PRAD"])


def test_cv_metrics_are_within_a_cancer_type():
    c = toy_cohort()
    Y = task_targets(c, ALL_TASKS)
    m = c.manifest.set_index("slide_id")
    # predictions equal to the target + the cancer type's offset: perfect within a type; pooling the
    # types would mix offsets and lower the PCC, so a PCC of 1 shows the metric stays within a type
    offset = m.cancer_type.map({"LIHC": 0.0, "COAD": 5.0, "PRAD": -5.0})
    pred = Y.add(offset, axis=0)
    rows = cv_metrics(pred, Y, m.fold, m.cancer_type)
    assert np.allclose(rows.pcc, 1.0)
    assert len(rows) == sum(len(g) for g in TASK_GENES.values()) * 5
    assert set(zip(rows.task, rows.gene)) == {(t, g) for t, gs in TASK_GENES.items() for g in gs}
    lihc = rows[rows.task == "LIHC"]
    assert np.allclose(lihc.l2, 0.0)
    assert np.allclose(rows[rows.task == "COAD"].l2, 25.0)
    # a fold with fewer than 2 test slides of a type gives no row, and no rows is still a table
    one = cv_metrics(pred.iloc[:1], Y.iloc[:1], m.fold.iloc[:1], m.cancer_type.iloc[:1])
    assert one.empty and list(one.columns) == ["task", "gene", "fold", "pcc", "l2"]


def test_noise_ceiling_scores_the_truth_like_a_model():
    from isg_core.experiments import noise_ceiling_avg

    c = toy_cohort(n_per_type=25)
    assert np.isnan(noise_ceiling_avg(c))  # real data: no truth, no ceiling
    c.truth = c.targets.copy()
    assert noise_ceiling_avg(c) == pytest.approx(1.0)  # noiseless expression: the ceiling is 1
    rng = np.random.default_rng(5)
    c.truth = c.targets + rng.normal(0, 1.0, c.targets.shape)  # noise SD = signal SD: PCC ~ 1/sqrt(2)
    assert 0.55 < noise_ceiling_avg(c) < 0.85


def test_summary_is_the_headline_pcc_over_seeds():
    """The table's PCC mean is the one aggregation (headline_pcc: per fold the mean over tasks and
    genes, then over folds), averaged over seeds; a constant prediction scores 0 and is counted."""
    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(60)]
    groups = pd.DataFrame({"fold": np.repeat(np.arange(5), 12), "cancer_type": "LIHC"}, index=ids)
    truth = pd.DataFrame(rng.normal(size=(60, 3)), index=ids, columns=["CD3D", "CD3E", "MKI67"])
    seeds = [truth + rng.normal(0, s, truth.shape) for s in (0.5, 1.0)]
    seeds[1]["MKI67"] = 2.0  # constant: PCC 0 in every fold, counted
    rows = pd.concat([cv_metrics(p, truth, groups.fold, groups.cancer_type).assign(method="A", seed=k)
                      for k, p in enumerate(seeds)], ignore_index=True)
    assert (rows[(rows.seed == 1) & (rows.gene == "MKI67")].pcc == 0).all()
    s = summarise(rows, ceiling=0.5).set_index("method")
    heads = [headline_pcc(p, truth, groups) for p in seeds]
    assert s.loc["A", "PCC mean"] == pytest.approx(np.mean(heads))
    assert s.loc["A", "PCC sd (seeds)"] == pytest.approx(np.std(heads, ddof=1))
    assert s.loc["A", "seeds"] == 2
    assert s.loc["A", "of noise ceiling"] == pytest.approx(np.mean(heads) / 0.5)
    per_fold = rows.groupby(["seed", "fold"]).pcc.mean().groupby("fold").mean()
    assert s.loc["A", "PCC sd (folds)"] == pytest.approx(per_fold.std(ddof=1))


def test_feature_stats_and_standardizer():
    rng = np.random.default_rng(1)
    data = SlideData(["a", "b"], [rng.normal(3, 2, (5, 4)).astype(np.float32) for _ in range(2)],
                     [rng.normal(-1, 0.5, (5, 2, 2, 4)).astype(np.float16) for _ in range(2)],
                     [np.zeros((5, 2), np.int64)] * 2)
    data.f[0][:, 2] = data.f[1][:, 2] = 7.0  # a constant channel
    st = feature_stats(data, [0, 1])
    f = np.concatenate(data.f)
    assert np.allclose(st["f_mean"], f.mean(0)) and st["f_std"][2] == 1.0
    seen = {}

    class Spy(torch.nn.Module):
        def forward(self, f, R, mask, pos):
            seen["f"], seen["R"] = f, R
            return f.sum(1)

    m = InputStandardizer(Spy(), st)
    m(torch.from_numpy(f)[None], torch.from_numpy(np.concatenate(data.R).astype(np.float32))[None], None, None)
    z = seen["f"][0].numpy()
    assert np.allclose(z[:, [0, 1, 3]].mean(0), 0, atol=1e-5) and np.allclose(z[:, [0, 1, 3]].std(0), 1, atol=1e-3)
    assert np.allclose(z[:, 2], 0)
    # far outside the training range: clamped, not exploded
    m(torch.full((1, 1, 4), 1e6), torch.zeros(1, 1, 2, 2, 4), None, None)
    assert float(seen["f"].max()) == 10.0


def make_h5(path, n=6, d=4, g=2):
    rng = np.random.default_rng(2)
    with h5py.File(path, "w") as f:
        f["coords"] = np.stack([np.arange(n) * 256, np.zeros(n)], 1).astype(np.int64)
        f["grid_index"] = np.stack([np.zeros(n), np.arange(n)], 1).astype(np.int64)
        scores = np.linspace(0.1, 0.6, n)  # bpp 2.4 .. 14.4
        f["selection/shannon/scores"] = scores
        f["selection/shannon/keep"] = scores > 0.3
        f["selection/otsu/keep"] = np.zeros(n, bool)
        g_ = f.create_group("features/fe")
        g_["index"] = np.arange(1, n)  # patch 0 has no features
        g_["global"] = rng.normal(size=(n - 1, d)).astype(np.float16)
        g_["local"] = rng.normal(size=(n - 1, g, g, d)).astype(np.float16)
        g_.attrs["complete"] = True
    return scores


def test_load_experiment_data_variants(tmp_path):
    scores = make_h5(tmp_path / "s.h5")
    px = 256 ** 2
    kept = load_experiment_data(tmp_path, ["s"], isg(), px)
    assert sorted(kept.pos[0][:, 1].tolist()) == [c for c in range(1, 6) if scores[c] > 0.3]
    everything = load_experiment_data(tmp_path, ["s"], Experiment("x", selection=None), px)
    assert len(everything.f[0]) == 5
    strict = load_experiment_data(tmp_path, ["s"], isg(threshold="bpp:12"), px)  # score > 0.5
    assert strict.pos[0][:, 1].tolist() == [c for c in range(1, 6) if scores[c] > 0.5]
    # a selection that keeps nothing falls back to the highest-scoring patch with features
    none = load_experiment_data(tmp_path, ["s"], Experiment("o", selection="otsu"), px)
    assert none.pos[0][:, 1].tolist() == [5]
    # HE2RNA sees f only (no cube) and supertiles merge patches
    he = load_experiment_data(tmp_path, ["s"], Experiment("h", "he2rna", selection=None, supertiles=2), px)
    assert len(he.f[0]) == 2 and he.R[0].shape[1:3] == (1, 1)


def test_table_definitions():
    assert [e.label for e in table_experiments(6)] == ["ISG-6-2", "ISG-8-2", "ISG-10-2", "ISG-12-2", "ISG-14-2",
                                                      "ISG-10-1", "ISG-10-3"]
    t4 = table4_experiments(8.0)
    assert [e.threshold for e in t4] == ["bpp:4", None, "bpp:12", "mu_sigma:1"]
    # the 1x row of Table 4, the ISG row of Table 2 and ISG-10-2 of Table 6 are one run
    isg_rows = [t4[1], [e for e in table_experiments(2) if e.label == "ISG"][0],
                [e for e in table_experiments(6) if e.label == "ISG-10-2"][0]]
    assert len({str(e.run_spec()) for e in isg_rows}) == 1


def test_fold_models_are_saved_and_reload(tmp_path):
    rng = np.random.default_rng(3)
    n = 20
    data = SlideData([f"s{i}" for i in range(n)], [rng.normal(size=(4, 3)).astype(np.float32) for _ in range(n)],
                     [rng.normal(size=(4, 1, 1, 3)).astype(np.float16) for _ in range(n)],
                     [np.zeros((4, 2), np.int64)] * n)
    y = pd.DataFrame({"t": [float(f[:, 0].mean()) for f in data.f]}, index=data.slide_ids)
    ids = pd.Series(data.slide_ids, index=data.slide_ids)

    class Lin(torch.nn.Module):
        def __init__(self, k):
            super().__init__()
            self.lin = torch.nn.Linear(3, k)

        def forward(self, f, R, mask, pos):
            return self.lin(f.mean(1))

    cfg = TrainConfig(epochs=3, batch_size=4, patience=3, max_patches=None)
    res = cross_validate(Lin, data, y, pd.Series(np.arange(n) % 5, index=ids.index), ids, cfg, tmp_path,
                         progress=False)
    from isg_core.train.engine import predict

    model, ck = load_fold_model(res.run_dir, 2, Lin)
    test = [i for i in range(n) if i % 5 == 2]
    p = predict(model, data, test) * np.array(ck["target_std"]) + np.array(ck["target_mean"])
    assert np.allclose(p[:, 0], res.predictions.iloc[test, 0], atol=1e-5)
    assert ck["targets"] == ["t"] and ck["fold"] == 2
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "fold0_model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="not a readable model checkpoint"):
        load_fold_model(tmp_path / "junk", 0, Lin)


def lihc_toy_cohort(tiles_dir):
    """A toy cohort of 10 LIHC slides, each with its own features in ``tiles_dir``."""
    c = toy_cohort(n_per_type=10)
    c.manifest = c.manifest[c.manifest.cancer_type == "LIHC"].reset_index(drop=True)
    for i, sid in enumerate(c.manifest.slide_id):
        make_h5(tiles_dir / f"{sid}.h5", n=6, d=4, g=2)
        with h5py.File(tiles_dir / f"{sid}.h5", "a") as f:  # different features per slide
            f["features/fe/global"][...] = np.random.default_rng(i).normal(size=(5, 4)).astype(np.float16)
            f["features/fe"].attrs["source"] = "toy extractor v1"
    return c


def test_parallel_jobs_give_the_same_table(tmp_path):
    """Two worker processes give the rows one process gives (folds are seeded; one thread each)."""
    from isg_core.config import get_profile
    from isg_core.experiments import run_table

    c = lihc_toy_cohort(tmp_path)
    prof = get_profile("smoke")
    exps = [Experiment("H", "he2rna", selection=None), isg("I", 2, 1)]
    torch.set_num_threads(1)
    one = run_table(exps, c, tmp_path, prof, tmp_path / "runs1", ["LIHC"], progress=False, jobs=1)
    two = run_table(exps, c, tmp_path, prof, tmp_path / "runs2", ["LIHC"], progress=False, jobs=2)
    pd.testing.assert_frame_equal(one.rows, two.rows)
    assert one.predictions.keys() == two.predictions.keys()
    for k in one.predictions:
        pd.testing.assert_frame_equal(one.predictions[k], two.predictions[k])
    # the headline ISG runs with the profile's seeds (2 at smoke), HE2RNA with one
    assert set(one.rows.method) == {"H", "I"} and len(one.rows) == 2 * 7 * 5  # 2 methods x 7 genes x 5 folds, one seed
    exps[1] = isg("I", 2, 1, headline=True)
    three = run_table(exps, c, tmp_path, prof, tmp_path / "runs1", ["LIHC"], progress=False, jobs=1)
    assert sorted(three.predictions) == [("H", 0), ("I", 0), ("I", 1)]
    assert len(three.seeds("I")) == 2 and not three.predictions[("I", 0)].equals(three.predictions[("I", 1)])


def test_one_verdict_and_sentence_for_every_table():
    """The statistics module's verdict reads the interval; the sentence says it with the numbers given."""
    from isg_core.experiments import VERDICTS, paired_bootstrap, verdict, verdict_sentence

    assert verdict(0.01, 0.2) == "a higher" and verdict(-0.2, -0.01) == "a lower"
    assert verdict(-0.1, 0.1) == "not distinguishable" and verdict(np.nan, np.nan) == "undefined"
    assert set(VERDICTS) == {"a higher", "a lower", "not distinguishable", "undefined"}
    assert verdict_sentence("A - B", 0.1234, 0.05, 0.2, "a higher", "30 pairs") == \
        "A - B: +0.123 (95% CI +0.050 to +0.200, 30 pairs): A is higher."
    # paired by index, units with a missing side dropped; the numbers are metrics.bootstrap_mean_ci's
    from isg_core.metrics import bootstrap_mean_ci

    a = pd.Series([0.5, 0.4, np.nan, 0.3], index=list("wxyz"))
    b = pd.Series([0.1, 0.2, 0.3, 0.4], index=list("wxyz"))
    d = paired_bootstrap(a, b, unit="targets", n_boot=500, seed=3)
    mean, lo, hi = bootstrap_mean_ci((a - b).to_numpy()[[0, 1, 3]], n_boot=500, seed=3)
    assert d["targets"] == 3 and d["mean PCC difference"] == pytest.approx(mean)
    assert (d["95% CI low"], d["95% CI high"]) == (lo, hi) and d["a wins"] == pytest.approx(2 / 3)
    assert list(d) == ["targets", "mean PCC difference", "95% CI low", "95% CI high", "a wins", "verdict"]


def test_train_config_reads_the_profiles_schedule():
    """Training defaults live once (config.TrainSchedule): the engine's TrainConfig extends it, and a
    run's config is the profile's schedule plus the experiment's data and the kind's loss."""
    from isg_core.config import SlideModelConfig, TrainSchedule, get_profile
    from isg_core.experiments import train_config

    assert TrainConfig().schedule() == SlideModelConfig().schedule() == TrainSchedule().schedule()
    prof = get_profile("smoke")
    exp = isg(selection="otsu")
    cfg = train_config(prof, exp)
    assert cfg.schedule() == prof.models.schedule() and cfg.loss == "mse" and cfg.selection == "otsu"
    assert train_config(prof, exp, "classification").loss == "bce"


def test_run_targets_by_kind():
    from isg_core.errors import IsgError
    from isg_core.experiments import run_targets

    c = toy_cohort()
    Y, folder = run_targets(c, "PRAD", "regression")
    assert folder == "PRAD" and list(Y.columns) == list(TASK_GENES["PRAD"])
    c.labels = pd.DataFrame({"slide_id": c.manifest.slide_id, "msi": np.arange(len(c.manifest)) % 2})
    Y, folder = run_targets(c, "TCGA-CRC-DX", "classification")  # COAD stands in for CRC-DX
    assert folder == "msi-COAD" and list(Y.columns) == ["MSI"] and len(Y) == 10
    with pytest.raises(IsgError, match="unknown kind"):
        run_targets(c, "PRAD", "ranking")


def test_plot_table_draws_each_method_in_order_with_paper_only_where_given():
    import types

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from isg_core.experiments.plots import plot_table

    summary = pd.DataFrame({"method": ["ISG", "HE2RNA (random ResNet50)", "ViT-S"], "PCC mean": [0.3, 0.4, 0.2],
                            "PCC sd (folds)": [0.05, 0.04, 0.03], "paper PCC": [0.435, np.nan, 0.234]})
    run = types.SimpleNamespace(summary=summary, ceiling=0.87, number=1, config={"cohort": "ISG-Sim",
                                                                                  "setting": "per task"})
    fig, ax = plt.subplots()
    plot_table(run, ax)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(summary.method)
    widths = sorted(round(p.get_width(), 6) for p in ax.patches)
    assert widths == [0.2, 0.3, 0.4]
    diamonds = [c for c in ax.collections if c.__class__.__name__ == "PathCollection"]
    assert sum(len(c.get_offsets()) for c in diamonds) == 2  # HE2RNA's row has no paper value here
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # outside the axes: it covers no bar
    plt.close(fig)
    run.config["setting"] = "one model for all tasks"  # not the paper's setting: no diamond, a note instead
    fig, ax = plt.subplots()
    plot_table(run, ax)
    assert not [c for c in ax.collections if c.__class__.__name__ == "PathCollection"]
    assert any("not in the paper" in t.get_text() for t in ax.get_legend().get_texts())
    plt.close(fig)


def test_the_mil_baselines_run_through_the_table_runner(tmp_path):
    """ABMIL and the mean-pool MLP (issue 32) are one registration each: a table runs them like any
    baseline, every fold predicts every gene of its test slides, and a rerun is found done."""
    from isg_core.config import get_profile
    from isg_core.experiments import run_table

    c = lihc_toy_cohort(tmp_path)
    torch.set_num_threads(1)
    exps = [Experiment("A", "abmil", selection=None), Experiment("M", "mean-mlp", selection=None)]
    out = run_table(exps, c, tmp_path, get_profile("smoke"), tmp_path / "runs", ["LIHC"], progress=False)
    assert set(out.rows.method) == {"A", "M"} and len(out.rows) == 2 * 7 * 5
    for k in [("A", 0), ("M", 0)]:
        assert out.predictions[k].notna().all().all()
    assert not np.allclose(out.predictions[("A", 0)].to_numpy(), out.predictions[("M", 0)].to_numpy())
    again = run_table(exps, c, tmp_path, get_profile("smoke"), tmp_path / "runs", ["LIHC"], progress=False)
    pd.testing.assert_frame_equal(again.rows, out.rows)
