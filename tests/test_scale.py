"""Preprocessing at scale: `--shard K/N` splits a cohort over independent workers with no overlap
and no gap, and the SLURM array scripts of examples/slurm run locally (their `#SBATCH` lines are
comments to bash) to the same tiles as one unsharded run.  The smoke cohort is simulated when it
is missing, and every process started here has a time limit."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from isg_core.cli import main
from isg_core.data.manifest import parse_shard, shard_rows
from isg_core.errors import IsgError
from isg_core.paths import cohort_dir
from tests.helpers import deadline, run, smoke_cohort

ROOT = Path(__file__).resolve().parents[1]
SMOKE = cohort_dir("smoke")  # data/cohorts/isg-sim-smoke


@pytest.mark.parametrize("n_items", [0, 1, 5, 12, 13])
@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_shards_cover_every_row_once(n_items, n):
    df = pd.DataFrame({"slide_id": [f"s{i}" for i in range(n_items)]})
    parts = [list(shard_rows(df, f"{k}/{n}").slide_id) for k in range(1, n + 1)]
    flat = [s for p in parts for s in p]
    assert sorted(flat) == sorted(df.slide_id) and len(flat) == len(set(flat))  # no gap, no overlap
    assert max(map(len, parts)) - min(map(len, parts)) <= 1  # balanced
    assert shard_rows(list(df.slide_id), f"1/{n}") == parts[0]  # lists of slides shard the same way


@pytest.mark.parametrize("bad", ["0/3", "4/3", "3", "a/b", "1/0", "-1/2"])
def test_bad_shard_specs_are_refused(bad):
    with pytest.raises(IsgError, match="--shard"):
        parse_shard(bad)


@pytest.fixture
def cohort(tmp_path):
    smoke_cohort()  # `isg simulate --profile smoke` when it is missing (make test runs it first)
    dst = tmp_path / "cohort"
    dst.mkdir()
    for name in ("manifest.csv", "expression.tsv", "cohort.json"):
        shutil.copy(SMOKE / name, dst / name)
    shutil.copytree(SMOKE / "slides", dst / "slides")
    return dst


def _tiles(folder: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(folder.glob("*.h5")):
        with h5py.File(p, "r") as f:
            out[p.stem] = (f["coords"][:], f["selection/shannon/scores"][:], f["selection/shannon/keep"][:])
    return out


def test_slurm_array_locally_equals_one_unsharded_run(cohort, tmp_path):
    """Three array tasks of examples/slurm/prepare_array.sbatch, run by bash with the variables SLURM
    sets (0-based array, to check the 1-based K), give the tiles of one `isg prepare`, each slide once."""
    env = dict(os.environ, COHORT=str(cohort), SLURM_ARRAY_TASK_MIN="0", SLURM_ARRAY_TASK_COUNT="3",
               SLURM_CPUS_PER_TASK="1", PROFILE="smoke", ISG=str(Path(sys.executable).parent / "isg"))
    tiles = cohort / "tiles"
    seen = []
    for task in range(3):
        before = set(p.name for p in tiles.glob("*.h5")) if tiles.exists() else set()
        # the script's own `isg prepare` is killed with it past the limit
        r = run(["bash", str(ROOT / "examples" / "slurm" / "prepare_array.sbatch")],
                env=dict(env, SLURM_ARRAY_TASK_ID=str(task)), timeout=300)
        assert r.returncode == 0, r.stderr[-500:]
        seen.append(set(p.name for p in tiles.glob("*.h5")) - before)
    manifest = pd.read_csv(cohort / "manifest.csv")
    assert [len(s) for s in seen] == [4, 4, 4]  # 12 slides, 3 tasks, disjoint
    assert set().union(*seen) == {f"{s}.h5" for s in manifest.slide_id}
    ref = tmp_path / "ref"
    assert main(["prepare", "--cohort", str(cohort), "--tiles", str(ref), "--profile", "smoke", "--workers", "1"]) == 0
    a, b = _tiles(tiles), _tiles(ref)
    assert a.keys() == b.keys()
    for k in a:
        assert all(np.array_equal(x, y) for x, y in zip(a[k], b[k]))


def test_extract_shards_split_the_slides(cohort, capsys):
    """`isg extract --shard K/N` encodes only its slides; the shards together encode all of them."""
    from isg_core.features.workflow import ensure_extractor

    assert main(["prepare", "--cohort", str(cohort), "--profile", "smoke", "--workers", "1"]) == 0
    with deadline(900, "the smoke cohort's global extractor"):  # found, or trained after a pooled `prepare`
        ckpt = ensure_extractor("global", "smoke", SMOKE, progress=False)  # the smoke cohort's trained E_G
    done = []
    for k in (1, 2):
        assert main(["extract", "--cohort", str(cohort), "--profile", "smoke", "--global", str(ckpt), "--shard",
                     f"{k}/2"]) == 0
        with_features = set()
        for p in (cohort / "tiles").glob("*.h5"):
            with h5py.File(p, "r") as f:
                if "features/fe" in f:
                    with_features.add(p.stem)
        done.append(with_features)
    assert len(done[0]) == 6 and done[0] < done[1] and len(done[1]) == 12
