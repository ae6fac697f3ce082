"""Integration correctness of the training engine (issue 14, item 0): tests written before the
refactor, so that no later change breaks the science unnoticed.

* the model :func:`~isg_core.train.engine.fit` returns is the best epoch's, not the last one's;
* slides, targets, folds and predictions stay aligned by slide id (a gene that is a known
  function of a slide's features is learnt; with the targets shuffled across slides it is not);
* finished work is skipped and unfinished work resumed, counted in calls to ``fit`` and to
  ``ExtractorTrainer.step``;
* no patient sits on both sides of an outer fold or of the inner validation split.

Every test is sized for a CPU (seconds).
"""
from __future__ import annotations

import shutil
import warnings
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from isg_core.config import TASK_GENES, get_profile
from isg_core.data.manifest import assign_folds
from isg_core.experiments import ALL_TASKS, Experiment, cv_metrics, run_experiment, task_targets
from isg_core.train import engine as training
from isg_core.train.engine import SlideData, TrainConfig, cross_validate, fit, predict
from isg_core.train.probe import inner_split
from tests.test_training import MeanPool, bags

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class LinearMean(nn.Module):
    """A linear map of the masked mean of f: with more channels than training slides it can
    interpolate noisy targets, i.e. overfit."""

    def __init__(self, d: int, k: int):
        super().__init__()
        self.lin = nn.Linear(d, k)

    def forward(self, f, R, mask, pos):
        m = mask.float().unsqueeze(-1)
        return self.lin((f * m).sum(1) / m.sum(1))


class CallCounter:
    """Wraps a function: counts its calls, records their arguments, delegates."""

    def __init__(self, fn, stop_at: int | None = None):
        self.fn, self.calls, self.stop_at = fn, [], stop_at

    def __call__(self, *args, **kwargs):
        if self.stop_at is not None and len(self.calls) >= self.stop_at:
            raise Killed
        self.calls.append((args, kwargs))
        return self.fn(*args, **kwargs)


class Killed(Exception):
    """Stands in for a process killed between two steps."""


def count_fit(monkeypatch) -> CallCounter:
    """Counts the calls cross_validate makes to ``isg_core.train.engine.fit`` (looked up by name)."""
    counter = CallCounter(training.fit)
    monkeypatch.setattr(training, "fit", counter)
    return counter


# --- 1. best-epoch restore ---------------------------------------------------------------------------
def val_loss_of(model: nn.Module, data: SlideData, Y: np.ndarray, val_idx, cfg: TrainConfig) -> float:
    """The inner-validation loss of ``model``, computed as fit computes it each epoch."""
    val = predict(model, data, val_idx, cfg.batch_size, "cpu")
    return float(training.LOSSES[cfg.loss](torch.from_numpy(val), torch.tensor(Y[val_idx], dtype=torch.float32)))


def overfitting_problem():
    """6 training slides, 16 channels, a noisy target: a linear model of the mean interpolates the
    training slides, so the validation loss falls first, then rises."""
    rng = np.random.default_rng(0)
    n, d, p = 18, 16, 4
    f = [(rng.normal(size=(p, d)) + rng.normal(size=(1, d))).astype(np.float32) for _ in range(n)]
    data = SlideData([f"s{i:02d}" for i in range(n)], f, [np.zeros((p, 1, 1, d), np.float16)] * n,
                     [np.zeros((p, 2), np.int64)] * n)
    y = np.array([x[:, 0].mean() for x in f]) + rng.normal(0, 0.5, n)
    Y = ((y - y.mean()) / y.std())[:, None]
    return data, Y, np.arange(6), np.arange(6, n)


def test_fit_returns_the_best_epochs_model_not_the_last():
    data, Y, tr, va = overfitting_problem()
    cfg = TrainConfig(epochs=40, batch_size=6, lr=3e-2, weight_decay=0.0, patience=40, max_patches=None)
    torch.manual_seed(0)
    model, hist = fit(LinearMean(16, 1), data, Y, tr, va, cfg, device="cpu")
    losses = [h["val_loss"] for h in hist]
    best = int(np.argmin(losses))
    # meaningful: it overfits, so the best epoch is well before the last and clearly better
    assert len(hist) == cfg.epochs and best < len(hist) - 5
    assert losses[-1] > min(losses) + 0.1
    assert val_loss_of(model, data, Y, va, cfg) == pytest.approx(min(losses), abs=1e-6)


