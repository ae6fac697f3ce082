"""The notebooks' opening and closing cells, generated from results files so they cannot go stale.

* :func:`runtime_note`: how long a notebook takes at a profile, from scratch and with its results
  cached, read from ``results/<profile>/notebook_timings.csv`` (``tools/notebook_timings.py`` makes
  it from the ``timings.csv`` that ``isg reproduce`` writes for a from-scratch and a cached run).
* :func:`what_we_found`: the closing **What we found** of a notebook: for the tables the sentences
  of :mod:`isg_core.report.findings` (ranking, paired intervals and verdicts, the paper's value only in
  the paper's setting); for the method notebooks (00-04, 11) sentences read from the CSVs they
  write; for notebook 12 the flags of the predictions it writes (:func:`predict_findings`).  A
  missing file gives one line saying which notebook makes it, never a traceback.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import IsgError
from ..experiments.registry import TABLES, PaperTable
from .findings import as_markdown, msi_findings, read_result, regression_findings, table5_findings, target_findings
from .outputs import profile_results_dir

#: the committed timings of the notebooks at a profile (notebook, fresh_s, cached_s, measured)
TIMINGS = "notebook_timings.csv"


def _duration(seconds: float) -> str:
    """12 s, 3 min, 1 h 05 min."""
    if not np.isfinite(seconds):
        return "not measured"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(round(seconds % 3600 / 60)):02d} min"


def runtime_note(notebook: str, profile: str, results: Path | None = None) -> str:
    """One Markdown line: the notebook's measured time at ``profile`` from scratch (every cache
    empty, the run before it included) and with its results cached, with when and where it was
    measured; or a line saying it was not measured.  A paper table's notebook adds its
    :func:`setting_note`."""
    table = table_of_notebook(notebook)
    setting = "" if table is None else "\n\n" + setting_note(table)
    return _runtime_line(notebook, profile, results) + setting


def _runtime_line(notebook: str, profile: str, results: Path | None) -> str:
    results = Path(results) if results else profile_results_dir(profile)
    path = results / TIMINGS
    if not path.exists():
        return f"**Runtime** at `{profile}`: not measured yet (`{path.name}` is missing)."
    t = pd.read_csv(path)
    row = t[t.notebook.str[:2] == notebook[:2]]
    if row.empty:
        return f"**Runtime** at `{profile}`: not measured yet (no row for {notebook} in `{path.name}`)."
    r = row.iloc[0]
    where = f" ({r['measured']})" if isinstance(r.get("measured"), str) else ""
    return (f"**Runtime** at `{profile}`: {_duration(float(r.fresh_s))} from scratch, "
            f"{_duration(float(r.cached_s))} with its results cached{where}.")


# --- the method notebooks ----------------------------------------------------------------------------
def data_findings(results: Path) -> list[str]:
    """Notebook 00: the noise ceiling per cancer type and what the global patches hold."""
    nc = read_result(results, "isg_sim_noise_ceiling", ("cancer_type", "gene", "pcc"))
    per = nc.groupby("cancer_type", sort=False).pcc.mean()
    out = ["The noise ceiling (the PCC of the simulator's noiseless truth against the observed expression, "
           "the best any model can score): " + ", ".join(f"{k} {v:.3f}" for k, v in per.items())
           + f"; mean over genes {nc.pcc.mean():.3f}."]
    pc = read_result(results, "isg_sim_patch_content", ("artefact", "fraction"))
    glass = pc.loc[pc.artefact == "glass", "fraction"]
    if len(glass):
        out.append(f"{glass.iloc[0]:.0%} of the global patches are glass: a patch selector has work to do.")
    return out


def tiling_findings(results: Path) -> list[str]:
    """Notebook 01: how many global and local patches the tiling made."""
    t = read_result(results, "tiling_summary", ("data", "slides", "global_patches", "local_patches"))
    return [f"{r.data}: {r.slides} slide(s), {r.global_patches:,} global patches "
            f"({r.global_patches / r.slides:.0f} per slide), {r.local_patches:,} local patches "
            f"({r.local_patches // max(r.global_patches, 1)} per global patch)." for _, r in t.iterrows()]


def selection_findings(results: Path) -> list[str]:
    """Notebook 02: each selector's precision and recall of textured patches on ISG-Sim."""
    s = read_result(results, "selection_isg_sim", ("method", "precision", "recall", "kept"))
    s = s[s.available.astype(bool)] if "available" in s else s
    out = []
    sh = s[s.method == "shannon"]
    if len(sh):
        r = sh.iloc[0]
        out.append(f"Shannon keeps {r.kept:.0%} of the patches, with recall {r.recall:.3f} and precision "
                   f"{r.precision:.3f} for textured (tissue) patches.")
    others = s[s.method != "shannon"].sort_values("recall", ascending=False)
    if len(others):
        out.append("The other selectors at their default thresholds (recall / precision): "
                   + ", ".join(f"{m} {r:.3f} / {p:.3f}" for m, r, p in zip(others.method, others.recall,
                                                                          others.precision)) + ".")
    return out


