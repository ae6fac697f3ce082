"""The static HTML site of the executed notebooks (isg_core.report.site, `isg site`): pages, index, runtimes,
and the index opened in headless Chromium where it is installed (`.ci/run` installs it)."""
import shutil
import subprocess
import tempfile

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from isg_core.cli import main
from isg_core.errors import IsgError
from isg_core.report.site import build_site, notebook_summary

PNG_1PX = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


def make_notebooks(folder, n=3):
    folder.mkdir()
    for i in range(n):
        nb = new_notebook(cells=[
            new_markdown_cell(f"# {i:02d} · Stage {i}\n\nIt shows **stage {i}** (Sec. 3.{i}), in `code`. More.\n\n"
                              "Second paragraph."),
            new_code_cell("x = 1", outputs=[new_output("display_data", data={"image/png": PNG_1PX,
                                                                               "text/plain": "<Figure>"})])])
        nbformat.write(nb, folder / f"{i:02d}_stage{i}.ipynb")
    pd.DataFrame({"notebook": [f"{i:02d}_stage{i}.ipynb" for i in range(n - 1)], "seconds": [5.0, 300.0][: n - 1]}
                 ).to_csv(folder / "timings.csv", index=False)


def test_summary_takes_title_and_first_paragraph():
    nb = new_notebook(cells=[new_code_cell("1"), new_markdown_cell("# 07 · Title\n\nOne *two* three.\n\nFour.")])
    assert notebook_summary(nb) == ("07 · Title", "One two three.")
    long = new_notebook(cells=[new_markdown_cell("# T\n\n" + "word " * 100)])
    assert notebook_summary(long)[1].endswith(" ...") and len(notebook_summary(long)[1]) <= 224


def test_site_pages_index_and_runtimes(tmp_path, capsys):
    make_notebooks(tmp_path / "nb")
    assert main(["site", "--notebooks", str(tmp_path / "nb"), "--out", str(tmp_path / "site")]) == 0
    files = sorted(p.name for p in (tmp_path / "site").iterdir())
    assert files == ["00_stage0.html", "01_stage1.html", "02_stage2.html", "index.html"]  # no temporary leftovers
    index = (tmp_path / "site" / "index.html").read_text()
    assert index.count("<tr><td><a href=") == 3
    assert "5 s" in index and "5.0 min" in index and "not recorded" in index  # 02 has no timing
    assert "It shows stage 1 (Sec. 3.1), in code. More." in index
    page = (tmp_path / "site" / "01_stage1.html").read_text()
    assert "data:image/png;base64" in page and "00_stage0.html" in page and "02_stage2.html" in page
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("chromium not installed: the site was not opened in a browser")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          f"--user-data-dir={tempfile.mkdtemp()}", "--dump-dom",
                          (tmp_path / "site" / "index.html").as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0 and 'id="notebooks"' in dom.stdout and dom.stdout.count("<tr>") == 4


def test_site_errors_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(IsgError, match="no NN_\\*.ipynb notebooks"):
        build_site(tmp_path / "empty", tmp_path / "out")
    make_notebooks(tmp_path / "nb", n=1)
    (tmp_path / "nb" / "01_broken.ipynb").write_text("{not json")
    with pytest.raises(IsgError, match="01_broken.ipynb: not a readable notebook"):
        build_site(tmp_path / "nb", tmp_path / "out")
