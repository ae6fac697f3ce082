"""What only a CUDA device exercises: the extractor trainer's bf16 autocast, the Dual Attention
network's bounded-memory slide inference on a GPU, and data-parallel training over NCCL.

Every test is marked ``gpu`` and skipped without CUDA; on a GPU machine run them with
``pytest -m gpu tests/test_gpu.py``.  The NCCL tests spawn one process per GPU (NCCL refuses two
ranks on one device), so the two-process ones also skip on a machine with a single GPU.  The
comparisons of one against two processes run in float32 with TF32 off: bf16 rounding would
hide a real difference in tolerance, and bf16 is tested on its own."""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

needs_two_gpus = pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.device_count() < 2,
                                    reason="NCCL data parallelism needs two GPUs (one rank per device)")


@contextlib.contextmanager
def _full_float32():
    """TF32 off (cuDNN convolutions use it by default on Ampere and later: ~1e-3 relative error)."""
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def _no_autocast(self) -> contextlib.AbstractContextManager:
    """Stands in for ``ExtractorTrainer._autocast`` in the float32 comparisons."""
    return contextlib.nullcontext()


# --- bf16 autocast of the extractor's step ------------------------------------------------------------
def test_extractor_step_runs_in_bf16_on_cuda_and_matches_the_cpu_step():
    """On CUDA the trainer's forward passes run under bf16 autocast (the modulated convolutions
    give bf16), the weights and Adam's state stay float32, and the first step's losses - the
    critic's, R1 (full precision by design) and E + D's L1, LPIPS and adversarial terms - equal
    the CPU's float32 step to bf16 precision: the same seed gives the same initial weights and
    batch, and the noise inputs, drawn per device, start at strength 0."""
    from isg_core.features.stylegan import AutoencoderConfig, ModulatedConv2d
    from isg_core.features.train import ExtractorTrainConfig, ExtractorTrainer

    model = AutoencoderConfig(resolution=32, code_dim=16, style_dim=32, channel_base=512, channel_max=32)
    cfg = ExtractorTrainConfig(scale="global", model=model, steps=2, batch_size=8, adv_start=0, r1_every=2,
                               bank_size=32)
    bank = np.random.default_rng(0).integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LPIPS' random trunk without cached ImageNet weights
        cpu = ExtractorTrainer(cfg, bank, device="cpu")
        gpu = ExtractorTrainer(cfg, bank, device="cuda")
    ac = gpu._autocast()
    assert isinstance(ac, torch.autocast) and ac.fast_dtype == torch.bfloat16
    assert isinstance(cpu._autocast(), contextlib.nullcontext)

    seen: set[torch.dtype] = set()
    hooks = [m.register_forward_hook(lambda mod, args, out: seen.add(out.dtype))
             for m in gpu.ae.modules() if isinstance(m, ModulatedConv2d)]
    before = {k: v.detach().clone() for k, v in gpu.ae.state_dict().items()}
    with _full_float32():  # the CPU reference is float32; the GPU's autocast regions are bf16 regardless
        rec_cpu, rec_gpu = cpu.step(), gpu.step()
    for h in hooks:
        h.remove()
    assert torch.bfloat16 in seen
    assert set(rec_gpu) == set(rec_cpu) == {"step", "d", "r1", "adv", "l1", "lpips", "total"}
    for k in ("d", "adv", "l1", "lpips", "total"):
        assert rec_gpu[k] == pytest.approx(rec_cpu[k], rel=5e-2, abs=2e-3), k
    # R1 runs in float32 on both, but after C's first Adam step, which moves each weight by ~lr * sign(grad):
    # a gradient near 0 may change sign under bf16, so only the order of magnitude is held to
    assert rec_gpu["r1"] == pytest.approx(rec_cpu["r1"], rel=0.5, abs=1e-4)
    for net, opt in ((gpu.ae, gpu.opt_g), (gpu.disc, gpu.opt_d)):
        for p in net.parameters():
            assert p.dtype == torch.float32 and p.is_cuda and torch.isfinite(p).all()
        for st in opt.state.values():
            assert all(v.dtype == torch.float32 for k, v in st.items() if k != "step")
    moved = [k for k, v in gpu.ae.state_dict().items() if not torch.equal(v, before[k])]
    assert moved  # the step changed E and D
    rec2 = gpu.step()  # no R1 this step; the noise strengths have left 0
    assert "r1" not in rec2 and all(np.isfinite(v) for v in rec2.values())


