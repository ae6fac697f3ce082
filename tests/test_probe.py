"""Tests for isg_core.metrics and isg_core.train.probe (the Table 5 linear-probe protocol)."""
import numpy as np
import pytest
import torch

from isg_core.errors import IsgError
from isg_core.metrics import bootstrap_mean_ci, mean_squared_error, pearson_per_column
from isg_core.train.probe import MLPProbe, ProbeConfig, cross_validate_probe, fit_probe, inner_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def nonlinear_data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    Y = np.c_[X[:, 0] ** 2 + 0.1 * rng.normal(size=n), np.abs(X[:, 1])]
    return X, Y, rng


# ---------------------------------------------------------------- metrics


def test_pearson_matches_corrcoef():
    rng = np.random.default_rng(1)
    t = rng.normal(size=(50, 7))
    p = 0.5 * t + rng.normal(size=(50, 7))
    expected = [np.corrcoef(t[:, j], p[:, j])[0, 1] for j in range(7)]
    np.testing.assert_allclose(pearson_per_column(t, p), expected, rtol=1e-12, atol=1e-12)


def test_pearson_known_answers_and_1d():
    x = np.linspace(-3, 5, 20)
    np.testing.assert_allclose(pearson_per_column(x, 2 * x + 1), [1.0])
    np.testing.assert_allclose(pearson_per_column(x, -x), [-1.0])
    assert pearson_per_column(np.c_[x, x], np.c_[x, -x]).shape == (2,)


def test_pearson_undefined_is_nan():
    x = np.arange(10.0)
    r = pearson_per_column(np.c_[x, np.full(10, 0.1), x], np.c_[x, x, np.full(10, 3.3)])
    assert r[0] == pytest.approx(1.0)
    assert np.isnan(r[1]) and np.isnan(r[2])  # constant truth / constant prediction
    assert np.isnan(pearson_per_column(np.ones((1, 3)), np.ones((1, 3)))).all()  # n < 2


def test_mean_squared_error_known_answer():
    t = np.array([[0.0, 1.0], [2.0, 3.0]])
    p = np.array([[1.0, 1.0], [2.0, 1.0]])
    assert mean_squared_error(t, p) == pytest.approx((1 + 0 + 0 + 4) / 4)


def test_bootstrap_contains_mean_narrows_and_drops_nan():
    rng = np.random.default_rng(2)
    small, large = rng.normal(1.0, 1.0, 30), rng.normal(1.0, 1.0, 3000)
    m, lo, hi = bootstrap_mean_ci(small)
    assert lo < m < hi and m == pytest.approx(small.mean())
    _, lo2, hi2 = bootstrap_mean_ci(large)
    assert lo2 < 1.0 < hi2
    assert (hi2 - lo2) < (hi - lo) / 5  # ~ 1/sqrt(n): 10x more precise with 100x the data
    assert bootstrap_mean_ci(np.r_[small, np.nan]) == bootstrap_mean_ci(small)
    assert bootstrap_mean_ci(small, seed=0) == bootstrap_mean_ci(small, seed=0)


# ---------------------------------------------------------------- probe


def test_mlp_probe_architecture():
    m = MLPProbe(5, 3, hidden=16)
    kinds = [type(layer) for layer in m.net]
    assert kinds == [torch.nn.Linear, torch.nn.ReLU, torch.nn.Linear]
    assert m(torch.zeros(4, 5)).shape == (4, 3)


