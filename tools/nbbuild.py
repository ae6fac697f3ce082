"""Build notebooks/NN_*.ipynb from their readable sources notebooks/src/NN_*.py.

The sources use the "percent" cell format: ``# %%`` starts a code cell, ``# %% [markdown]`` a
markdown cell (its lines prefixed with ``# ``), and ``# %% tags=["parameters"]`` papermill's
parameters cell.  Building drops outputs; ``make notebooks`` then executes them at ``quick``.

    python tools/nbbuild.py            # every source
    python tools/nbbuild.py 00 01      # only these prefixes
    python tools/nbbuild.py --sources-only 03   # new cell sources, stored outputs kept
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
            body = "\n".join(ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in body.splitlines())
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


def sync(src: Path) -> Path:
    """Rewrite the cell *sources* of an executed notebook from its source file, keeping every
    output: for edits that cannot change what a cell prints (a comment, a wrapped line, an unused
    import dropped).  The source must have the same cells, in the same order and of the same kinds;
    anything else needs ``build`` and a new run (``make notebooks``)."""
    out = ROOT / "notebooks" / (src.stem + ".ipynb")
    nb = nbformat.read(out, as_version=4)
    cells = parse(src.read_text())
    kinds = [c.cell_type for c in nb.cells], [c.cell_type for c in cells]
    if kinds[0] != kinds[1]:
        raise SystemExit(f"{out}: its cells differ from {src} in number or kind; build it and run it again")
    for old, new in zip(nb.cells, cells):
        old.source = new.source
    nbformat.write(nb, out)
    return out


if __name__ == "__main__":
    # --sources-only: keep the stored outputs (see ``sync``)
    keep = "--sources-only" in sys.argv
    prefixes = [a for a in sys.argv[1:] if a != "--sources-only"]
    for src in sorted((ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py")):
        if not prefixes or any(src.name.startswith(p) for p in prefixes):
            print("synced" if keep else "built", (sync(src) if keep else build(src)).relative_to(ROOT))
