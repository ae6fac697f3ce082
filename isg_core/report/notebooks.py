"""Execute the notebooks in order with papermill (``isg reproduce``).

Each ``notebooks/NN_*.ipynb`` runs with the parameter ``profile``; an executed copy goes to
``results/notebooks/<profile>/`` (or back over the source with ``in_place``, which is how the
committed notebooks get the outputs of a ``quick`` run), and ``timings.csv`` beside it
records how long each took.  The first failing notebook stops the run with a one-line error
that names it, the failing cell and where the executed copy is.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pandas as pd

from ..config import get_profile
from ..errors import IsgError, atomic_path, first_line
from ..paths import repo_root, results_dir

#: a numbered notebook; not the ``.failed.ipynb`` copy that a failed run leaves beside its output
NOTEBOOK_PATTERN = re.compile(r"^\d\d_(?!.*\.failed\.ipynb$).+\.ipynb$")


def list_notebooks(directory: Path) -> list[Path]:
    """``NN_*.ipynb`` in ``directory``, in numeric order."""
    if not directory.is_dir():
        raise IsgError(directory, "notebook directory not found")
    return sorted(p for p in directory.iterdir() if NOTEBOOK_PATTERN.match(p.name))


_PROGRESS = re.compile(r"\d+%\|")


def is_progress_output(output: dict) -> bool:
    """A tqdm progress bar written to stderr (e.g. `` 45%|####5     | 9/20 [...]``), what a
    cleared bar leaves behind (only whitespace), or tqdm.auto's Jupyter widget."""
    text = output.get("text", "")
    if output.get("output_type") == "display_data":  # tqdm.auto's widget: frozen at its first frame when stored
        data = output.get("data", {})
        return "application/vnd.jupyter.widget-view+json" in data and bool(
            _PROGRESS.search("".join(data.get("text/plain", ""))))
    return (output.get("output_type") == "stream" and output.get("name") == "stderr"
            and (bool(_PROGRESS.search(text)) or not text.strip()))


def _write_without_injected_parameters(executed: Path, dest: Path) -> None:
    """Copy an executed notebook over its source, minus papermill's injected-parameters cell.

    That cell hard-codes the profile it ran at; left in the committed notebook, nbval (which runs
    the stored cells) would execute it and ignore ``ISG_PROFILE``."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    for c in nb.cells:  # progress bars are for the person waiting, not for the reader of the tutorial
        if c.cell_type == "code":
            c.outputs = [o for o in c.get("outputs", []) if not is_progress_output(o)]
    nb.metadata.get("papermill", {}).pop("parameters", None)
    with atomic_path(dest) as tmp:
        nbformat.write(nb, tmp)


def run_notebooks(profile: str = "quick", notebooks_dir: Path | None = None, out_dir: Path | None = None,
                  in_place: bool = False, only: list[str] | None = None, kernel: str = "python3") -> pd.DataFrame:
    """Run every numbered notebook at ``profile``; return the timings table."""
    import papermill as pm

    get_profile(profile)  # validate the name early
    nb_dir = Path(notebooks_dir) if notebooks_dir else repo_root() / "notebooks"
    out = Path(out_dir) if out_dir else results_dir() / "notebooks" / profile
    out.mkdir(parents=True, exist_ok=True)
    notebooks = list_notebooks(nb_dir)
    if only:
        notebooks = [nb for nb in notebooks if any(nb.name.startswith(o) for o in only)]
    if not notebooks:
        raise IsgError(nb_dir, "no NN_*.ipynb notebooks to run")
    rows = []
    env_before = os.environ.get("ISG_PROFILE")
    os.environ["ISG_PROFILE"] = profile  # the notebooks' default, for any helper they spawn
    try:
        for nb in notebooks:
            target = out / nb.name
            t0 = time.perf_counter()
            print(f"[isg reproduce] {nb.name} (profile={profile}) ...", flush=True)
            try:
                with atomic_path(target) as tmp:
                    try:
                        pm.execute_notebook(str(nb), str(tmp), parameters={"profile": profile}, kernel_name=kernel,
                                            cwd=str(nb_dir), progress_bar=False)
                    except pm.PapermillExecutionError as e:
                        shutil.copyfile(tmp, target.with_suffix(".failed.ipynb"))
                        raise IsgError(nb, f"failed in cell {e.exec_count}: {e.ename}: "
                                           f"{first_line(e.evalue)} "
                                           f"(executed copy: {target.with_suffix('.failed.ipynb')})") from None
            finally:
                seconds = time.perf_counter() - t0
            rows.append({"notebook": nb.name, "profile": profile, "seconds": round(seconds, 1)})
            target.with_suffix(".failed.ipynb").unlink(missing_ok=True)  # an earlier failure is stale now
            if in_place:
                _write_without_injected_parameters(target, nb)
            print(f"[isg reproduce] {nb.name} done in {seconds:.1f} s -> {target}", flush=True)
    finally:
        if env_before is None:
            os.environ.pop("ISG_PROFILE", None)
        else:
            os.environ["ISG_PROFILE"] = env_before
        if rows:
            timings = pd.DataFrame(rows)
            old = out / "timings.csv"
            if old.exists():  # a run of some notebooks (--only) keeps the others' last times
                try:
                    prev = pd.read_csv(old)
                    prev = prev[~prev.notebook.isin(timings.notebook)]
                    timings = pd.concat([prev, timings]).sort_values("notebook").reset_index(drop=True)
                except (pd.errors.ParserError, AttributeError, KeyError):
                    pass  # an unreadable old file is replaced
            with atomic_path(out / "timings.csv") as tmp:
                timings.to_csv(tmp, index=False)
    return pd.DataFrame(rows)
