"""The committed notebooks: a profile switch that papermill and nbval both honour, no stored errors,
and a readable source for each."""
from pathlib import Path

import nbformat
import pytest

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS][:2] == ["00", "01"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_profile_switch_and_clean_outputs(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert 'os.environ.get("ISG_PROFILE"' in tagged[0].source and "profile =" in tagged[0].source
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells), \
        "a stored injected-parameters cell would override ISG_PROFILE under nbval"
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert (NB_DIR / "src" / (path.stem + ".py")).exists(), "every notebook has its percent-format source"
