"""Writing tables and figures to ``results/<profile>/``, each with the command that made it.

Every table is written twice, as CSV (for machines) and Markdown (for people); the Markdown
starts with the command and config that produced it and, for the simulated cohort, says so.
No timestamps are written, so two runs with the same inputs give identical files.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..errors import atomic_path
from ..paths import results_dir


def profile_results_dir(profile: str) -> Path:
    d = results_dir() / profile
    d.mkdir(parents=True, exist_ok=True)
    return d


def notebook_command(notebook: str, profile: str) -> str:
    """The command that regenerates a notebook's outputs."""
    return f"isg reproduce --profile {profile} --only {notebook[:2]}   # runs notebooks/{notebook}"


def write_table(df: pd.DataFrame, name: str, profile: str, command: str, config: dict | None = None,
                title: str | None = None, note: str | None = None, floatfmt: str = ".3f") -> tuple[Path, Path]:
    """Write ``results/<profile>/<name>.csv`` and ``.md``; returns both paths."""
    d = profile_results_dir(profile)
    csv, md = d / f"{name}.csv", d / f"{name}.md"
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    lines = [f"# {title or name}", ""]
    if note:
        lines += [note, ""]
    lines += [f"Made by: `{command}`", ""]
    if config:
        lines += [f"Config: `{json.dumps(config, sort_keys=True, default=str)}`", ""]
    lines += [df.to_markdown(index=False, floatfmt=floatfmt), ""]
    with atomic_path(md) as tmp:
        tmp.write_text("\n".join(lines))
    return csv, md


def save_figure(fig, name: str, profile: str, dpi: int = 110) -> Path:
    """Save a matplotlib figure as ``results/<profile>/<name>.png`` (atomically)."""
    p = profile_results_dir(profile) / f"{name}.png"
    with atomic_path(p) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png", metadata={"Software": None})
    return p