def extractor_findings(results: Path) -> list[str]:
    """Notebook 03: the extractors' training (final losses, LPIPS trunk) and encoding speed."""
    t = read_result(results, "feature_extractor_training", ("scale", "step", "final_l1", "final_lpips",
                                                            "lpips_trunk", "train_seconds"))
    out = []
    for _, r in t.iterrows():
        trunk = "a random AlexNet trunk (offline)" if r.lpips_trunk == "random" else f"the {r.lpips_trunk} trunk"
        out.append(f"E_{r.scale[0].upper()} ({r.scale}): {r.step} steps in {_duration(r.train_seconds)}, final L1 "
                   f"{r.final_l1:.3f}, LPIPS {r.final_lpips:.3f} on {trunk}.")
    try:
        thr = read_result(results, "feature_extraction_throughput")
        col = [c for c in thr.columns if c.startswith("patches/s")]
        if col:
            r = thr.iloc[0]
            out.append(f"Encoding: {r[col[0]]:.0f} kept patches per second ({r['global patches']:,} patches, "
                       f"{r['torch threads']} CPU threads).")
    except IsgError:
        pass
    return out


def dual_attention_findings(results: Path) -> list[str]:
    """Notebook 04: does the network beat predicting the mean on validation; how peaked is the
    ViT's attention over patches (against uniform)."""
    h = read_result(results, "isg_training_curve", ("epoch", "train_loss", "val_loss"))
    best = h.loc[h.val_loss.idxmin()]
    verdict = ("below" if best.val_loss < 1.0 else "not below")
    out = [f"Fold 0's best inner-validation L2 is {best.val_loss:.3f} (epoch {int(best.epoch)}), {verdict} 1.0, "
           "the L2 of predicting the training mean on standardised targets."]
    try:
        a = read_result(results, "isg_attention", ("rank", "attention", "uniform"))
        top = a.sort_values("rank").head(3)
        out.append("The class token's attention on the three most attended patches: "
                   + ", ".join(f"{v:.3f}" for v in top.attention)
                   + f", against {a.uniform.iloc[0]:.3f} if it were uniform"
                   + (" (nearly uniform: the model does not single out a few patches)."
                      if top.attention.max() < 2 * a.uniform.iloc[0] else "."))
    except IsgError:
        pass
    try:
        g = read_result(results, "isg_lihc_per_gene", ("gene", "mean"))
        out.append("Per gene (LIHC, mean PCC over 5 folds): "
                   + ", ".join(f"{k} {v:+.3f}" for k, v in zip(g.gene, g["mean"])) + ".")
    except IsgError:
        pass
    return out


def efficiency_findings(results: Path) -> list[str]:
    """Notebook 11: seconds per slide, ISG against HE2RNA, on the same slides."""
    e = read_result(results, "efficiency_sim", ("method", "dataset", "total", "ratio to HE2RNA"))
    out = []
    for ds, g in e.groupby("dataset", sort=False):
        isg, he = g[g.method == "ISG"], g[g.method == "HE2RNA"]
        if len(isg):
            r = isg.iloc[0]
            paper = ""
            if "paper s/slide" in g and len(he):
                p_isg, p_he = float(r["paper s/slide"]), float(he["paper s/slide"].iloc[0])
                paper = f" (the paper, TCGA on a GPU: {p_isg:.0f} / {p_he:.0f} = {p_isg / p_he:.2f})"
            out.append(f"{ds}: ISG {r.total:.2f} s per slide, {r['ratio to HE2RNA']:.2f} x HE2RNA's time{paper}.")
    return out


def chance_findings(results: Path) -> list[str]:
    """Notebook 07: how far below 0.5 a model that learnt nothing reaches on each stand-in's folds."""
    try:
        c = read_result(results, "table_3_chance", ("sub-cohort", "chance 2.5%", "chance 97.5%", "MSI-H per fold",
                                                    "below the chance range"))
    except IsgError:
        return []
    return [f"{r['sub-cohort']}: a model that learnt nothing scores {r['chance 2.5%']:.2f} to {r['chance 97.5%']:.2f} "
            f"(MSI-H slides per fold: {r['MSI-H per fold']}); below that range: {r['below the chance range']}."
            for _, r in c.iterrows()]


