"""The repository's Markdown renders as GitHub shows it: no table broken into raw pipes.

GitHub-flavoured Markdown ends a table at a blank line, and a table needs its delimiter row; the
rows after a break render as a paragraph of pipes.  mistune (nbconvert's Markdown parser) with its
GFM table plugin follows the same rules: every table row of the source must come out as a <tr>."""
import re
from pathlib import Path

import mistune
import pytest

ROOT = Path(__file__).resolve().parents[1]
DELIMITER = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def table_rows(src: str) -> int:
    """Lines that are table rows (start with a pipe), outside fenced code, delimiter rows excepted."""
    rows, fence = 0, False
    for line in src.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        elif not fence and line.lstrip().startswith("|") and not DELIMITER.match(line):
            rows += 1
    return rows


def render(src: str) -> str:
    return mistune.create_markdown(plugins=["table", "strikethrough", "url"])(src)


def test_checker_catches_a_broken_table():
    good = "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n"
    assert render(good).count("<tr>") == table_rows(good) == 3
    broken = "| a | b |\n|---|---|\n| 1 | 2 |\n\n| 3 | 4 |\n"  # a blank line inside the table
    assert render(broken).count("<tr>") < table_rows(broken)


@pytest.mark.parametrize("name", ["README.md", "data/README.md"])
def test_markdown_tables_render(name):
    src = (ROOT / name).read_text()
    html = render(src)
    stray = [m.group(1)[:60] for m in re.finditer(r"<p>(\|[^<\n]*)", html)]
    assert html.count("<tr>") == table_rows(src), f"{name}: table rows rendered as text: {stray}"
