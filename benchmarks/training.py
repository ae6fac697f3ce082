"""Training speed of the slide models and the Table 5 probe: sequential against the alternatives.

    python benchmarks/training.py [--profile quick] [--members 15] [--steps 2] [--repeats 2]
                                  [--models isg,cyclemlp,he2rna,probe] [--compile] [--ops-only] [--plot-only]

What one fold training costs is an epoch (16 training steps of 4 slides, validation on 16 slides at
every kept patch, as at ``quick``: 80 slides per task in training folds, a fifth held out for early
stopping) times its epochs.  Per model, patches per slide in a training step (12, 64, all kept) and
ISG's width (16, 64), each way of running is timed in this one process, interleaved with the
sequential baseline (``--repeats`` rounds; the median is kept), and reported as seconds per fold
epoch and as a ratio to sequential (> 1: faster):

* ``sequential``: the engine's step, one member at a time, one torch thread (today's way);
* ``batched (vmap)``: ``--members`` members (5 folds x 3 seeds) stepped together, their parameters
  stacked (:mod:`isg_core.train.members`): one vmapped forward and backward, a member-wise AdamW;
* ``channels_last``: the convolutions' weights in channels-last memory (ISG, CycleMLP);
* ``2 threads``: one process, two torch threads;
* ``2 processes``: two sequential members at once in two single-thread processes (what ``jobs=2``
  does at ``quick``), as throughput per member;
* ``compiled`` (``--compile``): ``torch.compile`` of the model, its compile time reported apart.

Every way runs at 12 patches (the quick schedule's draw); at 64 and all patches, sequential, 2
processes and, for the models with little arithmetic per step (HE2RNA, the probe), the batched step.
The convolutional models are batched 5 members at a time (15 would take minutes per cell; the
cost per member is what is compared).  ``--ops-only`` writes where one ISG-10-2 step's time goes
(``benchmark_training_ops``: the optimiser timed alone, the passes split by operator).

Slides are synthetic: the profile's feature sizes (d, the local grid), kept patches per slide drawn
around the quick cohort's mean (``--patches-mean``); a step's time does not depend on the values.
Writes ``results/<profile>/benchmark_training.{csv,md}`` and ``fig_benchmark_training.png``
(``--plot-only`` redraws it from the CSV).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import statistics
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from isg_core.config import get_profile
from isg_core.models import InputStandardizer, ModelRecipe
from isg_core.report.outputs import save_figure, write_table
from isg_core.train.batches import SlideData, collate
from isg_core.train.engine import feature_stats, masked_mse
from isg_core.train.members import MemberAdamW, members_forward, stack_members
from isg_core.train.probe import MLPProbe

TRAIN_SLIDES, VAL_SLIDES, BATCH = 64, 16, 4  # one quick task: 80 training-fold slides, 20% inner validation
STEPS_PER_EPOCH = TRAIN_SLIDES // BATCH
N_OUT = 4


@dataclass(frozen=True)
class Cell:
    model: str
    patches: int | None  # per slide in a training step; None: all kept
    width: int | None  # ISG's width; None: the model's own (d)


def synthetic_slides(n: int, d: int, grid: int, mean: float, seed: int = 0) -> SlideData:
    rng = np.random.default_rng(seed)
    ns = np.clip(rng.normal(mean, 0.2 * mean, n).round().astype(int), 16, None)
    return SlideData([f"s{i}" for i in range(n)], [rng.normal(size=(k, d)).astype(np.float32) for k in ns],
                     [rng.normal(size=(k, grid, grid, d)).astype(np.float16) for k in ns],
                     [rng.integers(0, 30, (k, 2)) for k in ns])


def build(cell: Cell, data: SlideData, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    d, g = data.f[0].shape[1], data.R[0].shape[1]
    kw = {"width": cell.width} if cell.model == "isg" else {}
    return InputStandardizer(ModelRecipe(cell.model, d, g, kw)(N_OUT), feature_stats(data, range(TRAIN_SLIDES)))


def _core(model: torch.nn.Module) -> torch.nn.Module:
    return model.model if isinstance(model, InputStandardizer) else model


# --- one member at a time: the engine's step ------------------------------------------------------------
def sequential(cell: Cell, data: SlideData, Y: torch.Tensor, steps: int, seed: int = 0, memory_format=None,
               compiled: bool = False) -> tuple[float, float]:
    """(seconds per training step, seconds per validation slide) of one member trained alone."""
    model = build(cell, data, seed)
    if memory_format is not None:
        model = model.to(memory_format=memory_format)
    net = torch.compile(model) if compiled else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    rng = np.random.default_rng(seed)

    def step():
        b = rng.choice(TRAIN_SLIDES, BATCH, replace=False)
        loss = masked_mse(net(*collate(data, list(b), cell.patches, rng)), Y[b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    step()  # warm-up (first-call allocations; the compile when compiled)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    t_step = (time.perf_counter() - t0) / steps
    model.eval()
    val = list(range(TRAIN_SLIDES, TRAIN_SLIDES + VAL_SLIDES))
    with torch.no_grad():
        t0 = time.perf_counter()
        for k in range(0, len(val), BATCH):
            net(*collate(data, val[k:k + BATCH]))
    return t_step, (time.perf_counter() - t0) / len(val)


# --- k members in one vmapped step ------------------------------------------------------------------
def _pad_stack(parts: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """Members' (f, R, mask, pos) batches padded to one patch count and stacked: (k, B, N, ...)."""
    n = max(p[0].shape[1] for p in parts)
    out = []
    for j in range(4):
        ts = []
        for p in parts:
            t = p[j]
            pad = [0, 0] * (t.dim() - 2) + [0, n - t.shape[1]]
            ts.append(torch.nn.functional.pad(t, pad))
        out.append(torch.stack(ts))
    return tuple(out)


