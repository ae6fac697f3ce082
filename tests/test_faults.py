"""Faults: `kill -9` during extraction, then the same command again, must give what an
uninterrupted run gives, leave no temporary file behind, and never expose a half-written slide.
The kill is injected at a fixed point (`isg_core.errors.fault_point`: the process sends itself
SIGKILL), so the test is deterministic."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from isg_core.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "data" / "cohorts" / "isg-sim-smoke"
ISG = str(Path(sys.executable).parent / "isg")


def _copy_cohort(dst: Path) -> Path:
    dst.mkdir()
    for name in ("manifest.csv", "expression.tsv", "cohort.json"):
        shutil.copy(SMOKE / name, dst / name)
    shutil.copytree(SMOKE / "slides", dst / "slides")
    assert main(["prepare", "--cohort", str(dst), "--profile", "smoke", "--workers", "1"]) == 0
    return dst


@pytest.fixture(scope="module")
def extractors():
    if not (SMOKE / "manifest.csv").exists():
        pytest.skip("smoke cohort missing: run `isg simulate --profile smoke` (make test does)")
    from isg_core.features.workflow import ensure_extractor

    return [ensure_extractor(s, "smoke", SMOKE, progress=False) for s in ("global", "local")]


def _extract(cohort: Path, extractors, fault: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISG_FAULT_")}
    env.update(fault or {})
    cmd = [ISG, "extract", "--cohort", str(cohort), "--profile", "smoke", "--global", str(extractors[0]),
           "--local", str(extractors[1]), "--patches", "all", "--batch", "4"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _features(cohort: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted((cohort / "tiles").glob("*.h5")):
        with h5py.File(p, "r") as f:
            g = f.get("features/fe")
            out[p.stem] = None if g is None else (g["index"][:], g["global"][:], g["local"][:],
                                                  bool(g.attrs.get("complete")))
    return out


def _temporaries(cohort: Path) -> list[Path]:
    return [p for p in cohort.rglob(".*") if ".tmp" in p.name]


@pytest.fixture(scope="module")
def uninterrupted(extractors, tmp_path_factory):
    ref = _copy_cohort(tmp_path_factory.mktemp("faults") / "ref")
    assert _extract(ref, extractors).returncode == 0
    return _features(ref)


@pytest.mark.parametrize("fault", [{"ISG_FAULT_EXTRACT_BATCH": "3"}, {"ISG_FAULT_EXTRACT_SLIDE": "5"}],
                         ids=["mid-slide", "between-slides"])
def test_kill_9_during_extraction_then_resume(tmp_path, extractors, uninterrupted, fault):
    want = uninterrupted

    run = _copy_cohort(tmp_path / "run")
    killed = _extract(run, extractors, fault)
    assert killed.returncode == -signal.SIGKILL  # it really died by kill -9
    partial = _features(run)
    done = [k for k, v in partial.items() if v is not None]
    assert 0 < len(done) < len(want) or (len(done) == 0 and "BATCH" in next(iter(fault)))
    for k in done:  # a slide is either complete and equal to the reference, or untouched
        assert partial[k][3] and all(np.array_equal(a, b) for a, b in zip(partial[k][:3], want[k][:3]))
    if "ISG_FAULT_EXTRACT_BATCH" in fault:
        assert _temporaries(run), "a kill inside a slide leaves its temporary copy (the original is untouched)"

    again = _extract(run, extractors)
    assert again.returncode == 0, again.stderr[-400:]
    assert f"{len(done)} already done" in again.stdout
    got = _features(run)
    assert got.keys() == want.keys()
    for k in want:
        assert all(np.array_equal(a, b) for a, b in zip(got[k][:3], want[k][:3])), k
    assert not _temporaries(run)  # the rerun removed the dead writer's temporary file


def _cv(cohort: Path, fault: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISG_FAULT_")}
    env.update(fault or {})
    return subprocess.run([ISG, "cv", "--cohort", str(cohort), "--profile", "smoke", "--model", "isg", "--task", "LIHC",
                           "--device", "cpu"], env=env, capture_output=True, text=True, timeout=300)


def _fold_outputs(cohort: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((cohort / "runs").rglob("fold?.csv"))}


def test_kill_9_during_training_then_resume(tmp_path, extractors):
    """Killed after the 3rd epoch (inside the second fold, with its epoch checkpoint on disk), the same `isg cv`
    resumes that fold (the second) and writes the same test predictions as an uninterrupted run; a damaged epoch
    checkpoint is detected and its fold is trained again from the start, to the same result."""
    from isg_core.features.workflow import ensure_features

    ensure_features(("fe",), "smoke", SMOKE, progress=False)

    def copy_with_features(name: str) -> Path:
        dst = tmp_path / name
        dst.mkdir()
        for f in ("manifest.csv", "expression.tsv", "cohort.json"):
            shutil.copy(SMOKE / f, dst / f)
        shutil.copytree(SMOKE / "slides", dst / "slides")
        shutil.copytree(SMOKE / "tiles", dst / "tiles")
        return dst

    ref = copy_with_features("ref")
    assert _cv(ref).returncode == 0
    want = _fold_outputs(ref)
    assert len(want) >= 2  # the folds with LIHC test slides (the smoke cohort has 4 LIHC slides)

    run = copy_with_features("run")
    killed = _cv(run, {"ISG_FAULT_EPOCH": "3"})
    assert killed.returncode == -signal.SIGKILL
    # 2 epochs per fold at smoke: the first fold is done, the second has its epoch checkpoint
    assert len(_fold_outputs(run)) == 1 and len(list((run / "runs").rglob("fold?.pt"))) == 1
    assert _cv(run).returncode == 0
    assert _fold_outputs(run) == want

    broken = copy_with_features("broken")
    assert _cv(broken, {"ISG_FAULT_EPOCH": "3"}).returncode == -signal.SIGKILL
    ck = next((broken / "runs").rglob("fold?.pt"))
    ck.write_bytes(ck.read_bytes()[:100])  # truncated
    again = _cv(broken)
    assert again.returncode == 0 and "damaged training checkpoint" in again.stderr
    assert _fold_outputs(broken) == want


@pytest.fixture
def world_readable_dir():
    """A folder every user can enter (pytest's tmp_path sits under a 0700 folder)."""
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="isg-perm-"))
    os.chmod(d, 0o755)
    yield d
    for p in d.rglob("*"):
        if p.is_dir():
            os.chmod(p, 0o755)
    shutil.rmtree(d, ignore_errors=True)