def test_cross_validate_keeps_each_folds_best_epoch(tmp_path):
    """The saved fold model, and the test predictions made with it, come from the best epoch of
    the fold's history (InputStandardizer's buffers included)."""
    from isg_core.train.engine import load_fold_model

    data, Y, _, _ = overfitting_problem()
    y = pd.DataFrame(Y, index=data.slide_ids, columns=["t"])
    ids = pd.Series(data.slide_ids, index=data.slide_ids)
    # 2 folds: 9 training slides of which 7 train, 2 validate
    folds = pd.Series(np.arange(len(ids)) % 2, index=ids.index)
    cfg = TrainConfig(epochs=30, batch_size=8, lr=3e-2, weight_decay=0.0, patience=30, max_patches=None,
                      val_fraction=0.25)
    res = cross_validate(lambda k: LinearMean(16, k), data, y, folds, ids, cfg, tmp_path, progress=False,
                         device="cpu")
    for k in (0, 1):
        hist = pd.read_csv(res.run_dir / f"fold{k}_history.csv")
        assert int(hist.val_loss.idxmin()) < len(hist) - 1, "the best epoch must not be the last one"
        model, ck = load_fold_model(res.run_dir, k, lambda n: LinearMean(16, n))
        train_all = np.flatnonzero(folds.to_numpy() != k)
        _, va = inner_split(len(train_all), cfg.val_fraction, ids.to_numpy()[train_all], seed=cfg.seed)
        mu, sd = np.array(ck["target_mean"]), np.array(ck["target_std"])
        Ys = (y.to_numpy() - mu) / sd
        assert val_loss_of(model, data, Ys, train_all[va], cfg) == pytest.approx(hist.val_loss.min(), abs=1e-6)
        test = np.flatnonzero(folds.to_numpy() == k)  # the fold's predictions were made by that model
        p = predict(model, data, test, cfg.batch_size, "cpu") * sd + mu
        np.testing.assert_allclose(p, res.predictions.iloc[test].to_numpy(), atol=1e-5)


# --- 2. slide-target alignment ------------------------------------------------------------------------
def test_cross_validate_aligns_slides_targets_and_folds_by_id(tmp_path):
    """Targets, folds and patients given in other row orders than the features: everything is
    matched by slide id.  Shuffled targets (the values moved to other slides) are not learnt."""
    data, y = bags(n=80, seed=1)
    ids = list(data.slide_ids)
    rng = np.random.default_rng(0)
    folds = pd.Series(np.arange(80) % 5, index=ids)
    patients = pd.Series(ids, index=ids)
    cfg = TrainConfig(epochs=20, batch_size=8, lr=5e-2, weight_decay=0.0, patience=20, max_patches=None)
    order = rng.permutation(80)  # the same mapping, rows in another order
    res = cross_validate(lambda k: MeanPool(4, k), data, y.iloc[order], folds.iloc[rng.permutation(80)],
                         patients.iloc[rng.permutation(80)], cfg, tmp_path / "a", progress=False, device="cpu")
    assert list(res.predictions.index) == ids and list(res.targets.index) == ids
    pd.testing.assert_frame_equal(res.targets, y.loc[ids])
    assert list(res.folds.loc[ids]) == list(folds.loc[ids])
    pcc = res.summary()["pcc_pooled"]
    assert (pcc > 0.9).all(), pcc
    shuffled = pd.DataFrame(y.to_numpy()[rng.permutation(80)], index=y.index, columns=y.columns)
    bad = cross_validate(lambda k: MeanPool(4, k), data, shuffled, folds, patients, cfg, tmp_path / "b",
                         progress=False, device="cpu")
    assert list(bad.predictions.index) == ids
    assert (bad.summary()["pcc_pooled"] < 0.3).all(), bad.summary()["pcc_pooled"]


