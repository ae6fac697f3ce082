"""Data-parallel training (isg_core.train.distributed): two CPU processes on the gloo backend, started
with torch.multiprocessing.spawn and torchrun's environment variables, train exactly as one
process does: the same weights (up to float rounding), the same history, and checkpoints that
load into a plain model, for a simple pooling model and for a small ISG-a-b network.  The
workers are module-level functions, so the spawned processes can import them; a run of them that
is not over within SPAWN_TIMEOUT_S is killed and fails the test (a hung rendezvous or collective
must not hang the suite)."""
from __future__ import annotations

import json
import os
import socket
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from isg_core.features.stylegan import AutoencoderConfig
from isg_core.models import DualAttentionConfig, DualAttentionNetwork
from isg_core.train import distributed as D
from isg_core.train.engine import TrainConfig, cross_validate, fit, predict
from tests.test_training import MeanPool, bags

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WORLD = 2
# 29 training slides in batches of 7: shares of 4 and 3 slides, and a last batch of one slide
# that leaves rank 1 without a slide; max_patches draws patches; NaN targets weight the shares
FIT_CFG = TrainConfig(epochs=4, batch_size=7, lr=1e-2, weight_decay=1e-2, patience=100, max_patches=4)
CV_CFG = TrainConfig(epochs=2, batch_size=4, lr=1e-2, patience=2, max_patches=3)
TRAIN, VAL = np.arange(29), np.arange(29, 40)
# a batch of 4 = 2 processes x minibatch-stddev groups of 2: the groups stay whole
AE = AutoencoderConfig(resolution=16, code_dim=8, style_dim=16, channel_base=128, channel_max=16, mbstd_group=2)
# ISG-2-1 at d = 8 on 2 x 2 local cubes (MBConv, attention fusion, ViT).  No dropout: each process
# would drop units of its own slides, which matches one process in distribution only (README, DDP)
ISG_CFG = DualAttentionConfig(d=8, grid=2, n_outputs=2, n_mbconv=2, fusion_every=1, width=None, dropout=0.0)
SPAWN_TIMEOUT_S = 300  # each spawned run takes 10-20 s on 2 CPU cores