# --- notebook 12: what `isg predict` flags --------------------------------------------------------------
#: the real slide notebook 12 predicts (data/samples/), and the folders under :func:`predict_dir` it writes:
#: the real slide with no cancer type at the top, the same slide as a skin slide (SKCM, our assumption) in
#: ``SKCM/``, a simulated test slide with its own cancer type in ``simulated/``
REAL_SLIDE = "CMU-1-Small-Region"
SKIN_TYPE = "SKCM"
SIMULATED = "simulated"


def predict_dir(results: Path) -> Path:
    """Where notebook 12 writes its predictions for the profile whose results are ``results``
    (``results/<profile>``): ``results/notebooks/<profile>/predict``, beside the executed notebooks
    (not committed: slides' pictures and reports)."""
    results = Path(results)
    return results.parent / "notebooks" / results.name / "predict"


def _split_flags(flag: str) -> list[str]:
    return [r for r in str(flag).split("; ") if r]


def flag_counts(table: pd.DataFrame) -> dict:
    """A predictions table (``isg predict``'s CSV: ``gene``, ``trained_on``, ``fold_test_pcc``,
    ``flag``) summarised by the reasons :func:`isg_core.deploy.predict.gene_flag` writes: ``genes``,
    ``flagged``, and the genes flagged ``type`` (the slide's cancer type is not one the gene was
    trained on), ``chance`` (its fold's test PCC <= 0) or ``unmeasured`` (no test PCC), as lists;
    ``cancer_type``: the slide's type the flags name (None if no gene was flagged for it)."""
    flags = table["flag"].fillna("").astype(str)
    reasons = {"type": [], "chance": [], "unmeasured": []}
    cancer_type = None
    for gene, flag in zip(table["gene"], flags):
        for r in _split_flags(flag):
            if r.startswith("trained on") and ", not on " in r:
                reasons["type"].append(gene)
                cancer_type = r.rsplit(", not on ", 1)[1]
            elif "<= 0" in r:
                reasons["chance"].append(gene)
            elif r.startswith("no test PCC"):
                reasons["unmeasured"].append(gene)
    return {"genes": len(table), "flagged": int((flags != "").sum()), "cancer_type": cancer_type, **reasons}


def _read_predictions(path: Path) -> pd.DataFrame:
    """One ``<slide>.predictions.csv``; a one-line error names it if it is missing or lacks columns."""
    return read_result(path.parent, path.name[:-len(".csv")], ("gene", "trained_on", "fold_test_pcc", "flag"))


def _either(names: list[str]) -> str:
    """"A", "A or B", "A, B or C"."""
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def flag_sentence(what: str, table: pd.DataFrame) -> str:
    """"<what>: 4 of 10 genes flagged: 4 trained only on LIHC or PRAD, not on COAD (...); 1 ..."."""
    c = flag_counts(table)
    if not c["flagged"]:
        return f"{what}: none of the {c['genes']} genes is flagged."
    pcc = dict(zip(table["gene"], table["fold_test_pcc"]))
    trained = dict(zip(table["gene"], table["trained_on"].fillna("").astype(str)))
    which = lambda genes: "" if len(genes) == c["genes"] else f" ({', '.join(genes)})"  # noqa: E731
    parts = []
    if c["type"]:
        types = sorted({t for g in c["type"] for t in trained[g].split("+") if t})
        parts.append(f"{len(c['type'])} trained only on {_either(types) or 'no cancer type'}, not on "
                     f"{c['cancer_type']}{which(c['type'])}")
    if c["chance"]:
        parts.append(f"{len(c['chance'])} with a fold test PCC <= 0, no better than chance on held-out slides ("
                     + ", ".join(f"{g} {pcc[g]:+.2f}" for g in c["chance"]) + ")")
    if c["unmeasured"]:
        parts.append(f"{len(c['unmeasured'])} with no test PCC measured{which(c['unmeasured'])}")
    several = len(c["type"]) + len(c["chance"]) + len(c["unmeasured"]) - c["flagged"]
    return (f"{what}: {c['flagged']} of {c['genes']} genes flagged: " + "; ".join(parts)
            + (f" ({several} of them for both reasons)." if several > 0 else "."))


