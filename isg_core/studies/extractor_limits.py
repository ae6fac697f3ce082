"""Where the extractors lose the cells: input, reconstruction and code, probed alike.

The trained extractors read cell counts worse than 13 plain colour statistics do (Table 5,
``extractor_choices``).  That can fail at three places, and each is measured here on the
development cohort's probe units (:func:`~isg_core.studies.extractor_choices.probe_units`):

1. **the reconstruction** D(E(x)) keeps fewer nuclei than x: the appearance descriptor of the
   reconstruction reads the counts worse than the descriptor of the input.  With StyleGAN2's noise
   inputs switched off as well, what the generator draws from its noise (fine, stochastic detail,
   Karras et al. 2019, Sec. 3.2) rather than from the code is taken out;
2. **the code** E(x) holds what D needs but not in a form a linear probe reads: a 2-layer MLP on the
   code reads the counts better than ridge does;
3. **neither**: the code carries less than the descriptor, and no probe gets it back.

Every readout is scored with the same cross-validation by slide as ``extractor_choices``
(:func:`~isg_core.studies.extractor_choices.probe_predictions`); the MLP is
:func:`isg_core.train.probe.fit_probe` with its inner split by slide.  Beside the probes, the L1 error of
the reconstruction on nuclear pixels (the darkest decile of haematoxylin density over all probe
pixels: a quantile of the data, no tuned threshold) against the other pixels says where D's
error sits, and the learned strength of each noise input says how much of the picture D draws
from noise.

``isg study extractor-limits --profile quick`` (:func:`run`) writes ``results/<profile>/extractor_limits*.{csv,md}``
and ``fig_extractor_limits.png``.
"""
from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import Profile, get_profile
from ..features.bank import _OD_TABLE, _UNMIX32, appearance_descriptor, to_tensor, to_uint8
from ..features.oracle import COUNT_COLUMNS
from ..features.stylegan import NoiseInjection, StyleAutoencoder
from ..features.train import load_autoencoder, load_checkpoint, train_config_for
from ..report.outputs import save_figure, write_table
from ..train.probe import ProbeConfig, fit_probe
from .extractor_choices import (
    CELL_TARGETS,
    ProbeUnits,
    descriptor_codes,
    load_encoder,
    local_codes,
    probe_levels,
    probe_predictions,
    probe_units,
    score_rows,
    slide_bootstrap_difference,
)

#: the quantile of haematoxylin optical density above which a pixel counts as nuclear
NUCLEAR_QUANTILE = 0.9


@contextlib.contextmanager
def noise_off(ae: StyleAutoencoder):
    """Within the block, every noise input of the generator has strength 0 (restored after)."""
    layers = [m for m in ae.generator.modules() if isinstance(m, NoiseInjection)]
    saved = [m.strength.detach().clone() for m in layers]
    try:
        with torch.no_grad():
            for m in layers:
                m.strength.zero_()
        yield ae
    finally:
        with torch.no_grad():
            for m, s in zip(layers, saved):
                m.strength.copy_(s)


@torch.no_grad()
def reconstruct(ae: StyleAutoencoder, patches: np.ndarray, noise: bool = True, batch: int = 512,
                seed: int = 0) -> np.ndarray:
    """D(E(x)) of uint8 patches (..., q, q, 3) as uint8 of the same shape, at the patches' own size
    (the autoencoder's resolution must be q).  ``noise=False``: the generator's noise inputs off."""
    lead, q = patches.shape[:-3], patches.shape[-2]
    if ae.cfg.resolution != q:
        raise ValueError(f"the autoencoder works at {ae.cfg.resolution} px, the patches are {q} px")
    flat = patches.reshape(-1, q, q, 3)
    out = np.empty_like(flat)
    ctx = contextlib.nullcontext() if noise else noise_off(ae)
    with ctx, torch.random.fork_rng():
        torch.manual_seed(seed)  # the noise drawn is part of the result: fixed
        for k in range(0, len(flat), batch):
            out[k:k + batch] = to_uint8(ae(to_tensor(flat[k:k + batch])))
    return out.reshape(*lead, q, q, 3)


