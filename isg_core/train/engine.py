"""The training engine for slide-level models (ISG and every baseline): 5-fold cross-validation.

Protocol (paper Sec. 4): log-normalised targets (log10(1 + FPKM-UQ)), an L2 loss, 5-fold
cross-validation on the manifest's patient-level folds, PCC per gene over slides.  Inside each
outer fold an inner validation split (by patient) picks the epoch to keep (early stopping), so
the test fold is never used to choose anything.  Targets are standardised per gene with the
training slides' statistics; predictions are mapped back.  A target may be NaN (a gene outside
a slide's task in the one-model-for-all-tasks setting of Tables 4 and 6): the loss ignores it.

Every model takes ``(f (B, N, d), R (B, N, g, g, d), mask (B, N), pos (B, N, 2))`` and returns
``(B, n_outputs)``; slides are padded to the largest in the batch.  In training each slide
contributes at most ``max_patches`` randomly drawn kept patches per step (memory; an
augmentation too); evaluation uses them all.

Each fold writes ``<out>/fold<k>.csv`` (test predictions) when done and is skipped on a rerun;
an unfinished fold resumes from ``<out>/fold<k>.pt`` (written every epoch, atomically).
"""
from __future__ import annotations

import copy
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from ..config import TrainSchedule
from ..errors import IsgError, atomic_path, fault_point
from ..metrics import mean_squared_error, pcc_or_zero, pearson_per_column, roc_auc
from ..models import CLAMP, InputStandardizer, identity_standardizer, load_model  # noqa: F401 (CLAMP re-exported)
from . import distributed as dist_
from .batches import SlideData, _draw_patches, _pad, collate, predict, predict_all  # noqa: F401 (re-exported)
from .run_dirs import open_run_dir
from .splits import inner_split


@dataclass(frozen=True)
class TrainConfig(TrainSchedule):
    """One cross-validation's training: the schedule a profile sets (:class:`TrainSchedule`: epochs,
    patience, lr, batch size, patches per slide, seed; its defaults live there only) and what the
    engine alone decides."""

    weight_decay: float = 1e-2
    val_fraction: float = 0.2  # of the training patients held out for early stopping
    # what the run learns from, recorded in its config.json and run id (the data are read by the caller)
    features: str = "fe"
    selection: str | None = None
    # "mse": regression on standardised targets (the paper's L2); "bce": binary classification
    # with a logit per target (Table 3's MSI head); targets are then 0/1 and left unscaled
    loss: str = "mse"
    # what early stopping reads on the inner validation slides: "loss" (lower is better), "pcc",
    # the mean over targets of the Pearson r (higher is better; HE2RNA's criterion), or "last"
    # (no early stopping: the last epoch is kept, as HE2RNA's MSI classifier does)
    stop_on: str = "loss"
    # predictions below this value (in the targets' units) are raised to it: HE2RNA passes its
    # predictions of log10(1 + x) >= 0 through a ReLU (0.0); None leaves them as they are
    prediction_floor: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss not in LOSSES:
            raise IsgError(None, f"unknown loss {self.loss!r} (choose one of {', '.join(LOSSES)})")
        if self.stop_on not in STOP_ON:
            raise IsgError(None, f"unknown stop_on {self.stop_on!r} (choose one of {', '.join(STOP_ON)})")

    def to_dict(self) -> dict:
        return asdict(self)

    def id_dict(self) -> dict:
        """What the run id hashes: every field, except those added after runs were first cached
        while they keep their default (so adding ``loss`` did not change every earlier run's id)."""
        d = self.to_dict()
        for k, default in _LATER_FIELDS.items():
            if d.get(k) == default:
                d.pop(k)
        return d


#: TrainConfig fields added later, and the default that leaves a run id unchanged
_LATER_FIELDS = {"loss": "mse", "stop_on": "loss", "prediction_floor": None, "lr_schedule": "constant"}
#: early-stopping criteria of TrainConfig.stop_on
STOP_ON = ("loss", "pcc", "last")
#: a fold checkpoint (fold<k>_model.pt): its model as {model, config, standardize, state}
FOLD_MODEL_FORMAT = "isg-slide-model/2"
#: the first format (before the model registry): the bare state dict under ``model``
FOLD_MODEL_FORMAT_V1 = "isg-slide-model/1"


