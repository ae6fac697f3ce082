"""Training a feature extractor: ``isg train-extractor --scale global|local``.

One step (paper Eq. 2, the convention of :mod:`isg_core.features.losses`):

1. discriminator: minimise u(-C(x)) + u(C(D(E(x)))), plus lazy R1 every ``r1_every`` steps;
2. autoencoder (E and D): minimise lambda_1 L1 + lambda_LPIPS L_LPIPS + lambda_adv u(-C(D(E(x)))).

Every random draw of step t (the batch, its augmentation, the generator's noise) comes from a
seed made of (config seed, t), so a run resumed from a checkpoint at step t continues exactly
as the uninterrupted run would have (``tests/test_features.py`` checks it).  Checkpoints carry
their config (nanoGPT's habit), the loss history and which LPIPS trunk was used, contain only
tensors and plain Python values (they load with ``torch.load(weights_only=True)``), and are
written under a temporary name, then renamed.

Under torchrun the step is data-parallel (:mod:`isg_core.train.distributed`): every process draws the
same batch and noise, trains on its share, DDP averages the gradients of E and D and those of
C; only rank 0 writes the checkpoint, history and figures.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .. import __version__
from ..config import FeatureConfig
from ..data.manifest import read_manifest
from ..data.tiling import StaleResultWarning
from ..errors import IsgError, atomic_path, first_line
from ..paths import cohort_tiles_dir
from ..train import distributed as dist_
from .bank import BankConfig, augment, bank_fingerprint, load_or_build_bank, tiles_identity, to_tensor
from .losses import (
    LPIPSLoss,
    adaptive_adv_weight,
    d_logistic_loss,
    g_nonsaturating_loss,
    haematoxylin_l1,
    l1_loss,
    r1_penalty,
)
from .stylegan import AutoencoderConfig, Discriminator, NoiseInjection, StyleAutoencoder

CHECKPOINT_FORMAT = "isg-extractor/1"
#: how the adversarial term is weighed (ExtractorTrainConfig.adv_weight)
ADV_WEIGHTS = ("fixed", "adaptive")


@dataclass(frozen=True)
class ExtractorTrainConfig:
    """Everything that defines a feature-extractor training run (stored in its checkpoints)."""
    scale: str
    model: AutoencoderConfig
    steps: int  # no default: the profile sets it (FeatureConfig.global_steps / local_steps, train_config_for)
    batch_size: int = 16
    # Measured on ISG-Sim quick (global, 300 steps, no C): L1 0.270 with StyleGAN2's Adam
    # (lr 2e-3, betas (0, 0.99)), 0.256 with betas (0.9, 0.99) at 1e-3, 0.242 at 3e-3.
    lr: float = 3e-3
    betas: tuple[float, float] = (0.9, 0.99)
    # C keeps StyleGAN2's Adam (lr 2e-3, beta1 = 0): with the autoencoder's beta1 = 0.9 the
    # two players' momentum made C's loss and L1 oscillate with a period of ~80 steps.
    d_lr: float = 2e-3
    d_betas: tuple[float, float] = (0.0, 0.99)
    lambda_l1: float = 1.0
    # LPIPS on the lpips package's trunk (random offline): on the development cohort E_L read cell
    # counts at 0.392 with it and 0.385 without (results/quick/extractor_choices.md)
    lambda_lpips: float = 1.0
    # Eq. 2 as printed: the three terms with weight 1, C from the first step.  Chosen on the
    # development cohort (`isg study extractor-choices`; results/quick/extractor_choices.md): a
    # ridge probe read the cell counts of held-out local patches from E_L's codes at PCC 0.392
    # (0.388 with another training seed) against 0.367 / 0.360 without C, 0.374 with C at 0.1
    # and 0.367 with C at 0.05 from 2/3 of the steps (the earlier default).  C keeps
    # L1 high (0.31-0.33 against 0.13): the reconstructions are worse and the codes read cells
    # better by ridge.  With C the decoders barely reconstruct (pixel R^2 0.08 for E_L, -0.44 for
    # E_G) and without it the codes are read no better, by ridge or MLP (`isg study extractor-limits`)
    lambda_adv: float = 1.0
    adv_start: int = 0  # step at which C and L_C switch on
    # how L_C is weighed against the reconstruction: "fixed" (lambda_adv, Eq. 2 as printed) or
    # "adaptive": lambda_adv x VQGAN's ||grad L_rec|| / ||grad L_C|| at the decoder's last layer
    # (losses.adaptive_adv_weight), so C can neither drown nor vanish against L1 + LPIPS
    adv_weight: str = "fixed"
    # L1 on the haematoxylin channel (losses.haematoxylin_l1), added to the RGB L1: 0 is Eq. 2
    lambda_hed: float = 0.0
    r1_gamma: float | None = 1.0  # None: StyleGAN2-ADA's heuristic 2e-4 * resolution^2 / batch (0.05 here)
    r1_every: int = 16
    bank_size: int = 4096
    # how the bank is drawn (features.data.BankConfig): "balanced" over appearance clusters, so
    # that lymphocytes and mitoses are seen, or "uniform" (the commonest content dominates); on the
    # development cohort 0.392 against 0.369 (two training seeds differ by ~0.004)
    bank_sampling: str = "balanced"
    selection: str = "shannon"
    checkpoint_every: int = 100
    seed: int = 0
    lpips_min_size: int = 64

    def __post_init__(self) -> None:
        if self.adv_weight not in ADV_WEIGHTS:
            raise IsgError(None, f"adv_weight must be one of {', '.join(ADV_WEIGHTS)}, got {self.adv_weight!r}")
        if self.lambda_hed < 0:
            raise IsgError(None, f"lambda_hed must be >= 0, got {self.lambda_hed}")

    @property
    def gamma(self) -> float:
        return self.r1_gamma if self.r1_gamma is not None else 2e-4 * self.model.resolution ** 2 / self.batch_size

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"], d["d_betas"] = list(self.betas), list(self.d_betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ExtractorTrainConfig":
        d = {"bank_sampling": "uniform", **d}  # saved before the field existed: drawn uniformly
        d["model"] = AutoencoderConfig.from_dict(d["model"])
        d["betas"], d["d_betas"] = tuple(d["betas"]), tuple(d["d_betas"])
        return cls(**d)


def same_config(saved: dict, cfg: ExtractorTrainConfig) -> bool:
    """Whether a checkpoint's stored config is ``cfg``, compared as rebuilt by
    :meth:`ExtractorTrainConfig.from_dict`: a field added since, whose default reproduces what the
    older code did, does not make the checkpoint another config's."""
    try:
        return ExtractorTrainConfig.from_dict(saved).to_dict() == cfg.to_dict()
    except (TypeError, ValueError, KeyError):  # a field since removed or renamed: another config
        return False