def _as_nobody(cmd: list[str]) -> list[str]:
    """As root (CI) file permissions do not apply: run the command as `nobody` through setpriv."""
    if os.geteuid() != 0:
        return cmd
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be exercised")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]


def test_unreadable_slide_and_read_only_output_folder_give_one_line(world_readable_dir, cmu_path):
    probe = subprocess.run(_as_nobody([ISG, "--help"]), capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:  # e.g. a checkout inside a 0700 folder: `nobody` cannot even start isg
        pytest.skip(f"user nobody cannot run {ISG} here: {probe.stderr.strip()[:80]}")
    work = world_readable_dir
    slide = work / cmu_path.name
    shutil.copy(cmu_path, slide)
    os.chmod(slide, 0o644)
    ro = work / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    r = subprocess.run(_as_nobody([ISG, "tile", str(slide), "--out", str(ro)]), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == f"isg: error: {ro}: output directory is not writable"
    assert not any(ro.iterdir())
    os.chmod(slide, 0o600)  # now the slide itself cannot be read
    r = subprocess.run(_as_nobody([ISG, "info", str(slide)]), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().startswith(f"isg: error: {slide}: permission denied")


def test_full_disk_gives_one_line_and_keeps_the_old_file(tmp_path, monkeypatch, capsys, cmu_path):
    """No space left while writing the tiling HDF5: one line, exit 2, the previous file untouched and
    no temporary file left (the write goes to a temporary name first)."""
    import errno

    import isg_core.tiling as tiling

    out = tmp_path / "tiles"
    assert main(["tile", str(cmu_path), "--out", str(out)]) == 0
    h5 = out / "CMU-1-Small-Region.h5"
    before = h5.read_bytes()
    real = tiling.h5py.File

    def full(path, mode="r", *a, **k):
        if mode != "r":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, mode, *a, **k)

    monkeypatch.setattr(tiling.h5py, "File", full)
    capsys.readouterr()
    assert main(["tile", str(cmu_path), "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left on device" in err and "CMU-1-Small-Region" in err
    assert h5.read_bytes() == before and [p.name for p in out.iterdir()] == [h5.name]