# --- one model ----------------------------------------------------------------------------------------
def feature_stats(data: SlideData, idx: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-channel mean and SD of f and R over every patch of slides ``idx``; a constant channel
    (SD < 1e-6, e.g. a dead ReLU of a random ResNet) gets SD 1, so it stays near 0 instead of
    exploding on a slide where it is not constant."""
    f = np.concatenate([data.f[i] for i in idx]).astype(np.float64)
    R = np.concatenate([data.R[i].reshape(-1, data.R[i].shape[-1]) for i in idx]).astype(np.float64)
    fs, rs = f.std(0), R.std(0)
    return {"f_mean": f.mean(0), "f_std": np.where(fs > 1e-6, fs, 1.0),
            "R_mean": R.mean(0), "R_std": np.where(rs > 1e-6, rs, 1.0)}


def masked_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L2 loss of the paper over the observed targets (NaN targets ignored)."""
    ok = ~torch.isnan(target)
    return (pred[ok] - target[ok]).square().mean()


def validation_pcc(pred: np.ndarray, target: np.ndarray) -> float:
    """The mean over targets of the Pearson r between ``pred`` and ``target`` (slides x targets)
    over the slides whose target is observed; a target with fewer than 2 observed slides is
    skipped, and a constant prediction scores 0 (HE2RNA's ``compute_correlations``, which averages
    per project and gene: here each gene is observed in its own task's slides only)."""
    rs = [pcc_or_zero(target[:, j], pred[:, j]) for j in range(target.shape[1])]
    rs = [r for r in rs if np.isfinite(r)]
    return float(np.mean(rs)) if rs else 0.0


def masked_bce(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of logits against 0/1 targets, NaN targets ignored:
    mean of -[y log sigma(z) + (1 - y) log(1 - sigma(z))] (computed stably from z)."""
    ok = ~torch.isnan(target)
    return nn.functional.binary_cross_entropy_with_logits(logit[ok], target[ok])


#: the engine's losses by TrainConfig.loss
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"mse": masked_mse, "bce": masked_bce}


def _share_loss(net: nn.Module, data: SlideData, b: np.ndarray, Yt: torch.Tensor, loss_fn, cfg: TrainConfig,
                rng: np.random.Generator, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """This process's part of one training step on batch ``b`` (several processes): (loss to
    backpropagate, its contribution to the batch's recorded loss).

    The patches of every slide of the batch are drawn, so ``rng`` advances as in one process;
    the loss (a mean over the observed targets, as both :data:`LOSSES` are) is weighted by this
    share's fraction of the batch's observed targets times the number of processes, so that
    DDP's average of the gradients is the gradient of the whole batch's loss.  A process whose
    share is empty (a last batch smaller than the number of processes) or holds no observed
    target runs a slide with weight 0: it must still take part in the gradient averaging."""
    rank, world = dist_.world()
    picks = _draw_patches(data, list(b), cfg.max_patches, rng)
    n_obs_total = int((~torch.isnan(Yt[b])).sum())
    pos = dist_.shard_positions(len(b), rank, world)
    mine = pos if len(pos) else np.array([0])
    out = net(*(t.to(dev) for t in _pad(data, list(b[mine]), [picks[j] for j in mine])))
    target = Yt[b[mine]].to(dev)
    n_obs = int((~torch.isnan(target)).sum()) if len(pos) else 0
    if n_obs == 0:
        loss = out.sum() * 0.0  # a zero gradient that still reaches every parameter
        return loss, torch.tensor(float("nan") if n_obs_total == 0 else 0.0)
    loss = loss_fn(out, target) * dist_.share_weight(n_obs, n_obs_total, world)
    return loss, loss.detach()


@dataclass
class _FitState:
    """Where a :func:`fit` stands after an epoch: what its per-epoch checkpoint holds besides the
    model's and the optimiser's state."""

    best: dict  # the best epoch's model state
    best_loss: float = float("inf")
    since: int = 0  # epochs since the best one
    epoch: int = 0
    history: list[dict] = field(default_factory=list)

    def record(self, model: nn.Module, train_losses: list[float], val_loss: float, score: float | None = None) -> None:
        """One finished epoch; the model is kept if its ``score`` (lower is better; the validation
        loss unless given) is the best so far (``best_loss`` holds the best score)."""
        score = val_loss if score is None else score
        self.epoch += 1
        self.history.append({"epoch": self.epoch, "train_loss": float(np.mean(train_losses)), "val_loss": val_loss,
                             "val_score": score})
        if score < self.best_loss - 1e-6:
            self.best, self.best_loss, self.since = copy.deepcopy(model.state_dict()), score, 0
        else:
            self.since += 1


def fit(model: nn.Module, data: SlideData, Y: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray,
        cfg: TrainConfig, ckpt: Path | None = None, device: str | None = None, progress: bool = False,
        desc: str = "train") -> tuple[nn.Module, list[dict]]:
    """Train ``model`` on standardised targets ``Y`` (NaN = unobserved) with Adam(W) and early
    stopping on the inner validation loss; returns the best model and the per-epoch history.
    With ``ckpt``, state is saved every epoch and a run that finds it resumes from it.

    Under torchrun (several processes) the step is data-parallel (:mod:`isg_core.train.distributed`):
    each process takes its share of every batch of ``cfg.batch_size`` slides, DDP averages the
    gradients, validation is shared out and gathered, and only rank 0 writes ``ckpt``."""
    dist_.init_from_env(device=device)
    rank = dist_.world()[0]
    dev = dist_.local_device(device)
    model.to(dev)
    loss_fn = LOSSES[cfg.loss]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    Yt = torch.tensor(np.asarray(Y, dtype=np.float32))  # a copy: Y may be a read-only view
    state = _FitState(copy.deepcopy(model.state_dict()))
    dist_.barrier()  # rank 0 has finished writing whatever the others are about to read
    st = _load_epoch_checkpoint(ckpt, dev) if ckpt is not None and ckpt.exists() else None
    if st is not None:
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        state = _FitState(st["best"], st["best_loss"], st["since"], st["epoch"], st["history"])
    # DDP over the model's own parameters (the model itself in one process); any model may
    # leave a parameter without a gradient in a step, hence find_unused_parameters
    net = dist_.wrap_ddp(model, dev, find_unused_parameters=True)
    bar = tqdm(total=cfg.epochs, initial=state.epoch, desc=desc, unit="epoch", disable=not progress or rank != 0,
               leave=False)
    while state.epoch < cfg.epochs and state.since < cfg.patience:
        for group in opt.param_groups:  # the schedule's rate for this epoch (cfg.lr_schedule)
            group["lr"] = cfg.lr_at(state.epoch)
        losses = _train_epoch(net, opt, data, Yt, train_idx, cfg, state.epoch, dev)
        val = predict_all(model, data, val_idx, cfg.batch_size, dev)
        val_loss = float(loss_fn(torch.from_numpy(val), Yt[val_idx]))
        # what early stopping minimises: the loss, or minus the mean validation PCC
        score = {"loss": lambda: val_loss, "last": lambda: -float(state.epoch + 1),
                 "pcc": lambda: -validation_pcc(val, Yt[val_idx].numpy())}[cfg.stop_on]()
        state.record(model, losses, val_loss, score)
        bar.update(1)
        bar.set_postfix(train=f"{state.history[-1]['train_loss']:.3f}", val=f"{val_loss:.3f}")
        if ckpt is not None:
            if rank == 0:
                with atomic_path(ckpt) as tmp:
                    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "best": state.best,
                                "best_loss": state.best_loss, "since": state.since, "epoch": state.epoch,
                                "history": state.history}, tmp)
            dist_.barrier()
        fault_point("epoch")  # tests: killed after an epoch's checkpoint
    bar.close()
    model.load_state_dict(state.best)
    return model, state.history


def _train_epoch(net: nn.Module, opt: torch.optim.Optimizer, data: SlideData, Yt: torch.Tensor,
                 train_idx: np.ndarray, cfg: TrainConfig, epoch: int, dev: torch.device) -> list[float]:
    """One pass over ``train_idx`` in batches of ``cfg.batch_size`` slides; the batches' losses.

    Every draw of the epoch (the order, the patches, and torch's dropout and HE2RNA's random k)
    comes from a stream seeded by (seed, epoch), so a resumed run draws what the uninterrupted
    one did."""
    world = dist_.world()[1]
    loss_fn = LOSSES[cfg.loss]
    rng = np.random.default_rng([cfg.seed, epoch])
    torch.manual_seed(int(rng.integers(2 ** 31)))
    net.train()
    order = rng.permutation(train_idx)
    losses = []
    for k in range(0, len(order), cfg.batch_size):
        b = order[k:k + cfg.batch_size]
        if world == 1:
            f, R, mask, pos = (t.to(dev) for t in collate(data, list(b), cfg.max_patches, rng))
            loss = loss_fn(net(f, R, mask, pos), Yt[b].to(dev))
            logged = loss
        else:
            loss, logged = _share_loss(net, data, b, Yt, loss_fn, cfg, rng, dev)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(logged.detach()))
    if world > 1:  # the whole batches' losses: the average of the weighted shares
        losses = dist_.all_reduce_mean(torch.tensor(losses, dtype=torch.float64, device=dev)).tolist()
    return losses


def _load_epoch_checkpoint(path: Path, dev) -> dict | None:
    """An unfinished fold's per-epoch state, or None (with a warning) when the file is damaged:
    the fold then starts again from epoch 0, which gives what an uninterrupted run gives."""
    try:
        st = torch.load(path, map_location=dev, weights_only=True)
        if not {"model", "opt", "best", "best_loss", "since", "epoch", "history"} <= set(st):
            raise KeyError("missing fields")
        return st
    except Exception as e:  # noqa: BLE001 - truncated zip, foreign file: any failure means damaged
        warnings.warn(f"{path}: damaged training checkpoint ({type(e).__name__}); training this fold again "
                      "from the start", stacklevel=3)
        return None


# --- cross-validation ---------------------------------------------------------------------------------
@dataclass
class CVResult:
    """Out-of-fold predictions (slides x targets, original units) and per-fold metrics."""

    predictions: pd.DataFrame
    targets: pd.DataFrame
    folds: pd.Series
    per_fold: pd.DataFrame  # fold, target, pcc, mse
    run_dir: Path | None = None  # holds fold<k>.csv (test predictions) and fold<k>_model.pt (best model)

    def pooled_pcc(self) -> pd.Series:
        ok = self.targets.notna()
        return pd.Series({c: float(pearson_per_column(self.targets.loc[ok[c], c].to_numpy(),
                                                      self.predictions.loc[ok[c], c].to_numpy())[0])
                          for c in self.targets.columns})

    def summary(self) -> pd.DataFrame:
        """Per target: PCC mean and std over folds, pooled PCC, mean squared error."""
        g = self.per_fold.groupby("target", sort=False)
        out = pd.DataFrame({"pcc_mean": g.pcc.mean(), "pcc_std": g.pcc.std(ddof=1), "mse": g.mse.mean()})
        out["pcc_pooled"] = self.pooled_pcc()
        return out


def cross_validate(model_factory: Callable[[int], nn.Module], data: SlideData, targets: pd.DataFrame,
                   folds: pd.Series, patients: pd.Series, cfg: TrainConfig, out_dir: "str | os.PathLike",
                   model_cfg: dict | None = None, device: str | None = None, progress: bool = True,
                   name: str = "model", standardize: bool = True) -> CVResult:
    """Outer K-fold CV.  ``targets``: slides x targets (log scale, NaN = unobserved), indexed like
    ``data.slide_ids``; ``folds`` / ``patients``: per slide.  ``model_factory(n_outputs)`` builds
    a fresh model per fold (seeded here); with ``standardize`` it is wrapped in an
    :class:`InputStandardizer` fitted on the fold's training slides.  Results go to
    ``out_dir/<name>-<run id>/`` (:mod:`isg_core.train.run_dirs`).

    Under torchrun every process runs the same folds in step, each fold's :func:`fit` is
    data-parallel, and only rank 0 writes files; every process returns the same result."""
    dist_.init_from_env(device=device)
    ids = list(data.slide_ids)
    Y = targets.loc[ids].to_numpy(np.float64)
    fold = folds.loc[ids].to_numpy()
    pat = patients.loc[ids].to_numpy()
    run_model_cfg = dict(model_cfg or {}, standardize=standardize)
    out = open_run_dir(out_dir, name, cfg, run_model_cfg, model_cfg, data, Y, targets.columns)
    run = _Run(out, name, cfg, run_model_cfg, list(targets.columns))
    preds = np.full(Y.shape, np.nan)
    rows = []
    for k in tqdm(np.unique(fold), desc=f"{name}: folds", unit="fold", disable=not progress or not dist_.is_main()):
        test = np.flatnonzero(fold == k)
        done = out / f"fold{k}.csv"
        # rank 0's view decides, so that every process takes the same branch
        cached = _cached_fold(done, out / f"fold{k}_model.pt", [ids[i] for i in test]) if dist_.is_main() else None
        cached = dist_.broadcast_object(cached)
        if cached is not None:
            preds[test] = cached
        else:
            train_all = np.flatnonzero(fold != k)
            tr, va = inner_split(len(train_all), cfg.val_fraction, pat[train_all], seed=cfg.seed)
            preds[test] = _train_fold(run, k, model_factory, data, Y, train_all[tr], train_all[va], test, device,
                                      progress)
        rows += _fold_scores(k, Y[test], preds[test], run.targets, cfg.loss)
    return CVResult(pd.DataFrame(preds, index=ids, columns=targets.columns), targets.loc[ids],
                    pd.Series(fold, index=ids), pd.DataFrame(rows), run_dir=out)


def _cached_fold(csv: Path, model: Path, test_ids: list[str]) -> np.ndarray | None:
    """A finished fold's test predictions, in ``test_ids``' order, if its files are there and its
    test slides are these (the run id does not hash the folds: a manifest split another way finds
    the same folder, and its folds are then redone, with a warning); else None."""
    if not (csv.exists() and model.exists()):
        return None
    frame = pd.read_csv(csv, index_col=0)
    if sorted(map(str, frame.index)) != sorted(test_ids):
        warnings.warn(f"{csv}: its test slides are not this fold's (the folds changed); training it again",
                      stacklevel=3)
        return None
    return frame.loc[test_ids].to_numpy()


@dataclass(frozen=True)
class _Run:
    """What a fold's saved files record of its :func:`cross_validate` run."""

    out: Path
    name: str
    cfg: TrainConfig
    model_cfg: dict  # the run's model config with ``standardize``
    targets: list[str]


def _train_fold(run: _Run, k, model_factory: Callable[[int], nn.Module], data: SlideData, Y: np.ndarray,
                tr: np.ndarray, va: np.ndarray, test: np.ndarray, device: str | None, progress: bool) -> np.ndarray:
    """Fold ``k``: a fresh seeded model trained on ``tr`` (``va`` picks the epoch), its predictions
    for ``test`` in the targets' units, saved with the fold's best model."""
    cfg = run.cfg
    mu, sd = _target_scaling(Y[tr], cfg.loss)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed * 1000 + int(k))
        model = model_factory(Y.shape[1])
    if run.model_cfg["standardize"]:
        model = InputStandardizer(model, feature_stats(data, tr))
    model, hist = fit(model, data, (Y - mu) / sd, tr, va, cfg, ckpt=run.out / f"fold{k}.pt", device=device,
                      progress=progress, desc=f"fold {k}")
    p = predict_all(model, data, test, cfg.batch_size, device) * sd + mu
    if cfg.loss == "bce":  # stored as probabilities
        p = 1.0 / (1.0 + np.exp(-p))
    elif cfg.prediction_floor is not None:
        p = np.maximum(p, cfg.prediction_floor)
    if dist_.is_main():
        out = run.out
        # the fold's best model, with what is needed to use it on a new slide (isg predict)
        with atomic_path(out / f"fold{k}_model.pt") as tmp:
            torch.save({"format": FOLD_MODEL_FORMAT, "model": _saved_model(model, model_factory, Y.shape[1]),
                        "name": run.name, "model_cfg": run.model_cfg, "train_cfg": cfg.to_dict(),
                        "targets": list(run.targets), "target_mean": [float(x) for x in mu],
                        "target_std": [float(x) for x in sd], "fold": int(k)}, tmp)
        pd.DataFrame(hist).to_csv(out / f"fold{k}_history.csv", index=False)
        with atomic_path(out / f"fold{k}.csv") as tmp:
            pd.DataFrame(p, index=[data.slide_ids[i] for i in test], columns=run.targets).to_csv(tmp)
        (out / f"fold{k}.pt").unlink(missing_ok=True)  # the predictions are the result
    dist_.barrier()
    return p


def _target_scaling(Y_train: np.ndarray, loss: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD per target over the training slides, to standardise the targets (each gene's
    log-expression, paper Sec. 4); 0/1 labels under ``"bce"`` are left as they are (a logit)."""
    if loss == "bce":
        return np.zeros(Y_train.shape[1]), np.ones(Y_train.shape[1])
    with warnings.catch_warnings():  # a gene with no training slide (tiny cohorts) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mu, sd = np.nanmean(Y_train, 0), np.nanstd(Y_train, 0)
    return mu, np.where(sd > 1e-8, sd, 1.0)


def _fold_scores(k, Y_test: np.ndarray, P_test: np.ndarray, targets: Sequence[str], loss: str) -> list[dict]:
    """Per target observed in fold ``k``'s test slides: PCC and mean squared error (the Brier
    score under ``"bce"``, which also gets the AUC)."""
    rows = []
    for j, t in enumerate(targets):
        ok = ~np.isnan(Y_test[:, j])
        if ok.sum() == 0:
            continue
        y, p = Y_test[:, j][ok], P_test[:, j][ok]
        row = {"fold": int(k), "target": t, "pcc": float(pearson_per_column(y, p)[0]), "mse": mean_squared_error(y, p)}
        if loss == "bce":
            row["auc"] = roc_auc(y, p)
        rows.append(row)
    return rows


def _saved_model(model: nn.Module, model_factory: Callable[[int], nn.Module], n_outputs: int) -> dict:
    """What a fold checkpoint keeps of its model: the spec of a registry model (``model_factory`` a
    :class:`~isg_core.models.ModelRecipe`), so :func:`~isg_core.models.load_model` rebuilds it from
    the file alone, whether it carries an input standardiser, and the weights.  A model built by
    any other callable (the engine's own tests) is saved without a spec."""
    spec = model_factory.spec(n_outputs) if hasattr(model_factory, "spec") else {"model": None, "config": None}
    return {**spec, "standardize": isinstance(model, InputStandardizer), "state": model.state_dict()}


def load_fold_model(run_dir: "str | os.PathLike", fold: int, model_factory: Callable[[int], nn.Module] | None = None):
    """The best model of one fold of a :func:`cross_validate` run, in eval mode, and its checkpoint
    dict (targets, their training mean and SD, configs).  A registry model is rebuilt from the spec
    the checkpoint carries; ``model_factory`` is needed only for a model saved without one (the
    engine's tests, and fold models of the first format, cached by an earlier version)."""
    path = Path(run_dir) / f"fold{fold}_model.pt"
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise IsgError(path, "no saved model for this fold (run the cross-validation first)") from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise IsgError(path, f"not a readable model checkpoint ({type(e).__name__})") from None
    if ck.get("format") == FOLD_MODEL_FORMAT_V1:  # weights only: the caller's factory rebuilds the network
        saved = {"model": None, "config": None, "standardize": bool(ck["model_cfg"].get("standardize", False)),
                 "state": ck["model"]}
    elif ck.get("format") == FOLD_MODEL_FORMAT:
        saved = ck["model"]
    else:
        raise IsgError(path, "not an ISG slide-model checkpoint")
    if saved["model"] is not None:
        return load_model(saved).eval(), ck
    if model_factory is None:
        raise IsgError(path, "this fold model carries no model spec: pass the factory that built it")
    model = model_factory(len(ck["targets"]))
    if saved["standardize"]:  # placeholder statistics of the saved size, overwritten by the weights
        model = identity_standardizer(model, int(saved["state"]["f_mean"].shape[0]))
    model.load_state_dict(saved["state"])
    return model.eval(), ck
