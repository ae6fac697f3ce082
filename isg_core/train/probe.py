"""The linear-probe protocol of the paper's Table 5: comparing feature extractors.

Slide-level features from each extractor are mapped to gene expression by a small probe, a
two-layer perceptron with a ReLU (:class:`MLPProbe`), and scored by cross-validation
(:func:`cross_validate_probe`): per fold, the probe is fitted on the other folds
(:func:`fit_probe`) and predicts the held-out slides.  Inside each fit, a fraction of the
training rows is held out (by patient or slide when ``groups`` is given, see
:func:`isg_core.train.splits.inner_split`) to pick the best epoch, so the outer test fold is never used for
model selection.

Fits are deterministic given ``ProbeConfig.seed`` and leave the global torch RNG untouched.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import IsgError
from ..metrics import mean_squared_error, pcc_or_zero, pearson_per_column
from .splits import inner_split  # re-exported: the probe's protocol uses it (see __all__)

__all__ = [
    "ProbeConfig",
    "MLPProbe",
    "FittedProbe",
    "ProbeResult",
    "inner_split",
    "fit_probe",
    "cross_validate_probe",
]

_EPS = 1e-8  # a feature/target whose std is below this is treated as constant


@dataclass(frozen=True)
class ProbeConfig:
    """Hyper-parameters of the probe and its training (defaults used for every extractor)."""

    hidden: int = 256
    epochs: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    patience: int = 30  # epochs without inner-validation improvement before stopping
    val_fraction: float = 0.2  # 0 disables the inner split (train all epochs, keep the last)
    seed: int = 0
    device: str = "cpu"


class MLPProbe(nn.Module):
    """``Linear(n_features, hidden) -> ReLU -> Linear(hidden, n_targets)``."""

    def __init__(self, n_features: int, n_targets: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, n_targets))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class FittedProbe:
    """A trained probe plus the standardisation it was trained under."""

    model: MLPProbe
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray
    best_epoch: int  # 0-based epoch whose weights were kept
    val_losses: list[float] = field(default_factory=list)  # standardised MSE per epoch

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predict ``(n, n_targets)`` expression for features ``X``, in the original Y units."""
        X = _as_2d(X, "X")
        if X.shape[1] != self.x_mean.size:
            raise IsgError(None, f"X has {X.shape[1]} features but the probe was fitted on {self.x_mean.size}")
        _check_finite(X, "X")
        device = next(self.model.parameters()).device
        xs = torch.as_tensor((X - self.x_mean) / self.x_std, dtype=torch.float32, device=device)
        self.model.eval()
        with torch.no_grad():
            out = self.model(xs).cpu().double().numpy()
        return out * self.y_std + self.y_mean


@dataclass
class ProbeResult:
    """Out-of-fold predictions and scores of :func:`cross_validate_probe`."""

    predictions: np.ndarray  # (n, n_targets), each row predicted by the probe not trained on it
    per_fold: pd.DataFrame  # columns fold, target, pcc, mse; one row per fold and target
    pooled_pcc: np.ndarray  # (n_targets,) PCC of the pooled out-of-fold predictions
    target_names: list[str]

    def summary(self) -> pd.DataFrame:
        """Mean and std (over folds, ddof=1) of the per-fold PCC of each target.

        Indexed by target, columns ``pcc_mean``, ``pcc_std``; a final row ``mean`` averages
        both columns over targets (the single number reported per extractor).
        """
        g = self.per_fold.groupby("target", sort=False)["pcc"]
        out = pd.DataFrame({"pcc_mean": g.mean(), "pcc_std": g.std(ddof=1)}).reindex(self.target_names)
        out.loc["mean"] = out.mean()
        out.index.name = "target"
        return out


