"""What a run found, in sentences generated from its results files, so that they cannot go stale.

Each function reads the tables a run wrote under ``results/<profile>/`` (the CSVs beside each
Markdown table) and returns Markdown: the ranking, every paired comparison with its interval and
verdict (the tables' own slide-level bootstrap), and the paper's number only where the setting is
the paper's ("per task" in Table 1); Tables 2, 4 and 6 run one model for all tasks at ``quick``,
a setting the paper does not report, so only its ranking is quoted beside ours.

The README's results block and the notebooks' closing "What we found" cells call these.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import IsgError
from ..experiments.registry import get_table
from ..experiments.statistics import holm_clause, verdict_sentence


def read_result(results: Path, name: str, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """``results/<profile>/<name>.csv``; a one-line error names the file if it is missing or lacks
    ``columns`` (written by older code)."""
    path = Path(results) / f"{name}.csv"
    if not path.exists():
        raise IsgError(path, "not found: run the notebook that writes it first (isg reproduce)")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise IsgError(path, "is empty: the run that wrote it had nothing to report") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise IsgError(path, f"lacks columns {missing}: written by older code, rerun its notebook")
    return df


def _num(x: float, sign: bool = False) -> str:
    return "n/a" if not np.isfinite(x) else (f"{x:+.3f}" if sign else f"{x:.3f}")


def ranking(summary: pd.DataFrame, value: str = "PCC mean", top: int | None = None) -> str:
    """"A 0.300 (2 seeds, SD 0.010) > B 0.250 > ..." from a table's summary, best first."""
    s = summary.dropna(subset=[value]).sort_values(value, ascending=False)
    if top:
        s = s.head(top)
    parts = []
    for _, r in s.iterrows():
        k = int(r["seeds"]) if "seeds" in r and np.isfinite(r["seeds"]) else 1
        sd = r.get("PCC sd (seeds)", np.nan)
        extra = f" ({k} seeds, SD {sd:.3f})" if k > 1 and np.isfinite(sd) else ""
        parts.append(f"{r['method']} {_num(r[value])}{extra}")
    return " > ".join(parts)


def comparison_sentences(significance: pd.DataFrame, value: str = "mean PCC difference",
                         lo: str = "95% CI low", hi: str = "95% CI high", prefix: str = "",
                         units: bool = True) -> list[str]:
    """One :func:`verdict_sentence` per row of a significance table; ``units``: say in each what the
    interval resampled (its ``resampled`` column)."""
    return [prefix + verdict_sentence(r["comparison"], r[value], r[lo], r[hi], r["verdict"],
                                      r.get("resampled") if units else None) + holm_clause(r)
            for _, r in significance.iterrows()]


def interval_preamble(sig: pd.DataFrame) -> str:
    """What a regression table's intervals resample, as its ``seeds`` column ("a: k, b: m") says:
    the training seeds only where a comparison's rows have more than one."""
    counts = sig["seeds"].astype(str).str.findall(r"\d+") if "seeds" in sig else pd.Series(dtype=object)
    several = [max(map(int, c)) > 1 for c in counts if c]
    head = "Intervals are 95% paired bootstraps over the test slides (within fold and cancer type)"
    if several and all(several):
        return head + " and the training seeds:"
    if any(several):
        return head + ", and the training seeds where a row has several (its `seeds`):"
    return head + "; every row has one training seed, so they carry no training variance:"


def paper_name(label: str) -> str:
    """Our row's name without its trailing qualifier, for the paper's number: the paper's HE2RNA ran
    on an ImageNet ResNet50, not on "(random ResNet50)"; its thresholds are in bits, not our bpp."""
    return re.sub(r" \([^)]*\)$", "", label)


