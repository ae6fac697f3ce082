"""Memory is measured in binary units and labelled so: MiB / GiB, never MB / GB.

``isg_core.studies.efficiency`` reads /proc (KiB) or ``ru_maxrss`` (KiB on Linux) and divides by 1024:
MiB; the benchmarks divide by 1024 again (GiB) or read bytes / 2**30.  Tables written when the
labels said MB / GB are relabelled by ``--relabel`` (:func:`isg_core.report.units.relabel_results`)
without measuring again: only labels change, never a value.
"""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from isg_core.paths import repo_root
from isg_core.report.outputs import write_table
from isg_core.report.units import (
    RELABEL_SENTENCE,
    binary_unit_label,
    read_table_md,
    relabel_binary_units,
    relabel_config,
    relabel_results,
)
from isg_core.studies.efficiency import plot_stages, summarise_efficiency

#: the columns the benchmarks wrote before the relabelling, and what they are now
OLD_TO_NEW = {"before slide (MB)": "before slide (MiB)", "peak RSS (MB)": "peak RSS (MiB)",
              "added by the slide (MB)": "added by the slide (MiB)", "under 2 GB": "under 2 GiB",
              "peak RSS (GB)": "peak RSS (GiB)", "fits 24 GB": "fits 24 GiB",
              "added by the step (GB)": "added by the step (GiB)", "before step (MB)": "before step (MiB)",
              "peak GPU (MB)": "peak GPU (MiB)"}
RUN_CONFIG = {"cpus": 2, "data cap per process (GB)": 16.8, "features": {"code_dim": 128}, "machine": "x86_64",
              "memory (GB)": 23.5, "models": {"width": None}}


def old_table() -> pd.DataFrame:
    """A table as the benchmarks wrote it before (values with more digits than the CSV keeps)."""
    df = pd.DataFrame({"size (px)": [10000, 40000], "path": ["isg predict (read, select)", "isg tile, select"],
                       "seconds": [85.3208123, np.nan]})
    for i, c in enumerate(OLD_TO_NEW):
        df[c] = [True, False] if c.startswith(("under", "fits")) else [1373.0546 + i, 0.75619 * (i + 1)]
    df["config"] = json.dumps({"E_G": "256 px", "d": 128})  # no unit in it: left byte for byte
    df["run_config"] = json.dumps(RUN_CONFIG, sort_keys=True)
    df["command"] = "python benchmarks/paper_memory.py --limit-gb 18"
    return df


@pytest.mark.parametrize("old, new", [("peak RSS (MB)", "peak RSS (MiB)"), ("under 2 GB", "under 2 GiB"),
                                      ("fits 24 GB", "fits 24 GiB"), ("memory (GB)", "memory (GiB)"),
                                      ("peak RSS (MiB)", "peak RSS (MiB)"), ("TCGA-GBM", "TCGA-GBM"),
                                      ("MBs", "MBs"), ("--limit-gb 18", "--limit-gb 18"), ("seconds", "seconds")])
def test_binary_unit_label(old, new):
    assert binary_unit_label(old) == new


def test_relabel_renames_the_columns_and_keeps_every_value():
    old = old_table()
    before = old.copy()
    new = relabel_binary_units(old)
    pd.testing.assert_frame_equal(old, before)  # the input is not changed
    expected = [OLD_TO_NEW.get(c, c) for c in old.columns]
    assert list(new.columns) == expected
    assert not [c for c in new.columns if binary_unit_label(c) != c]
    # every value as it was: the same frame once the old names are put back (the JSON column aside)
    back = new.set_axis(list(old.columns), axis=1)
    pd.testing.assert_frame_equal(back.drop(columns="run_config"), old.drop(columns="run_config"))
    assert (new["config"] == old["config"]).all() and (new["command"] == old["command"]).all()
    # the run's config: keys relabelled, values the same, still sorted as it was written
    cfg = json.loads(new["run_config"].iloc[0])
    assert cfg == {binary_unit_label(k): v for k, v in RUN_CONFIG.items()}
    assert new["run_config"].iloc[0] == json.dumps(cfg, sort_keys=True)


def test_relabel_is_idempotent():
    once = relabel_binary_units(old_table())
    pd.testing.assert_frame_equal(relabel_binary_units(once), once)


