"""Issue 16's targets, measured: what a run of the tables reached, target by target.

Reads Table 1's cross-validations back (finished folds are found, not retrained) and the Table 5
results that notebook 09 wrote, then writes ``results/<profile>/table_1_gene_intervals.{csv,md}``,
``issue16_targets.{csv,md}`` and ``fig_table_1_gene_intervals.png``.  Run it after ``make reproduce``:

    python tools/targets_report.py --profile quick
"""
from __future__ import annotations

import argparse

import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from isg_core.experiments import reproduce_table
    from isg_core.experiments.acceptance import efficiency_targets, gene_intervals, plot_gene_intervals, target_table
    from isg_core.experiments.specs import BEST_BASELINE, he2rna_label
    from isg_core.report.findings import read_result
    from isg_core.report.outputs import profile_results_dir, save_figure, write_table

    def read(name: str, columns: tuple[str, ...]) -> pd.DataFrame:
        return read_result(res, name.removesuffix(".csv"), columns)

    command = f"python tools/targets_report.py --profile {args.profile}"
    res = profile_results_dir(args.profile)
    read("table_5_differences.csv", ("comparison", "level", "diff", "ci_low", "ci_high"))  # fail before the work
    run = reproduce_table(1, args.profile)
    labels = set(run.summary.method)
    methods = [m for m in ("ISG", he2rna_label(), BEST_BASELINE, "ISG (oracle features)") if m in labels]
    genes = pd.concat([gene_intervals(run.outcomes, m) for m in methods], ignore_index=True)
    cfg = {k: run.config[k] for k in ("profile", "cohort", "cohort_seed", "cohort_role", "setting", "n_boot")}
    write_table(genes, "table_1_gene_intervals", args.profile, command, cfg,
                title="Table 1 per gene, with 95% slide-bootstrap intervals (ISG-Sim, SIMULATED)",
                note="Per (cancer type, gene): the PCC over each fold's test slides, mean over folds and seeds; "
                     "the interval resamples test slides within fold and draws a training seed per replicate.")
    oracle = genes[genes.method == "ISG (oracle features)"] if "ISG (oracle features)" in labels else None
    table = target_table(genes[genes.method == "ISG"], read("table_1.csv", ("method", "of noise ceiling")),
                         read("table_5_differences.csv", ("comparison", "level", "diff", "ci_low", "ci_high")),
                         read("table_5_per_target.csv", ("features", "level", "target", "pcc")), oracle_genes=oracle)
    # the cost targets, where the benchmarks have been run (benchmarks/extraction.py, benchmarks/inference.py)
    bench = {n: read(n, ()) if (res / n).exists() else None
             for n in ("benchmark_extraction_cost.csv", "benchmark_inference.csv")}
    table = pd.concat([table, efficiency_targets(bench["benchmark_extraction_cost.csv"],
                                                 bench["benchmark_inference.csv"])], ignore_index=True)
    write_table(table, "issue16_targets", args.profile, command, cfg,
                title="Issue 16's targets on the held-out cohort (ISG-Sim, SIMULATED)",
                note="'reached' applies the rule to the value (a PCC level) or to the whole interval (a difference, "
                     "MKI67 positive). Table 5's rows are 2-layer MLP probes on frozen features (notebook 09). "
                     "The cost rows come from benchmarks/extraction.py and benchmarks/inference.py "
                     "(their own commands are in those tables).")
    fig, ax = plt.subplots(figsize=(11, 4))
    plot_gene_intervals(genes, ax)
    save_figure(fig, "fig_table_1_gene_intervals", args.profile)
    print(table.to_string(index=False))


if __name__ == "__main__":
    import sys

    from isg_core.errors import IsgError

    try:
        main()
    except IsgError as e:  # bad or missing input: one line naming the file, no traceback
        sys.exit(f"targets_report: {e}")
