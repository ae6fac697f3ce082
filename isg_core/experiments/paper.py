"""The paper's own numbers (``paper_tables.csv``: every number of
Yang, Pan, Liu and Stone, BMVC 2022, arXiv 2210.16728, Tables 1-6, transcribed),
so every table we make can print them beside ours.  Method names are matched case-insensitively."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

PAPER_TABLES = Path(__file__).with_name("paper_tables.csv")


@lru_cache(maxsize=1)
def _all() -> pd.DataFrame:
    return pd.read_csv(PAPER_TABLES, dtype={"table": str})


def paper_table(number: int | str) -> pd.DataFrame:
    """Rows of the paper's Table ``number``: method, dataset, gene, metric, value."""
    df = _all()
    out = df[df["table"] == str(number)].drop(columns="table").reset_index(drop=True)
    if out.empty:
        raise KeyError(f"the paper has no Table {number} in {PAPER_TABLES.name}")
    return out


def paper_value(number: int | str, method: str, dataset: str, gene: str = "Avg", metric: str = "PCC") -> float:
    """One number of the paper (NaN if the paper does not report it)."""
    t = paper_table(number)
    m = t[(t.method.str.lower() == method.lower()) & (t.dataset.str.lower() == dataset.lower())
          & (t.gene == gene) & (t.metric == metric)]
    return float(m.value.iloc[0]) if len(m) else float("nan")
