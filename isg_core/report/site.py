"""The executed notebooks as a small static HTML site: readable without Jupyter.

``isg site`` renders every ``NN_*.ipynb`` of a folder with nbconvert's ``basic`` template (the
notebook's cells, outputs and figures, no 300 kB stylesheet per page) inside a page of our own with
one shared stylesheet, and writes ``index.html``: each notebook, what it shows (its first Markdown
cell's title and first sentence) and how long it ran (the run's ``timings.csv``).  MathJax is
loaded by the pages for the typeset equations when the reader is online; offline the LaTeX source
shows.  Every file is written under a temporary name and renamed.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import nbformat
import pandas as pd

from ..errors import IsgError, atomic_write_text

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:1em auto;padding:0 1em;color:#222;
line-height:1.45}nav{margin:0.5em 0 1.5em;font-size:0.95em}nav a{margin-right:1em}
table{border-collapse:collapse;margin:0.6em 0}td,th{border:1px solid #ccc;padding:3px 8px;vertical-align:top}
th{background:#f2f2f2}pre{background:#f6f8fa;padding:8px;overflow-x:auto;font-size:0.85em}
.jp-InputArea pre,.input_area pre{background:#eef3f8}.jp-OutputArea pre{background:#fafafa}
img{max-width:100%}.note{color:#666;font-size:0.9em}"""
MATHJAX = ("<script>window.MathJax={tex:{inlineMath:[['$','$'],['\\\\(','\\\\)']]}};</script>"
           "<script async src='https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js'></script>")
_HEADING = re.compile(r"^#+\s*(.+)$")


def notebook_summary(nb: nbformat.NotebookNode, limit: int = 220) -> tuple[str, str]:
    """(title, blurb): the first Markdown cell's heading, and its first paragraph as plain text, cut
    at a word before ``limit`` characters."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.strip().splitlines()
        title = next((m.group(1).strip() for m in map(_HEADING.match, lines) if m), "")
        paragraph: list[str] = []
        for line in lines:
            if _HEADING.match(line) or line.lstrip().startswith("|"):
                continue
            if not line.strip():
                if paragraph:
                    break
                continue
            paragraph.append(line.strip())
        text = re.sub(r"[*_`]", "", " ".join(paragraph))
        if len(text) > limit:
            text = text[:limit].rsplit(" ", 1)[0] + " ..."
        return title, text
    return "", ""


def _page(title: str, nav: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style>{MATHJAX}</head><body>{nav}{body}</body></html>\n")


def render_notebook(path: Path) -> str:
    """The notebook's cells and outputs as an HTML fragment (nbconvert, ``basic`` template)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="basic", exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_filename(str(path))
    return body


def build_site(notebooks_dir: "str | Path", out_dir: "str | Path", timings: "str | Path | None" = None,
               title: str = "ISG reimplementation: the notebooks") -> Path:
    """Render every ``NN_*.ipynb`` of ``notebooks_dir`` to ``out_dir/NN_*.html`` and write
    ``out_dir/index.html``; ``timings``: a ``timings.csv`` (notebook, seconds) for the runtimes
    (default: the one beside the notebooks, if any).  Returns the index's path."""
    from .notebooks import list_notebooks

    notebooks_dir, out_dir = Path(notebooks_dir), Path(out_dir)
    notebooks = list_notebooks(notebooks_dir)
    if not notebooks:
        raise IsgError(notebooks_dir, "no NN_*.ipynb notebooks to render")
    timings = Path(timings) if timings else notebooks_dir / "timings.csv"
    seconds: dict[str, float] = {}
    if timings.exists():
        t = pd.read_csv(timings)
        if not {"notebook", "seconds"} <= set(t.columns):
            raise IsgError(timings, "a timings table needs the columns notebook and seconds")
        seconds = dict(zip(t.notebook, t.seconds))
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, nb_path in enumerate(notebooks):
        try:
            nb = nbformat.read(nb_path, as_version=4)
        except Exception as e:  # noqa: BLE001 - any unreadable notebook: one line naming it
            raise IsgError(nb_path, f"not a readable notebook ({type(e).__name__})") from None
        name, (nb_title, blurb) = nb_path.stem, notebook_summary(nb)
        links = ["<a href='index.html'>index</a>"]
        if i > 0:
            links.append(f"<a href='{notebooks[i - 1].stem}.html'>&larr; {notebooks[i - 1].stem}</a>")
        if i + 1 < len(notebooks):
            links.append(f"<a href='{notebooks[i + 1].stem}.html'>{notebooks[i + 1].stem} &rarr;</a>")
        atomic_write_text(out_dir / f"{name}.html",
                          _page(nb_title or name, f"<nav>{''.join(links)}</nav>", render_notebook(nb_path)))
        s = seconds.get(nb_path.name)
        runtime = "not recorded" if s is None or pd.isna(s) else (f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min")
        rows.append(f"<tr><td><a href='{name}.html'>{html.escape(name)}</a></td><td>{html.escape(nb_title)}</td>"
                    f"<td>{html.escape(blurb)}</td><td>{runtime}</td></tr>")
    index = (f"<h1>{html.escape(title)}</h1><p class='note'>Rendered from the executed notebooks in "
             f"<code>{html.escape(str(notebooks_dir))}</code> by <code>isg site</code>; runtimes from "
             f"<code>{html.escape(timings.name)}</code> of the run that executed them. Numbers on ISG-Sim are "
             "SIMULATED, not TCGA.</p><table id='notebooks'><tr><th>notebook</th><th>title</th>"
             f"<th>what it shows</th><th>runtime</th></tr>{''.join(rows)}</table>")
    path = out_dir / "index.html"
    atomic_write_text(path, _page(title, "", index))
    return path
