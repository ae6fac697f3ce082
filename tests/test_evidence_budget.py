"""The evidence budget (isg_core.studies.evidence_budget): known counts and known arithmetic."""
import numpy as np
import pandas as pd
import pytest

from isg_core.config import get_profile
from isg_core.errors import IsgError
from isg_core.studies.evidence_budget import (
    EvidencePlan,
    added_seconds,
    epoch_seconds,
    fold_trainings,
    measured_epochs,
    notebook_budget,
)


@pytest.fixture(scope="module")
def quick_trainings():
    return fold_trainings(get_profile("quick"))


def test_fold_trainings_count_tasks_seeds_and_folds(quick_trainings):
    t = quick_trainings.set_index(["table", "row"])
    isg1 = t.loc[("Table 1 (state of the art)", "ISG")]
    # per task (3 cancer types) x the quick profile's 2 seeds x 5 folds; 3 seeds planned on a headline row
    got = (isg1["tasks"], isg1["seeds now"], isg1["fold trainings now"], isg1["fold trainings planned"])
    assert got == (3, 2, 30, 45)
    vit = t.loc[("Table 1 (state of the art)", "ViT-S")]
    assert (vit["fold trainings now"], vit["fold trainings planned"]) == (15, 30)
    # the closed-form oracle trains nothing, whatever the seeds
    assert t.loc[("Table 1 (state of the art)", "linear on slide cell totals (oracle)"), "fold trainings planned"] == 0


def test_a_shared_run_is_paid_once(quick_trainings):
    """ISG-10-2 + Shannon with one model for all tasks is a row of Tables 2, 4 and 6: Table 2 runs it."""
    t = quick_trainings.set_index(["table", "row"])
    assert t.loc[("Table 2 (patch selectors)", "ISG"), "fold trainings planned"] == 10
    assert t.loc[("Table 4 (Shannon threshold)", "1 x default (8.70 bpp)"), "fold trainings planned"] == 0
    assert t.loc[("Table 6 (ISG-a-b)", "ISG-10-2"), "fold trainings planned"] == 0


def _bench(rows):
    return pd.DataFrame([{"model": m, "patches": p, "width": w, "mode": "sequential", "seconds": s}
                         for m, p, w, s in rows])


def test_added_seconds_is_extra_trainings_times_epochs_times_seconds_over_jobs():
    prof = get_profile("quick")
    trainings = pd.DataFrame([{"notebook": "n", "table": "T", "row": "a", "model": "isg", "width": 16, "tasks": 1,
                               "seeds now": 1, "seeds planned": 2, "fold trainings now": 5,
                               "fold trainings planned": 10},
                              {"notebook": "n", "table": "T", "row": "b", "model": "he2rna", "width": np.nan,
                               "tasks": 1, "seeds now": 1, "seeds planned": 3, "fold trainings now": 5,
                               "fold trainings planned": 15}])
    bench = _bench([("isg", "12", 16, 2.0), ("he2rna", "all", 64, 0.5), ("isg", "12", 64, 99.0)])
    out = added_seconds(trainings, bench, prof, EvidencePlan(epochs_per_fold=4, jobs=2))
    assert out["added seconds"].tolist() == [5 * 4 * 2.0 / 2, 10 * 4 * 0.5 / 2]


def test_epoch_seconds_uses_proxies_and_names_what_is_missing():
    bench = _bench([("cyclemlp", "12", 64, 3.0)])
    assert epoch_seconds(bench, "vit-s", 12, None, 64) == 3.0
    with pytest.raises(IsgError, match="no sequential row for isg"):
        epoch_seconds(bench, "isg", 12, 16, 64)


def test_notebook_budget_scales_down_to_the_total_only_when_over():
    fresh = pd.Series({"a": 3000.0, "b": 3000.0})
    under = notebook_budget(fresh, pd.Series({"a": 500.0}), EvidencePlan(total_s=7200))
    assert under.budget.tolist() == [3500.0, 3000.0]
    over = notebook_budget(fresh, pd.Series({"a": 3000.0, "b": 1000.0}), EvidencePlan(total_s=7200))
    assert over.need_s.tolist() == [6000.0, 4000.0]
    assert over.budget.sum() == pytest.approx(7200.0)
    assert over.budget.tolist() == pytest.approx([4320.0, 2880.0])


def test_measured_epochs_reads_the_fold_histories(tmp_path):
    (tmp_path / "run-a").mkdir()
    pd.DataFrame({"epoch": [1, 2, 3]}).to_csv(tmp_path / "run-a" / "fold0_history.csv", index=False)
    pd.DataFrame({"epoch": [1, 2, 3, 4, 5]}).to_csv(tmp_path / "run-a" / "fold1_history.csv", index=False)
    (tmp_path / "run-a" / "fold2_history.csv").write_text("")
    assert measured_epochs(tmp_path) == 4.0
    assert np.isnan(measured_epochs(tmp_path / "run-a" / "nothing"))