def at_resolution(patches: np.ndarray, size: int) -> np.ndarray:
    """uint8 patches (..., q, q, 3) resized to ``size`` as E sees them (:func:`to_tensor`)."""
    lead, q = patches.shape[:-3], patches.shape[-2]
    flat = patches.reshape(-1, q, q, 3)
    return np.concatenate([to_uint8(to_tensor(flat[k:k + 4096], size)) for k in range(0, len(flat), 4096)]
                          ).reshape(*lead, size, size, 3)


def global_units(units: ProbeUnits) -> ProbeUnits:
    """The probe units as whole global patches: (n, 1, 1, p, p, 3) patches (the local grid put
    back together, the inverse of :func:`isg_core.data.tiling.split_local`) and (n, 1, 1, C) counts."""
    n, g, _, q = units.patches.shape[:4]
    whole = units.patches.swapaxes(2, 3).reshape(n, 1, 1, g * q, g * q, 3)
    return replace(units, patches=whole, counts=units.counts.sum(axis=(1, 2), keepdims=True))


def haematoxylin_density(patches: np.ndarray) -> np.ndarray:
    """Haematoxylin optical density of every pixel (Ruifrok & Johnston 2001): uint8 (..., 3) -> (...)."""
    u8 = np.asarray(patches, dtype=np.uint8)
    return _OD_TABLE[u8] @ _UNMIX32[:, 0]


def nuclear_l1(inputs: np.ndarray, recon: np.ndarray, quantile: float = NUCLEAR_QUANTILE) -> dict[str, float]:
    """Mean absolute error of ``recon`` against ``inputs`` (intensities in [0, 1], over RGB) on the
    nuclear pixels of the inputs (haematoxylin density above its ``quantile`` over all input pixels)
    and on the others, the nuclear share of the pixels, and the pixels' R^2 (1 - squared error /
    the inputs' squared deviation from their mean image: 1 for a perfect reconstruction, 0 for the
    mean image drawn for every input)."""
    h = haematoxylin_density(inputs)
    nuclear = h > np.quantile(h, quantile)
    x, r = inputs.astype(np.float32) / 255.0, recon.astype(np.float32) / 255.0
    err = np.abs(x - r).mean(-1)
    # R^2 of the pixels: 1 - SSE / the inputs' variance about their mean image.  A generator that
    # draws one picture whatever the code (a collapsed decoder) scores about 0 or below
    flat_x, flat_r = x.reshape(-1, *x.shape[-3:]), r.reshape(-1, *r.shape[-3:])
    total = float(((flat_x - flat_x.mean(0)) ** 2).sum())
    r2 = 1.0 - float(((flat_x - flat_r) ** 2).sum()) / total if total > 0 else float("nan")
    return {"L1, nuclear pixels": float(err[nuclear].mean()), "L1, other pixels": float(err[~nuclear].mean()),
            "nuclear share of pixels": float(nuclear.mean()), "pixel R2": r2}


def noise_strengths(ae: StyleAutoencoder) -> pd.DataFrame:
    """The learned strength of every noise input of the generator, by resolution and layer."""
    g = ae.generator
    layers = [(4, "conv4", g.conv4)]
    for r, (up, conv) in zip(ae.cfg.resolutions[1:], g.convs):
        layers += [(r, "upsampling conv", up), (r, "conv", conv)]
    rows = [{"resolution": r, "layer": name, "strength": m.noise.strength.detach().item()}
            for r, name, m in layers if m.noise is not None]  # none without noise inputs
    return pd.DataFrame(rows, columns=["resolution", "layer", "strength"])