def test_relabel_results_rewrites_labels_only(tmp_path, monkeypatch):
    """The CSV's values and the Markdown's cells are those of the original run, with its command
    and config; the note says what was done, once; a second relabel changes nothing."""
    monkeypatch.setenv("ISG_RESULTS_DIR", str(tmp_path))
    old = old_table().drop(columns=["config", "command", "run_config"])
    cmd = "python benchmarks/memory.py --profile quick --sizes 10000 40000 --threads 2"
    csv0, md0 = write_table(old, "benchmark_memory", "quick", cmd, config=RUN_CONFIG, title="Peak memory",
                            note="Each row in a fresh process.")
    old_csv, old_md = csv0.read_text(), md0.read_text()

    df = relabel_results("benchmark_memory", "quick", "memory")
    assert list(df.columns) == [OLD_TO_NEW.get(c, c) for c in old.columns]
    new_csv, new_md = csv0.read_text(), md0.read_text()
    # CSV: the header relabelled, every other byte the same
    assert new_csv.splitlines()[0] == ",".join(OLD_TO_NEW.get(c, c) for c in old.columns)
    assert new_csv.splitlines()[1:] == old_csv.splitlines()[1:]
    # Markdown: the same cells (1373.055 stays, though the CSV keeps 1373.05), command, config values
    (tmp_path / "old.md").write_text(old_md)
    p_old, p_new = read_table_md(tmp_path / "old.md"), read_table_md(md0)
    assert p_new.table.values.tolist() == p_old.table.values.tolist()
    assert "1373.055" in new_md and list(p_new.table.columns) == [OLD_TO_NEW.get(c, c) for c in old.columns]
    assert p_new.command == cmd and p_new.title == "Peak memory"
    assert p_new.config == {binary_unit_label(k): v for k, v in RUN_CONFIG.items()}
    sentence = RELABEL_SENTENCE.format(script="memory")
    assert p_new.note == f"Each row in a fresh process. {sentence}"
    # idempotent on the files too
    relabel_results("benchmark_memory", "quick", "memory")
    assert (csv0.read_text(), md0.read_text()) == (new_csv, new_md)


@pytest.mark.parametrize("name, profile, script", [("benchmark_memory", "quick", "memory"),
                                                   ("paper_memory", "paper_cpu", "paper_memory")])
def test_committed_memory_results_say_mib_and_gib(name, profile, script):
    d = repo_root() / "results" / profile
    if not (d / f"{name}.csv").exists():
        pytest.skip(f"results/{profile}/{name}.csv not here")
    csv = pd.read_csv(d / f"{name}.csv")
    md = read_table_md(d / f"{name}.md")
    assert relabel_binary_units(csv).equals(csv)  # nothing left to relabel, in columns or JSON keys
    assert [binary_unit_label(c) for c in md.table.columns] == list(md.table.columns)
    assert relabel_config(md.config) == md.config
    assert "(MiB)" in " ".join(csv.columns) or "(GiB)" in " ".join(csv.columns)
    if "relabelled" in md.note.lower():  # relabelled, not re-measured: it says so in the script's own words
        assert RELABEL_SENTENCE.format(script=script) in md.note
    assert md.command.startswith(f"python benchmarks/{script}.py") and "--relabel" not in md.command


def test_efficiency_summary_says_mib():
    rows = pd.DataFrame({"method": ["ISG", "HE2RNA"], "width": [1000] * 2, "height": [1000] * 2,
                         "patches": [10] * 2, "kept": [5, 9], "read": [1.0] * 2, "select": [0.5] * 2,
                         "extract": [2.0] * 2, "predict": [0.5] * 2, "total": [4.0, 5.0],
                         "peak_rss_mb": [100.0, 200.0], "peak_cuda_mb": [10.0, 20.0], "device": ["cuda"] * 2})
    s = summarise_efficiency(rows, "x").set_index("method")
    assert s.loc["HE2RNA", "peak RSS (MiB)"] == 200.0 and s.loc["ISG", "peak GPU (MiB)"] == 10.0
    assert not [c for c in s.columns if "MB" in c or "GB" in c]


def test_stage_legend_covers_no_panel():
    summary = pd.DataFrame({"dataset": ["a", "a", "b", "b"], "method": ["ISG", "HE2RNA"] * 2,
                            "read": [1.0, 1.0, 10.0, 10.0], "select": [0.5, 0.2, 5.0, 2.0],
                            "extract": [3.0, 4.0, 30.0, 40.0], "predict": [0.1, 0.5, 1.0, 5.0],
                            "total": [4.6, 5.7, 46.0, 57.0], "ratio to HE2RNA": [4.6 / 5.7, 1.0, 46 / 57, 1.0]})
    axes = plot_stages(summary)
    fig = axes[0].figure
    fig.canvas.draw()
    legend = axes[0].get_legend().get_window_extent()
    for ax in axes:
        assert not legend.overlaps(ax.get_window_extent()), "the legend covers a panel"
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_memory_figure_is_in_gib():
    spec = importlib.util.spec_from_file_location("bench_memory", repo_root() / "benchmarks" / "memory.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    df = pd.DataFrame({"size (px)": [10000, 40000] * 2, "path": ["a", "a", "b", "b"],
                       "peak RSS (MiB)": [1024.0, 1536.0, 900.0, 1000.0]})
    fig = mod.plot_memory(df)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "peak RSS (GiB)"
    assert "2 GiB goal" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.lines[0].get_ydata().tolist() == [1.0, 1.5]
    import matplotlib.pyplot as plt

    plt.close(fig)


def _warn_and_report(message: str) -> int:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.warn(message, UserWarning)
    return len(caught)


def test_fresh_process_keeps_the_callers_warning_filters():
    """A warning the caller silenced stays silent in the spawned child; others still reach it."""
    import warnings

    from isg_core.studies.efficiency import in_fresh_process

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="ResNet50: ImageNet")
        assert in_fresh_process(_warn_and_report, "ResNet50: ImageNet weights not found") == 0
        assert in_fresh_process(_warn_and_report, "something else") == 1
