"""The model and feature-set registries: a new aggregator and a new feature set take part in a
cross-validation through :func:`register_model` and :func:`register_feature_set` alone, with no
edit elsewhere; the built-in traits say what the old name lists said."""
from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from isg_core.errors import IsgError
from isg_core.features.extract import PatchEncoder, patch_index
from isg_core.features.registry import FeatureSet, get_feature_set, register_feature_set, unregister_feature_set
from isg_core.models import ModelTraits, model_names, model_traits, register_model, unregister_model
from isg_core.models.traits import CLASSIFICATION, CLOSED_FORM, GLOBAL, GLOBAL_LOCAL, REGRESSION, SLIDE_TOTALS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- the built-in traits -------------------------------------------------------------------------
def test_built_in_model_traits():
    """What ``GLOBAL_ONLY``, ``CLASSIFICATION_ONLY``, HE2RNA's tile cap and the linear-totals branch said."""
    global_only = ["he2rna", "he2rna-msi", "vit-s", "abmil", "mean-mlp"]
    assert [n for n in model_names() if model_traits(n).global_only] == global_only
    assert [n for n in model_names() if not model_traits(n).serves(REGRESSION)] == ["he2rna-msi"]
    assert [n for n in model_names() if model_traits(n).max_tiles] == ["he2rna", "he2rna-msi"]
    assert model_traits("he2rna").max_tiles == 8000
    assert model_names(trained=False) == ("linear-totals",)
    lin = model_traits("linear-totals")
    assert (lin.reads, lin.tasks, lin.fit) == (SLIDE_TOTALS, (REGRESSION,), CLOSED_FORM)
    assert model_traits("ISG") == ModelTraits(GLOBAL_LOCAL, (REGRESSION, CLASSIFICATION))
    with pytest.raises(ValueError, match="closed form"):
        from isg_core.models import build_model

        build_model("linear-totals", 4, 2, 1)
    with pytest.raises(ValueError, match="reads"):
        ModelTraits(reads="everything")


def test_built_in_feature_sets_and_the_one_parser():
    fe = get_feature_set("fe")
    assert (fe.patches, fe.local, fe.extracted, fe.fold, fe.key) == ("candidates", True, True, None, "fe")
    assert get_feature_set("resnet50").patches == "kept:shannon,otsu" and not get_feature_set("resnet50").local
    assert get_feature_set("fe-untrained").patches == "kept" and not get_feature_set("fe-untrained").local
    k3 = get_feature_set("fe-without-fold3")
    assert (k3.key, k3.fold, k3.patches, k3.name) == ("fe-without-fold3", 3, "kept", "fe-without-fold<k>")
    view = get_feature_set("fe:global")
    assert view.key == "fe" and view.global_only and not view.reads_local
    assert get_feature_set("fe-without-fold12:global").key == "fe-without-fold12"
    assert not get_feature_set("oracle").extracted
    for bad in ("fe-without-fold", "nope", "fe:local", "fe-without-foldx"):
        with pytest.raises(IsgError, match="unknown feature set") as e:
            get_feature_set(bad)
        assert "\n" not in str(e.value) and "fe-without-fold<k>" in str(e.value)
    with pytest.raises(ValueError, match="registered already"):
        register_feature_set(FeatureSet("fe", None))


# --- a toy aggregator and a toy feature set, through the registries alone ------------------------
class ToyMeanModel(nn.Module):
    """Mean of the real patches' f, then a linear head."""

    traits = ModelTraits(reads=GLOBAL, tasks=(REGRESSION,))
    built: list[tuple] = []

    def __init__(self, d: int, grid: int, n_outputs: int, **_):
        super().__init__()
        self.head = nn.Linear(d, n_outputs)
        ToyMeanModel.built.append((d, grid, n_outputs))

    def forward(self, f, R, mask, pos):
        m = mask.float()[..., None]
        return self.head((f * m).sum(1) / m.sum(1).clamp(min=1))