def mlp_probe_predictions(codes: np.ndarray, units: ProbeUnits,
                          cfg: ProbeConfig = ProbeConfig()) -> dict[str, pd.DataFrame]:
    """As :func:`~isg_core.studies.extractor_choices.probe_predictions`, with the 2-layer MLP of
    Table 5 (:func:`isg_core.train.probe.fit_probe`, inner validation split by slide) in place of ridge;
    one probe per fold reads the three counts together."""
    out = {}
    for level, (X, Y, slide, fold) in probe_levels(codes, units).items():
        pred = np.full(Y.shape, np.nan)
        for k in np.unique(fold):
            te = fold == k
            probe = fit_probe(X[~te].astype(np.float64), Y[~te].astype(np.float64), cfg, groups=slide[~te])
            pred[te] = probe.predict(X[te].astype(np.float64))
        df = pd.DataFrame({"slide": slide, "fold": fold})
        for j, t in enumerate(CELL_TARGETS):
            df[t], df[f"{t}:pred"] = Y[:, j], pred[:, j]
        out[level] = df
    return out


#: the readouts, in the order the table shows them: (name, what is probed, probe)
READOUTS = (
    ("input x: descriptor, ridge", "input", "ridge"),
    ("input x: descriptor, MLP", "input", "mlp"),
    ("reconstruction D(E(x)): descriptor, ridge", "reconstruction", "ridge"),
    ("reconstruction D(E(x)): descriptor, MLP", "reconstruction", "mlp"),
    ("reconstruction, noise inputs off: descriptor, ridge", "reconstruction without noise", "ridge"),
    ("code E(x): ridge", "code", "ridge"),
    ("code E(x): MLP", "code", "mlp"),
    ("code of E untrained: ridge", "untrained code", "ridge"),
)


def extractor_limits(checkpoint: "str | Path", units: ProbeUnits, probe_cfg: ProbeConfig = ProbeConfig(),
                     progress: bool = True, skip: tuple[str, ...] = ()) -> dict:
    """Probe every :data:`READOUTS` of the extractor in ``checkpoint`` (E_L on the local patches
    of ``units``, E_G on their whole global patches).  Returns ``scores``
    (readout x level x target PCC, fold mean), ``summary`` (readout x level: mean over targets),
    ``reconstruction`` (nuclear / other L1, noise on and off), ``noise`` (:func:`noise_strengths`),
    ``examples`` (inputs and both reconstructions of a few local patches, for a figure) and
    ``preds`` ({readout: {level: out-of-fold predictions}}, for paired intervals).
    ``skip``: what not to probe (of ``input``, ``reconstruction``, ... as in :data:`READOUTS`)."""
    ae, meta = load_autoencoder(checkpoint)
    ck_like = {"config": meta["config"], "encoder": ae.encoder.state_dict()}
    res = ae.cfg.resolution
    scale = meta["config"]["scale"]
    if scale == "global":  # E_G codes whole global patches: one unit each, both levels alike
        units = global_units(units)
    if units.patches.shape[-2] != res:  # E_L sees its patches resized (smoke): so do the descriptor and L1
        units = replace(units, patches=at_resolution(units.patches, res))
    recon = reconstruct(ae, units.patches, noise=True)
    if any(isinstance(m, NoiseInjection) for m in ae.modules()):
        recon_quiet = reconstruct(ae, units.patches, noise=False)
    else:  # it has no noise inputs to switch off: the same picture
        skip, recon_quiet = (*skip, "reconstruction without noise"), recon
    n, g = units.patches.shape[:2]
    d_in = descriptor_codes(units)
    inputs = {
        "input": d_in,
        "reconstruction": appearance_descriptor(recon.reshape(-1, res, res, 3)).reshape(n, g, g, -1),
        "reconstruction without noise": appearance_descriptor(recon_quiet.reshape(-1, res, res, 3))
                                        .reshape(n, g, g, -1),
        "code": local_codes(ae.encoder, units, res),
        "untrained code": local_codes(load_encoder(ck_like, untrained=True)[0], units, res),
    }
    rows, preds = [], {}
    for name, what, probe in READOUTS:
        if what in skip:
            continue
        if progress:
            print(f"probing {name}", flush=True)
        preds[name] = (probe_predictions(inputs[what], units) if probe == "ridge"
                       else mlp_probe_predictions(inputs[what], units, probe_cfg))
        if scale == "global":  # one unit per global patch: its 'local' level is the same rows again
            preds[name] = {"patch": preds[name]["patch"]}
        rows += score_rows(name, preds[name])
    scores = pd.DataFrame(rows).rename(columns={"variant": "readout"})
    order = {name: i for i, (name, _, _) in enumerate(READOUTS)}
    summary = (scores.groupby(["readout", "level"]).pcc.mean().unstack("level")
               .sort_index(key=lambda s: s.map(order)).reset_index())
    summary.columns.name = None
    summary = (summary.reindex(columns=["readout", "local", "patch"])
               .rename(columns={"local": "local PCC (mean of targets)", "patch": "patch PCC (mean of targets)"}))
    rec = pd.DataFrame([{"reconstruction": "D(E(x)), as trained", **nuclear_l1(units.patches, recon)}]
                       + ([] if "reconstruction without noise" in skip else
                          [{"reconstruction": "D(E(x)), noise inputs off", **nuclear_l1(units.patches, recon_quiet)}]))
    # a few (local or global) patches with the most lymphocytes, for the figure
    lym = units.counts[..., COUNT_COLUMNS.index("n_lymphocyte")].reshape(-1)
    pick = np.argsort(-lym, kind="stable")[:8]
    flat = lambda a: a.reshape(-1, res, res, 3)[pick]  # noqa: E731
    examples = {"input": flat(units.patches), "reconstruction": flat(recon),
                "reconstruction, noise off": flat(recon_quiet), "lymphocytes": lym[pick]}
    return {"scores": scores, "summary": summary, "reconstruction": rec, "noise": noise_strengths(ae),
            "examples": examples, "preds": preds, "lpips_trunk": meta.get("lpips_trunk"),
            "step": int(meta.get("step", 0))}


