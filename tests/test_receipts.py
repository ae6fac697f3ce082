"""A finished run is found from its inputs' identity, without loading its data (issue 30).

A cached table rerun used to read every slide's features only to confirm that each run was done.
A receipt links the identity of a run's inputs (HDF5 metadata, targets, spec) to its folder: the
rerun then reads the folds' predictions alone and gives the same table to the bit.  Any change to
the inputs' identity, a missing fold or changed targets sends the run back the slow way.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from isg_core.config import get_profile
from isg_core.experiments import Experiment, isg, run_table
from isg_core.experiments import runner as runner_mod
from isg_core.experiments.receipts import RECEIPTS, inputs_identity
from tests.helpers import counting, same
from tests.test_experiments import lihc_toy_cohort

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def lihc(tmp_path):
    torch.set_num_threads(1)
    return lihc_toy_cohort(tmp_path)


EXPS = [Experiment("H", "he2rna", selection=None), isg("I", 2, 1)]


def _table(c, tiles, runs, jobs=1):
    return run_table(EXPS, c, tiles, get_profile("smoke"), runs, ["LIHC"], progress=False, jobs=jobs)


def _same_table(a, b) -> None:
    same(a.rows, b.rows)
    assert a.predictions.keys() == b.predictions.keys()
    for k in a.predictions:
        same(a.predictions[k], b.predictions[k])


def _fold_times(runs):
    return {p: p.stat().st_mtime_ns for p in runs.rglob("fold*.csv")}


def test_a_cached_rerun_reads_no_features_and_gives_the_same_table(lihc, tmp_path, monkeypatch):
    first = _table(lihc, tmp_path, tmp_path / "runs")
    assert len(list((tmp_path / "runs" / "LIHC" / RECEIPTS).glob("*.json"))) == 2  # one per run
    times = _fold_times(tmp_path / "runs")
    loads = counting(monkeypatch, runner_mod, "load_experiment_data")
    again = _table(lihc, tmp_path, tmp_path / "runs", jobs=2)  # nothing to do: no worker process either
    assert loads == [] and _fold_times(tmp_path / "runs") == times
    _same_table(first, again)


def test_runs_cached_before_receipts_are_confirmed_once_the_slow_way(lihc, tmp_path, monkeypatch):
    first = _table(lihc, tmp_path, tmp_path / "runs")
    for p in (tmp_path / "runs" / "LIHC" / RECEIPTS).glob("*.json"):
        p.unlink()
    times = _fold_times(tmp_path / "runs")
    loads = counting(monkeypatch, runner_mod, "load_experiment_data")
    _same_table(first, _table(lihc, tmp_path, tmp_path / "runs"))
    assert len(loads) == 2 and _fold_times(tmp_path / "runs") == times  # read, not retrained
    loads.clear()
    _table(lihc, tmp_path, tmp_path / "runs")
    assert loads == []


def test_new_features_under_the_same_config_are_never_taken_for_the_old(lihc, tmp_path, monkeypatch):
    first = _table(lihc, tmp_path, tmp_path / "runs")
    sid = lihc.manifest.slide_id[0]
    with h5py.File(tmp_path / f"{sid}.h5", "a") as f:  # re-extracted with another extractor
        f["features/fe/global"][...] = np.random.default_rng(99).normal(size=(5, 4)).astype(np.float16)
        f["features/fe"].attrs["source"] = "toy extractor v2"
    loads = counting(monkeypatch, runner_mod, "load_experiment_data")
    with pytest.warns(UserWarning, match="features or targets changed"):
        again = _table(lihc, tmp_path, tmp_path / "runs")
    assert len(loads) == 2
    assert not first.predictions[("I", 0)].equals(again.predictions[("I", 0)])


def test_identity_reads_only_what_the_experiment_reads(lihc, tmp_path):
    ids = list(lihc.manifest.slide_id)
    he, isg_ = EXPS
    before = {e.label: inputs_identity(tmp_path, ids, e) for e in EXPS}
    with h5py.File(tmp_path / f"{ids[3]}.h5", "a") as f:  # Shannon reselected: ISG reads it, HE2RNA (all) not
        f["selection/shannon"].attrs["threshold"] = "bpp:9"
    assert inputs_identity(tmp_path, ids, he) == before["H"]
    assert inputs_identity(tmp_path, ids, isg_) != before["I"]
    # the slide's own file changed (its fingerprint): every experiment's inputs are new
    with h5py.File(tmp_path / f"{ids[3]}.h5", "a") as f:
        f.attrs["slide_fingerprint"] = "0123456789abcdef"
    assert inputs_identity(tmp_path, ids, he) != before["H"]
    # another slide set is another identity; a missing file is recorded, not an error
    assert inputs_identity(tmp_path, ids[:-1], he) != inputs_identity(tmp_path, ids, he)
    assert inputs_identity(tmp_path, ids + ["nope"], he) != inputs_identity(tmp_path, ids, he)


def test_a_missing_fold_or_new_targets_are_run_again(lihc, tmp_path, monkeypatch):
    first = _table(lihc, tmp_path, tmp_path / "runs")
    run = next(p for p in (tmp_path / "runs" / "LIHC").iterdir() if p.name.startswith("isg-"))
    (run / "fold3.csv").unlink()
    loads = counting(monkeypatch, runner_mod, "load_experiment_data")
    _same_table(first, _table(lihc, tmp_path, tmp_path / "runs"))  # fold 3 retrained: same seed, same answer
    assert len(loads) == 1 and (run / "fold3.csv").exists()
    loads.clear()
    lihc.targets = lihc.targets + 1.0  # new expression values: another receipt, another data fingerprint
    with pytest.warns(UserWarning, match="features or targets changed"):
        moved = _table(lihc, tmp_path, tmp_path / "runs")
    assert len(loads) == 2 and len(list((tmp_path / "runs" / "LIHC" / RECEIPTS).glob("*.json"))) == 4
    same(moved.truth, first.truth + 1.0)


def test_new_folds_are_another_receipt(lihc, tmp_path, monkeypatch):
    _table(lihc, tmp_path, tmp_path / "runs")
    lihc.manifest["fold"] = (lihc.manifest["fold"] + 1) % 5  # the same slides, split another way
    loads = counting(monkeypatch, runner_mod, "load_experiment_data")
    with pytest.warns(UserWarning, match="the folds changed"):
        again = _table(lihc, tmp_path, tmp_path / "runs")  # the folders' folds are redone, never misread
    assert len(loads) == 2 and len(list((tmp_path / "runs" / "LIHC" / RECEIPTS).glob("*.json"))) == 4
    assert again.groups.fold.to_dict() == lihc.manifest.set_index("slide_id").fold.to_dict()


def test_slide_identities_are_read_once_until_a_file_is_rewritten(lihc, tmp_path, monkeypatch):
    from isg_core.experiments import receipts as receipts_mod

    first = _table(lihc, tmp_path, tmp_path / "runs")
    assert (tmp_path / RECEIPTS / receipts_mod.IDENTITY_MEMO).exists()
    read, real = [], receipts_mod._attrs
    monkeypatch.setattr(receipts_mod, "_attrs", lambda obj: read.append(obj.file.filename) or real(obj))
    _same_table(first, _table(lihc, tmp_path, tmp_path / "runs"))
    assert read == []  # every identity came from the saved memo: no HDF5 opened for it
    sid = lihc.manifest.slide_id[0]
    with h5py.File(tmp_path / f"{sid}.h5", "a") as f:  # rewritten: its saved identity no longer serves
        f["features/fe"].attrs["source"] = "toy extractor v2"
    loads = counting(monkeypatch, runner_mod, "load_experiment_data")
    _same_table(first, _table(lihc, tmp_path, tmp_path / "runs"))  # same values: confirmed, not retrained
    assert read and set(read) == {str(tmp_path / f"{sid}.h5")}  # that file alone read again
    assert loads  # the runs whose inputs' identity changed went the slow way