N_PATCHES, D, NOISE = 8, 4, 0.3


def feature_cohort(root: Path, n_per_type: int = 20, seed: int = 0):
    """A toy cohort of the three cancer types with an HDF5 of features per slide (the layout of
    ``isg extract``): gene j of the slide's task = 1.5 x the mean over its patches of feature
    channel j mod D (+ a type offset and a little noise), read back exactly as stored (float16)."""
    rng = np.random.default_rng(seed)
    genes = sorted({g for gs in TASK_GENES.values() for g in gs})
    rows, targets = [], {}
    for t, ct in enumerate(TASK_GENES):
        for i in range(n_per_type):
            sid = f"{ct}-{i:02d}"
            rows.append({"slide_id": sid, "cancer_type": ct, "patient_id": sid, "fold": i % 5})
            f = (rng.normal(size=(1, D)) + NOISE * rng.normal(size=(N_PATCHES, D))).astype(np.float16)
            with h5py.File(root / f"{sid}.h5", "w") as h:
                h["coords"] = np.stack([np.arange(N_PATCHES) * 256, np.zeros(N_PATCHES)], 1).astype(np.int64)
                h["grid_index"] = np.stack([np.zeros(N_PATCHES), np.arange(N_PATCHES)], 1).astype(np.int64)
                g = h.create_group("features/fe")
                g["index"] = np.arange(N_PATCHES)
                g["global"] = f
                g["local"] = np.zeros((N_PATCHES, 1, 1, D), np.float16)
                g.attrs["complete"] = True
            mean = f.astype(np.float64).mean(0)
            targets[sid] = [1.5 * mean[j % D] + rng.normal(0, 0.05) for j in range(len(genes))]
    m = pd.DataFrame(rows)
    return SimpleNamespace(manifest=m, targets=pd.DataFrame.from_dict(targets, orient="index", columns=genes),
                           noise_ceiling=None)


def test_run_experiment_learns_a_known_gene_within_each_cancer_type(tmp_path):
    """One model for all tasks (HE2RNA on the features read from the slides' HDF5): the within-type
    PCC of every (task, gene) is high, and near 0 once the targets are shuffled across slides."""
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    c = feature_cohort(tiles)
    prof = get_profile("smoke")
    # HE2RNA trains on its published schedule (Adam 3e-4, batches of 16, stopping on validation PCC),
    # capped here at 40 epochs
    prof = replace(prof, models=replace(prof.models, epoch_cap=40))
    exp = Experiment("HE2RNA", "he2rna", selection=None, overrides=(("dropout", 0.0),))  # no dropout: learns faster
    res = run_experiment(c, tiles, exp, ALL_TASKS, prof, tmp_path / "runs", device="cpu", progress=False)
    Y = task_targets(c, ALL_TASKS)
    assert list(res.predictions.index) == list(Y.index) == list(res.targets.index)
    pd.testing.assert_frame_equal(res.targets, Y)
    m = c.manifest.set_index("slide_id").loc[Y.index]
    one_fold = pd.Series(0, index=Y.index)  # the out-of-fold predictions of all folds together

    def pooled_pcc(r):
        return cv_metrics(r.predictions, r.targets, one_fold, m.cancer_type).set_index(["task", "gene"]).pcc

    pooled = pooled_pcc(res)
    assert len(pooled) == sum(len(g) for g in TASK_GENES.values())
    assert (pooled > 0.6).all() and pooled.mean() > 0.8, pooled

    shuffled = SimpleNamespace(**vars(c))
    perm = np.random.default_rng(1).permutation(len(c.targets))
    shuffled.targets = pd.DataFrame(c.targets.to_numpy()[perm], index=c.targets.index, columns=c.targets.columns)
    bad = run_experiment(shuffled, tiles, exp, ALL_TASKS, prof, tmp_path / "runs-shuffled", device="cpu",
                         progress=False)
    assert list(bad.predictions.index) == list(Y.index)
    bad_pooled = pooled_pcc(bad)
    assert bad_pooled.mean() < 0.3 and (bad_pooled < 0.6).all(), bad_pooled