def train_config_for(scale: str, features: FeatureConfig, **overrides) -> ExtractorTrainConfig:
    """The training config of a profile's global or local extractor."""
    if scale not in ("global", "local"):
        raise IsgError(None, f"scale must be 'global' or 'local', got {scale!r}")
    res = features.global_resolution if scale == "global" else features.local_resolution
    base = features.channel_base if scale == "global" else features.local_channel_base
    model = AutoencoderConfig(resolution=res, code_dim=features.code_dim, style_dim=2 * features.code_dim,
                              channel_base=base, channel_max=features.channel_max)
    steps = features.global_steps if scale == "global" else features.local_steps
    cfg = ExtractorTrainConfig(scale=scale, model=model, steps=steps, batch_size=features.batch_size,
                               bank_size=features.bank_size, checkpoint_every=features.checkpoint_every)
    return replace(cfg, **overrides)


def _step_seed(seed: int, step: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{step}".encode()).digest()[:7], "little")


class _CriticObjective(torch.nn.Module):
    """C's two objectives as one module, so that C's DDP wrapper sees one forward per backward:
    ``(real, fake)`` -> u(-C(x)) + u(C(x_hat)); ``(real, None)`` -> (E ||grad_x C(x)||^2, sum of
    C(x)).  The sum is returned so the R1 step can add 0 x it: the penalty's double backward
    gives C's last bias no gradient, and DDP waits for a gradient of every parameter."""

    def __init__(self, disc: Discriminator):
        super().__init__()
        self.disc = disc

    def forward(self, real: torch.Tensor, fake: torch.Tensor | None = None):
        if fake is not None:
            return d_logistic_loss(self.disc(real), self.disc(fake))
        logits: list[torch.Tensor] = []

        def critic(x: torch.Tensor) -> torch.Tensor:
            logits.append(self.disc(x))
            return logits[-1]

        return r1_penalty(critic, real), logits[0].sum()


class ExtractorTrainer:
    """Holds the networks, optimisers and history of one run; ``step()`` advances by one.
    Under torchrun (several processes) each step is data-parallel: see :meth:`step`."""

    def __init__(self, cfg: ExtractorTrainConfig, bank: np.ndarray, device: torch.device | str | None = None,
                 lpips: LPIPSLoss | None = None):
        dist_.init_from_env(device=device)
        self.rank, self.world = dist_.world()
        if cfg.adv_weight == "adaptive" and self.world > 1:  # its gradient probes are not checked under DDP
            raise IsgError(None, "adv_weight='adaptive' runs in one process only (not under torchrun)")
        if cfg.batch_size < self.world:
            raise IsgError(None, f"batch size {cfg.batch_size} is smaller than the {self.world} processes")
        self.cfg = cfg
        self.device = dist_.local_device(device)
        self.bank = bank
        self.bank_id = bank_fingerprint(bank) if len(bank) <= 200_000 else f"n={len(bank)}"
        self.tiles_id = ""  # what the bank was drawn from (data.tiles_identity), set by train_extractor
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)  # the same initial weights for the same seed
            self.ae = StyleAutoencoder(cfg.model).to(self.device)
            self.disc = Discriminator(cfg.model).to(self.device)
        self.lpips = (lpips or LPIPSLoss(min_size=cfg.lpips_min_size)).to(self.device)
        # R1 lazy regularisation: rescale Adam's hyperparameters as StyleGAN2 does (c = k / (k + 1))
        c = cfg.r1_every / (cfg.r1_every + 1)
        self.opt_g = torch.optim.Adam(self.ae.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.d_lr * c, betas=tuple(b ** c for b in cfg.d_betas))
        self.step_count = 0
        self.history: list[dict] = []
        self.seconds = 0.0
        # DDP wrappers (the bare networks in one process); states and optimisers stay on the bare ones
        self._r1_no_grad = self._params_r1_leaves_without_grad() if self.world > 1 else []
        self._ae = dist_.wrap_ddp(self.ae, self.device, sync_buffers=False)
        self._critic = dist_.wrap_ddp(_CriticObjective(self.disc), self.device,
                                      sync_buffers=False)

    def _params_r1_leaves_without_grad(self) -> list[torch.nn.Parameter]:
        """C's parameters that R1's penalty gives no gradient (C's last bias): in one process
        they keep ``grad = None`` in the R1 step, so Adam leaves them (and their step count)
        alone; with DDP they get a zero gradient, which :meth:`step` removes again."""
        res = self.cfg.model.resolution
        params = list(self.disc.parameters())
        r1 = r1_penalty(self.disc, torch.zeros(2, 3, res, res, device=self.device))
        grads = torch.autograd.grad(r1, params, allow_unused=True)
        return [p for p, g in zip(params, grads) if g is None]

    def decoder_last_layer(self) -> torch.nn.Parameter:
        """The weight of D's last layer (the last to-RGB convolution), where the adaptive weight
        compares the two terms' gradients."""
        gen = self.ae.generator
        return (gen.rgbs[-1] if len(gen.rgbs) else gen.rgb4).conv.weight

    # --- one step -------------------------------------------------------------------------------
    def _autocast(self):
        if self.device.type == "cuda":  # bf16 mixed precision on a GPU; full precision on a CPU
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def batch(self, step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(_step_seed(self.cfg.seed, step))
        idx = torch.randint(0, len(self.bank), (self.cfg.batch_size,), generator=g).numpy()
        x = to_tensor(self.bank[np.sort(idx)])
        return augment(x, g).to(self.device)

    @contextlib.contextmanager
    def _whole_batch_noise(self, n: int, share: np.ndarray):
        """While active, each noise input of the generator draws noise for the whole batch of
        ``n`` (as one process does) and keeps the rows of this process's ``share``."""
        rows = torch.as_tensor(share, device=self.device)

        def hook(module, args, kwargs):
            if len(args) > 1 or kwargs.get("noise") is not None:  # noise given: leave it
                return None
            x = args[0]
            noise = torch.randn(n, 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)[rows]
            return args, {**kwargs, "noise": noise}

        handles = [m.register_forward_pre_hook(hook, with_kwargs=True)
                   for m in self.ae.modules() if isinstance(m, NoiseInjection)]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def step(self) -> dict:
        """One step of the discriminator (with R1 every ``r1_every`` steps) and one of E and D.
        With several processes: each takes the elements ``rank, rank + N, ...`` of the step's
        batch (the same batch and noise everywhere), its losses are weighted by its share of the
        batch (:func:`isg_core.train.distributed.share_weight`, 1 when N divides the batch) and DDP
        averages the gradients, so the step equals the single-process one up to float
        rounding (see :mod:`isg_core.train.distributed` for the minibatch-stddev groups); the
        recorded losses are the whole batch's."""
        # Long on purpose: one step of Eq. 2 in the order StyleGAN2 runs it (C with lazy R1, then E
        # and D), with the distributed gradient averaging between; kept whole so the order reads in one place.
        cfg, t = self.cfg, self.step_count
        t0 = time.perf_counter()
        torch.manual_seed(_step_seed(cfg.seed + 1, t))  # the generator's noise inputs
        x = self.batch(t)
        rec: dict = {"step": t + 1}
        if self.world > 1:
            n = len(x)
            share = dist_.shard_positions(n, self.rank, self.world)
            noise = self._whole_batch_noise(n, share)
            x, w = x[share], dist_.share_weight(len(share), n, self.world)
        else:
            noise, w = contextlib.nullcontext(), 1.0

        def scaled(loss: torch.Tensor) -> torch.Tensor:
            return loss * w if self.world > 1 else loss

        adv = cfg.lambda_adv > 0 and t >= cfg.adv_start
        with noise:
            if adv:  # 1. discriminator
                self.disc.requires_grad_(True)
                with self._autocast():
                    with torch.no_grad():
                        fake = self.ae(x)
                    loss_d = self._critic(x, fake.detach())
                self.opt_d.zero_grad(set_to_none=True)
                scaled(loss_d).backward()
                self.opt_d.step()
                rec["d"] = float(loss_d.detach())
                if t % cfg.r1_every == 0:
                    r1, logit_sum = self._critic(x)  # full precision: a gradient penalty
                    loss_r1 = scaled(cfg.gamma / 2 * r1 * cfg.r1_every)
                    if self.world > 1:
                        loss_r1 = loss_r1 + 0.0 * logit_sum
                    self.opt_d.zero_grad(set_to_none=True)
                    loss_r1.backward()
                    for p in self._r1_no_grad:
                        p.grad = None
                    self.opt_d.step()
                    rec["r1"] = float(r1.detach())
                self.disc.requires_grad_(False)
            with self._autocast():  # 2. autoencoder (C frozen: its bare module, no DDP)
                x_hat = self._ae(x)
                l1 = l1_loss(x, x_hat.float())
                with contextlib.nullcontext() if cfg.lambda_lpips > 0 else torch.no_grad():
                    lp = self.lpips(x, x_hat.float())  # without its term still recorded, for comparison
                loss = cfg.lambda_l1 * l1 + cfg.lambda_lpips * lp
                if cfg.lambda_hed > 0:
                    hed = haematoxylin_l1(x, x_hat.float())
                    loss = loss + cfg.lambda_hed * hed
                    rec["hed"] = float(hed.detach())
                if adv:
                    g_adv = g_nonsaturating_loss(self.disc(x_hat))
                    weight = cfg.lambda_adv
                    if cfg.adv_weight == "adaptive":
                        weight = cfg.lambda_adv * adaptive_adv_weight(loss, g_adv, self.decoder_last_layer())
                        rec["adv_weight"] = float(weight)
                    loss = loss + weight * g_adv
                    rec["adv"] = float(g_adv.detach())
            self.opt_g.zero_grad(set_to_none=True)
            scaled(loss).backward()
            self.opt_g.step()
        rec.update(l1=float(l1.detach()), lpips=float(lp.detach()), total=float(loss.detach()))
        if self.world > 1:  # the whole batch's losses: the average of the weighted shares
            keys = [k for k in rec if k != "step"]
            v = dist_.all_reduce_mean(torch.tensor([rec[k] * w for k in keys], dtype=torch.float64,
                                                   device=self.device))
            rec.update(zip(keys, v.tolist()))
        self.step_count += 1
        self.seconds += time.perf_counter() - t0
        self.history.append(rec)
        return rec

    # --- checkpoints ----------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT, "isg_core_version": __version__, "config": self.cfg.to_dict(),
            "step": self.step_count, "seconds": self.seconds, "bank": self.bank_id, "tiles": self.tiles_id,
            "lpips_trunk": self.lpips.trunk, "history": self.history,
            "encoder": self.ae.encoder.state_dict(), "generator": self.ae.generator.state_dict(),
            "discriminator": self.disc.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
        }

    def save(self, path: "str | os.PathLike") -> Path:
        path = Path(path)
        with atomic_path(path) as tmp:
            torch.save(self.state(), tmp)
        return path

    def load_state(self, ck: dict) -> None:
        self.ae.encoder.load_state_dict(ck["encoder"])
        self.ae.generator.load_state_dict(ck["generator"])
        self.disc.load_state_dict(ck["discriminator"])
        self.opt_g.load_state_dict(ck["opt_g"])
        self.opt_d.load_state_dict(ck["opt_d"])
        self.step_count, self.seconds = int(ck["step"]), float(ck.get("seconds", 0.0))
        self.history = list(ck["history"])


