"""isg_core.parallel: the one process-pool runner, known answers; and the settings that flow from the
profile (no ``TilingConfig()`` default argument, no literal patch-size default left in the package)."""
from __future__ import annotations

import ast
import dataclasses
import pickle
from pathlib import Path

import pytest

from isg_core.config import TilingConfig
from isg_core.errors import IsgError
from isg_core.parallel import job_name, pool_context, run_jobs

PKG = Path(__file__).resolve().parents[1] / "isg_core"


@dataclasses.dataclass(frozen=True)
class SquareJob:
    x: int
    tiling: TilingConfig = dataclasses.field(default_factory=TilingConfig)


def square(job: SquareJob) -> int:
    if job.x == 3:
        raise IsgError(f"slide{job.x}.tiff", "cannot read")
    if job.x == 4:
        raise ValueError("four is not allowed")
    return job.x * job.x + job.tiling.global_size


def slow_first(job: SquareJob) -> int:
    import time

    time.sleep(0.3 if job.x == 0 else 0.0)  # the first job finishes last
    return job.x


JOBS = [SquareJob(x) for x in (0, 1, 2, 5, 6)]
ANSWER = [256, 257, 260, 281, 292]


def test_serial_gives_the_results_in_order():
    assert run_jobs(square, JOBS, workers=1) == ANSWER
    assert run_jobs(square, [], workers=4) == []


@pytest.mark.parametrize("start", [None, "fork", "spawn"])
def test_processes_give_the_serial_results_in_order(start):
    assert run_jobs(square, JOBS, workers=2, start=start) == ANSWER


def test_order_is_the_jobs_whatever_finishes_first():
    assert run_jobs(slow_first, [SquareJob(x) for x in range(4)], workers=2, start="fork") == [0, 1, 2, 3]


@pytest.mark.parametrize("workers", [1, 2])
def test_an_error_is_itself_and_names_its_job(workers):
    jobs = [SquareJob(1), SquareJob(3), SquareJob(2)]
    with pytest.raises(IsgError) as e:
        run_jobs(square, jobs, workers=workers, desc="tile + select")
    assert str(e.value) == "slide3.tiff: cannot read"  # the one line the CLI prints, unchanged
    assert any("tile + select: job 2 of 3" in n and "SquareJob(x=3" in n for n in e.value.__notes__)
    with pytest.raises(ValueError, match="four is not allowed") as e:
        run_jobs(square, [SquareJob(4), SquareJob(1)], workers=workers)
    assert any("job 1 of 2" in n and "x=4" in n for n in e.value.__notes__)


def test_progress_bar_counts_the_jobs():
    class Bar:
        n = 0

        def update(self, k):
            self.n += k

    bar = Bar()
    run_jobs(square, JOBS, workers=2, start="fork", bar=bar)
    assert bar.n == len(JOBS)


def test_job_name_and_contexts():
    assert job_name(SquareJob(7)).startswith("SquareJob(x=7")
    assert len(job_name("x" * 500)) == 200
    assert pool_context(None) is None
    assert pool_context("spawn").get_start_method() == "spawn"
    with pytest.raises(ValueError):
        pool_context("thread")


def test_the_package_jobs_are_frozen_and_picklable(tmp_path):
    from isg_core.cohorts.prepare import TileJob
    from isg_core.config import get_profile
    from isg_core.experiments.runner import CVJob
    from isg_core.experiments.table5 import ProbeJob
    from isg_core.selection.evaluate import ScoreJob
    from isg_core.simulate.cohort import SlideSpec

    prof = get_profile("smoke")
    jobs = [TileJob("a.tiff", "a", None, tmp_path, ["shannon"], {}, prof.tiling),
            ScoreJob("a.tiff", ["shannon"], prof.tiling),
            SlideSpec(0, "a", "p", "LIHC", 0, 0, 1, 0, 512, 256, str(tmp_path)),
            CVJob(None, None, tmp_path, prof, tmp_path, "LIHC", None, "regression", 0),
            ProbeJob(None, tmp_path, "fe", None, 1)]
    for job in jobs:
        assert dataclasses.is_dataclass(job) and type(job).__dataclass_params__.frozen
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(job, dataclasses.fields(job)[0].name, None)
        assert pickle.loads(pickle.dumps(job)) == job
    assert str(jobs[0]) == "slide a (a.tiff)"


# --- settings flow from the profile ---------------------------------------------------------------------
#: arguments that are a tiling's patch size (or its square) under another name
PATCH_ARGS = ("pixels", "patch_pixels", "patch_px", "global_size", "local_size")


def _literal_patch_default(node: ast.expr) -> bool:
    """``256 * 256``, ``256``-style literals: the tiling's patch size written out."""
    if isinstance(node, ast.BinOp):
        return _literal_patch_default(node.left) and _literal_patch_default(node.right)
    return isinstance(node, ast.Constant) and node.value in (TilingConfig.global_size, TilingConfig.global_size ** 2)


def defaults_that_should_come_from_the_profile(pkg: Path = PKG) -> list[str]:
    """Every ``TilingConfig()`` default argument, and every default of a ``pixels`` / ``mpp`` /
    ``patch`` argument that is a literal patch size, in the package (config.py, where the dataclass
    defaults live, excepted)."""
    bad = []
    for path in sorted(pkg.rglob("*.py")):
        if path.name == "config.py" and path.parent == pkg:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            a = node.args
            pos = a.posonlyargs + a.args
            pairs = list(zip(pos[len(pos) - len(a.defaults):], a.defaults))
            pairs += [(k, d) for k, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
            for arg, default in pairs:
                where = f"{path.relative_to(pkg.parent)}:{default.lineno} {arg.arg}"
                if isinstance(default, ast.Call) and getattr(default.func, "id", None) == "TilingConfig":
                    bad.append(f"{where}=TilingConfig()")
                elif arg.arg in PATCH_ARGS and _literal_patch_default(default):
                    bad.append(f"{where}={ast.unparse(default)}")
    return bad


def test_the_scan_finds_what_it_looks_for(tmp_path):
    pkg = tmp_path / "isg_core"
    pkg.mkdir()
    (pkg / "a.py").write_text("def f(x, config=TilingConfig(), *, pixels=256 * 256):\n    pass\n"
                              "def g(x, config, *, pixels):\n    pass\n")
    assert defaults_that_should_come_from_the_profile(pkg) == [
        "isg_core/a.py:1 config=TilingConfig()", "isg_core/a.py:1 pixels=256 * 256"]


def test_no_tiling_default_in_the_package():
    assert defaults_that_should_come_from_the_profile() == []


def test_cli_tiling_defaults_come_from_the_profile(monkeypatch):
    from isg_core.cli import build_parser
    from isg_core.commands import tiling_arg
    from isg_core.config import get_profile

    p = build_parser()
    for cmd in ("tile", "select"):
        args = p.parse_args([cmd, "s.tiff", "--out", "o"])
        assert (args.mpp, args.patch, args.local) == (None, None, None)
        assert tiling_arg(args) == get_profile().tiling
        args = p.parse_args([cmd, "s.tiff", "--out", "o", "--patch", "128", "--profile", "smoke"])
        assert tiling_arg(args) == dataclasses.replace(get_profile("smoke").tiling, global_size=128)
    monkeypatch.setenv("ISG_PROFILE", "paper")
    assert tiling_arg(p.parse_args(["tile", "s.tiff", "--out", "o"])) == get_profile("paper").tiling
    text = p._subparsers._group_actions[0].choices["tile"].format_help()
    assert "the profile's, 0.5 at every profile" in " ".join(text.split())