class ToyEncoder(PatchEncoder):
    """Each patch's mean colour (3 numbers), no local cube; counts the patches it is given."""

    name = "toy-colour"
    global_dim = 3
    seen = 0

    def describe(self) -> dict:
        return {"kind": "toy"}

    def encode(self, patches: np.ndarray, q: int):
        ToyEncoder.seen += len(patches)
        return np.asarray(patches, np.float32).mean((1, 2)) / 255.0, None


@pytest.fixture
def toys():
    ToyMeanModel.built, ToyEncoder.seen = [], 0
    register_model("toy-mean", ToyMeanModel)
    register_feature_set(FeatureSet("toy-colour", lambda fs, ctx: ToyEncoder(device="cpu"), local=False))
    yield
    unregister_model("toy-mean")
    unregister_feature_set("toy-colour")


@pytest.fixture(scope="module")
def sim_cohort(tmp_path_factory) -> Path:
    """A copy of the smoke cohort's slides and tiles (its extractors, runs and maps left behind)."""
    from tests.helpers import smoke_cohort

    src = smoke_cohort()
    out = tmp_path_factory.mktemp("reg") / "smoke"
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("extractors", "runs", "maps"))
    if not (out / "tiles").is_dir():  # a fresh clone has the slides only: tile and select them here
        from isg_core.cohorts.prepare import prepare_cohort
        from isg_core.config import get_profile

        prof = get_profile("smoke")
        prepare_cohort(out, config=prof.tiling, workers=1, progress=False)
    return out


def test_a_toy_model_and_feature_set_cross_validate(toys, sim_cohort, tmp_path):
    from isg_core.cohorts.folder import load_cohort
    from isg_core.config import TASK_GENES, get_profile
    from isg_core.experiments import Experiment
    from isg_core.experiments.runner import run_experiment, seeds_of
    from isg_core.features.workflow import ensure_features

    prof = get_profile("smoke")
    ensure_features(("toy-colour",), prof, sim_cohort, progress=False)
    tiles = sim_cohort / "tiles"
    cohort = load_cohort(sim_cohort)
    # one task over two folds: a PCC per (fold, gene) from a dozen small slides
    cohort.manifest = cohort.manifest.assign(cancer_type="LIHC", fold=np.arange(len(cohort.manifest)) % 2)
    ids = list(cohort.manifest.slide_id)
    expected = 0
    for sid in ids:
        with h5py.File(tiles / f"{sid}.h5", "r") as f:
            kept = patch_index(f, "shannon", "kept")
            expected += len(kept)
            g = f["features/toy-colour"]
            assert g.attrs["complete"] and "local" not in g and g["global"].shape == (len(kept), 3)
    assert ToyEncoder.seen == expected > 0  # the toy encoder ran on the Shannon-kept patches, once each

    exp = Experiment("toy", "toy-mean", features="toy-colour", selection="shannon")
    assert seeds_of(exp, prof) == [0]
    torch.manual_seed(0)
    r = run_experiment(cohort, tiles, exp, "LIHC", prof, tmp_path / "runs", progress=False)
    assert r.predictions.shape == r.targets.shape and r.predictions.index.tolist() == r.targets.index.tolist()
    assert np.isfinite(r.predictions.to_numpy()[np.isfinite(r.targets.to_numpy())]).all()
    # a global-only model gets R as a zero placeholder
    assert all(R.shape[1:3] == (1, 1) and not R.any() for R in r.data.R)
    assert {b[0] for b in ToyMeanModel.built} == {3} and {b[2] for b in ToyMeanModel.built} == {r.targets.shape[1]}
    folds = sorted(cohort.manifest.fold.unique())
    pairs = r.rows.groupby(["fold", "gene"]).size()
    assert sorted(r.rows.fold.unique()) == folds and (pairs == 1).all()
    assert set(r.rows.gene) == set(TASK_GENES["LIHC"]) == set(r.targets.columns)
    assert (r.rows.method == "toy").all()
    model, ck = r.load_model(folds[0])  # its checkpoint rebuilds it through the registry
    assert isinstance(getattr(model, "model", model), ToyMeanModel)


def test_toys_are_gone_after_the_fixture():
    assert "toy-mean" not in model_names()
    with pytest.raises(IsgError):
        get_feature_set("toy-colour")
