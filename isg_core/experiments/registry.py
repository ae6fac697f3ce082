"""One record per paper table: what it is, the paper's setting, what it runs, its notebook, and how its
findings are phrased.

The CLI (``isg table``), :func:`~isg_core.experiments.tables.reproduce_table`, the figures, the generated
findings (:mod:`isg_core.report.findings`), the notebooks' opening and closing text
(:mod:`isg_core.report.tutorial`) and ``tools/findings.py`` read these records, so a table's title or
setting is written once.  Adding a table is one file (its experiments and, if it is not a regression
table, its own runner) plus one :func:`register_table` call.

The paper's settings (Yang et al., BMVC 2022): Sec. 4.1's comparisons (Tables 1 and 2) train per
"cancer + gene" task; Sec. 4.2 says "all experiments in this section are done by using a single model for
all of the 6 prediction tasks", which covers Tables 4, 5 and 6.  Table 3 classifies MSI status per cohort.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..errors import IsgError

if TYPE_CHECKING:
    from .specs import Experiment

PER_TASK = "per task"
ALL_TASKS_SETTING = "one model for all tasks"
#: the settings a regression table can run in
SETTINGS = (PER_TASK, ALL_TASKS_SETTING)


@dataclass(frozen=True)
class PaperTable:
    """One table of the paper.

    * ``kind``: ``"regression"`` (gene expression, :func:`~isg_core.experiments.tables.reproduce_table`),
      ``"msi"`` (Table 3, :mod:`~isg_core.experiments.table3`) or ``"probe"`` (Table 5,
      :mod:`~isg_core.experiments.table5`); the findings of :mod:`isg_core.report.findings` are phrased
      per kind;
    * ``paper_setting``: the setting the paper reports the table in, as the paper says it;
    * ``setting``: the setting our default run uses (``isg table N --all-tasks`` runs the other);
    * ``reference``: the row the findings measure against the noise ceiling (regression tables);
    * ``extra_findings``: further findings of the table's notebook, by name (``"chance"``: Table 3's chance
      range; ``"targets"``: the acceptance targets beside Table 5).
    """

    number: int
    title: str
    short: str
    kind: str
    paper_setting: str
    setting: str
    notebook: str
    experiments: "Callable[[], list[Experiment]] | None" = None
    reference: str | None = None
    extra_findings: tuple[str, ...] = ()

    @property
    def in_paper_setting(self) -> bool:
        """Whether our default run is in the paper's setting, so the paper's numbers stand beside ours."""
        return self.setting == self.paper_setting

    def paper_note(self, setting: str | None = None) -> str:
        """What the ``paper PCC`` column means for a run in ``setting`` (default: the table's), for a
        written table's note."""
        setting = setting or self.setting
        if setting == self.paper_setting:
            return f"'paper PCC' is the paper's value in its own setting ({self.paper_setting}, as ours)."
        theirs = "per-task" if self.paper_setting == PER_TASK else self.paper_setting
        return (f"'paper PCC' is the paper's {theirs} value: {setting} is not in the paper, "
                "so it gives the paper's order only, not a number to match.")


#: every paper table, by number
TABLES: dict[int, PaperTable] = {}


def register_table(table: PaperTable) -> PaperTable:
    """Add a table (its number must be new); returns it, so a module can keep a name for it."""
    if table.number in TABLES:
        raise IsgError(None, f"table {table.number} is registered already ({TABLES[table.number].title})")
    TABLES[table.number] = table
    return table


def get_table(n: int) -> PaperTable:
    """The record of Table ``n``; a one-line error names the tables there are."""
    if n not in TABLES:
        raise IsgError(None, f"there is no Table {n} (choose one of {', '.join(map(str, TABLES))})")
    return TABLES[n]


def tables_of_kind(kind: str) -> list[PaperTable]:
    return [t for t in TABLES.values() if t.kind == kind]


def specs_rows(name: str) -> "Callable[[], list[Experiment]]":
    """A table's rows, built by :mod:`.specs`'s function ``name`` when asked for: the specs import the
    selectors (scipy), which a light reader of the records (the CLI's parser) does not need."""
    def rows() -> "list[Experiment]":
        from . import specs

        return getattr(specs, name)()

    rows.__name__ = rows.__qualname__ = name
    return rows


def table_experiments(n: int) -> "list[Experiment]":
    """The rows of regression Table ``n``."""
    t = get_table(n)
    if t.experiments is None or t.kind != "regression":
        regression = ", ".join(str(r.number) for r in tables_of_kind("regression"))
        raise IsgError(None, f"table {n} is not a slide-level regression table (choose one of {regression})")
    return t.experiments()


register_table(PaperTable(
    1, "Table 1: ISG against the state of the art", "Table 1 (state of the art)", "regression",
    paper_setting=PER_TASK, setting=PER_TASK, notebook="05_table1_sota.ipynb",
    experiments=specs_rows("table1_experiments"), reference="ISG"))
register_table(PaperTable(
    2, "Table 2: Shannon selection against other patch selectors", "Table 2 (patch selectors)", "regression",
    paper_setting=PER_TASK, setting=ALL_TASKS_SETTING, notebook="06_table2_selectors.ipynb",
    experiments=specs_rows("table2_experiments"), reference="ISG"))
register_table(PaperTable(
    3, "Table 3: MSI-H against MSS (AUC)", "Table 3 (MSI status)", "msi", paper_setting="per cohort",
    setting="per cohort", notebook="07_table3_msi.ipynb", experiments=specs_rows("table3_experiments"),
    extra_findings=("chance",)))
register_table(PaperTable(
    4, "Table 4: the Shannon threshold", "Table 4 (Shannon threshold)", "regression",
    paper_setting=ALL_TASKS_SETTING, setting=ALL_TASKS_SETTING, notebook="08_table4_threshold.ipynb",
    experiments=specs_rows("table4_default_experiments")))
register_table(PaperTable(
    5, "Table 5: feature extractors compared by a 2-layer MLP probe", "Table 5 (feature effectiveness)", "probe",
    # our slide-level probe is fitted per cancer type (experiments/table5.probe_slide_level)
    paper_setting=ALL_TASKS_SETTING, setting=PER_TASK, notebook="09_table5_features.ipynb",
    extra_findings=("targets",)))
register_table(PaperTable(
    6, "Table 6: MBConv blocks and fusion frequency (ISG-a-b)", "Table 6 (ISG-a-b)", "regression",
    paper_setting=ALL_TASKS_SETTING, setting=ALL_TASKS_SETTING, notebook="10_table6_architecture.ipynb",
    experiments=specs_rows("table6_experiments"), reference="ISG-10-2"))
