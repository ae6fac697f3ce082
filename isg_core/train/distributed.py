"""Data-parallel training on several processes with PyTorch's own engine (torchrun + DDP).

Both trainers, the slide models' :func:`isg_core.train.engine.fit` (and :func:`~isg_core.train.engine.cross_validate`
around it) and the feature extractors' :class:`isg_core.features.train.ExtractorTrainer`, run
unchanged in one process and data-parallel when started by ``torchrun``::

    torchrun --nproc_per_node=4 -m isg_core.cli train-extractor --scale global --cohort DIR
    torchrun --nproc_per_node=4 -m isg_core.cli cv --cohort DIR --model isg --task LIHC

(``torchrun --no-python --nproc_per_node=4 isg cv ...`` runs the installed ``isg`` script the
same way.)  torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; the trainers call :func:`init_from_env` themselves, which joins the default
process group (NCCL for CUDA devices, else gloo) when ``WORLD_SIZE > 1`` and does nothing
otherwise.  Each process uses the GPU of its ``LOCAL_RANK`` when the device is ``cuda`` without
an index.  With ``--nproc_per_node=N`` on a CPU-only machine the processes share its cores: set
``OMP_NUM_THREADS`` to cores / N.  Tile and select a new cohort first, in one process
(``isg prepare``): ``train-extractor`` prepares the cohort before training, in every process.

What one step means with N processes (the "global batch" semantics):

* The batch stays the configured number of slides (``TrainConfig.batch_size``) or patches
  (``ExtractorTrainConfig.batch_size``): every process draws the *same* batch from the same
  per-epoch / per-step seed, keeps its share (:func:`shard`: elements ``rank, rank + N, ...``)
  and DistributedDataParallel averages the gradients.  Each process's loss is weighted by
  :func:`share_weight` (its share of the loss's denominator times N), so the average of the N
  gradients *is* the gradient of the whole batch's loss, also when the shares differ in size or
  (slide models) hold different numbers of observed, non-NaN targets.  One step with N
  processes therefore equals the single-process step up to float rounding (the sums run in
  another order), and the recorded losses are those of the whole batch.
* Random draws that the single process makes for the whole batch are made for the whole batch
  on every process too (which patches of each slide, the extractor's noise inputs) and sliced.
  Two things stay per process and so differ from one process: dropout masks (identical
  seeds on every process, applied to different slides: the slide models' defaults have
  dropout - ISG and ViT 0.1, HE2RNA 0.5 - so they train on another, equally valid random
  draw; without dropout every model of the paper matches one process to ~1e-5) and the
  discriminator's minibatch standard deviation, which groups the samples of one process's
  share - as in StyleGAN2's own multi-GPU training; the strided split keeps the
  single-process groups exactly when the batch is a multiple of N x the group size.
* Evaluation (the inner validation loss that drives early stopping, the test-fold predictions)
  is split over the processes and gathered, so every process gets the same predictions and
  takes the same decisions.
* Only rank 0 writes files (checkpoints, fold results, figures, histories); the others wait at
  a :func:`barrier`.  Saved states are those of the bare module (no ``module.`` prefix), so a
  checkpoint written by N processes loads in one process and the other way round; a resumed
  run reads the same checkpoint on every process (the output folder must be on a file system
  that every process sees, as it is on one machine).
"""
from __future__ import annotations

import atexit
import inspect
import os
from datetime import timedelta
from typing import Any, Sequence, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..devices import resolve_device

T = TypeVar("T")

#: how long the others wait while rank 0 works alone (e.g. builds the extractor's patch bank):
#: longer than a process group's default timeout (NCCL: 10 minutes, gloo: 30)
LONG_WAIT_S = 6 * 3600.0
_wait_groups: dict[float, Any] = {}


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def is_initialized() -> bool:
    """True when the default process group exists."""
    return dist.is_available() and dist.is_initialized()


def world() -> tuple[int, int]:
    """(rank, world size): from the process group if there is one, else from the environment
    torchrun sets (``RANK``, ``WORLD_SIZE``); (0, 1) in a plain process."""
    if is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return _env_int("RANK", 0), max(1, _env_int("WORLD_SIZE", 1))


def local_rank() -> int:
    """This process's index on its machine (``LOCAL_RANK``; 0 in a plain process)."""
    return _env_int("LOCAL_RANK", 0)


def is_distributed() -> bool:
    """True when more than one process trains."""
    return world()[1] > 1


def is_main() -> bool:
    """True on rank 0 (the process that writes files), and in a plain process."""
    return world()[0] == 0


def local_device(device: "str | torch.device | None" = None) -> torch.device:
    """The device this process trains on: ``device`` (default cuda if available, else cpu); under
    torchrun a ``cuda`` without an index becomes ``cuda:LOCAL_RANK`` (one GPU per process)."""
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None and world()[1] > 1:
        dev = torch.device("cuda", local_rank())
    return dev