#: the extractor trainings probed, per scale: the profile's (Eq. 2 as configured) and one change
#: each, as :class:`~isg_core.features.train.ExtractorTrainConfig` fields (``model.<field>``: of its
#: :class:`~isg_core.features.stylegan.AutoencoderConfig`): StyleGAN2's noise inputs off, where the
#: generator could draw detail the code need not carry; and no adversarial term, with which the
#: generator reconstructs (E_L's L1 0.13 against 0.35 on the development cohort, extractor_choices)
TRAININGS: dict[str, dict[str, dict]] = {
    "local": {"as the profile": {}, "without noise inputs": {"model.noise_inputs": False},
              "without the adversarial term": {"lambda_adv": 0.0}},
    "global": {"as the profile": {}, "without the adversarial term": {"lambda_adv": 0.0}},
}
#: how the tables name each scale's network
NETWORK = {"local": "E_L", "global": "E_G"}

_RIDGE, _MLP = "code E(x): ridge", "code E(x): MLP"
_REC, _REC_MLP = "reconstruction D(E(x)): descriptor, ridge", "reconstruction D(E(x)): descriptor, MLP"
_IN, _IN_MLP = "input x: descriptor, ridge", "input x: descriptor, MLP"
_UNTRAINED = "code of E untrained: ridge"
_PROF, _NO_C = "as the profile", "without the adversarial term"
#: the paired comparisons given a slide-bootstrap interval, each (level, a, b, question) with a and b
#: as (extractor, readout); an extractor named by its network alone ('E_L') is that scale's input.
#: Only pairs whose both readouts were probed are computed.
COMPARISONS = (
    ("local", (f"E_L {_NO_C}", _REC), ("E_L", _IN), "does the reconstruction keep what its input shows?"),
    ("local", (f"E_L {_NO_C}", _REC_MLP), ("E_L", _IN_MLP), "does the reconstruction keep what its input shows?"),
    ("local", (f"E_L {_NO_C}", _RIDGE), (f"E_L {_NO_C}", _REC), "does the code hold what its reconstruction shows?"),
    ("local", (f"E_L {_NO_C}", _MLP), (f"E_L {_NO_C}", _REC_MLP), "does the code hold what its reconstruction shows?"),
    ("local", (f"E_L {_NO_C}", _MLP), (f"E_L {_NO_C}", _RIDGE), "does a nonlinear probe read more of the code?"),
    ("local", (f"E_L {_PROF}", _MLP), (f"E_L {_PROF}", _RIDGE), "does a nonlinear probe read more of the code?"),
    ("local", (f"E_L {_NO_C}", _RIDGE), (f"E_L {_PROF}", _RIDGE), "does the adversarial term change the code?"),
    ("local", (f"E_L {_NO_C}", _MLP), (f"E_L {_PROF}", _MLP), "does the adversarial term change the code?"),
    ("local", (f"E_L {_PROF}", _RIDGE), (f"E_L {_PROF}", _UNTRAINED), "does training help the code?"),
    ("local", ("E_L without noise inputs", _RIDGE), (f"E_L {_PROF}", _RIDGE), "do the noise inputs change the code?"),
    ("local", ("E_L without noise inputs", _MLP), (f"E_L {_PROF}", _MLP), "do the noise inputs change the code?"),
    ("local", (f"E_L {_PROF}", _MLP), ("E_L", _IN_MLP), "does the code keep what its input shows?"),
    ("patch", (f"E_L {_PROF}", _RIDGE), ("E_L", _IN), "does the code keep what its input shows?"),
    ("patch", (f"E_G {_NO_C}", _REC), ("E_G", _IN), "does the reconstruction keep what its input shows?"),
    ("patch", (f"E_G {_PROF}", _RIDGE), ("E_G", _IN), "does the code keep what its input shows?"),
    ("patch", (f"E_G {_PROF}", _RIDGE), (f"E_G {_PROF}", _UNTRAINED), "does training help the code?"),
    ("patch", (f"E_G {_NO_C}", _RIDGE), (f"E_G {_PROF}", _RIDGE), "does the adversarial term change the code?"),
)