def test_probe_learns_nonlinear_targets_but_not_noise():
    X, Y, rng = nonlinear_data()
    noise = rng.normal(size=(len(X), 2))
    folds = np.arange(len(X)) % 5
    res = cross_validate_probe(X, np.c_[Y, noise], folds, target_names=["sq", "abs", "n1", "n2"])
    assert res.predictions.shape == (400, 4) and np.isfinite(res.predictions).all()
    assert (res.pooled_pcc[:2] > 0.8).all(), res.pooled_pcc  # x0^2 and |x1| are not linear in X
    assert (np.abs(res.pooled_pcc[2:]) < 0.3).all(), res.pooled_pcc
    assert list(res.per_fold.columns) == ["fold", "target", "pcc", "mse"]
    assert len(res.per_fold) == 5 * 4
    s = res.summary()
    assert list(s.index) == ["sq", "abs", "n1", "n2", "mean"]
    sq = res.per_fold.loc[res.per_fold.target == "sq", "pcc"]
    assert s.loc["sq", "pcc_mean"] == pytest.approx(sq.mean())
    assert s.loc["sq", "pcc_std"] == pytest.approx(sq.std(ddof=1))
    assert s.loc["mean", "pcc_mean"] == pytest.approx(s.loc[["sq", "abs", "n1", "n2"], "pcc_mean"].mean())


def test_predictions_are_in_original_units():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 3))
    Y = 1000.0 + 200.0 * X[:, :1]  # far from standardised scale
    f = fit_probe(X, Y, ProbeConfig(epochs=100, lr=1e-2))
    pred = f.predict(X)
    assert pred.shape == (200, 1)
    assert np.abs(pred - Y).mean() < 0.1 * Y.std()


def test_keeps_best_validation_epoch():
    X, Y, _ = nonlinear_data(200)
    f = fit_probe(X, Y, ProbeConfig(epochs=200, lr=3e-2, patience=5))  # a high lr overfits fast
    assert f.val_losses[f.best_epoch] == min(f.val_losses)
    assert len(f.val_losses) < 200  # early stopping fired ...
    assert len(f.val_losses) - 1 - f.best_epoch == 5  # ... `patience` epochs after the best


def test_deterministic_and_leaves_global_rng_alone():
    X, Y, _ = nonlinear_data(200)
    cfg = ProbeConfig(epochs=20, batch_size=64, seed=7)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = fit_probe(X, Y, cfg).predict(X)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(456)  # a different global state must not change the result
    b = fit_probe(X, Y, cfg).predict(X)
    np.testing.assert_array_equal(a, b)
    c = fit_probe(X, Y, ProbeConfig(epochs=20, batch_size=64, seed=8)).predict(X)
    assert not np.array_equal(a, c)


def test_inner_split_keeps_groups_together():
    rng = np.random.default_rng(4)
    groups = rng.integers(0, 23, size=300).astype(str)
    tr, va = inner_split(300, 0.2, groups, seed=1)
    assert np.array_equal(np.sort(np.r_[tr, va]), np.arange(300))
    assert len(va) > 0 and len(tr) > 0
    assert not set(groups[tr]) & set(groups[va])
    assert len(set(groups[va])) == round(0.2 * len(set(groups)))
    tr2, va2 = inner_split(100, 0.25, seed=0)  # without groups: row-level split
    assert len(va2) == 25 and len(tr2) == 75
    with pytest.raises(IsgError, match="at least 2"):
        inner_split(10, 0.2, np.zeros(10))


def test_cross_validation_passes_groups_to_inner_split():
    X, Y, _ = nonlinear_data(100)
    groups = np.repeat(np.arange(10), 10)
    folds = groups % 2
    res = cross_validate_probe(X, Y, folds, ProbeConfig(epochs=5), groups=groups)
    assert np.isfinite(res.predictions).all()
    with pytest.raises(IsgError, match="groups has 99 entries"):
        cross_validate_probe(X, Y, folds, ProbeConfig(epochs=5), groups=groups[:99])


def test_clear_errors():
    X, Y, _ = nonlinear_data(50)
    folds = np.arange(50) % 5
    with pytest.raises(IsgError, match="X has 50 rows but Y has 49"):
        cross_validate_probe(X, Y[:49], folds)
    with pytest.raises(IsgError, match="at least 2 distinct folds"):
        cross_validate_probe(X, Y, np.zeros(50))
    Xn = X.copy()
    Xn[7, 2] = np.nan
    with pytest.raises(IsgError, match="X contains NaN or inf.*row 7"):
        cross_validate_probe(Xn, Y, folds)
    Xn[7, 2] = np.inf
    with pytest.raises(IsgError, match="X contains NaN or inf"):
        fit_probe(Xn, Y)
