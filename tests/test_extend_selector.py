"""A new selector is one class plus one registration: ``register_selector`` makes it choosable by name."""
import numpy as np
import pytest

from isg_core.errors import IsgError
from isg_core.selection.selectors import SELECTORS, Selector, get_selector, register_selector
from isg_core.selection.thresholds import Threshold


class RedSelector(Selector):
    """Toy: the mean red channel, a stand-in for any per-patch score."""

    name = "toy-red"
    default_threshold = Threshold("score", 0.5)

    def score(self, patch):
        return float(np.asarray(patch)[..., 0].mean() / 255.0)


@pytest.fixture
def red():
    register_selector(RedSelector)
    yield
    SELECTORS.pop("toy-red")


def test_registered_selector_is_found_by_name_and_scores(red):
    sel = get_selector("toy-red")
    patch = np.zeros((8, 8, 3), np.uint8)
    patch[..., 0] = 255
    assert isinstance(sel, RedSelector) and sel.score(patch) == 1.0 and sel.score(patch * 0) == 0.0
    with pytest.raises(IsgError, match="registered already"):
        register_selector(RedSelector)


def test_register_refuses_what_is_not_a_named_selector():
    with pytest.raises(IsgError, match="Selector subclass"):
        register_selector(dict)
    with pytest.raises(IsgError, match="Selector subclass"):
        register_selector(type("Anon", (Selector,), {"score": lambda self, p: 0.0}))
    assert "toy-red" not in SELECTORS