# --- helpers ----------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank: int, world: int, port: int) -> None:
    """What torchrun gives each process: its rank and the rendezvous address.  Every call here passes
    device="cpu": these are the gloo tests (NCCL's are in test_gpu.py), also on a GPU machine."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # LPIPS' random trunk, DDP's notes


def _spawn(worker, *args, timeout_s: float = SPAWN_TIMEOUT_S) -> None:
    """Run ``worker(rank, WORLD, port, *args)`` in WORLD fresh processes and wait for them, at most
    ``timeout_s``: then they are killed and the test fails.  A worker's exception fails it at once
    (torch's ProcessContext.join raises it and terminates the others)."""
    import torch.multiprocessing as mp

    old = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # read by the children's torch at import
    try:
        ctx = mp.start_processes(worker, args=(WORLD, _free_port(), *args), nprocs=WORLD, join=False,
                                 start_method="spawn")
    finally:
        if old is None:
            os.environ.pop("OMP_NUM_THREADS")
        else:
            os.environ["OMP_NUM_THREADS"] = old
    end = time.monotonic() + timeout_s
    try:
        while not ctx.join(timeout=max(0.1, min(5.0, end - time.monotonic()))):
            if time.monotonic() >= end:
                alive = [p.pid for p in ctx.processes if p.is_alive()]
                pytest.fail(f"{worker.__name__}: processes {alive} still running after {timeout_s:.0f} s: killed",
                            pytrace=False)
    finally:
        for p in ctx.processes:  # nothing outlives the test, whatever happened
            if p.is_alive():
                p.kill()
            p.join(10)


def _slide_problem():
    data, y = bags()
    y.loc[y.index[::3], "b"] = np.nan  # unobserved targets: the shares carry different weights
    Y = ((y - y.mean()) / y.std()).to_numpy()
    return data, y, Y


class SparePool(MeanPool):
    """MeanPool with a parameter that forward never uses: its gradient stays None in one
    process (AdamW skips it, weight decay included), and so it must with DDP."""

    def __init__(self, d: int, k: int):
        super().__init__(d, k)
        self.spare = torch.nn.Parameter(torch.ones(3))


def _model() -> MeanPool:
    torch.manual_seed(0)
    return SparePool(4, 2)


def _cv(data, y, out):
    folds = pd.Series(np.arange(len(y)) % 5, index=y.index)
    patients = pd.Series(y.index, index=y.index)
    return cross_validate(lambda k: MeanPool(4, k), data, y, folds, patients, CV_CFG, out, progress=False, device="cpu")


def _fit_worker(rank: int, world: int, port: int, out: str) -> None:
    _join(rank, world, port)
    out = Path(out)
    data, y, Y = _slide_problem()
    model, hist = fit(_model(), data, Y, TRAIN, VAL, FIT_CFG, ckpt=out / "fit.pt", device="cpu")
    res = _cv(data, y, out / "cv")
    torch.save({"state": model.state_dict(), "history": hist, "pred": predict(model, data, VAL, device="cpu"),
                "cv": res.predictions.to_numpy(), "is_ddp": D.is_distributed()}, out / f"rank{rank}.pt")
    D.destroy()


def _isg_model() -> DualAttentionNetwork:
    torch.manual_seed(0)
    return DualAttentionNetwork(ISG_CFG)


def _isg_problem():
    """The slide problem of :func:`_slide_problem` with the features ISG_CFG takes (d = 8, 2 x 2 cubes)."""
    data, y = bags(d=ISG_CFG.d, g=ISG_CFG.grid, seed=1)
    y.loc[y.index[::3], "b"] = np.nan
    return data, ((y - y.mean()) / y.std()).to_numpy()


def _isg_fit_worker(rank: int, world: int, port: int, out: str) -> None:
    _join(rank, world, port)
    out = Path(out)
    data, Y = _isg_problem()
    model, hist = fit(_isg_model(), data, Y, TRAIN, VAL, FIT_CFG, ckpt=out / "fit.pt", device="cpu")
    torch.save({"state": model.state_dict(), "history": hist, "pred": predict(model, data, VAL, device="cpu"),
                "is_ddp": D.is_distributed()}, out / f"rank{rank}.pt")
    D.destroy()


def _bank() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (16, 16, 16, 3), dtype=np.uint8)


def _extractor_cfg():
    from isg_core.features.train import ExtractorTrainConfig

    # C and R1 from the first step (R1 at steps 0 and 2), a checkpoint every 2 steps
    return ExtractorTrainConfig(scale="global", model=AE, steps=4, batch_size=4, adv_start=0, r1_every=2,
                                bank_size=16, checkpoint_every=2)


def _fake_cohort(root: Path, out: Path) -> None:
    """A manifest whose bank is already in ``out``: train_extractor reads no slide (its tiles file
    holds only what the bank's identity is made of: a fingerprint and a keep mask)."""
    import h5py

    from isg_core.features.bank import BankConfig, tiles_identity

    root.mkdir(parents=True, exist_ok=True)
    (root / "s0.svs").write_bytes(b"")
    manifest = pd.DataFrame({"slide_id": ["s0"], "path": ["s0.svs"], "cancer_type": ["LIHC"], "patient_id": ["p0"],
                             "fold": [0]})
    manifest.to_csv(root / "manifest.csv", index=False)
    (root / "tiles").mkdir(exist_ok=True)
    with h5py.File(root / "tiles" / "s0.h5", "w") as f:
        f.attrs["slide_fingerprint"] = "0" * 16
        f.create_dataset("selection/shannon/keep", data=np.ones(4, bool))
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "bank.npy", _bank())
    cfg = _extractor_cfg()
    want = BankConfig(scale="global", n=cfg.bank_size, resolution=AE.resolution, selection=cfg.selection, seed=cfg.seed)
    (out / "bank.json").write_text(json.dumps({**asdict(want), "tiles": tiles_identity(manifest, root / "tiles", want)},
                                              sort_keys=True))