def predict_findings(results: Path) -> list[str]:
    """Notebook 12: how many genes ``isg predict`` flagged, and why, on the real slide (as a skin
    slide, SKCM, and with no cancer type) and on the simulated test slide; the model is ISG-Sim's."""
    d = predict_dir(results)
    out, missing = [], []
    for what, path in ((f"The real slide {REAL_SLIDE} as a skin slide ({SKIN_TYPE}, our assumption)",
                        d / SKIN_TYPE / f"{REAL_SLIDE}.predictions.csv"),
                       (f"{REAL_SLIDE} with no cancer type given (only the test PCC can be checked)",
                        d / f"{REAL_SLIDE}.predictions.csv")):
        try:
            out.append(flag_sentence(what, _read_predictions(path)))
        except IsgError as e:
            missing.append(e)
    sims = sorted((d / SIMULATED).glob("*.predictions.csv"), key=lambda p: p.stat().st_mtime)
    if sims:  # the newest: an earlier cohort's test slide may linger beside it
        try:
            t = _read_predictions(sims[-1])
            ct = flag_counts(t)["cancer_type"]
            out.append(flag_sentence(f"The simulated test slide {sims[-1].name[:-len('.predictions.csv')]}"
                                      + (f" ({ct})" if ct else ""), t))
        except IsgError as e:
            missing.append(e)
    else:
        missing.append(IsgError(d / SIMULATED, "holds no predictions: run notebook 12 first (isg reproduce)"))
    if not out:
        raise missing[0]
    out += [f"Not available yet: {e}" for e in missing]
    out.append("The model is trained on ISG-Sim, SIMULATED slides: a gene that is not flagged is not thereby right, "
               "and on the real slide the numbers show how the pipeline works, not what the tissue expresses.")
    return out


#: the findings of the notebooks that are not a paper table's (number -> function)
METHOD_FINDINGS: dict[str, Callable[[Path], list[str]]] = {
    "00": data_findings, "01": tiling_findings, "02": selection_findings, "03": extractor_findings,
    "04": dual_attention_findings, "11": efficiency_findings, "12": predict_findings,
}
#: a paper table's findings by its record's ``kind`` (results folder, table number -> sentences)
KIND_FINDINGS: dict[str, Callable[[Path, int], list[str]]] = {
    "regression": regression_findings, "msi": lambda r, n: msi_findings(r), "probe": lambda r, n: table5_findings(r),
}
#: further findings a table's record names in ``extra_findings``
EXTRA_FINDINGS: dict[str, Callable[[Path], list[str]]] = {"chance": chance_findings, "targets": target_findings}


def table_findings(table: PaperTable) -> Callable[[Path], list[str]]:
    """The findings of a paper table's notebook: those of its kind, then its extra ones."""
    def findings(results: Path) -> list[str]:
        lines = KIND_FINDINGS[table.kind](results, table.number)
        for name in table.extra_findings:
            lines = lines + EXTRA_FINDINGS[name](results)
        return lines
    return findings


def notebook_findings() -> dict[str, Callable[[Path], list[str]]]:
    """Notebook number -> the function that writes its findings: the method notebooks', and one per
    registered paper table (:data:`isg_core.experiments.registry.TABLES`, read when called, so a table
    registered later has its findings too)."""
    return dict(sorted({**METHOD_FINDINGS, **{t.notebook[:2]: table_findings(t) for t in TABLES.values()}}.items()))


#: notebook number -> the function that writes its findings (as registered at import)
FINDINGS = notebook_findings()


def table_of_notebook(notebook: str) -> PaperTable | None:
    """The paper table whose notebook this is (its file name or number), if any."""
    return next((t for t in TABLES.values() if t.notebook[:2] == notebook[:2]), None)


def setting_note(table: PaperTable) -> str:
    """One Markdown line: the paper's setting for this table and ours, and so whether the paper's numbers
    stand beside ours (from the table's record)."""
    line = f"**{table.title}.** The paper's setting: {table.paper_setting}; ours: {table.setting}"
    if table.in_paper_setting:
        return line + ", the same, so the paper's values stand beside ours."
    return line + ": the paper's values give its ranking only, not numbers to match."


def what_we_found(notebook: str, profile: str, results: Path | None = None) -> str:
    """The closing cell of ``notebook`` (its file name or number): a Markdown heading and the
    sentences generated from this profile's results files, each labelled as ISG-Sim's."""
    results = Path(results) if results else profile_results_dir(profile)
    key, findings = notebook[:2], notebook_findings()
    if key not in findings:
        raise IsgError(None, f"no findings are defined for notebook {notebook!r}")
    try:
        lines = findings[key](results)
    except IsgError as e:
        lines = [f"Not available yet: {e}"]
    head = f"### What we found (profile `{profile}`; ISG-Sim is SIMULATED, not TCGA)"
    return head + "\n\n" + as_markdown(lines)