# --- 3. skip and resume, counted ---------------------------------------------------------------------
def test_cross_validate_skips_finished_folds_counted(tmp_path, monkeypatch):
    data, y = bags(n=20)
    ids = pd.Series(y.index, index=y.index)
    folds = pd.Series(np.arange(20) % 5, index=y.index)
    cfg = TrainConfig(epochs=2, batch_size=4, lr=1e-2, patience=2, max_patches=3)
    counter = count_fit(monkeypatch)

    def run():
        counter.calls.clear()
        return cross_validate(lambda k: MeanPool(4, k), data, y, folds, ids, cfg, tmp_path, progress=False,
                              device="cpu")

    first = run()
    assert len(counter.calls) == 5
    again = run()
    assert len(counter.calls) == 0  # every fold done: nothing trains
    assert np.array_equal(first.predictions.to_numpy(), again.predictions.to_numpy())
    for name in ("fold2.csv", "fold2_model.pt", "fold2_history.csv"):  # one fold's outputs lost
        (first.run_dir / name).unlink()
    redo = run()
    assert len(counter.calls) == 1 and counter.calls[0][1]["desc"] == "fold 2"
    assert np.array_equal(first.predictions.to_numpy(), redo.predictions.to_numpy())  # seeded: the same fold
    (first.run_dir / "fold4_model.pt").unlink()  # predictions without the model: not finished
    run()
    assert len(counter.calls) == 1 and counter.calls[0][1]["desc"] == "fold 4"
    run()
    assert len(counter.calls) == 0


@pytest.fixture(scope="module")
def small_cohort(tmp_path_factory) -> Path:
    """Three slides, tiled and Shannon-selected: copied from the smoke cohort when it is there
    (seconds saved), else simulated at 768 px."""
    from isg_core.cohorts.prepare import prepare_cohort
    from isg_core.data.manifest import read_manifest, write_manifest
    from isg_core.paths import cohort_dir

    root = tmp_path_factory.mktemp("integrity") / "cohort"
    smoke = cohort_dir("smoke")
    if (smoke / "cohort.json").exists():
        m = read_manifest(smoke / "manifest.csv").groupby("cancer_type").head(1).reset_index(drop=True)
        (root / "slides").mkdir(parents=True)
        for i, p in enumerate(m.path):
            m.loc[i, "path"] = str(shutil.copy(p, root / "slides" / Path(p).name))
        write_manifest(m, root / "manifest.csv")
    else:
        from isg_core.simulate import simulate_cohort

        simulate_cohort(root, n_slides=3, seed=5, size=768, workers=1, tiling=get_profile("smoke").tiling,
                        progress=False)
    prepare_cohort(root, config=get_profile("smoke").tiling, progress=False)
    return root


