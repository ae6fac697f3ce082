"""Faults: `kill -9` during extraction, then the same command again, must give what an
uninterrupted run gives, leave no temporary file behind, and never expose a half-written slide.
The kill is injected at a fixed point (`isg_core.errors.fault_point`: the process sends itself
SIGKILL), so the test is deterministic.  Permission errors are tested twice: injected (EACCES,
in-process: everywhere, root included) and with real permission bits through the real entry point
(as a user they bind: this user, or, as root, root without CAP_DAC_OVERRIDE or user nobody).
Every process started here has a time limit."""
from __future__ import annotations

import ctypes
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
from isg_core.paths import cohort_dir
from tests.helpers import deadline, deny, smoke_cohort

SMOKE = cohort_dir("smoke")  # data/cohorts/isg-sim-smoke
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
    smoke_cohort()  # `isg simulate --profile smoke` when it is missing (make test runs it first)
    from isg_core.features.workflow import ensure_extractor

    # found, or trained (after `prepare` with a process pool) in a bare checkout
    with deadline(900, "the smoke extractors"):
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

    with deadline(900, "the smoke cohort's features"):
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


def test_unreadable_slide_and_read_only_output_folder_give_one_line_injected(tmp_path, cmu_path, monkeypatch, capsys):
    """The refusals of permission bits, injected (EACCES: os.access, os.open, open ...), so that they
    are tested as root too (root ignores the bits); the real bits are the test below."""
    slide = tmp_path / cmu_path.name
    shutil.copy(cmu_path, slide)
    ro = tmp_path / "ro"
    ro.mkdir()
    with monkeypatch.context() as m:
        deny(m, ro, write=True)
        assert main(["tile", str(slide), "--out", str(ro)]) == 2
    assert capsys.readouterr().err.strip() == f"isg: error: {ro}: output directory is not writable"
    assert not any(ro.iterdir())
    deny(monkeypatch, slide, read=True)  # now the slide itself cannot be read
    assert main(["info", str(slide)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"isg: error: {slide}: permission denied") and "\n" not in err


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


_LIBC = ctypes.CDLL(None, use_errno=True)


def _drop_dac_capabilities() -> None:
    """In the child, before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set
    (what ``setpriv --bounding-set=-dac_override,-dac_read_search`` does), so root's next program
    keeps uid 0 (and can read the checkout it owns) but is bound by permission bits."""
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if _LIBC.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


#: ways to run a command as someone permission bits bind: as it is (a user who is not root, or a root
#: without those capabilities), root without CAP_DAC_OVERRIDE, user nobody
_BOUND = {"this user": {}, "root without CAP_DAC_OVERRIDE": {"preexec_fn": _drop_dac_capabilities},
          "user nobody": {"user": 65534, "group": 65534, "extra_groups": []}}


def _bound_by_permissions(work: Path) -> dict:
    """``subprocess.run`` arguments under which permission bits bind: the first of :data:`_BOUND`
    that runs isg and is refused a 0o000 file in ``work``.  As root that needs CAP_SETPCAP or
    CAP_SETUID (both in a container's default set); skips only where root has neither."""
    probe = work / "probe"
    probe.write_text("x")
    os.chmod(probe, 0o000)
    tried = []
    for how, kwargs in _BOUND.items():
        try:
            refused = subprocess.run([sys.executable, "-c", f"open({str(probe)!r}).read()"], capture_output=True,
                                     text=True, timeout=120, **kwargs)
            if refused.returncode == 0 or "PermissionError" not in refused.stderr:
                tried.append(f"{how}: permission bits ignored")
                continue
            ok = subprocess.run([ISG, "--help"], capture_output=True, text=True, timeout=120, **kwargs)
        except (OSError, subprocess.SubprocessError) as e:  # e.g. not permitted to drop or to switch user
            tried.append(f"{how}: {e}")
            continue
        if ok.returncode == 0:
            return kwargs
        tried.append(f"{how}: cannot run isg ({ok.stderr.strip()[-80:]})")  # nobody, in a 0700 checkout
    pytest.skip("no way to run isg bound by permission bits here (" + "; ".join(tried) + "); the injected variant "
                "tests the contract")


def test_unreadable_slide_and_read_only_output_folder_give_one_line(world_readable_dir, cmu_path):
    work = world_readable_dir
    bound = _bound_by_permissions(work)  # as root (CI): without CAP_DAC_OVERRIDE, or as nobody
    slide = work / cmu_path.name
    shutil.copy(cmu_path, slide)
    os.chmod(slide, 0o644)
    ro = work / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    r = subprocess.run([ISG, "tile", str(slide), "--out", str(ro)], capture_output=True, text=True, timeout=120,
                       **bound)
    assert r.returncode == 2
    assert r.stderr.strip() == f"isg: error: {ro}: output directory is not writable"
    assert not any(ro.iterdir())
    os.chmod(slide, 0o000)  # now the slide itself cannot be read (by its owner either)
    r = subprocess.run([ISG, "info", str(slide)], capture_output=True, text=True, timeout=120, **bound)
    assert r.returncode == 2 and r.stderr.strip().startswith(f"isg: error: {slide}: permission denied")


def test_full_disk_gives_one_line_and_keeps_the_old_file(tmp_path, monkeypatch, capsys, cmu_path):
    """No space left while writing the tiling HDF5: one line, exit 2, the previous file untouched and
    no temporary file left (the write goes to a temporary name first)."""
    import errno

    import isg_core.data.tiling as tiling

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