def _extractor_worker(rank: int, world: int, port: int, root: str, out: str) -> None:
    from isg_core.features.train import train_extractor

    _join(rank, world, port)
    cfg = _extractor_cfg()
    # "killed" after the checkpoint of step 2
    train_extractor(root, cfg, out, progress=False, max_steps=2, device="cpu")
    train_extractor(root, cfg, out, progress=False, resume=True, device="cpu")  # every rank resumes from it
    D.destroy()


# --- tests --------------------------------------------------------------------------------------------
def test_shards_cover_the_batch_once():
    for n in range(0, 12):
        for world in (1, 2, 3, 4):
            parts = [D.shard_positions(n, r, world) for r in range(world)]
            assert sorted(np.concatenate(parts).tolist()) == list(range(n))  # each position exactly once
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
            assert all(np.array_equal(p, D.shard_positions(n, r, world)) for r, p in enumerate(parts))  # deterministic
    b = np.array([17, 3, 9, 4, 12])
    assert D.shard(b, 0, 2).tolist() == [17, 9, 12] and D.shard(list(b), 1, 2) == [3, 4]
    # each share's loss weight: the average of the weighted share means is the batch mean
    x = np.arange(7.0)
    means = [x[D.shard_positions(7, r, 3)].mean() * D.share_weight(len(D.shard_positions(7, r, 3)), 7, 3)
             for r in range(3)]
    assert np.mean(means) == pytest.approx(x.mean())
    with pytest.raises(ValueError):
        D.shard_positions(4, 2, 2)