def test_extractor_resume_and_skip_counted(small_cohort, tmp_path, monkeypatch):
    from isg_core.features.train import (
        ExtractorTrainer,
        load_checkpoint,
        train_config_for,
        train_extractor,
    )

    cfg = train_config_for("global", get_profile("smoke").features)
    steps, k = cfg.steps, 4
    assert cfg.checkpoint_every < k < steps and k % cfg.checkpoint_every  # k is not a regular checkpoint
    counter = CallCounter(ExtractorTrainer.step)
    monkeypatch.setattr(ExtractorTrainer, "step", lambda self: counter(self))

    def run(out, **kw):
        counter.calls.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return train_extractor(small_cohort, cfg, out, progress=False, device="cpu", **kw)

    ck = run(tmp_path / "a", max_steps=k)
    assert len(counter.calls) == k and load_checkpoint(ck)["step"] == k
    run(tmp_path / "a", resume=True)
    assert len(counter.calls) == steps - k
    done = load_checkpoint(ck)
    assert done["step"] == steps and [h["step"] for h in done["history"]] == list(range(1, steps + 1))
    run(tmp_path / "a", resume=True)
    assert len(counter.calls) == 0  # finished: skipped
    run(tmp_path / "a")
    assert len(counter.calls) == 0

    # killed before step k + 1 without a checkpoint at step k: the resumed run redoes the steps
    # since the last regular checkpoint, and only those
    counter.stop_at = k
    with pytest.raises(Killed):
        run(tmp_path / "b")
    last = (k // cfg.checkpoint_every) * cfg.checkpoint_every
    assert len(counter.calls) == k and load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == last
    counter.stop_at = None
    run(tmp_path / "b", resume=True)
    assert len(counter.calls) == steps - last
    assert [h["step"] for h in load_checkpoint(tmp_path / "b" / "checkpoint.pt")["history"]] == \
        list(range(1, steps + 1))


# --- 4. patient grouping ------------------------------------------------------------------------------
def two_slide_patients(n_per_type: int = 8):
    """Slides of patients with two slides each (DX1, DX2), three cancer types, folds from the
    manifest's assign_folds."""
    rows = []
    for ct in TASK_GENES:
        for i in range(n_per_type):
            for dx in (1, 2):
                rows.append({"slide_id": f"{ct}-{i:02d}-DX{dx}", "patient_id": f"{ct}-{i:02d}", "cancer_type": ct})
    m = pd.DataFrame(rows)
    m["fold"] = assign_folds(m.patient_id, m.cancer_type, k=5, seed=0)
    return m


def test_outer_folds_keep_patients_whole():
    m = two_slide_patients()
    assert (m.groupby("patient_id").fold.nunique() == 1).all()
    assert sorted(m.fold.unique()) == list(range(5))
    for ct, g in m.groupby("cancer_type"):  # stratified: every fold has patients of every type
        assert g.fold.nunique() == 5, ct


def test_inner_split_keeps_patients_whole():
    m = two_slide_patients()
    for k in range(5):
        train_all = np.flatnonzero(m.fold.to_numpy() != k)
        pat = m.patient_id.to_numpy()[train_all]
        for seed in range(5):
            tr, va = inner_split(len(train_all), 0.2, pat, seed=seed)
            assert len(va) and len(tr) and not set(pat[tr]) & set(pat[va])
            assert sorted(np.concatenate([tr, va]).tolist()) == list(range(len(train_all)))
    # meaningful: a split by slide would separate some patient's two slides
    tr, va = inner_split(len(m), 0.2, None, seed=0)
    assert set(m.patient_id.to_numpy()[tr]) & set(m.patient_id.to_numpy()[va])


def test_cross_validate_never_splits_a_patient(tmp_path, monkeypatch):
    """What fit receives inside cross_validate: train, validation and test slides of every fold
    belong to disjoint sets of patients, and together are every slide."""
    m = two_slide_patients()
    data, y = bags(n=len(m), seed=2)
    data.slide_ids = list(m.slide_id)
    y.index = list(m.slide_id)
    # given in another row order than the slides: matched by slide id
    shuffled = m.sample(frac=1.0, random_state=0).set_index("slide_id")
    folds, patients = shuffled.fold, shuffled.patient_id
    cfg = TrainConfig(epochs=1, batch_size=8, patience=1, max_patches=3)
    counter = count_fit(monkeypatch)
    cross_validate(lambda k: MeanPool(4, k), data, y, folds, patients, cfg, tmp_path, progress=False, device="cpu")
    assert len(counter.calls) == 5
    pat = patients.loc[data.slide_ids].to_numpy()
    fold = folds.loc[data.slide_ids].to_numpy()
    seen = set()
    for args, kw in counter.calls:
        tr, va = np.asarray(args[3]), np.asarray(args[4])
        k = int(kw["desc"].split()[-1])
        test = np.flatnonzero(fold == k)
        seen.add(k)
        assert len(tr) and len(va)
        assert not set(pat[tr]) & set(pat[va]), f"fold {k}: a patient in both inner train and validation"
        assert not (set(pat[tr]) | set(pat[va])) & set(pat[test]), f"fold {k}: a test patient in training"
        assert sorted(np.concatenate([tr, va, test]).tolist()) == list(range(len(pat)))
    assert seen == set(range(5))
