"""Choosing the training budget from inner-validation curves (issue 16, item 2), on constructed curves."""
import numpy as np
import pandas as pd

from isg_core.studies.budget import choose_budget, longest_wait


def test_longest_wait_is_the_patience_needed():
    v = np.array([5, 4, 4.5, 4.6, 3, 3.1, 3.2, 3.3, 2.9, 3.5])
    assert longest_wait(v, int(np.argmin(v))) == 3  # epochs 5-7 after the best at 4
    assert longest_wait(v, 4) == 2
    assert longest_wait(np.array([3.0, 2.0, 1.0]), 2) == 0


def test_choose_budget_finds_the_lower_schedule_and_its_epoch():
    rows = []
    e = np.arange(1, 31)
    for fold in range(5):
        for task in ("A", "B"):
            # constant: best at epoch 10; cosine: lower, best at epoch 20, one bump of 2 epochs on the way
            const = (e - 10) ** 2 / 100 + 1.0 + 0.001 * fold
            cos = (e - 20) ** 2 / 100 + 0.8
            cos[14:16] += 0.5
            rows += [pd.DataFrame({"schedule": s, "task": task, "fold": fold, "epoch": e, "val_loss": v})
                     for s, v in (("constant", const), ("cosine", cos))]
    curves = pd.concat(rows)
    out = choose_budget(curves)
    assert (out["schedule"], out["best epoch"], out["epochs"]) == ("cosine", 20, 30)  # cosine keeps its horizon
    assert out["patience"] == 2
    const = choose_budget(curves[curves.schedule == "constant"])
    assert (const["best epoch"], const["patience"], const["epochs"]) == (10, 1, 11)
    assert out["best mean val loss (constant)"] > out["best mean val loss (cosine)"] == out["mean val loss"]