def _as_2d(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise IsgError(None, f"{name} must be a 1-D or 2-D array, got shape {a.shape}")
    return a


def _check_finite(a: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(a)
    if bad.any():
        rows = np.flatnonzero(bad.any(1))
        raise IsgError(None, f"{name} contains NaN or inf in {rows.size} row(s), first at row {rows[0]}")


def _check_inputs(X: np.ndarray, Y: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    X, Y = _as_2d(X, "X"), _as_2d(Y, "Y")
    if X.shape[0] != Y.shape[0]:
        raise IsgError(None, f"X has {X.shape[0]} rows but Y has {Y.shape[0]}")
    if groups is not None and len(groups) != X.shape[0]:
        raise IsgError(None, f"groups has {len(groups)} entries but X has {X.shape[0]} rows")
    _check_finite(X, "X")
    _check_finite(Y, "Y")
    return X, Y


def _rng_devices(device: torch.device) -> list[int]:
    # fork_rng must also save/restore the CUDA generator when we train on a GPU.
    if device.type == "cuda":
        return [device.index if device.index is not None else torch.cuda.current_device()]
    return []


def fit_probe(
    X_train: np.ndarray, Y_train: np.ndarray, cfg: ProbeConfig = ProbeConfig(), groups: np.ndarray | None = None
) -> FittedProbe:
    """Fit an :class:`MLPProbe` mapping ``X_train`` (n, f) to ``Y_train`` (n, k).

    X and Y are standardised with the statistics of all rows given (a constant column keeps
    std 1); ``cfg.val_fraction`` of the rows (by ``groups`` if given) are held out to choose
    the epoch whose weights are kept, stopping after ``cfg.patience`` epochs without
    improvement.  Adam on MSE, minibatches of ``cfg.batch_size`` (full batch when larger).
    """
    X, Y = _check_inputs(X_train, Y_train, groups)
    x_mean, x_std = X.mean(0), X.std(0)
    y_mean, y_std = Y.mean(0), Y.std(0)
    x_std = np.where(x_std < _EPS, 1.0, x_std)
    y_std = np.where(y_std < _EPS, 1.0, y_std)

    if cfg.val_fraction > 0:
        tr, va = inner_split(len(X), cfg.val_fraction, groups, cfg.seed)
    else:
        tr, va = np.arange(len(X)), np.arange(0)
    device = torch.device(cfg.device)
    xs = torch.as_tensor((X - x_mean) / x_std, dtype=torch.float32, device=device)
    ys = torch.as_tensor((Y - y_mean) / y_std, dtype=torch.float32, device=device)
    x_tr, y_tr, x_va, y_va = xs[tr], ys[tr], xs[va], ys[va]

    with torch.random.fork_rng(devices=_rng_devices(device)):
        torch.manual_seed(cfg.seed)  # weight init; restored on exit so callers' RNG is untouched
        gen = torch.Generator().manual_seed(cfg.seed)  # minibatch order
        model = MLPProbe(X.shape[1], Y.shape[1], cfg.hidden).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        loss_fn = nn.MSELoss()
        best_loss, best_epoch, best_state, losses = float("inf"), -1, None, []
        for epoch in range(cfg.epochs):
            model.train()
            for idx in torch.randperm(len(tr), generator=gen).to(device).split(cfg.batch_size):
                opt.zero_grad()
                loss_fn(model(x_tr[idx]), y_tr[idx]).backward()
                opt.step()
            if len(va) == 0:
                continue
            model.eval()
            with torch.no_grad():
                val = loss_fn(model(x_va), y_va).item()
            losses.append(val)
            if val < best_loss:
                best_loss, best_epoch, best_state = val, epoch, copy.deepcopy(model.state_dict())
            elif epoch - best_epoch >= cfg.patience:
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        else:  # no inner validation: keep the final weights
            best_epoch = cfg.epochs - 1
    model.eval()
    return FittedProbe(model, x_mean, x_std, y_mean, y_std, best_epoch, losses)


def cross_validate_probe(
    X: np.ndarray,
    Y: np.ndarray,
    folds: np.ndarray,
    cfg: ProbeConfig = ProbeConfig(),
    groups: np.ndarray | None = None,
    progress: bool = False,
    target_names: list[str] | None = None,
) -> ProbeResult:
    """Cross-validate the probe over the distinct values of ``folds`` (one per row of X).

    For each fold value ``k`` a probe is fitted on rows with ``folds != k`` (inner split by
    ``groups`` if given) and predicts rows with ``folds == k``.  Folds should already keep
    a patient's slides together; this function does not check that.
    """
    X, Y = _check_inputs(X, Y, groups)
    folds = np.asarray(folds)
    if folds.shape != (len(X),):
        raise IsgError(None, f"folds must have one entry per row of X ({len(X)}), got shape {folds.shape}")
    fold_ids = np.unique(folds)
    if fold_ids.size < 2:
        raise IsgError(None, f"cross-validation needs at least 2 distinct folds, got {fold_ids.size}")
    names = [f"target_{j}" for j in range(Y.shape[1])] if target_names is None else list(target_names)
    if len(names) != Y.shape[1]:
        raise IsgError(None, f"{len(names)} target names given for {Y.shape[1]} target columns")
    groups = None if groups is None else np.asarray(groups)

    preds = np.full(Y.shape, np.nan)
    rows = []
    it = tqdm(fold_ids, desc="probe folds", unit="fold") if progress else fold_ids
    for k in it:
        test = folds == k
        fitted = fit_probe(X[~test], Y[~test], cfg, None if groups is None else groups[~test])
        preds[test] = fitted.predict(X[test])
        for j, name in enumerate(names):
            # the tables' PCC: a constant prediction scores 0 and is counted
            rows.append({"fold": k, "target": name, "pcc": pcc_or_zero(Y[test, j], preds[test, j]),
                         "mse": mean_squared_error(Y[test, j], preds[test, j])})
    per_fold = pd.DataFrame(rows, columns=["fold", "target", "pcc", "mse"])
    return ProbeResult(preds, per_fold, pearson_per_column(Y, preds), names)