def batched(cell: Cell, data: SlideData, Y: torch.Tensor, steps: int, k: int) -> tuple[float, float]:
    """(seconds per member-step, seconds per member-validation slide) of ``k`` members stepped together."""
    models = [build(cell, data, s) for s in range(k)]
    for m in models:
        core = _core(m)
        if hasattr(core, "dense_patches"):
            core.dense_patches = True
        if hasattr(core, "net") and hasattr(core.net, "fixed_k"):  # HE2RNA: one k per step
            core.net.fixed_k = core.net.config.ks[0]
    params, buffers, base = stack_members(models)
    opt = MemberAdamW(params, k)
    rngs = [np.random.default_rng(s) for s in range(k)]

    def step():
        bs = [r.choice(TRAIN_SLIDES, BATCH, replace=False) for r in rngs]
        x = _pad_stack([collate(data, list(b), cell.patches, r) for b, r in zip(bs, rngs)])
        out = members_forward(base.train(), params, buffers, *x)
        loss = sum(masked_mse(out[i], Y[b]) for i, b in enumerate(bs))
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    t_step = (time.perf_counter() - t0) / steps / k
    val = list(range(TRAIN_SLIDES, TRAIN_SLIDES + VAL_SLIDES))
    base.eval()
    with torch.no_grad():
        t0 = time.perf_counter()
        for j in range(0, len(val), BATCH):
            x = _pad_stack([collate(data, val[j:j + BATCH])] * k)
            members_forward(base, params, buffers, *x, randomness="error")
    return t_step, (time.perf_counter() - t0) / len(val) / k


# --- the Table 5 probe: a 2-layer MLP, full batch ----------------------------------------------------------
def probe_sequential(X: torch.Tensor, Y: torch.Tensor, epochs: int, seed: int = 0) -> tuple[float, float]:
    torch.manual_seed(seed)
    model = MLPProbe(X.shape[1], Y.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    t0 = time.perf_counter()
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(X), Y).backward()
        opt.step()
        with torch.no_grad():
            model(X[:16])
    return (time.perf_counter() - t0) / epochs, 0.0


