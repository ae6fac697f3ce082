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
import hashlib
import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import distributed as dist_
from .devices import resolve_device
from .errors import IsgError, atomic_path, fault_point
from .metrics import mean_squared_error, pearson_per_column, roc_auc


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 60
    batch_size: int = 8  # slides per step
    lr: float = 3e-4
    weight_decay: float = 1e-2
    patience: int = 15  # epochs without a better inner-validation loss before stopping
    val_fraction: float = 0.2
    max_patches: int | None = 256
    seed: int = 0
    # what the run learns from, recorded in its config.json and run id (the data are read by the caller)
    features: str = "fe"
    selection: str | None = None
    # "mse": regression on standardised targets (the paper's L2); "bce": binary classification
    # with a logit per target (Table 3's MSI head); targets are then 0/1 and left unscaled
    loss: str = "mse"

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise IsgError(None, f"unknown loss {self.loss!r} (choose one of {', '.join(LOSSES)})")

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
_LATER_FIELDS = {"loss": "mse"}


# --- data -------------------------------------------------------------------------------------------
@dataclass
class SlideData:
    """Features of a set of slides, in memory (float16 cubes): one entry per slide."""

    slide_ids: list[str]
    f: list[np.ndarray]  # (n_i, d) float32
    R: list[np.ndarray]  # (n_i, g, g, d) float16
    pos: list[np.ndarray]  # (n_i, 2) int64 (row, col)

    def __len__(self) -> int:
        return len(self.slide_ids)

    def subset(self, idx: Sequence[int]) -> "SlideData":
        return SlideData([self.slide_ids[i] for i in idx], [self.f[i] for i in idx], [self.R[i] for i in idx],
                         [self.pos[i] for i in idx])