# --- the Dual Attention network's slide inference on a GPU ------------------------------------------
def test_forward_slide_on_cuda_equals_forward():
    """ISG-10-2 at the paper's width (d = 128, 8 x 8 local grid) inside its input standardisation,
    as a bundle builds it: the chunked ``forward_slide`` (float16 cubes, as ``isg predict`` holds
    them) gives ``forward``'s prediction and class-token attention on the GPU, and the CPU's."""
    from isg_core.models import DualAttentionConfig, DualAttentionNetwork, InputStandardizer

    d, g, n = 128, 8, 300
    torch.manual_seed(0)
    stats = {"f_mean": torch.randn(d).numpy() * 0.1, "f_std": torch.rand(d).numpy() + 0.5,
             "R_mean": torch.randn(d).numpy() * 0.1, "R_std": torch.rand(d).numpy() + 0.5}
    model = InputStandardizer(DualAttentionNetwork(DualAttentionConfig(d=d, grid=g, n_outputs=10)), stats).eval()
    f = torch.randn(n, d)
    R = torch.randn(n, g, g, d).half()  # stored and streamed in float16
    pos = torch.randint(0, 60, (n, 2))
    mask = torch.ones(1, n, dtype=torch.bool)
    with torch.no_grad(), _full_float32():
        ref, _ = model(f[None], R.float()[None], mask, pos[None], return_attention=True)
        model.cuda()
        fc, Rc, pc = f.cuda(), R.cuda(), pos.cuda()
        out, info = model(fc[None], Rc.float()[None], mask.cuda(), pc[None], return_attention=True)
        for chunk in (64, 512):  # several chunks, and the whole slide in one
            y, att = model.forward_slide(fc, Rc, pc, chunk=chunk)
            assert y.is_cuda and y.dtype == torch.float32 and y.shape == (10,)
            torch.testing.assert_close(y, out[0], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(att, info["cls_attention"][-1][0], atol=1e-5, rtol=1e-3)
            assert float(att.sum()) <= 1.0 + 1e-5
    torch.testing.assert_close(out[0].cpu(), ref[0], atol=1e-3, rtol=1e-3)


# --- data-parallel training over NCCL -------------------------------------------------------------------
def _spawn(worker, nprocs: int, *args) -> None:
    """``worker(rank, nprocs, port, *args)`` in ``nprocs`` fresh processes (torchrun's
    environment is set by the worker: :func:`tests.test_distributed._join`)."""
    import torch.multiprocessing as mp

    from tests.test_distributed import _free_port

    mp.spawn(worker, args=(nprocs, _free_port(), *args), nprocs=nprocs, join=True)


def _one_gpu_worker(rank: int, world: int, port: int, out: str) -> None:
    """``torchrun --nproc_per_node=1`` on a GPU: the trainers stay in one plain process (no
    process group, no DDP); a default NCCL group of one, made by hand, changes nothing."""
    import torch.distributed as dist

    from isg_core.train import distributed as D
    from isg_core.train.engine import fit
    from tests.test_distributed import FIT_CFG, TRAIN, VAL, _join, _model, _slide_problem

    _join(rank, world, port)
    res = {"joined": D.init_from_env(device="cuda"), "initialized": D.is_initialized()}
    dist.init_process_group("nccl", init_method="env://", rank=0, world_size=1)
    torch.cuda.set_device(0)
    t = torch.ones(3, device="cuda")
    dist.all_reduce(t)  # the NCCL communicator works on this GPU
    data, _, Y = _slide_problem()
    with _full_float32():
        model, hist = fit(_model(), data, Y, TRAIN, VAL, FIT_CFG, device="cuda")
    res.update(backend=dist.get_backend(), device_ids=D._device_ids(), is_ddp=D.is_distributed(),
               wrapped=type(D.wrap_ddp(torch.nn.Linear(2, 1).cuda())).__name__, reduced=t.cpu(),
               state={k: v.cpu() for k, v in model.state_dict().items()}, history=hist)
    D.barrier(timeout_s=5.0)  # a no-op in a world of one, even with a timeout group asked for
    torch.save(res, Path(out) / "one.pt")
    D.destroy()


def test_torchrun_world_of_one_on_a_gpu_trains_as_a_plain_process(tmp_path):
    from isg_core.train.engine import fit
    from tests.test_distributed import FIT_CFG, TRAIN, VAL, _model, _slide_problem

    _spawn(_one_gpu_worker, 1, str(tmp_path))
    r = torch.load(tmp_path / "one.pt", weights_only=False)
    assert r["joined"] is False and r["initialized"] is False  # WORLD_SIZE=1: no process group
    assert r["backend"] == "nccl" and r["device_ids"] == [0] and r["is_ddp"] is False
    assert r["wrapped"] == "Linear" and r["reduced"].tolist() == [1.0, 1.0, 1.0]
    data, _, Y = _slide_problem()
    with _full_float32():
        ref, hist = fit(_model(), data, Y, TRAIN, VAL, FIT_CFG, device="cuda")
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(r["state"][k], v.cpu(), atol=1e-6, rtol=1e-5)
    assert [h["epoch"] for h in r["history"]] == [h["epoch"] for h in hist]


def _nccl_fit_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from isg_core.train import distributed as D
    from isg_core.train.engine import cross_validate, fit, predict
    from tests.test_distributed import CV_CFG, FIT_CFG, TRAIN, VAL, _join, _model, _slide_problem
    from tests.test_training import MeanPool

    _join(rank, world, port)
    out = Path(out)
    data, y, Y = _slide_problem()
    with _full_float32():
        model, hist = fit(_model(), data, Y, TRAIN, VAL, FIT_CFG, ckpt=out / "fit.pt", device="cuda")
        folds = pd.Series(np.arange(len(y)) % 5, index=y.index)
        cv = cross_validate(lambda k: MeanPool(4, k), data, y, folds, pd.Series(y.index, index=y.index), CV_CFG,
                            out / "cv", progress=False, device="cuda")
        pred = predict(model, data, VAL, device="cuda")
    torch.save({"backend": dist.get_backend(), "device": torch.cuda.current_device(), "is_ddp": D.is_distributed(),
                "state": {k: v.cpu() for k, v in model.state_dict().items()}, "history": hist, "pred": pred,
                "cv": cv.predictions.to_numpy()}, out / f"rank{rank}.pt")
    D.destroy()


@needs_two_gpus
def test_fit_and_cross_validate_on_two_gpus_equal_one(tmp_path):
    """The slide models' trainer over NCCL (one GPU per process) equals one process on one GPU."""
    from isg_core.train.engine import cross_validate, fit, predict
    from tests.test_distributed import CV_CFG, FIT_CFG, TRAIN, VAL, _model, _slide_problem
    from tests.test_training import MeanPool

    data, y, Y = _slide_problem()
    with _full_float32():
        one, h1 = fit(_model(), data, Y, TRAIN, VAL, FIT_CFG, device="cuda")
        folds = pd.Series(np.arange(len(y)) % 5, index=y.index)
        cv1 = cross_validate(lambda k: MeanPool(4, k), data, y, folds, pd.Series(y.index, index=y.index), CV_CFG,
                             tmp_path / "one", progress=False, device="cuda")
        p1 = predict(one, data, VAL, device="cuda")
    _spawn(_nccl_fit_worker, 2, str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert [r["backend"] for r in ranks] == ["nccl", "nccl"] and [r["device"] for r in ranks] == [0, 1]
    for r in ranks:
        assert r["is_ddp"]
        for k, v in one.state_dict().items():
            torch.testing.assert_close(r["state"][k], v.cpu(), atol=1e-5, rtol=1e-5)
        assert [h["epoch"] for h in r["history"]] == [h["epoch"] for h in h1]
        for a, b in zip(r["history"], h1):
            assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
            assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5)
        np.testing.assert_allclose(r["pred"], p1, atol=1e-5)
        np.testing.assert_allclose(r["cv"], cv1.predictions.to_numpy(), atol=1e-4)
    assert ranks[0]["history"] == ranks[1]["history"]  # the same early-stopping decisions everywhere
    ck = torch.load(tmp_path / "fit.pt", weights_only=True, map_location="cpu")
    assert not any(k.startswith("module.") for k in ck["model"])  # rank 0 saved the bare model


def _nccl_extractor_worker(rank: int, world: int, port: int, root: str, out: str) -> None:
    from isg_core.features.train import ExtractorTrainer, train_extractor
    from isg_core.train import distributed as D
    from tests.test_distributed import _extractor_cfg, _join

    _join(rank, world, port)
    ExtractorTrainer._autocast = _no_autocast  # float32 in this process: see the module docstring
    cfg = _extractor_cfg()
    with _full_float32():
        train_extractor(root, cfg, out, progress=False, max_steps=2, device="cuda")  # "killed" after step 2
        train_extractor(root, cfg, out, progress=False, resume=True, device="cuda")  # every rank resumes
    import torch.distributed as dist

    torch.save({"backend": dist.get_backend(), "device": torch.cuda.current_device()}, Path(out) / f"rank{rank}.pt")
    D.destroy()


@needs_two_gpus
def test_extractor_on_two_gpus_equals_one(tmp_path, monkeypatch):
    """The extractor's data-parallel step over NCCL, resumed from a checkpoint, equals one GPU."""
    from isg_core.features.train import ExtractorTrainer, load_checkpoint, train_extractor
    from tests.test_distributed import _extractor_cfg, _fake_cohort

    monkeypatch.setattr(ExtractorTrainer, "_autocast", _no_autocast)
    cfg = _extractor_cfg()
    _fake_cohort(tmp_path / "cohort", tmp_path / "one")
    _fake_cohort(tmp_path / "cohort", tmp_path / "two")
    with warnings.catch_warnings(), _full_float32():
        warnings.simplefilter("ignore")
        one = load_checkpoint(train_extractor(tmp_path / "cohort", cfg, tmp_path / "one", progress=False,
                                              device="cuda"))
    _spawn(_nccl_extractor_worker, 2, str(tmp_path / "cohort"), str(tmp_path / "two"))
    info = [torch.load(tmp_path / "two" / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert [i["backend"] for i in info] == ["nccl", "nccl"] and [i["device"] for i in info] == [0, 1]
    two = load_checkpoint(tmp_path / "two" / "checkpoint.pt")
    assert two["step"] == one["step"] == 4
    for part in ("encoder", "generator", "discriminator"):
        for k, v in one[part].items():
            torch.testing.assert_close(two[part][k], v, atol=1e-4, rtol=1e-3, msg=f"{part}.{k}")
    assert "r1" in two["history"][0] and "d" in two["history"][-1]
    for a, b in zip(two["history"], one["history"]):  # the recorded losses are the whole batch's
        assert set(a) == set(b)
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-3, abs=1e-5), k


def test_nccl_is_built_into_this_torch():
    """The NCCL tests above need a torch built with NCCL (the CUDA wheels are)."""
    import torch.distributed as dist

    assert dist.is_available() and dist.is_nccl_available()