def probe_batched(X: torch.Tensor, Y: torch.Tensor, epochs: int, k: int) -> tuple[float, float]:
    models = []
    for s in range(k):
        torch.manual_seed(s)
        models.append(MLPProbe(X.shape[1], Y.shape[1]))
    params, buffers, base = stack_members(models)
    opt = MemberAdamW(params, k, weight_decay=0.0)  # timing only: the update's cost, not Adam's L2 form
    Xk, Yk = X.expand(k, *X.shape), Y.expand(k, *Y.shape)
    t0 = time.perf_counter()
    for _ in range(epochs):
        opt.zero_grad()
        (members_forward(base, params, buffers, Xk) - Yk).square().mean(dim=(1, 2)).sum().backward()
        opt.step()
        with torch.no_grad():
            members_forward(base, params, buffers, Xk[:, :16])
    return (time.perf_counter() - t0) / epochs / k, 0.0


#: profiler operator names -> the part of a step they are (first match wins)
OP_PARTS = (("convolution", ("conv", "mkldnn")), ("normalisation", ("norm",)),
            ("activation", ("silu", "gelu", "relu", "sigmoid", "softmax")),
            ("matrix products", ("mm", "linear", "attention", "bmm", "addmm")))


def step_breakdown(cell: Cell, data: SlideData, Y: torch.Tensor, steps: int = 3) -> pd.DataFrame:
    """Where one sequential training step's time goes, in shares of the step: the optimiser's update
    (timed alone), and the forward and backward passes split by operator (``torch.profiler``'s self
    CPU time, grouped by :data:`OP_PARTS`) in proportion to their profiled time."""
    from torch.profiler import profile

    model = build(cell, data, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    rng = np.random.default_rng(0)
    model.train()
    batches = [rng.choice(TRAIN_SLIDES, BATCH, replace=False) for _ in range(steps + 1)]
    inputs = [collate(data, list(b), cell.patches, rng) for b in batches]

    def forward_backward(i):
        opt.zero_grad(set_to_none=True)
        masked_mse(model(*inputs[i]), Y[batches[i]]).backward()

    forward_backward(0)
    opt.step()
    t_fb = t_opt = 0.0
    with profile() as prof:
        for i in range(1, steps + 1):
            t0 = time.perf_counter()
            forward_backward(i)
            t_fb += time.perf_counter() - t0
    for _ in range(steps):
        t0 = time.perf_counter()
        opt.step()
        t_opt += time.perf_counter() - t0
    events = prof.key_averages()
    parts: dict[str, float] = {}
    for e in events:
        name = next((p for p, keys in OP_PARTS if any(k in e.key.lower() for k in keys)),
                    "other (copies, elementwise, autograd)")
        parts[name] = parts.get(name, 0.0) + e.self_cpu_time_total
    profiled = sum(parts.values())
    share = {k: v / profiled * t_fb / (t_fb + t_opt) for k, v in parts.items()}
    share["optimizer (AdamW)"] = t_opt / (t_fb + t_opt)
    return pd.DataFrame({"model": cell.model, "patches": cell.patches or "all", "width": cell.width,
                         "part": list(share), "share of step time": list(share.values()),
                         "ms per step": [v * (t_fb + t_opt) / steps * 1000 for v in share.values()]})


OPS_TITLE = "Where one ISG-10-2 training step's time goes (quick: 12 patches a slide, width 16)"
OPS_NOTE = ("The optimiser's update timed alone; the forward and backward passes split by operator (torch.profiler's "
            "self CPU time over 3 steps, grouped), scaled to their timed share.")


def _two_process_job(args) -> tuple[float, float]:
    cell, data, Y, steps, seed = args
    torch.set_num_threads(1)
    return sequential(cell, data, Y, steps, seed)


def epoch_seconds(t_step: float, t_val_slide: float) -> float:
    """One fold epoch: the training steps plus validation of the inner-validation slides."""
    return STEPS_PER_EPOCH * t_step + VAL_SLIDES * t_val_slide


def plot(df: pd.DataFrame):
    """Speed-up over sequential per way of running, one panel per model (x: patches per slide and
    width); the same colour for a way of running in every panel, 1.0 (sequential) drawn as a line."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    df = df.assign(cell=df.patches.astype(str) + " patches\nwidth " + df.width.astype(str),
                   way=df["mode"].str.replace(r"batched \(vmap, \d+ members\)", "batched (vmap)", regex=True))
    ways = list(dict.fromkeys(df.way))
    palette = dict(zip(ways, sns.color_palette("colorblind", len(ways))))
    models = list(dict.fromkeys(df.model))
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.8), sharey=True, squeeze=False,
                             gridspec_kw={"width_ratios": [max(1, df[df.model == m].cell.nunique()) for m in models]})
    for ax, m in zip(axes[0], models):
        sub = df[df.model == m]
        sns.barplot(data=sub, x="cell", y="ratio to sequential", hue="way",
                    hue_order=[w for w in ways if w in set(sub.way)], palette=palette, ax=ax, legend=False)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_title(m)
        ax.set_xlabel("")
        ax.set_ylabel("speed-up over sequential (x)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=palette[w]) for w in ways]
    members = sorted(set(df["mode"].str.extract(r"vmap, (\d+) members")[0].dropna()), key=int)
    fig.legend(handles, ways, loc="upper center", ncol=len(ways), frameon=False, bbox_to_anchor=(0.5, 1.0))
    fig.suptitle(f"Fold-training speed on 2 CPU cores (batched: {' or '.join(members)} members; "
                 "ISG-Sim quick sizes, synthetic values)", y=1.08)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--members", type=int, default=15, help="members stepped together (5 folds x 3 seeds)")
    ap.add_argument("--steps", type=int, default=3, help="timed training steps per measurement")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--models", default="isg,cyclemlp,he2rna,probe")
    ap.add_argument("--patches", default="12,64,all")
    ap.add_argument("--widths", default="16,64")
    ap.add_argument("--patches-mean", type=float, default=116.0, help="kept patches per slide (quick: about 116)")
    ap.add_argument("--epochs-per-fold", type=float, default=8.0,
                    help="epochs a fold trains for, to turn epochs into fold trainings per hour")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (minutes of compiling)")
    ap.add_argument("--plot-only", action="store_true")
    ap.add_argument("--ops-only", action="store_true", help="only where an ISG step's time goes (seconds)")
    args = ap.parse_args()
    prof = get_profile(args.profile)
    if args.plot_only:
        from isg_core.report.outputs import profile_results_dir

        save_figure(plot(pd.read_csv(profile_results_dir(prof.name) / "benchmark_training.csv")),
                    "fig_benchmark_training", prof.name)
        raise SystemExit(0)
    command = "python benchmarks/training.py " + (f"--profile {args.profile} --ops-only" if args.ops_only else " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (False, True, None)))
    torch.set_num_threads(1)
    d, g = prof.features.code_dim, prof.tiling.grid
    data = synthetic_slides(TRAIN_SLIDES + VAL_SLIDES, d, g, args.patches_mean)
    Y = torch.randn(TRAIN_SLIDES + VAL_SLIDES, N_OUT)
    patches = [None if p == "all" else int(p) for p in args.patches.split(",")]
    widths = [int(w) for w in args.widths.split(",")]
    cells = []
    for m in ([] if args.ops_only else args.models.split(",")):
        if m == "probe":
            cells.append(Cell("probe", None, 256))
            continue
        for w in (widths if m == "isg" else [None]):
            cells += [Cell(m, p, w) for p in patches]
    rows = []
    for cell in cells:
        modes: dict[str, list] = {}
        # every way of running at 12 patches; elsewhere sequential and the one that pays there (2 processes),
        # and the batched step for the models it might pay for (few arithmetic per step)
        all_modes = cell.patches == 12
        cheap = cell.model in ("he2rna", "probe")
        heavy = cell.model in ("isg", "cyclemlp") and (cell.patches is None or (cell.width or d) > 16)
        # vmap's cost per member is measured on 5 members for the convolutional models (15 would take
        # minutes per cell); the cheap ones use --members
        k = args.members if cheap else min(args.members, 5)
        for rep in range(args.repeats):
            if cell.model == "probe":
                X, Yp = torch.randn(240, 2 * d), torch.randn(240, N_OUT)
                epochs = 100
                modes.setdefault("sequential", []).append(probe_sequential(X, Yp, epochs))
                modes.setdefault(f"batched (vmap, {k} members)", []).append(probe_batched(X, Yp, epochs, k))
                continue
            steps = 1 if heavy else args.steps
            modes.setdefault("sequential", []).append(sequential(cell, data, Y, steps))
            if all_modes or cheap:
                modes.setdefault(f"batched (vmap, {k} members)", []).append(batched(cell, data, Y, steps, k))
            if all_modes and cell.model in ("isg", "cyclemlp"):
                modes.setdefault("channels_last", []).append(
                    sequential(cell, data, Y, steps, memory_format=torch.channels_last))
            if rep == 0:
                if all_modes:
                    torch.set_num_threads(2)
                    modes.setdefault("2 threads", []).append(sequential(cell, data, Y, steps))
                    torch.set_num_threads(1)
                t0 = time.perf_counter()
                with mp.get_context("spawn").Pool(2) as pool:
                    res = pool.map(_two_process_job, [(cell, data, Y, steps, s) for s in (0, 1)])
                wall = time.perf_counter() - t0
                # throughput: both members' epochs in the wall time of the slower, per member
                per = [epoch_seconds(*r) for r in res]
                modes["2 processes"] = [(max(per) / 2 / STEPS_PER_EPOCH, 0.0)]
                if args.compile and cell.model == "isg" and cell.patches == 12 and cell.width == 16:
                    t0 = time.perf_counter()
                    modes["compiled"] = [sequential(cell, data, Y, steps, compiled=True)]
                    print(f"compiled incl. compile: {time.perf_counter() - t0:.0f} s", flush=True)
        base = statistics.median(epoch_seconds(*t) for t in modes["sequential"])
        for mode, ts in modes.items():
            sec = statistics.median(epoch_seconds(*t) for t in ts)
            rows.append({"model": cell.model, "patches": "all" if cell.patches is None else cell.patches,
                         "width": cell.width or d, "mode": mode, "seconds": sec, "ratio to sequential": base / sec,
                         "fold trainings per hour": 3600 / (sec * args.epochs_per_fold)})
            print(rows[-1], flush=True)
    if args.ops_only:
        ops = step_breakdown(Cell("isg", 12, 16), data, Y)
        write_table(ops, "benchmark_training_ops", prof.name, command, title=OPS_TITLE, note=OPS_NOTE)
        raise SystemExit(0)
    df = pd.DataFrame(rows)
    note = ("Seconds per fold epoch (16 training steps of 4 slides + validation of 16 slides at every kept patch; "
            "the probe: one full-batch epoch), the median over repeats; ratio to sequential > 1 is faster, measured "
            f"in this one process. Fold trainings per hour assume {args.epochs_per_fold:g} epochs a fold. "
            "Synthetic slides of the profile's sizes (timings do not depend on the values).")
    write_table(df, "benchmark_training", prof.name, command, title="Training speed: sequential against batched",
                note=note, config={"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                                   "d": d, "grid": g, "members": args.members, "steps": args.steps,
                                   "repeats": args.repeats, "patches_mean": args.patches_mean})
    save_figure(plot(df), "fig_benchmark_training", prof.name)