def regression_findings(results: Path, n: int) -> list[str]:
    """Table ``n`` (1, 2, 4 or 6): ranking, noise ceiling, the comparisons, and the paper beside
    ours only in the paper's setting."""
    rec = get_table(n)
    title, ours_setting, paper_setting, ours = rec.short, rec.setting, rec.paper_setting, rec.reference
    s = read_result(results, f"table_{n}", ("method", "PCC mean"))
    sig = read_result(results, f"table_{n}_significance", ("comparison", "mean PCC difference", "verdict"))
    image = s[~s.method.str.contains("oracle")]
    out = [f"**{title}, {ours_setting}.** Ranking by PCC: {ranking(image)}."]
    ceiling = float(s["noise ceiling"].iloc[0]) if "noise ceiling" in s else float("nan")
    if ours and (s.method == ours).any() and np.isfinite(ceiling):
        r = float(s.loc[s.method == ours, "PCC mean"].iloc[0])
        out.append(f"{ours} reaches {r / ceiling:.2f} of the noise ceiling ({ceiling:.3f}).")
    oracle = s[s.method.str.contains("oracle")]
    if len(oracle):
        out.append("On the simulator's true cell counts (oracle features): "
                   + ", ".join(f"{m} {_num(v)}" for m, v in zip(oracle.method, oracle["PCC mean"])) + ".")
    out.append(interval_preamble(sig))
    out += comparison_sentences(sig, prefix="  ", units=False)
    if "paper PCC" in s and s["paper PCC"].notna().any():
        paper = s.dropna(subset=["paper PCC"]).sort_values("paper PCC", ascending=False)
        listed = ", ".join(f"{paper_name(m)} {v:.3f}" for m, v in zip(paper.method, paper["paper PCC"]))
        if ours_setting == paper_setting:
            out.append(f"The paper (TCGA, {paper_setting}): {listed}.")
        else:
            out.append(f"The paper reports this table {paper_setting} only: our numbers ({ours_setting}) are not in "
                       f"the paper. Its ranking, to compare the order only: {listed}.")
    return out


def msi_findings(results: Path) -> list[str]:
    """Table 3: each stand-in's AUCs with intervals, the comparisons, the paper's AUCs (same task)."""
    t = read_result(results, "table_3", ("sub-cohort", "method", "AUC"))
    sig = read_result(results, "table_3_significance", ("sub-cohort", "comparison", "AUC difference", "verdict"))
    out = []
    for sub, g in t.groupby("sub-cohort", sort=False):
        ours = g.dropna(subset=["AUC"])
        parts = [f"{r.method} {r.AUC:.2f} ({r['AUC 95% low']:.2f} to {r['AUC 95% high']:.2f})"
                 for _, r in ours.iterrows()]
        paper = g.dropna(subset=["paper AUC"])
        line = f"**{sub}**: " + "; ".join(parts) + "."
        if len(paper):
            line += " Paper (TCGA): " + ", ".join(f"{paper_name(m)} {v:.2f}"
                                                  for m, v in zip(paper.method, paper["paper AUC"])) + "."
        out.append(line)
        out += comparison_sentences(sig[sig["sub-cohort"] == sub], "AUC difference", prefix="  ")
    return out


def table5_findings(results: Path) -> list[str]:
    """Table 5: the probe's PCC per feature set and level, and the paired differences."""
    t = read_result(results, "table_5", ("level", "features", "pcc"))
    d = read_result(results, "table_5_differences", ("comparison", "level", "diff", "ci_low", "ci_high", "verdict"))
    out = []
    for lv, g in t.groupby("level", sort=False):
        g = g.sort_values("pcc", ascending=False)
        out.append(f"**{lv}**: " + " > ".join(f"{f} {p:.3f}" for f, p in zip(g.features, g.pcc)) + ".")
        key = str(lv).split(" ", 1)[0]
        out += comparison_sentences(d[d.level == key], "diff", "ci_low", "ci_high", prefix="  ")
    return out


def target_findings(results: Path) -> list[str]:
    """The acceptance targets (``issue16_targets.csv``, ``tools/targets_report.py``), one line each."""
    t = read_result(results, "issue16_targets", ("target", "rule", "value", "reached"))
    out = []
    for _, r in t.iterrows():
        ci = f" (95% CI {r.ci_low:+.3f} to {r.ci_high:+.3f})" if np.isfinite(r.ci_low) else ""
        note = f"; {r.note}" if isinstance(r.get("note"), str) and r.note else ""
        out.append(f"{r.target}: {r.value:+.3f}{ci}, rule {r.rule}: **{'reached' if r.reached == 'yes' else 'missed'}**"
                   f"{note}.")
    return out


def as_markdown(lines: list[str]) -> str:
    """Sentences as a Markdown list (indented lines as sub-items)."""
    return "\n".join(("  - " + s.strip()) if s.startswith("  ") else f"- {s}" for s in lines)
