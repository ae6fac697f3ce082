"""The slide-level training engine (isg_core.train.engine): padding, the masked L2 loss, early
stopping, cross-validation with skip-if-done, and resume equivalence.  Synthetic bags of
features keep it fast: the target is a known function of the features."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from isg_core.train.engine import SlideData, TrainConfig, collate, cross_validate, fit, masked_mse

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def bags(n: int = 40, d: int = 4, g: int = 2, seed: int = 0) -> tuple[SlideData, pd.DataFrame]:
    """Slides with 3-9 patches; target 0 = mean of f[:, 0] over patches, target 1 = mean of R."""
    rng = np.random.default_rng(seed)
    data = SlideData([], [], [], [])
    y = []
    for i in range(n):
        k = int(rng.integers(3, 10))
        f = rng.normal(size=(k, d)).astype(np.float32) + rng.normal()
        R = rng.normal(size=(k, g, g, d)).astype(np.float16)
        data.slide_ids.append(f"s{i:02d}")
        data.f.append(f)
        data.R.append(R)
        data.pos.append(rng.integers(0, 5, (k, 2)))
        y.append([f[:, 0].mean(), R.astype(np.float32).mean()])
    return data, pd.DataFrame(y, index=data.slide_ids, columns=["a", "b"])


class MeanPool(nn.Module):
    """Masked mean of [f, mean R] -> linear: can represent both targets exactly."""

    def __init__(self, d: int, k: int):
        super().__init__()
        self.lin = nn.Linear(2 * d, k)

    def forward(self, f, R, mask, pos):
        m = mask.float().unsqueeze(-1)
        x = torch.cat([f, R.mean(dim=(2, 3))], -1)
        return self.lin((x * m).sum(1) / m.sum(1))


def test_collate_pads_and_subsamples():
    data, _ = bags()
    f, R, mask, pos = collate(data, [0, 1, 2])
    n = [len(data.f[i]) for i in range(3)]
    assert f.shape == (3, max(n), 4) and R.shape == (3, max(n), 2, 2, 4) and pos.shape == (3, max(n), 2)
    assert mask.sum(1).tolist() == n and float(f[~mask].abs().sum()) == 0.0
    f2, _, mask2, _ = collate(data, [0, 1, 2], max_patches=3, rng=np.random.default_rng(0))
    assert mask2.sum(1).tolist() == [3, 3, 3]
    assert all(any(torch.equal(f2[b, j], torch.from_numpy(data.f[b][r])) for r in range(n[b]))
               for b in range(3) for j in range(3))


def test_masked_mse_ignores_nan():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.tensor([[1.0, float("nan")], [5.0, 4.0]])
    assert float(masked_mse(pred, target)) == pytest.approx(4.0 / 3.0)


def test_cross_validation_learns_and_skips_done_folds(tmp_path):
    data, y = bags()
    folds = pd.Series(np.arange(40) % 5, index=y.index)
    patients = pd.Series(y.index, index=y.index)
    cfg = TrainConfig(epochs=150, batch_size=8, lr=1e-2, weight_decay=0.0, patience=150, max_patches=None)
    res = cross_validate(lambda k: MeanPool(4, k), data, y, folds, patients, cfg, tmp_path, progress=False)
    assert (res.summary()["pcc_pooled"] > 0.95).all()  # a linear function of pooled features is learnt
    assert res.predictions.notna().all().all() and set(res.per_fold.fold) == set(range(5))
    again = cross_validate(lambda k: MeanPool(4, k), data, y, folds, patients, cfg, tmp_path, progress=False)
    assert np.array_equal(res.predictions.to_numpy(), again.predictions.to_numpy())
    assert not list(tmp_path.rglob("fold?.pt"))  # finished folds leave predictions, not training state
    assert len(list(tmp_path.rglob("fold?_model.pt"))) == 5  # and each fold's best model


def test_nan_targets_do_not_train(tmp_path):
    data, y = bags()
    y.loc[y.index[::2], "b"] = np.nan  # half the slides do not observe target b
    folds = pd.Series(np.arange(40) % 5, index=y.index)
    cfg = TrainConfig(epochs=3, max_patches=None)
    res = cross_validate(lambda k: MeanPool(4, k), data, y, folds, pd.Series(y.index, index=y.index), cfg, tmp_path,
                         progress=False)
    assert np.isfinite(res.predictions.to_numpy()).all()
    assert res.per_fold.groupby("target").size().to_dict() == {"a": 5, "b": 5}


def test_resume_equals_uninterrupted(tmp_path):
    data, y = bags()
    Y = ((y - y.mean()) / y.std()).to_numpy()
    tr, va = np.arange(30), np.arange(30, 40)
    cfg = TrainConfig(epochs=6, batch_size=8, patience=100, max_patches=4)

    def model():
        torch.manual_seed(0)
        return MeanPool(4, 2)

    straight, h1 = fit(model(), data, Y, tr, va, cfg)
    fit(model(), data, Y, tr, va, TrainConfig(**{**cfg.to_dict(), "epochs": 3}), ckpt=tmp_path / "run.pt")
    resumed, h2 = fit(model(), data, Y, tr, va, cfg, ckpt=tmp_path / "run.pt")
    assert [h["epoch"] for h in h2] == list(range(1, 7))
    assert h1 == h2
    for k, v in straight.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_early_stopping_keeps_best_epoch():
    data, y = bags()
    Y = ((y - y.mean()) / y.std()).to_numpy()
    _, hist = fit(MeanPool(4, 2), data, Y, np.arange(30), np.arange(30, 40),
                  TrainConfig(epochs=200, patience=5, lr=5e-2, max_patches=None))
    best = int(np.argmin([h["val_loss"] for h in hist]))
    assert len(hist) == best + 1 + 5  # stopped 5 epochs after the best one


def test_two_fresh_runs_give_identical_predictions(tmp_path):
    """Seeds per fold and per epoch: a rerun from nothing reproduces the run exactly."""
    data, y = bags(n=20)
    folds = pd.Series(np.arange(20) % 5, index=y.index)
    patients = pd.Series(y.index, index=y.index)
    cfg = TrainConfig(epochs=4, batch_size=4, lr=1e-2, patience=4, max_patches=3)
    a = cross_validate(lambda k: MeanPool(4, k), data, y, folds, patients, cfg, tmp_path / "a", progress=False)
    b = cross_validate(lambda k: MeanPool(4, k), data, y, folds, patients, cfg, tmp_path / "b", progress=False)
    assert np.array_equal(a.predictions.to_numpy(), b.predictions.to_numpy())


def test_changed_features_redo_the_folds(tmp_path):
    """The run id hashes the config; the data fingerprint catches re-extracted features."""
    data, y = bags(n=20)
    folds = pd.Series(np.arange(20) % 5, index=y.index)
    patients = pd.Series(y.index, index=y.index)
    cfg = TrainConfig(epochs=2, batch_size=4, patience=2, max_patches=None)
    a = cross_validate(lambda k: MeanPool(4, k), data, y, folds, patients, cfg, tmp_path, progress=False)
    data = SlideData(data.slide_ids, data.f[::-1], data.R[::-1], data.pos[::-1])  # each slide gets another's
    with pytest.warns(UserWarning, match="features or targets changed"):
        b = cross_validate(lambda k: MeanPool(4, k), data, y, folds, patients, cfg, tmp_path, progress=False)
    fresh = cross_validate(lambda k: MeanPool(4, k), data, y, folds, patients, cfg, tmp_path / "fresh", progress=False)
    assert b.run_dir == a.run_dir
    assert np.array_equal(b.predictions.to_numpy(), fresh.predictions.to_numpy())  # redone, not reused
    assert not np.array_equal(a.predictions.to_numpy(), b.predictions.to_numpy())


def test_bce_head_learns_a_binary_label(tmp_path):
    """loss="bce": 0/1 targets are not standardised, outputs become probabilities, folds get an AUC."""
    from isg_core.metrics import roc_auc

    data, y = bags(n=60)
    lab = pd.DataFrame({"MSI": (y["a"] > y["a"].median()).astype(float)}, index=y.index)
    folds = pd.Series(np.arange(60) % 5, index=y.index)
    patients = pd.Series(y.index, index=y.index)
    cfg = TrainConfig(epochs=120, batch_size=8, lr=1e-2, weight_decay=0.0, patience=120, max_patches=None, loss="bce")
    res = cross_validate(lambda k: MeanPool(4, k), data, lab, folds, patients, cfg, tmp_path, progress=False)
    p = res.predictions["MSI"]
    assert ((p > 0) & (p < 1)).all()  # probabilities, not logits
    assert roc_auc(lab["MSI"], p) > 0.9  # the sign of a pooled feature is learnt
    assert "auc" in res.per_fold and res.per_fold.auc.between(0, 1).all()
    ck = torch.load(next(tmp_path.rglob("fold0_model.pt")), weights_only=True)
    assert ck["target_mean"] == [0.0] and ck["target_std"] == [1.0] and ck["train_cfg"]["loss"] == "bce"


def test_loss_field_keeps_earlier_run_ids_and_rejects_unknown_losses():
    """Adding TrainConfig.loss must not rename cached regression runs; "bce" must get its own id."""
    from isg_core.errors import IsgError
    from isg_core.train.run_dirs import run_id as _run_id

    mse, bce = TrainConfig(), TrainConfig(loss="bce")
    assert "loss" not in mse.id_dict() and bce.id_dict()["loss"] == "bce"
    assert _run_id("m", mse, {}, ["a"], ["g"]) != _run_id("m", bce, {}, ["a"], ["g"])
    with pytest.raises(IsgError, match="unknown loss"):
        TrainConfig(loss="hinge")


def test_fold_checkpoint_carries_its_model_and_is_rebuilt_from_the_file_alone(tmp_path):
    """nanoGPT's habit: a fold model of a registry network is rebuilt by build_model from the spec
    it stores; its predictions equal the engine's out-of-fold predictions for that fold."""
    from isg_core.models import ISG, ModelRecipe
    from isg_core.train.engine import FOLD_MODEL_FORMAT, load_fold_model, predict_all

    data, y = bags(n=20)
    folds = pd.Series(np.arange(20) % 5, index=y.index)
    recipe = ModelRecipe(ISG, 4, 2, {"n_mbconv": 2, "fusion_every": 1, "vit_depth": 1, "vit_heads": 2})
    cfg = TrainConfig(epochs=2, batch_size=4, lr=1e-3, patience=2, max_patches=None)
    res = cross_validate(recipe, data, y, folds, pd.Series(y.index, index=y.index), cfg, tmp_path, progress=False,
                         model_cfg={"standardize": True})
    ck = torch.load(res.run_dir / "fold1_model.pt", weights_only=True)
    assert ck["format"] == FOLD_MODEL_FORMAT
    assert ck["model"]["model"] == ISG and ck["model"]["config"]["n_mbconv"] == 2 and ck["model"]["standardize"]
    model, _ = load_fold_model(res.run_dir, 1)  # no factory: the file alone
    test = np.flatnonzero(folds.to_numpy() == 1)
    p = predict_all(model, data, test, 4, "cpu") * np.array(ck["target_std"]) + np.array(ck["target_mean"])
    np.testing.assert_allclose(p, res.predictions.iloc[test].to_numpy(), atol=1e-5)


