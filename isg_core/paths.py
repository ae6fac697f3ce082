"""Where data and results live.

Defaults are ``data/`` and ``results/`` in the repository (found from this file for an
editable install, else the working directory); ``ISG_DATA_DIR`` and ``ISG_RESULTS_DIR``
override them, so a lab can keep slides on another disk.
"""
from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def data_dir() -> Path:
    return Path(os.environ.get("ISG_DATA_DIR") or repo_root() / "data")


def results_dir() -> Path:
    return Path(os.environ.get("ISG_RESULTS_DIR") or repo_root() / "results")


def samples_dir() -> Path:
    return data_dir() / "samples"


def cohort_dir(profile: str, role: str = "held-out") -> Path:
    """The simulated cohort generated for a profile: ``isg-sim-<profile>`` is the held-out cohort
    that the tables report, ``isg-sim-<profile>-dev`` the development cohort that choices are
    made on (:class:`isg_core.config.SimConfig`)."""
    return data_dir() / "cohorts" / (f"isg-sim-{profile}" + ("-dev" if role == "development" else ""))


def cohort_tiles_dir(cohort_root: "str | os.PathLike", tiles: "str | os.PathLike | None" = None) -> Path:
    """Where a cohort's per-slide HDF5 files live (``tiles`` overrides ``<cohort>/tiles``)."""
    return Path(tiles) if tiles else Path(cohort_root) / "tiles"


def shown(path: "str | os.PathLike") -> Path:
    """A path as a reader is shown it: relative to the repository when it lies inside it (no machine's
    home folder in a stored notebook), as it is elsewhere (``ISG_DATA_DIR`` / ``ISG_RESULTS_DIR`` on
    another disk)."""
    path, root = Path(path), repo_root()
    try:
        return path.resolve().relative_to(root.resolve())
    except ValueError:
        return path
