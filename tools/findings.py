"""What a run found, as sentences generated from its results files: ``results/<profile>/findings.md``.

Every sentence is made by :mod:`isg_core.report.findings` from the tables' CSVs (rankings, paired
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
    from isg_core.report.findings import (
        as_markdown,
        msi_findings,
        regression_findings,
        table5_findings,
        target_findings,
    )
    from isg_core.report.outputs import profile_results_dir

    res = profile_results_dir(args.profile)
    sections = [("Table 1", lambda: regression_findings(res, 1)), ("Table 2", lambda: regression_findings(res, 2)),
                ("Table 3 (MSI, AUC)", lambda: msi_findings(res)), ("Table 4", lambda: regression_findings(res, 4)),
                ("Table 5 (probe on frozen features)", lambda: table5_findings(res)),
                ("Table 6", lambda: regression_findings(res, 6)), ("Issue 16's targets", lambda: target_findings(res))]
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