def test_first_format_fold_checkpoint_loads_with_its_factory(tmp_path):
    from isg_core.errors import IsgError
    from isg_core.train.engine import FOLD_MODEL_FORMAT_V1, load_fold_model

    net = MeanPool(4, 2)
    torch.save({"format": FOLD_MODEL_FORMAT_V1, "model": net.state_dict(), "model_cfg": {"standardize": False},
                "targets": ["a", "b"]}, tmp_path / "fold0_model.pt")
    model, _ = load_fold_model(tmp_path, 0, lambda k: MeanPool(4, k))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), net.state_dict().values()))
    with pytest.raises(IsgError, match="carries no model spec"):
        load_fold_model(tmp_path, 0)


def test_cosine_schedule_sets_each_epochs_rate_and_keeps_constant_run_ids(monkeypatch):
    import isg_core.train.engine as tr
    from isg_core.errors import IsgError

    cos = TrainConfig(epochs=4, patience=10, lr=0.2, lr_schedule="cosine", max_patches=None)
    assert [cos.lr_at(e) for e in range(5)] == pytest.approx([0.2, 0.2 * (1 + 2 ** -0.5) / 2, 0.1,
                                                               0.2 * (1 - 2 ** -0.5) / 2, 0.0])
    assert TrainConfig(lr=0.2).lr_at(3) == 0.2
    assert "lr_schedule" not in TrainConfig().id_dict() and cos.id_dict()["lr_schedule"] == "cosine"
    with pytest.raises(IsgError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")
    seen = []
    real = tr._train_epoch

    def spy(net, opt, *a, **k):
        seen.append(opt.param_groups[0]["lr"])
        return real(net, opt, *a, **k)

    monkeypatch.setattr(tr, "_train_epoch", spy)
    data, y = bags()
    fit(MeanPool(4, 2), data, ((y - y.mean()) / y.std()).to_numpy(), np.arange(30), np.arange(30, 40), cos)
    assert seen == pytest.approx([cos.lr_at(e) for e in range(4)])