def paired_differences(preds: dict, comparisons=COMPARISONS, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Every comparison of ``comparisons`` whose both readouts are in ``preds`` ({(extractor,
    readout): {level: out-of-fold predictions}}, the same units in the same order): a minus b, mean
    PCC over :data:`~isg_core.studies.extractor_choices.CELL_TARGETS`, with the 95% interval of
    :func:`~isg_core.studies.extractor_choices.slide_bootstrap_difference` (slides resampled
    within each fold, both readouts scored on the same draw)."""
    rows = []
    for level, a, b, question in comparisons:
        if level not in preds.get(a, {}) or level not in preds.get(b, {}):
            continue
        pa, pb = preds[a][level], preds[b][level]
        if not (pa.slide.to_numpy() == pb.slide.to_numpy()).all():
            raise ValueError(f"{a} and {b} were probed on different units at level {level!r}")
        rows.append({"question": question, "level": level, "a": " / ".join(a), "b": " / ".join(b),
                     **slide_bootstrap_difference(pa, pb, n_boot=n_boot, seed=seed)})
    return pd.DataFrame(rows, columns=["question", "level", "a", "b", "diff", "ci_low", "ci_high"])


def changed_config(base, changes: dict):
    """``base`` (an ExtractorTrainConfig) with ``changes``: ``model.<field>`` keys change its model."""
    model = {k.split(".", 1)[1]: v for k, v in changes.items() if k.startswith("model.")}
    rest = {k: v for k, v in changes.items() if not k.startswith("model.")}
    return replace(base, model=replace(base.model, **model), **rest)


def extractor_limits_study(profile: "str | Profile | None" = None, cohort_root: "str | Path | None" = None,
                           device: str | None = None, progress: bool = True, trainings: dict = TRAININGS) -> dict:
    """Every extractor of ``trainings`` ({scale: {name: :func:`changed_config` changes to the
    profile's}}), trained (or found) on the development cohort, through :func:`extractor_limits`;
    per scale, the input's readouts and the untrained encoder (the same for all) are probed once.
    Tables gain an ``extractor`` column (``E_L as the profile``, ...); ``examples`` holds each
    scale's first extractor's, with every other training's reconstruction of the same patches
    (``<name>: reconstruction``); ``noise`` every extractor's with noise inputs; ``differences``
    the :data:`COMPARISONS` with their slide-bootstrap intervals (:func:`paired_differences`)."""
    from ..cohorts.folder import ensure_cohort
    from ..features.train import train_config_for, train_extractor
    from ..features.workflow import ensure_extractor, ensure_prepared

    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    root = Path(cohort_root) if cohort_root else ensure_cohort(prof.name, role="development")
    ensure_prepared(root, prof, progress=progress)
    units = probe_units(root, progress=progress)
    parts, checkpoints, examples, preds = [], {}, {}, {}
    for scale, named in trainings.items():
        for k, (name, changes) in enumerate(named.items()):
            if not changes:
                ck = ensure_extractor(scale, prof, cohort_root=root, progress=progress, device=device)
            else:
                cfg = changed_config(train_config_for(scale, prof.features), changes)
                slug = "-".join(f"{a}-{b}" for a, b in changes.items()).lower().replace("_", "-").replace(".", "-")
                ck = train_extractor(root, cfg, root / "extractors" / "limits" / slug / scale, resume=True,
                                     progress=progress, device=device)
            label = f"{NETWORK[scale]} {name}"
            checkpoints[label] = ck
            part = extractor_limits(ck, units, progress=progress, skip=("input", "untrained code") if k else ())
            parts.append((scale, label, part))
            for readout, p in part["preds"].items():  # the input's readouts belong to the scale, not to E
                preds[(NETWORK[scale] if readout.startswith("input") else label, readout)] = p
            if not k:
                examples[scale] = dict(part["examples"])
            else:  # the same patches (the units' counts pick them): this training's reconstruction beside
                examples[scale][f"{name}: reconstruction"] = part["examples"]["reconstruction"]

    def tagged(key: str, scale: str, label: str, part: dict) -> pd.DataFrame:
        df = part[key].copy()
        df.insert(0, "extractor", label)
        if "readout" in df:  # the input's readouts belong to no extractor: to what it sees
            seen = "32 px local patch" if scale == "local" else f"global patch at {prof.features.global_resolution} px"
            df.loc[df.readout.str.startswith("input"), "extractor"] = f"none ({NETWORK[scale]}'s input: {seen})"
        return df

    out = {key: pd.concat([tagged(key, *p) for p in parts], ignore_index=True)
           for key in ("scores", "summary", "reconstruction", "noise")}
    if progress:
        print("slide-bootstrap intervals on the paired comparisons", flush=True)
    out.update(differences=paired_differences(preds), examples=examples, lpips_trunk=parts[0][2]["lpips_trunk"],
               checkpoints=checkpoints,
               units={"global patches": len(units.slide), "slides": len(np.unique(units.slide))})
    return out


def run(args, command: str) -> None:
    """``isg study extractor-limits``: the study at ``--profile``, its tables
    ``results/<profile>/extractor_limits*.{csv,md}`` and ``fig_extractor_limits.png``."""
    torch.set_num_threads(2)
    prof = get_profile(args.profile)
    out = extractor_limits_study(prof, device=args.device)
    steps = {name: int(load_checkpoint(p)["step"]) for name, p in out["checkpoints"].items()}
    config = {"profile": prof.name, "cohort": "development", "dev_seed": prof.sim.dev_seed,
              "E_L": train_config_for("local", prof.features).to_dict(),
              "E_G": train_config_for("global", prof.features).to_dict(), "changes": TRAININGS,
              "steps trained": steps,
              "lpips trunk": out["lpips_trunk"], "probe units": out["units"], "nuclear quantile": NUCLEAR_QUANTILE}
    note = ("ISG-Sim is SIMULATED; development cohort (seed %d), never the reported one. The profile's extractors "
            "and the same with one change each, trained on the development cohort (LPIPS trunk: %s), probed on "
            "held-out slides' local patches (level 'local', 32 px = 16 µm; E_L) and global patches (level 'patch', "
            "256 px; E_L's mean code over the patch's local patches, E_G's code of the patch at its resolution). "
            "Ridge and MLP probes cross-validated by slide (5 folds); "
            "PCC per fold, mean over folds and over the lymphocyte, mitosis and tumour-cell counts."
            % (prof.sim.dev_seed, out["lpips_trunk"]))
    write_table(out["summary"], "extractor_limits", prof.name, command, config,
                title="Where the extractors lose the cells: input, reconstruction and code probed alike "
                      "(ISG-Sim, SIMULATED)",
                note=note)
    write_table(out["scores"], "extractor_limits_scores", prof.name, command, config,
                title="Where the extractors lose the cells: probe PCC per cell type (ISG-Sim, SIMULATED)", note=note)
    rec = out["reconstruction"]
    write_table(rec, "extractor_limits_reconstruction", prof.name, command, config,
                title="The extractors' reconstruction error on nuclear and other pixels (ISG-Sim, SIMULATED)",
                note=note + " L1 in intensity units (0-1), mean over RGB; nuclear pixels: haematoxylin optical "
                            "density above its %g quantile over all probe pixels." % NUCLEAR_QUANTILE)
    write_table(out["differences"], "extractor_limits_differences", prof.name, command, config,
                title="Where the extractors lose the cells: paired differences with slide-bootstrap intervals "
                      "(ISG-Sim, SIMULATED)",
                note=note + " a - b in mean PCC over the three counts; 95% interval from resampling the probe's "
                            "slides within each fold (1000 draws), both readouts scored on the same draw. An interval "
                            "that contains 0 is a tie.")
    write_table(out["noise"], "extractor_limits_noise", prof.name, command, config,
                title="Learned strength of the extractors' generator noise inputs (ISG-Sim, SIMULATED)", note=note)
    save_figure(limits_figure(out), "fig_extractor_limits", prof.name)
    print(out["summary"].to_string())
    print(rec.to_string())
    print(out["noise"].to_string())
    print(out["differences"].to_string())


def limits_figure(out: dict):
    """Top: each scale's patches with the most lymphocytes and the profile's extractor's
    reconstructions; bottom: the probes (mean over cell types), local patches (E_L) and global
    patches (E_L's mean code, E_G)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    rows = [(scale, r) for scale, ex in out["examples"].items() for r in ex if r != "lymphocytes"]
    n = len(next(iter(out["examples"].values()))["lymphocytes"])
    fig = plt.figure(figsize=(12, 15))
    grid = fig.add_gridspec(2, 1, height_ratios=[1.8, 1.4], hspace=0.12)
    top = grid[0].subgridspec(len(rows), n, wspace=0.05, hspace=0.35)
    for i, (scale, r) in enumerate(rows):
        ex = out["examples"][scale]
        for j in range(n):
            ax = fig.add_subplot(top[i, j])
            ax.imshow(ex[r][j])
            ax.set_xticks([]), ax.set_yticks([])
            if j == 0:
                label = r if r == "input" or ":" in r else f"as the profile: {r}"
                ax.set_ylabel(f"{NETWORK[scale]} {label}", fontsize=7, rotation=0, ha="right", va="center")
            if r == "input":
                ax.set_title(f"{int(ex['lymphocytes'][j])} lymph.", fontsize=7)
    ax = fig.add_subplot(grid[1])
    d = (out["summary"].melt(id_vars=["extractor", "readout"], var_name="level", value_name="pcc").dropna()
         .assign(what=lambda d: d.extractor + ": " + d.readout,
                 level=lambda d: d.level.map({"local PCC (mean of targets)": "32 px local patch",
                                              "patch PCC (mean of targets)": "256 px global patch"})))
    sns.barplot(data=d, y="what", x="pcc", hue="level", ax=ax)
    ax.set_xlabel("probe PCC with the true cell counts (mean over lymphocytes, mitoses, tumour cells and 5 folds)")
    ax.set_ylabel("")
    ax.legend(title="unit probed", bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.suptitle("Where the extractors lose the cells (development cohort, ISG-Sim, SIMULATED; LPIPS trunk "
                 f"{out['lpips_trunk']}): patches with the most lymphocytes and their reconstructions D(E(x)); probes",
                 fontsize=9)
    return fig