def collate(data: SlideData, idx: Sequence[int], max_patches: int | None = None,
            rng: np.random.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """Pad slides ``idx`` into (f, R, mask, pos) tensors; draw at most ``max_patches`` patches
    per slide when ``rng`` is given (training), else keep every patch (evaluation)."""
    return _pad(data, idx, _draw_patches(data, idx, max_patches, rng))


def _draw_patches(data: SlideData, idx: Sequence[int], max_patches: int | None,
                  rng: np.random.Generator | None) -> list[np.ndarray]:
    """The patches :func:`collate` keeps of each slide of ``idx`` (draws from ``rng`` in slide order)."""
    picks = []
    for i in idx:
        n = len(data.f[i])
        if rng is not None and max_patches and n > max_patches:
            picks.append(np.sort(rng.choice(n, max_patches, replace=False)))
        else:
            picks.append(np.arange(n))
    return picks


def _pad(data: SlideData, idx: Sequence[int], picks: Sequence[np.ndarray]) -> tuple[torch.Tensor, ...]:
    """Patches ``picks[b]`` of slide ``idx[b]``, padded into (f, R, mask, pos) tensors."""
    n_max = max(len(p) for p in picks)
    d = data.f[idx[0]].shape[1]
    g = data.R[idx[0]].shape[1:3]
    dl = data.R[idx[0]].shape[-1]
    f = torch.zeros(len(idx), n_max, d)
    R = torch.zeros(len(idx), n_max, *g, dl)
    mask = torch.zeros(len(idx), n_max, dtype=torch.bool)
    pos = torch.zeros(len(idx), n_max, 2, dtype=torch.long)
    for b, (i, p) in enumerate(zip(idx, picks)):
        f[b, : len(p)] = torch.from_numpy(data.f[i][p])
        R[b, : len(p)] = torch.from_numpy(data.R[i][p].astype(np.float32))
        mask[b, : len(p)] = True
        pos[b, : len(p)] = torch.from_numpy(data.pos[i][p])
    return f, R, mask, pos


# --- one model ----------------------------------------------------------------------------------------
CLAMP = 10.0  # standardised features are clipped to +-CLAMP


class InputStandardizer(nn.Module):
    """``model((f - mu_f) / sd_f, (R - mu_R) / sd_R, mask, pos)``: per-channel standardisation of the
    features with statistics of the *training* slides (:func:`feature_stats`).

    The extractors' codes are not centred and their channels differ in scale (measured on ISG-Sim:
    means up to +-0.5, SDs 0.1-0.4); without this, ISG and the baselines stayed at the training
    mean for 30 epochs, with it they fit.  The statistics are buffers, so a checkpoint carries them.
    """

    def __init__(self, model: nn.Module, stats: dict[str, np.ndarray]):
        super().__init__()
        self.model = model
        for k in ("f_mean", "f_std", "R_mean", "R_std"):
            self.register_buffer(k, torch.as_tensor(np.asarray(stats[k], dtype=np.float32)))

    def standardize(self, f: torch.Tensor, R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # clamped: a channel nearly constant on the training slides must not blow up on a test slide
        return (((f - self.f_mean) / self.f_std).clamp(-CLAMP, CLAMP),
                ((R - self.R_mean) / self.R_std).clamp(-CLAMP, CLAMP))

    def forward(self, f, R, mask, pos, **kw):
        return self.model(*self.standardize(f, R), mask, pos, **kw)

    def forward_slide(self, f, R, pos, chunk: int = 512):
        """The wrapped model's bounded-memory single-slide inference (``DualAttentionNetwork.forward_slide``)."""
        return self.model.forward_slide(f, R, pos, chunk=chunk, prepare=self.standardize)


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


def masked_bce(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of logits against 0/1 targets, NaN targets ignored:
    mean of -[y log sigma(z) + (1 - y) log(1 - sigma(z))] (computed stably from z)."""
    ok = ~torch.isnan(target)
    return nn.functional.binary_cross_entropy_with_logits(logit[ok], target[ok])


#: the engine's losses by TrainConfig.loss
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"mse": masked_mse, "bce": masked_bce}


@torch.no_grad()
def predict(model: nn.Module, data: SlideData, idx: Sequence[int], batch_size: int = 8,
            device: str | None = None) -> np.ndarray:
    """Model outputs for slides ``idx`` (every kept patch), (len(idx), n_outputs)."""
    dev = resolve_device(device)
    model.eval()
    out = []
    for k in range(0, len(idx), batch_size):
        f, R, mask, pos = (t.to(dev) for t in collate(data, list(idx[k:k + batch_size])))
        out.append(model(f, R, mask, pos).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


def predict_all(model: nn.Module, data: SlideData, idx: Sequence[int], batch_size: int = 8,
                device: str | None = None) -> np.ndarray:
    """:func:`predict` on ``idx``; with several processes (torchrun) each predicts its share of the
    slides and every process gets all the predictions, in the order of ``idx``."""
    rank, world = dist_.world()
    if world == 1 or len(idx) == 0:
        return predict(model, data, idx, batch_size, device)
    idx = np.asarray(idx)
    pos = dist_.shard_positions(len(idx), rank, world)
    parts = dist_.all_gather_objects((pos, predict(model, data, idx[pos], batch_size, dist_.local_device(device))))
    filled = [(p, a) for p, a in parts if len(p)]
    out = np.empty((len(idx), filled[0][1].shape[1]), dtype=filled[0][1].dtype)
    for p, a in filled:
        out[p] = a
    return out


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


def fit(model: nn.Module, data: SlideData, Y: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray,
        cfg: TrainConfig, ckpt: Path | None = None, device: str | None = None, progress: bool = False,
        desc: str = "train") -> tuple[nn.Module, list[dict]]:
    """Train ``model`` on standardised targets ``Y`` (NaN = unobserved) with Adam(W) and early
    stopping on the inner validation loss; returns the best model and the per-epoch history.
    With ``ckpt``, state is saved every epoch and a run that finds it resumes from it.

    Under torchrun (several processes) the step is data-parallel (:mod:`isg_core.distributed`):
    each process takes its share of every batch of ``cfg.batch_size`` slides, DDP averages the
    gradients, validation is shared out and gathered, and only rank 0 writes ``ckpt``."""
    from tqdm import tqdm

    dist_.init_from_env(device=device)
    rank, world = dist_.world()
    dev = dist_.local_device(device)
    model.to(dev)
    loss_fn = LOSSES[cfg.loss]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    Yt = torch.tensor(np.asarray(Y, dtype=np.float32))  # a copy: Y may be a read-only view
    history: list[dict] = []
    best, best_loss, since, epoch = copy.deepcopy(model.state_dict()), float("inf"), 0, 0
    dist_.barrier()  # rank 0 has finished writing whatever the others are about to read
    st = _load_epoch_checkpoint(ckpt, dev) if ckpt is not None and ckpt.exists() else None
    if st is not None:
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        best, best_loss, since, epoch, history = st["best"], st["best_loss"], st["since"], st["epoch"], st["history"]
    # DDP over the model's own parameters (the model itself in one process); any model may
    # leave a parameter without a gradient in a step, hence find_unused_parameters
    net = dist_.wrap_ddp(model, dev, find_unused_parameters=True)
    bar = tqdm(total=cfg.epochs, initial=epoch, desc=desc, unit="epoch", disable=not progress or rank != 0,
               leave=False)
    while epoch < cfg.epochs and since < cfg.patience:
        rng = np.random.default_rng([cfg.seed, epoch])  # per-epoch stream: a resumed run draws the same
        torch.manual_seed(int(rng.integers(2 ** 31)))  # dropout, random k of HE2RNA, ...
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
        val = predict_all(model, data, val_idx, cfg.batch_size, dev)
        val_loss = float(loss_fn(torch.from_numpy(val), Yt[val_idx]))
        epoch += 1
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss})
        if val_loss < best_loss - 1e-6:
            best, best_loss, since = copy.deepcopy(model.state_dict()), val_loss, 0
        else:
            since += 1
        bar.update(1)
        bar.set_postfix(train=f"{history[-1]['train_loss']:.3f}", val=f"{val_loss:.3f}")
        if ckpt is not None:
            if rank == 0:
                with atomic_path(ckpt) as tmp:
                    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "best": best,
                                "best_loss": best_loss, "since": since, "epoch": epoch, "history": history}, tmp)
            dist_.barrier()
        fault_point("epoch")  # tests: killed after an epoch's checkpoint
    bar.close()
    model.load_state_dict(best)
    return model, history


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


def data_fingerprint(data: SlideData, Y: np.ndarray) -> str:
    """SHA-256 (16 hex) of the inputs and targets a run learns from: features, positions and targets.
    The run id hashes the configuration only, so re-extracted features (a retrained extractor, a
    regenerated cohort) would otherwise find the old folds and reuse them."""
    h = hashlib.sha256()
    for sid, f, R, pos in zip(data.slide_ids, data.f, data.R, data.pos):
        h.update(sid.encode())
        for a in (f, R, pos):
            h.update(np.ascontiguousarray(a).tobytes())
    h.update(np.ascontiguousarray(np.asarray(Y, np.float64)).tobytes())
    return h.hexdigest()[:16]


def _check_data(out: Path, fingerprint: str) -> None:
    """Finished folds in ``out`` belong to the data they were trained on: if the data changed,
    they are removed (with a warning) and redone; a folder without a record adopts this data."""
    record = out / "data.sha256"
    if record.exists() and record.read_text().strip() != fingerprint:
        stale = [p for p in out.glob("fold*") if p.suffix in (".csv", ".pt")]
        warnings.warn(f"{out}: the features or targets changed since these folds were trained; "
                      f"redoing them ({len(stale)} files removed)", stacklevel=3)
        for p in stale:
            p.unlink()
    with atomic_path(record) as tmp:
        tmp.write_text(fingerprint + "\n")


def _run_id(name: str, cfg: TrainConfig, model_cfg: dict, slide_ids: Sequence[str], targets: Sequence[str]) -> str:
    blob = json.dumps({"name": name, "cfg": cfg.id_dict(), "model": model_cfg, "slides": list(slide_ids),
                       "targets": list(targets)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def cross_validate(model_factory: Callable[[int], nn.Module], data: SlideData, targets: pd.DataFrame,
                   folds: pd.Series, patients: pd.Series, cfg: TrainConfig, out_dir: "str | os.PathLike",
                   model_cfg: dict | None = None, device: str | None = None, progress: bool = True,
                   name: str = "model", standardize: bool = True) -> CVResult:
    """Outer K-fold CV.  ``targets``: slides x targets (log scale, NaN = unobserved), indexed like
    ``data.slide_ids``; ``folds`` / ``patients``: per slide.  ``model_factory(n_outputs)`` builds
    a fresh model per fold (seeded here); with ``standardize`` it is wrapped in an
    :class:`InputStandardizer` fitted on the fold's training slides.  Results go to
    ``out_dir/<name>-<run id>/``.

    Under torchrun every process runs the same folds in step, each fold's :func:`fit` is
    data-parallel, and only rank 0 writes files; every process returns the same result."""
    from tqdm import tqdm

    dist_.init_from_env(device=device)
    main = dist_.is_main()
    ids = list(data.slide_ids)
    Y = targets.loc[ids].to_numpy(np.float64)
    fold = folds.loc[ids].to_numpy()
    pat = patients.loc[ids].to_numpy()
    run_model_cfg = dict(model_cfg or {}, standardize=standardize)
    out = Path(out_dir) / f"{name}-{_run_id(name, cfg, run_model_cfg, ids, targets.columns)}"
    out.mkdir(parents=True, exist_ok=True)
    if main:
        _check_data(out, data_fingerprint(data, Y))
        (out / "config.json").write_text(json.dumps({"name": name, "train": cfg.to_dict(), "model": model_cfg},
                                                    indent=1, default=str))
    dist_.barrier()
    preds = np.full(Y.shape, np.nan)
    rows = []
    for k in tqdm(np.unique(fold), desc=f"{name}: folds", unit="fold", disable=not progress or not main):
        test = np.flatnonzero(fold == k)
        train_all = np.flatnonzero(fold != k)
        done = out / f"fold{k}.csv"
        # rank 0's view decides, so that every process takes the same branch
        if dist_.broadcast_object(done.exists() and (out / f"fold{k}_model.pt").exists()):
            preds[test] = pd.read_csv(done, index_col=0).loc[[ids[i] for i in test]].to_numpy()
        else:
            from .probe import inner_split

            tr, va = inner_split(len(train_all), cfg.val_fraction, pat[train_all], seed=cfg.seed)
            tr, va = train_all[tr], train_all[va]
            if cfg.loss == "bce":  # 0/1 labels: no scaling, the model's output is a logit
                mu, sd = np.zeros(Y.shape[1]), np.ones(Y.shape[1])
            else:
                with warnings.catch_warnings():  # a gene with no training slide (tiny cohorts) stays NaN
                    warnings.simplefilter("ignore", RuntimeWarning)
                    mu, sd = np.nanmean(Y[tr], 0), np.nanstd(Y[tr], 0)
                sd = np.where(sd > 1e-8, sd, 1.0)
            Ys = (Y - mu) / sd
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed * 1000 + int(k))
                model = model_factory(Y.shape[1])
            if standardize:
                model = InputStandardizer(model, feature_stats(data, tr))
            model, hist = fit(model, data, Ys, tr, va, cfg, ckpt=out / f"fold{k}.pt", device=device,
                              progress=progress, desc=f"fold {k}")
            p = predict_all(model, data, test, cfg.batch_size, device) * sd + mu
            if cfg.loss == "bce":  # stored as probabilities
                p = 1.0 / (1.0 + np.exp(-p))
            preds[test] = p
            if main:
                # the fold's best model, with what is needed to use it on a new slide (isg predict)
                with atomic_path(out / f"fold{k}_model.pt") as tmp:
                    torch.save({"format": "isg-slide-model/1", "model": model.state_dict(), "name": name,
                                "model_cfg": run_model_cfg, "train_cfg": cfg.to_dict(),
                                "targets": list(targets.columns), "target_mean": [float(x) for x in mu],
                                "target_std": [float(x) for x in sd], "fold": int(k)}, tmp)
                pd.DataFrame(hist).to_csv(out / f"fold{k}_history.csv", index=False)
                with atomic_path(done) as tmp:
                    pd.DataFrame(p, index=[ids[i] for i in test], columns=targets.columns).to_csv(tmp)
                (out / f"fold{k}.pt").unlink(missing_ok=True)  # the predictions are the result
            dist_.barrier()
        for j, t in enumerate(targets.columns):
            ok = ~np.isnan(Y[test, j])
            if ok.sum() == 0:
                continue
            row = {"fold": int(k), "target": t,
                   "pcc": float(pearson_per_column(Y[test, j][ok], preds[test, j][ok])[0]),
                   "mse": mean_squared_error(Y[test, j][ok], preds[test, j][ok])}  # Brier score for "bce"
            if cfg.loss == "bce":
                row["auc"] = roc_auc(Y[test, j][ok], preds[test, j][ok])
            rows.append(row)
    return CVResult(pd.DataFrame(preds, index=ids, columns=targets.columns), targets.loc[ids],
                    pd.Series(fold, index=ids), pd.DataFrame(rows), run_dir=out)


def load_fold_model(run_dir: "str | os.PathLike", fold: int, model_factory: Callable[[int], nn.Module]):
    """The best model of one fold of a :func:`cross_validate` run, in eval mode, and its checkpoint
    dict (targets, their training mean and SD, configs).  ``model_factory`` builds the bare model."""
    path = Path(run_dir) / f"fold{fold}_model.pt"
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise IsgError(path, "no saved model for this fold (run the cross-validation first)") from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise IsgError(path, f"not a readable model checkpoint ({type(e).__name__})") from None
    if ck.get("format") != "isg-slide-model/1":
        raise IsgError(path, "not an ISG slide-model checkpoint")
    model = model_factory(len(ck["targets"]))
    if ck["model_cfg"].get("standardize", False):
        zeros = {k: np.zeros(ck["model"][k].shape) for k in ("f_mean", "f_std", "R_mean", "R_std")}
        model = InputStandardizer(model, zeros)
    model.load_state_dict(ck["model"])
    return model.eval(), ck