def test_plain_process_is_not_distributed(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert D.world() == (0, 1) and D.is_main() and not D.init_from_env()
    model = torch.nn.Linear(2, 1)
    assert D.wrap_ddp(model) is model and D.unwrap(model) is model
    t = torch.ones(3)
    assert D.all_reduce_mean(t) is t and D.all_gather_objects(5) == [5] and D.broadcast_object("x") == "x"
    D.barrier()
    D.barrier(timeout_s=1.0)
    assert D.local_device("cpu") == torch.device("cpu")


def test_fit_and_cross_validate_on_two_processes_equal_one(tmp_path):
    data, y, Y = _slide_problem()
    one, h1 = fit(_model(), data, Y, TRAIN, VAL, FIT_CFG, device="cpu")
    cv1 = _cv(data, y, tmp_path / "one")
    _spawn(_fit_worker, str(tmp_path))
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD))
    assert r0["is_ddp"] and r1["is_ddp"]
    for r in (r0, r1):  # both processes end with the single process's model and decisions
        for k, v in one.state_dict().items():
            torch.testing.assert_close(r["state"][k], v, atol=1e-5, rtol=1e-5)
        assert [h["epoch"] for h in r["history"]] == [h["epoch"] for h in h1]
        for a, b in zip(r["history"], h1):
            assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
            assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5)
        np.testing.assert_allclose(r["pred"], predict(one, data, VAL, device="cpu"), atol=1e-5)
        np.testing.assert_allclose(r["cv"], cv1.predictions.to_numpy(), atol=1e-4)
    assert r0["history"] == r1["history"]  # the same numbers everywhere: the same early-stopping decisions
    # the 2-process checkpoint has the bare model's keys and loads into a plain model
    ck = torch.load(tmp_path / "fit.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in ck["model"])
    plain = SparePool(4, 2)
    plain.load_state_dict(ck["model"])
    assert ck["epoch"] == FIT_CFG.epochs and len(ck["history"]) == FIT_CFG.epochs
    # rank 0 wrote the cross-validation's files, as one process does
    run = next((tmp_path / "cv").iterdir())
    names = sorted(p.name for p in run.iterdir())
    assert names == sorted(p.name for p in next((tmp_path / "one").iterdir()).iterdir())
    assert not list(run.glob("fold?.pt")) and len(list(run.glob("fold?_model.pt"))) == 5


def test_isg_network_on_two_processes_equals_one(tmp_path):
    """The same check on ISG-a-b itself: MBConv (GroupNorm, squeeze-excitation), attention fusion and
    a ViT whose padding differs between a batch and its shares (keys masked), without dropout."""
    assert ISG_CFG.dropout == 0.0 and ISG_CFG.name == "ISG-2-1"
    data, Y = _isg_problem()
    one, h1 = fit(_isg_model(), data, Y, TRAIN, VAL, FIT_CFG, device="cpu")
    assert len(h1) == FIT_CFG.epochs and h1[-1]["train_loss"] < h1[0]["train_loss"]  # it trains
    _spawn(_isg_fit_worker, str(tmp_path))
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD))
    assert r0["is_ddp"] and r1["is_ddp"]
    for r in (r0, r1):
        assert r["state"].keys() == one.state_dict().keys()
        for k, v in one.state_dict().items():
            got = r["state"][k]
            if k.endswith("self_attn.in_proj_bias"):  # [query; key; value] biases
                # The key bias adds q . b_k to every score of a query: the softmax cancels it, so its
                # gradient is 0 up to float rounding, and AdamW turns that noise into steps of size lr,
                # different in every run (measured: up to 0.03 here).  It changes nothing the network
                # computes (the predictions below are compared); the query and value biases must match.
                e = v.shape[0] // 3
                got, v = torch.cat([got[:e], got[2 * e:]]), torch.cat([v[:e], v[2 * e:]])
            torch.testing.assert_close(got, v, atol=1e-5, rtol=1e-5, msg=k)
        assert [h["epoch"] for h in r["history"]] == [h["epoch"] for h in h1]
        for a, b in zip(r["history"], h1):
            assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
            assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5)
        np.testing.assert_allclose(r["pred"], predict(one, data, VAL, device="cpu"), atol=1e-5)
    assert r0["history"] == r1["history"]
    ck = torch.load(tmp_path / "fit.pt", weights_only=True)  # rank 0's checkpoint: a plain ISG-a-b's weights
    plain = DualAttentionNetwork(ISG_CFG)
    plain.load_state_dict(ck["model"])
    assert ck["epoch"] == FIT_CFG.epochs


def test_extractor_on_two_processes_equals_one(tmp_path):
    from isg_core.features.train import load_autoencoder, load_checkpoint, train_extractor

    cfg = _extractor_cfg()
    _fake_cohort(tmp_path / "cohort", tmp_path / "one")
    _fake_cohort(tmp_path / "cohort", tmp_path / "two")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = load_checkpoint(train_extractor(tmp_path / "cohort", cfg, tmp_path / "one", progress=False, device="cpu"))
    _spawn(_extractor_worker, str(tmp_path / "cohort"), str(tmp_path / "two"))
    two = load_checkpoint(tmp_path / "two" / "checkpoint.pt")
    assert two["step"] == one["step"] == 4
    for part in ("encoder", "generator", "discriminator"):
        assert one[part].keys() == two[part].keys()
        for k, v in one[part].items():
            torch.testing.assert_close(two[part][k], v, atol=1e-5, rtol=1e-4, msg=f"{part}.{k}")
    assert [sorted(r) for r in two["history"]] == [sorted(r) for r in one["history"]]
    assert "r1" in two["history"][0] and "d" in two["history"][-1]
    for a, b in zip(two["history"], one["history"]):  # the recorded losses are the whole batch's
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6), k
    for f in ("history.csv", "losses.png", "reconstructions.png"):
        assert (tmp_path / "two" / f).exists(), f
    ae, meta = load_autoencoder(tmp_path / "two" / "checkpoint.pt")  # a plain module
    assert meta["step"] == 4 and not isinstance(ae, torch.nn.parallel.DistributedDataParallel)
