"""Figures of the patch selection (paper Sec. 3.1, Fig. 2): score distributions by class and
precision/recall against the simulator's truth.  Drawn with seaborn (the design's plotting
library): its long-form data makes the class/method grouping one argument instead of a loop."""
from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .selectors import Selector

#: colours of the three saturation classes (:func:`isg_core.selection.saturation_labels`)
CLASS_COLOURS = {"textureless": "#888888", "ambiguous": "#e0a030", "tissue": "#c03070"}
CLASS_NAMES = {0: "textureless", -1: "ambiguous", 1: "tissue"}


def score_distributions(patches: np.ndarray, labels: np.ndarray, selectors: Mapping[str, Selector],
                        slide_name: str = "CMU"):
    """One histogram per selector of its score (normalised to [0, 1]) over ``patches``, split by
    the saturation class ``labels`` (1 tissue / 0 textureless / -1 ambiguous).  Returns the
    figure and the long-form table it draws (selector, class, score)."""
    rows = [{"selector": k, "class": CLASS_NAMES[int(lab)], "score": float(sel.score(p))}
            for k, sel in selectors.items() for p, lab in zip(patches, labels)]
    data = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, len(selectors), figsize=(4 * len(selectors), 3), squeeze=False)
    for ax, k in zip(axes[0], selectors):
        sns.histplot(data[data.selector == k], x="score", hue="class", hue_order=list(CLASS_COLOURS),
                     palette=CLASS_COLOURS, bins=np.linspace(0, 1, 41), alpha=0.7, ax=ax,
                     legend=ax is axes[0][0])
        ax.set(xlabel=f"{k} score (normalised to [0, 1])", ylabel="tiles",
               title=f"{k} score, all {len(patches)} {slide_name} tiles")
    fig.tight_layout()
    return fig, data


def precision_recall_bars(table: pd.DataFrame, title: str = ""):
    """Precision, recall and F1 of each available selector at its default threshold (the table of
    :func:`isg_core.selection.evaluate_scores`, columns method, threshold, precision, recall, f1)."""
    ok = table[table["available"].astype(bool)] if "available" in table else table
    names = [f"{m}\n{t}" for m, t in zip(ok["method"], ok["threshold"])]
    long = (ok.assign(selector=names).melt(id_vars="selector", value_vars=["precision", "recall", "f1"],
                                             var_name="measure", value_name="value"))
    fig, ax = plt.subplots(figsize=(9, 3.5))
    sns.barplot(long, x="selector", y="value", hue="measure", order=names,
                palette={"precision": "#3060c0", "recall": "#c03070", "f1": "#30a060"}, ax=ax)
    ax.set(ylim=(0, 1.05), xlabel="selector and its default threshold", ylabel="fraction of patches", title=title)
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), title="measure")  # outside: never over a bar
    fig.tight_layout()
    return fig
