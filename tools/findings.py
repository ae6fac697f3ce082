"""What a run found, as sentences generated from its results files: ``results/<profile>/findings.md``.

One section per paper table of :mod:`isg_core.experiments.registry`; every sentence is made by
:mod:`isg_core.report.findings` from the tables' CSVs (rankings, paired
intervals and verdicts, the paper's number only in the paper's setting), so rerunning this after
the tables change keeps the text true.  The README's results section quotes this file.

    python tools/findings.py --profile quick
"""
from __future__ import annotations

import argparse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    args = ap.parse_args()

    from isg_core.errors import IsgError, atomic_path
    from isg_core.experiments.registry import TABLES
    from isg_core.report.findings import as_markdown
    from isg_core.report.outputs import profile_results_dir
    from isg_core.report.tutorial import table_findings

    res = profile_results_dir(args.profile)
    # one section per registered paper table, with the findings its notebook closes with
    sections = [(t.short, lambda t=t: table_findings(t)(res)) for t in TABLES.values()]
    lines = [f"# What the `{args.profile}` run found (ISG-Sim, SIMULATED: not TCGA)", "",
             f"Made by: `python tools/findings.py --profile {args.profile}`, from the CSVs in this folder.", ""]
    for title, fn in sections:
        lines += [f"## {title}", ""]
        try:
            lines += [as_markdown(fn()), ""]
        except IsgError as e:
            lines += [f"Not available: {e}", ""]
    path = res / "findings.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))
    print(path)


if __name__ == "__main__":
    main()
