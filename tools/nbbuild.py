"""Build notebooks/NN_*.ipynb from their readable sources notebooks/src/NN_*.py.

The sources use the "percent" cell format: ``# %%`` starts a code cell, ``# %% [markdown]`` a
markdown cell (its lines prefixed with ``# ``), and ``# %% tags=["parameters"]`` papermill's
parameters cell.  Building drops outputs; ``make notebooks`` then executes them at ``quick``.

    python tools/nbbuild.py            # every source
    python tools/nbbuild.py 00 01      # only these prefixes
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
HEADER = re.compile(r"^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")


def parse(text: str) -> list:
    cells, kind, tags, buf = [], None, [], []

    def flush():
        if kind is None:
            return
        body = "\n".join(buf).strip("\n")
        if kind == "markdown":
            body = "\n".join(l[2:] if l.startswith("# ") else l.lstrip("#") for l in body.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(body))
        else:
            cells.append(nbformat.v4.new_code_cell(body, metadata={"tags": tags} if tags else {}))

    for line in text.splitlines():
        m = HEADER.match(line)
        if m:
            flush()
            kind = "markdown" if m.group("md") else "code"
            tags = json.loads(m.group("tags")) if m.group("tags") else []
            buf = []
        elif kind is not None:
            buf.append(line)
    flush()
    return cells


def build(src: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = parse(src.read_text())
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    out = ROOT / "notebooks" / (src.stem + ".ipynb")
    nbformat.write(nb, out)
    return out


if __name__ == "__main__":
    prefixes = sys.argv[1:]
    for src in sorted((ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py")):
        if not prefixes or any(src.name.startswith(p) for p in prefixes):
            print("built", build(src).relative_to(ROOT))