def load_checkpoint(path: "str | os.PathLike", map_location: str | torch.device = "cpu") -> dict:
    """Load an extractor checkpoint safely (``weights_only=True``); a clear error if it is not one."""
    path = Path(path)
    if not path.exists():
        raise IsgError(path, "checkpoint not found")
    try:
        ck = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, pickle of unexpected types, not a torch file
        raise IsgError(path, f"corrupt or unreadable checkpoint ({first_line(e)})") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise IsgError(path, f"not an ISG feature-extractor checkpoint (expected format {CHECKPOINT_FORMAT})")
    return ck


def load_autoencoder(path: "str | os.PathLike", device: str | torch.device = "cpu") -> tuple[StyleAutoencoder, dict]:
    """(autoencoder in eval mode, checkpoint metadata without the weights)."""
    ck = load_checkpoint(path, map_location=device)
    cfg = ExtractorTrainConfig.from_dict(ck["config"])
    ae = StyleAutoencoder(cfg.model)
    ae.encoder.load_state_dict(ck["encoder"])
    ae.generator.load_state_dict(ck["generator"])
    meta = {k: v for k, v in ck.items() if k not in ("encoder", "generator", "discriminator", "opt_g", "opt_d")}
    return ae.to(device).eval(), meta


# --- the command ----------------------------------------------------------------------------------
def history_frame(history: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(history).set_index("step")


def train_extractor(cohort_root: "str | os.PathLike", cfg: ExtractorTrainConfig, out_dir: "str | os.PathLike",
                    tiles: "str | os.PathLike | None" = None, resume: bool = False, overwrite: bool = False,
                    device: str | None = None, progress: bool = True, folds: tuple[int, ...] | None = None,
                    max_steps: int | None = None) -> Path:
    """Train one extractor on the cohort's selected patches; returns the checkpoint path
    ``<out_dir>/checkpoint.pt``.

    A finished checkpoint with the same config is kept as it is (skip-if-done).  An unfinished
    one is continued with ``resume=True``; otherwise it is an error, as is a checkpoint made
    with another config (``overwrite=True`` starts again).  ``max_steps`` stops early (to test
    interruption); figures (loss curves, reconstructions) and ``history.csv`` are written
    beside the checkpoint.

    Under torchrun every process trains its share of each batch (:class:`ExtractorTrainer`);
    rank 0 builds the patch bank, which the others then load, and alone writes files."""
    # Long on purpose: the run's life cycle (bank, resume, step loop with checkpoints, figures)
    # under torchrun, where every rank must reach the same barriers in the same order.

    dist_.init_from_env(device=device)
    main = dist_.is_main()
    out_dir = Path(out_dir)
    ckpt = out_dir / "checkpoint.pt"
    manifest = read_manifest(Path(cohort_root) / "manifest.csv")
    bank_cfg = BankConfig(scale=cfg.scale, n=cfg.bank_size, resolution=cfg.model.resolution, selection=cfg.selection,
                          seed=cfg.seed, folds=folds, sampling=cfg.bank_sampling)
    tiles_id = tiles_identity(manifest, cohort_tiles_dir(cohort_root, tiles), bank_cfg)
    ck = None
    if ckpt.exists() and not overwrite:
        ck = load_checkpoint(ckpt)
        if not same_config(ck["config"], cfg):
            raise IsgError(ckpt, "checkpoint was made with another config (use --overwrite to start again)")
        if ck.get("tiles") != tiles_id:  # the cohort's slides (or their selections) changed: its patches are stale
            warnings.warn(f"{ckpt}: trained on patches of other slide files (or selections) than the cohort's now; "
                          "training again", StaleResultWarning, stacklevel=2)
            ck = None
        elif ck["step"] >= cfg.steps:
            return ckpt
        elif not resume:
            raise IsgError(ckpt, f"unfinished run at step {ck['step']}/{cfg.steps} (use --resume to continue it)")
    if main:
        bank = load_or_build_bank(out_dir / "bank.npy", manifest, cohort_tiles_dir(cohort_root, tiles), bank_cfg,
                                  progress=progress)
    dist_.barrier(timeout_s=dist_.LONG_WAIT_S)  # building a large bank takes a while
    if not main:  # rank 0 has saved it: load it
        bank = load_or_build_bank(out_dir / "bank.npy", manifest, cohort_tiles_dir(cohort_root, tiles), bank_cfg,
                                  progress=False)
    trainer = ExtractorTrainer(cfg, bank, device=device)
    trainer.tiles_id = tiles_id
    if ck is not None:
        if ck["bank"] != trainer.bank_id:
            raise IsgError(ckpt, "the training patches changed since this checkpoint (use --overwrite)")
        trainer.load_state(ck)
    stop = cfg.steps if max_steps is None else min(cfg.steps, max_steps)
    bar = tqdm(total=cfg.steps, initial=trainer.step_count, desc=f"train {cfg.scale} extractor", unit="step",
               disable=not progress or not main)
    while trainer.step_count < stop:
        rec = trainer.step()
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in rec.items() if k in ("l1", "lpips", "adv", "d")})
        if trainer.step_count % cfg.checkpoint_every == 0 or trainer.step_count == stop:
            if main:
                trainer.save(ckpt)
                write_history(trainer.history, out_dir / "history.csv")
            dist_.barrier()
    bar.close()
    if trainer.step_count >= cfg.steps:
        if main:
            # matplotlib only here, when the figures are written: workers that only train never load it
            from .figures import save_training_figures

            save_training_figures(history_frame(trainer.history), trainer.ae, trainer.bank, trainer.cfg.scale, out_dir)
        dist_.barrier()
    return ckpt


def write_history(history: list[dict], path: Path) -> None:
    with atomic_path(path) as tmp:
        history_frame(history).to_csv(tmp, float_format="%.6g")


def checkpoint_summary(path: "str | os.PathLike") -> dict:
    """Small JSON-able description of a checkpoint (for tables and the feature HDF5)."""
    ck = load_checkpoint(path)
    h = ck["history"][-50:]
    return {"checkpoint": str(path), "scale": ck["config"]["scale"], "step": ck["step"],
            "code_dim": ck["config"]["model"]["code_dim"], "resolution": ck["config"]["model"]["resolution"],
            "lpips_trunk": ck["lpips_trunk"], "train_seconds": round(ck.get("seconds", 0.0), 1),
            "final_l1": float(np.mean([r["l1"] for r in h])) if h else None,
            "final_lpips": float(np.mean([r["lpips"] for r in h])) if h else None,
            "config": json.dumps(ck["config"], sort_keys=True)}
