"""One record per paper table: the registry holds each table's title, the paper's setting and ours, its
notebook and rows, and every reader (CLI, reproduce_table, plots, findings, notebook text) follows it."""
import types

import numpy as np
import pandas as pd
import pytest

from isg_core.errors import IsgError
from isg_core.experiments import registry
from isg_core.experiments.registry import ALL_TASKS_SETTING, PER_TASK, TABLES, PaperTable, get_table


def test_the_papers_settings_as_its_text_states_them():
    # Sec. 4.1 (Tables 1, 2) per "cancer + gene" task; Sec. 4.2: "a single model for all of the 6
    # prediction tasks" for every Discussion experiment (Tables 4, 5, 6)
    assert {n: t.paper_setting for n, t in TABLES.items() if n != 3} == {
        1: PER_TASK, 2: PER_TASK, 4: ALL_TASKS_SETTING, 5: ALL_TASKS_SETTING, 6: ALL_TASKS_SETTING}
    assert [n for n, t in TABLES.items() if t.in_paper_setting] == [1, 3, 4, 6]
    assert sorted(TABLES) == [1, 2, 3, 4, 5, 6]


def test_every_table_names_an_existing_notebook_and_rows():
    from pathlib import Path

    nb = Path(__file__).resolve().parents[1] / "notebooks"
    for t in TABLES.values():
        assert (nb / t.notebook).exists(), t.notebook
        if t.kind == "regression":
            rows = registry.table_experiments(t.number)
            assert rows and len({e.label for e in rows}) == len(rows)
    assert [e.label for e in registry.table_experiments(6)][:2] == ["ISG-6-2", "ISG-8-2"]


def test_unknown_or_non_regression_table_is_a_one_line_error():
    with pytest.raises(IsgError, match="there is no Table 7"):
        get_table(7)
    with pytest.raises(IsgError, match="table 5 is not a slide-level regression table"):
        registry.table_experiments(5)
    with pytest.raises(IsgError, match="registered already"):
        registry.register_table(TABLES[1])


def test_paper_note_says_whether_the_numbers_match():
    assert get_table(4).paper_note() == "'paper PCC' is the paper's value in its own setting " \
                                        "(one model for all tasks, as ours)."
    assert "order only" in get_table(2).paper_note() and "per-task value" in get_table(2).paper_note()
    assert "order only" in get_table(1).paper_note(ALL_TASKS_SETTING)


def test_cli_header_of_table_4_shows_the_paper_values_as_its_setting():
    from isg_core.commands import table_header

    head = table_header(get_table(4), {"setting": ALL_TASKS_SETTING, "cohort": "ISG-Sim"})
    assert head.splitlines()[0] == ("Table 4: the Shannon threshold on ISG-Sim, one model for all tasks "
                                    "(the paper's setting: one model for all tasks)")
    assert "in its own setting" in head
    assert "order only" in table_header(get_table(1), {"setting": ALL_TASKS_SETTING})


def test_cli_choices_and_parser_read_the_registry():
    from isg_core.cli import TABLE_CHOICES, build_parser

    assert TABLE_CHOICES == tuple(n for n, t in TABLES.items() if t.kind in ("regression", "msi"))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["table", "5"])


def test_a_registered_table_reaches_plots_and_notebook_text(monkeypatch, tmp_path):
    """A new table is one record: the figure's diamonds and the notebooks' closing findings follow it."""
    import matplotlib.pyplot as plt

    from isg_core.experiments.plots import plot_table
    from isg_core.report import tutorial

    rec = PaperTable(9, "Table 9: a toy", "Table 9 (toy)", "regression", paper_setting=ALL_TASKS_SETTING,
                     setting=ALL_TASKS_SETTING, notebook="99_toy.ipynb", reference="A")
    monkeypatch.setitem(TABLES, 9, rec)
    summary = pd.DataFrame({"method": ["A", "B"], "PCC mean": [0.3, 0.2], "PCC sd (folds)": [0.01, 0.02],
                            "paper PCC": [0.4, np.nan]})
    run = types.SimpleNamespace(summary=summary, ceiling=np.nan, number=9,
                                config={"cohort": "toy", "setting": ALL_TASKS_SETTING})
    fig, ax = plt.subplots()
    plot_table(run, ax)
    assert ax.get_title() == "Table 9: a toy"
    assert sum(len(c.get_offsets()) for c in ax.collections if c.__class__.__name__ == "PathCollection") == 1
    plt.close(fig)
    assert "99" in tutorial.notebook_findings()
    pd.DataFrame(summary.assign(seeds=1)).to_csv(tmp_path / "table_9.csv", index=False)
    sig = [{"comparison": "A - B", "mean PCC difference": 0.1, "95% CI low": 0.0, "95% CI high": 0.2,
            "verdict": "not distinguishable", "resampled": "slides"}]
    pd.DataFrame(sig).to_csv(tmp_path / "table_9_significance.csv", index=False)
    text = tutorial.what_we_found("99_toy.ipynb", "smoke", tmp_path)
    assert "**Table 9 (toy), one model for all tasks.**" in text
    assert "The paper (TCGA, one model for all tasks): A 0.400." in text
    assert "The paper's setting: one model for all tasks" in tutorial.runtime_note("99_toy.ipynb", "smoke", tmp_path)
