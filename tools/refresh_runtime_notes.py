"""Re-evaluate the runtime and "What we found" cells of the executed notebooks on the results now.

Each notebook's second code cell is ``Markdown(runtime_note(NOTEBOOK, profile))``: it reads
``results/<profile>/notebook_timings.csv`` when the notebook runs.  That file is written *after* a
run (``tools/notebook_timings.py`` from the run's ``timings.csv``), so the stored cell shows the
previous table.  Likewise the closing ``Markdown(what_we_found(NOTEBOOK, profile))`` of notebook 09
reads ``issue16_targets.csv``, which ``tools/targets_report.py`` writes after the notebooks.  This
sets those two cells' outputs to what they give on the files now; no other cell is touched, so every
other output stays the run's own.

    python tools/refresh_runtime_notes.py [--profile quick] [NN ...]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CALLS = ("Markdown(runtime_note(NOTEBOOK, profile))", "Markdown(what_we_found(NOTEBOOK, profile))")


def refresh(path: Path, profile: str) -> int:
    """Rewrite the outputs of ``path``'s runtime and findings cells; returns how many it rewrote
    (a cell not executed yet is left alone)."""
    from isg_core.errors import atomic_path
    from isg_core.report.tutorial import runtime_note, what_we_found

    make = dict(zip(CALLS, (runtime_note, what_we_found)))
    nb, n = nbformat.read(path, as_version=4), 0
    for cell in nb.cells:
        call = next((c for c in CALLS if cell.cell_type == "code" and c in cell.source), None)
        if call and cell.get("outputs"):
            cell.outputs[0]["data"] = {"text/markdown": make[call](path.name, profile),
                                       "text/plain": "<IPython.core.display.Markdown object>"}
            n += 1
    if n:
        with atomic_path(path) as tmp:
            nbformat.write(nb, tmp)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("only", nargs="*", help="notebook prefixes (default: all)")
    args = ap.parse_args()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        if args.only and not any(path.name.startswith(o) for o in args.only):
            continue
        print(f"{path.name}: {refresh(path, args.profile)} cell(s) refreshed")


if __name__ == "__main__":
    main()
