"""The development cohort's Table 5 probe (``isg study feature-probe``): its family and its figure."""
import matplotlib.pyplot as plt
import pandas as pd

from isg_core.experiments.table5 import table5_probe_config
from isg_core.studies.feature_probe import PAIRS, SPECS, feature_probe_figure


def test_fe_is_compared_with_every_other_probed_set_once():
    assert SPECS[0] == "fe" and {a for a, _ in PAIRS} == {"fe"}
    assert sorted(b for _, b in PAIRS) == sorted(SPECS[1:])


def test_the_probe_is_table5s():
    quick, smoke = table5_probe_config("quick"), table5_probe_config("smoke")
    assert (quick.epochs, quick.patience, quick.hidden) == (300, 30, 256)
    assert (smoke.epochs, smoke.patience) == (20, 5)


def test_the_figure_draws_both_intervals_per_level():
    rows = []
    for level in ("slide", "patch"):
        for k, (a, b) in enumerate(PAIRS):
            d = 0.05 * (k - 1)
            rows.append({"comparison": f"{a} - {b}", "level": level, "diff": d, "ci_low": d - 0.02,
                         "ci_high": d + 0.02, "Holm CI low": d - 0.03, "Holm CI high": d + 0.03})
    fig = feature_probe_figure(pd.DataFrame(rows))
    axes = fig.axes
    assert len(axes) == 2
    assert axes[0].get_xlabel() == "probe PCC difference, slide level"
    assert [t.get_text() for t in axes[0].get_yticklabels()] == [f"{a} - {b}" for a, b in PAIRS]
    # the raw interval's bars: for each comparison a horizontal segment from ci_low to ci_high
    segs = axes[0].collections[1].get_segments()
    assert [tuple(round(x, 6) for x in (s[0][0], s[1][0])) for s in segs] == \
        [(round(r["ci_low"], 6), round(r["ci_high"], 6)) for r in rows[:3]]
    plt.close(fig)
