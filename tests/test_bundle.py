"""The bundle's slide model is a saved model of isg_core.models (spec + weights), rebuilt from the
file alone; a bundle of the first format, which named a paper-table experiment instead, is
converted by isg_core.deploy.bundle.upgrade (on load, or to disk by `isg export-model --upgrade`) into the
same model.  Uses the committed results/quick/isg_model.pt; nothing is trained."""
from __future__ import annotations

import pytest
import torch

from isg_core.cli import main
from isg_core.deploy.bundle import BUNDLE_FORMAT, BUNDLE_FORMAT_V1, load_bundle, upgrade, upgrade_bundle_file
from isg_core.errors import IsgError
from isg_core.models import DualAttentionNetwork, InputStandardizer, model_spec
from isg_core.paths import repo_root

pytestmark = pytest.mark.usefixtures("one_torch_thread")

COMMITTED = repo_root() / "results" / "quick" / "isg_model.pt"


@pytest.fixture(scope="module")
def raw() -> dict:
    return torch.load(COMMITTED, map_location="cpu", weights_only=True)


def legacy(raw: dict) -> dict:
    """The committed bundle with the network of the first format's time (ISG-10-2 at width 16 with the
    token "concat", no zero_init), seeded random weights in its own input standardiser."""
    from isg_core.models.registry import model_from_spec
    from isg_core.models.standardize import identity_standardizer

    spec = model_spec("isg", 64, 8, 10, {"width": 16, "token": "concat"})
    spec["config"].pop("zero_init")
    torch.manual_seed(0)
    state = identity_standardizer(model_from_spec(spec), 64).state_dict()
    return {**raw, "model": {**spec, "standardize": True, "state": state}}


def first_format(raw: dict) -> dict:
    """A legacy bundle (:func:`legacy`) as the first format wrote it."""
    m = raw["model"]
    exp = {"model": "isg", "features": "fe", "selection": "shannon", "threshold": None, "supertiles": None,
           "overrides": [["n_mbconv", 10], ["fusion_every", 2]]}
    cfg = m["config"]
    model = {"experiment": exp, "d": cfg["d"], "grid": cfg["grid"], "width": cfg["width"], "state": m["state"]}
    return {**raw, "format": BUNDLE_FORMAT_V1, "model": model}


def test_committed_bundle_is_a_spec_and_its_weights(raw):
    assert raw["format"] == BUNDLE_FORMAT
    m = raw["model"]
    assert set(m) == {"model", "config", "standardize", "state"} and m["model"] == "isg" and m["standardize"]
    # ISG-10-2 at the quick profile's width, every default written (remade at issue 16's regeneration)
    assert m["config"] == model_spec("isg", 64, 8, 10, {"width": 16})["config"]
    bundle = load_bundle(COMMITTED)
    model = bundle.model()
    assert isinstance(model, InputStandardizer) and isinstance(model.model, DualAttentionNetwork)
    assert not model.training and model.model.cfg.name == "ISG-10-2" and bundle.d == 64
    assert all(torch.equal(v, m["state"][k]) for k, v in model.state_dict().items())


def init_free(model: dict) -> dict:
    """A bundle's model without ``zero_init`` (initial weights only; the committed bundle predates it)."""
    return {**model, "config": {k: v for k, v in model["config"].items() if k != "zero_init"}}


def test_first_format_upgrades_to_the_same_model(raw, tmp_path):
    raw = legacy(raw)
    old = first_format(raw)
    assert init_free(upgrade(old)["model"]) == raw["model"]
    assert {k: v for k, v in upgrade(old).items() if k != "model"} == {k: v for k, v in raw.items() if k != "model"}
    assert upgrade(raw) is raw  # the current format passes through
    torch.save(old, tmp_path / "v1.pt")
    loaded = load_bundle(tmp_path / "v1.pt")  # converted in memory on load
    assert loaded.raw["format"] == BUNDLE_FORMAT and init_free(loaded.raw["model"])["config"] == raw["model"]["config"]
    upgrade_bundle_file(tmp_path / "v1.pt", tmp_path / "v2.pt")
    written = torch.load(tmp_path / "v2.pt", weights_only=True)
    assert written["format"] == BUNDLE_FORMAT and init_free(written["model"])["config"] == raw["model"]["config"]
    g = torch.Generator().manual_seed(0)
    f, R = torch.randn(1, 5, 64, generator=g), torch.randn(1, 5, 8, 8, 64, generator=g)
    mask, pos = torch.ones(1, 5, dtype=torch.bool), torch.randint(0, 9, (1, 5, 2), generator=g)
    torch.save(raw, tmp_path / "legacy.pt")
    with torch.no_grad():
        want = load_bundle(tmp_path / "legacy.pt").model()(f, R, mask, pos)
        assert torch.equal(loaded.model()(f, R, mask, pos), want)


def test_first_format_with_an_experiment_width_override(raw):
    old = first_format(legacy(raw))
    old["model"]["experiment"]["overrides"].append(["width", None])  # isg_full(): the override beats "width"
    config = upgrade(old)["model"]["config"]
    assert config["width"] is None and config["n_mbconv"] == 10


def test_export_model_upgrade(raw, tmp_path, capsys):
    torch.save(first_format(legacy(raw)), tmp_path / "old.pt")
    assert main(["export-model", "--upgrade", str(tmp_path / "old.pt")]) == 0  # in place
    assert "current format" in capsys.readouterr().out
    assert torch.load(tmp_path / "old.pt", weights_only=True)["format"] == BUNDLE_FORMAT
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert main(["export-model", "--upgrade", str(tmp_path / "junk.pt"), "--out", str(tmp_path / "x.pt")]) == 2
    assert "junk.pt" in capsys.readouterr().err and not (tmp_path / "x.pt").exists()


def test_a_bundle_without_a_valid_model_config_is_refused(raw, tmp_path):
    torch.save(dict(raw, model={"model": "isg", "state": {}}), tmp_path / "nocfg.pt")
    with pytest.raises(IsgError, match="no valid config"):
        load_bundle(tmp_path / "nocfg.pt")
    torch.save(dict(raw, model=dict(raw["model"], config=dict(raw["model"]["config"], token="max"))),
               tmp_path / "badcfg.pt")
    with pytest.raises(IsgError, match="do not match its config"):
        load_bundle(tmp_path / "badcfg.pt").model()
