"""Binary memory units in written tables: MB / GB labels of values that were MiB / GiB.

The memory benchmarks (``benchmarks/memory.py``, ``benchmarks/paper_memory.py``) once labelled
MiB (KiB from the kernel / 1024) and GiB (bytes / 2**30) as "MB" and "GB".  Their ``--relabel``
renames those labels in the written CSV and Markdown without measuring anything again: the
numbers are the original run's, and the Markdown says so.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import atomic_path
from .outputs import profile_results_dir, write_table

#: a decimal unit label (MB, GB) as a word of a column name or config key
_DECIMAL_UNIT = re.compile(r"\b([MG])B\b")
#: CSV columns that hold a JSON object (network sizes, the run's config) whose keys may carry units
JSON_COLUMNS = ("config", "run_config")
RELABEL_SENTENCE = ("Units relabelled (MB -> MiB, GB -> GiB: the values were always binary) by "
                    "`python benchmarks/{script}.py --relabel`; the numbers are those of the original run.")


def binary_unit_label(label: str) -> str:
    """``label`` with the units MB and GB (as words) renamed MiB and GiB: ``"peak RSS (MB)"`` ->
    ``"peak RSS (MiB)"``, ``"fits 24 GB"`` -> ``"fits 24 GiB"``; anything else is left as it is."""
    return _DECIMAL_UNIT.sub(r"\1iB", label)


def relabel_config(obj):
    """A config (nested dicts and lists) with :func:`binary_unit_label` applied to every dict key,
    in the same order; values are left as they are."""
    if isinstance(obj, dict):
        return {binary_unit_label(k) if isinstance(k, str) else k: relabel_config(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [relabel_config(v) for v in obj]
    return obj


def _relabel_json_cell(cell):
    """A JSON-object cell with its keys relabelled; the same string when no key changes (so the
    bytes stay), otherwise dumped as it was (sorted keys if it was sorted)."""
    if not isinstance(cell, str):
        return cell
    try:
        obj = json.loads(cell)
    except ValueError:
        return cell
    new = relabel_config(obj)
    if json.dumps(new) == json.dumps(obj):
        return cell
    return json.dumps(new, sort_keys=json.dumps(obj, sort_keys=True) == cell)


def relabel_binary_units(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of a memory table with the labels of its binary values saying so: "MB" -> "MiB" and
    "GB" -> "GiB" in the column names (``"peak RSS (MB)"``, ``"under 2 GB"``, ``"fits 24 GB"``)
    and in the keys of the JSON columns (:data:`JSON_COLUMNS`: ``"memory (GB)"`` in a run's
    config).  The values were always MiB / GiB (/1024 of KiB, or /2**30 of bytes); no value
    changes, and a table already relabelled comes back the same (idempotent).  A ``command``
    column is left alone: a command is what was run (``--limit-gb``), not a label."""
    out = df.rename(columns=lambda c: binary_unit_label(c) if isinstance(c, str) else c)
    for c in JSON_COLUMNS:
        if c in out.columns:
            out[c] = out[c].map(_relabel_json_cell)
    return out


@dataclass
class TableMarkdown:
    """The parts of a Markdown table written by :func:`isg_core.report.outputs.write_table`; the table's
    cells are kept as the text written (so rendering them again gives the same numbers)."""

    title: str
    note: str
    command: str
    config: dict | None
    table: pd.DataFrame


def read_table_md(path: "str | os.PathLike") -> TableMarkdown:
    """Parse ``path`` (written by :func:`~isg_core.report.outputs.write_table`): the ``# title``, the note
    before the ``Made by: `...``` line, the command in it, the ``Config: `...``` JSON and the table
    (cells as text, header as column names)."""
    lines = Path(path).read_text().splitlines()
    if not lines or not lines[0].startswith("# "):
        raise ValueError(f"{path}: no '# title' line")
    made = next((i for i, ln in enumerate(lines) if ln.startswith("Made by: `")), None)
    if made is None:
        raise ValueError(f"{path}: no 'Made by: `...`' line")
    command = lines[made][len("Made by: `"):].rsplit("`", 1)[0]
    note = "\n".join(lines[1:made]).strip()
    cfg_line = next((ln for ln in lines[made + 1:] if ln.startswith("Config: `")), None)
    config = json.loads(cfg_line[len("Config: `"):].rsplit("`", 1)[0]) if cfg_line else None
    rows = [ln.strip() for ln in lines[made + 1:] if ln.lstrip().startswith("|")]
    if len(rows) < 2:
        raise ValueError(f"{path}: no table")

    def cells(row: str) -> list[str]:
        return [c.strip() for c in row.strip("|").split("|")]

    header = cells(rows[0])
    body = [cells(r) for r in rows[2:]]  # rows[1]: the delimiter row
    bad = [r for r in body if len(r) != len(header)]
    if bad:
        raise ValueError(f"{path}: a row has {len(bad[0])} cells, the header {len(header)} (a '|' in a cell?)")
    return TableMarkdown(lines[0][2:], note, command, config, pd.DataFrame(body, columns=header, dtype=object))


def relabel_results(name: str, profile: str, script: str, floatfmt: str = ".3f") -> pd.DataFrame:
    """Relabel ``results/<profile>/<name>.{csv,md}`` in place (MB -> MiB, GB -> GiB) without
    measuring anything: the CSV's columns and JSON keys (:func:`relabel_binary_units`), its values
    written back as they were read; the Markdown table rewritten by :func:`~isg_core.report.outputs.write_table`
    from its own cells (the same numbers), with the original title, ``Made by:`` command and
    config (keys relabelled), and :data:`RELABEL_SENTENCE` added to the note (once).  ``floatfmt``:
    the one the table was written with.  Returns the relabelled CSV's table."""
    d = profile_results_dir(profile)
    csv, md = d / f"{name}.csv", d / f"{name}.md"
    table = relabel_binary_units(pd.read_csv(csv))
    parts = read_table_md(md)
    sentence = RELABEL_SENTENCE.format(script=script)
    note = parts.note if sentence in parts.note else f"{parts.note} {sentence}".strip()
    write_table(relabel_binary_units(parts.table), name, profile, parts.command,
                config=relabel_config(parts.config), title=parts.title, note=note, floatfmt=floatfmt)
    with atomic_path(csv) as tmp:  # after write_table, which wrote the Markdown's cells there
        table.to_csv(tmp, index=False, float_format="%.6g")
    return table