def init_from_env(backend: str | None = None, device: "str | torch.device | None" = None) -> bool:
    """Join the default process group when torchrun started several processes
    (``WORLD_SIZE > 1``) and none is joined yet; returns whether training is distributed.

    ``backend``: default "nccl" when the training device (``device``, see :func:`local_device`)
    is a CUDA device, else "gloo".  With NCCL the process's current CUDA device is set to its
    ``LOCAL_RANK``.  Rendezvous: ``env://`` (``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``,
    ``WORLD_SIZE``).  A no-op in a plain process."""
    if is_initialized():
        return dist.get_world_size() > 1
    if max(1, _env_int("WORLD_SIZE", 1)) <= 1:
        return False
    dev = local_device(device)
    if backend is None:
        backend = "nccl" if dev.type == "cuda" and torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend=backend, init_method="env://")
    atexit.register(destroy)
    return dist.get_world_size() > 1


def destroy() -> None:
    """Leave the process group (registered at exit by :func:`init_from_env`)."""
    _wait_groups.clear()
    if is_initialized():
        dist.destroy_process_group()


def _device_ids() -> list[int] | None:
    if is_initialized() and dist.get_backend() == "nccl":
        return [torch.cuda.current_device()]
    return None


def barrier(timeout_s: float | None = None) -> None:
    """Wait until every process gets here (no-op in one process).

    ``timeout_s``: wait up to that long, for when rank 0 works alone for longer than the process
    group's timeout (NCCL's default is 10 minutes): the wait then runs on a gloo group made with
    that timeout (made once, by every process, at its first such barrier)."""
    if not (is_initialized() and dist.get_world_size() > 1):
        return
    if timeout_s is None:
        ids = _device_ids()
        dist.barrier(device_ids=ids) if ids else dist.barrier()
        return
    if timeout_s not in _wait_groups:
        _wait_groups[timeout_s] = dist.new_group(backend="gloo", timeout=timedelta(seconds=timeout_s))
    dist.barrier(group=_wait_groups[timeout_s])


def shard_positions(n: int, rank: int | None = None, world_size: int | None = None) -> np.ndarray:
    """Positions ``rank, rank + world_size, ...`` of a batch of ``n``: this process's share.

    Every position belongs to exactly one rank, the shares differ in size by at most one, and
    the split depends only on (n, rank, world_size), so all processes agree on it.  Strided
    rather than contiguous: StyleGAN2's minibatch-stddev groups samples ``i, i + n/G, ...``,
    and a strided share keeps those groups whole when n is a multiple of world_size x G."""
    r, w = world()
    rank = r if rank is None else rank
    world_size = w if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside a world of {world_size}")
    return np.arange(rank, n, world_size)


def shard(items: Sequence[T] | np.ndarray, rank: int | None = None, world_size: int | None = None):
    """This process's share of a batch (``items[rank::world_size]``; see :func:`shard_positions`)."""
    pos = shard_positions(len(items), rank, world_size)
    if isinstance(items, (np.ndarray, torch.Tensor)):
        return items[pos]
    return [items[i] for i in pos]


def share_weight(n_share: int, n_total: int, world_size: int | None = None) -> float:
    """The factor for a process's loss (a mean over its ``n_share`` terms) so that DDP's average
    of the ``world_size`` gradients equals the gradient of the mean over all ``n_total`` terms:
    n_share * world_size / n_total (1.0 when the shares are equal)."""
    w = world()[1] if world_size is None else world_size
    return n_share * w / n_total


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Average of ``tensor`` over the processes, in place (returned); unchanged in one process."""
    if is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    return tensor


def all_gather_objects(obj: Any) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every process (any picklable object)."""
    if not (is_initialized() and dist.get_world_size() > 1):
        return [obj]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every process (a decision all must take alike)."""
    if not (is_initialized() and dist.get_world_size() > 1):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def wrap_ddp(model: nn.Module, device: "torch.device | str | None" = None, find_unused_parameters: bool = False,
             sync_buffers: bool = True) -> nn.Module:
    """``model`` in :class:`~torch.nn.parallel.DistributedDataParallel` when several processes
    train, else ``model`` itself.  The wrapper shares the model's parameters: optimisers and
    ``state_dict`` stay on the bare model (:func:`unwrap`).  ``find_unused_parameters``: for
    models whose forward may leave parameters without a gradient (costs a graph walk per step).
    ``sync_buffers=False``: do not copy rank 0's buffers to the others before every forward
    (DDP's ``broadcast_buffers``, renamed ``forward_sync_buffers`` in recent PyTorch)."""
    if not (is_initialized() and dist.get_world_size() > 1):
        return model
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    ids = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else None
    kw = {}
    if not sync_buffers:
        params = inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters
        kw["forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"] = False
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused_parameters,
                                               **kw)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module inside a DDP wrapper (or ``model``)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
