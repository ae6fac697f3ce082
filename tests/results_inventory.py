"""The inventory of ``results/``: every file there, which code writes it, and the command to rerun.

``results/outputs.csv`` has one row per file with the columns ``path`` (relative to the
repository), ``writer`` (the source that writes it: ``notebooks/src/05_table1_sota.py`` or
``benchmarks/memory.py``), ``command`` (what a user runs to regenerate it) and ``pending``
(``yes`` for an output whose writer has not been run yet; empty means ``no``).

The checks here are pure functions of a repository root, so a test can run them on a fake
tree; each returns one line per problem (``path: problem``):

* :func:`strays`: files under ``results/`` that the inventory does not list (what git tracks
  or would add there; in a copy without git, what a walk finds outside ``.gitignore``);
* :func:`missing`: listed files that are not there (rows marked pending excepted);
* :func:`unwritten`: listed files whose writer does not write them, by a static scan of the
  writer and of the ``isg_core`` modules it imports (:func:`written_patterns`);
* :func:`uncommanded`: listed Markdown files without the ``Made by:`` line that
  :func:`isg_core.report.outputs.write_table` puts in, or whose command does not name the writer.

A study's writer is its module, ``isg_core/studies/<name>.py``, and its command ``isg study
<name>`` (underscores as dashes).  Results made before a study had its ``isg study`` command keep
the Made-by line of the script that made them (:data:`RENAMED`): the file is as that script
wrote it, and the check reads the line as the study's command under its current name.
"""
from __future__ import annotations

import ast
import csv
import fnmatch
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from isg_core.errors import IsgError

INVENTORY = "results/outputs.csv"
RESULTS = "results"
COLUMNS = ("path", "writer", "command", "pending")

# Helpers of isg_core.report.outputs that build a file name from their ``name`` argument (position 1).
HELPERS: dict[str, tuple[str, ...]] = {"write_table": ("csv", "md"), "save_figure": ("png",)}
_FILE_NAME = re.compile(r"[A-Za-z0-9_][\w.-]*\.[A-Za-z0-9]{1,5}")
_MADE_BY = re.compile(r"^Made by: `(?P<command>[^`]*)`", re.MULTILINE)
STUDIES = "isg_core/studies"
#: commands renamed since committed results were made: the earlier command (interpreter aside) ->
#: the current one, with the same options.  tools/*.py became `isg study NAME` (issue 29); a row
#: here can go once no committed result's Made-by line names the earlier command.
RENAMED: dict[str, str] = {
    "tools/extractor_choices.py": "isg study extractor-choices",
    "tools/extractor_limits.py": "isg study extractor-limits",
    "tools/extractor_folds.py": "isg study extractor-folds",
    "tools/budget_study.py": "isg study budget",
}


@dataclass(frozen=True)
class Output:
    """One row of the inventory."""

    path: str
    writer: str
    command: str
    pending: bool = False


def read_inventory(path: str | os.PathLike) -> list[Output]:
    """The rows of an inventory CSV; a malformed file or row is a one-line :class:`IsgError`."""
    p = Path(path)
    try:
        with p.open(newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise IsgError(p, f"columns are {reader.fieldnames}, expected {list(COLUMNS)}")
            raw = list(reader)
    except FileNotFoundError:
        raise IsgError(p, "inventory not found") from None
    rows, seen = [], set()
    for line, r in enumerate(raw, start=2):
        out_path, writer, command = (r[k].strip() for k in COLUMNS[:3])
        pending = (r["pending"] or "").strip().lower()
        if not out_path or not writer or not command:
            raise IsgError(p, f"line {line}: path, writer and command are required")
        if pending not in ("", "no", "yes"):
            raise IsgError(p, f"line {line}: pending is {pending!r}, expected yes, no or empty")
        if not out_path.startswith(RESULTS + "/"):
            raise IsgError(p, f"line {line}: {out_path} is not under {RESULTS}/")
        if out_path in seen:
            raise IsgError(p, f"line {line}: {out_path} is listed twice")
        seen.add(out_path)
        rows.append(Output(out_path, writer, command, pending == "yes"))
    return rows


def _git_files(root: Path, folder: str) -> list[str] | None:
    """Files git tracks or would add under ``folder`` (not ignored), or None outside a checkout."""
    try:
        top = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, check=True).stdout.strip()
        if Path(top).resolve() != root.resolve():
            return None
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard", "--", folder],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return sorted({f for f in out.split("\0") if f})


def ignore_patterns(root: Path) -> list[str]:
    """The plain patterns of ``root/.gitignore`` (no negations), without leading/trailing slashes."""
    gi = root / ".gitignore"
    if not gi.is_file():
        return []
    lines = (line.strip() for line in gi.read_text().splitlines())
    return [line.strip("/") for line in lines if line and not line.startswith(("#", "!")) and line.strip("/")]


def is_ignored(rel: str, patterns: list[str]) -> bool:
    """Whether the repository-relative path ``rel`` falls under one of ``patterns``: one with a
    slash is anchored at the root (it or a folder above ``rel``), one without matches any part."""
    parts = rel.split("/")
    for pat in patterns:
        if "/" in pat:
            if any(fnmatch.fnmatchcase("/".join(parts[:i]), pat) for i in range(1, len(parts) + 1)):
                return True
        elif any(fnmatch.fnmatchcase(part, pat) for part in parts):
            return True
    return False


def present_files(root: str | os.PathLike, folder: str = RESULTS) -> list[str]:
    """Repository-relative paths of the files under ``folder``: what git tracks or would add in
    a checkout; otherwise every file a walk finds that ``.gitignore`` does not exclude."""
    root = Path(root)
    files = _git_files(root, folder)
    if files is not None:
        return files
    patterns = ignore_patterns(root)
    found = []
    for dirpath, _, names in os.walk(root / folder):
        for n in names:
            rel = (Path(dirpath) / n).relative_to(root).as_posix()
            if not is_ignored(rel, patterns):
                found.append(rel)
    return sorted(found)


def strays(root: str | os.PathLike, rows: list[Output]) -> list[str]:
    """Files under ``results/`` that no inventory row lists (the inventory itself excepted)."""
    listed = {r.path for r in rows} | {INVENTORY}
    return [f"{f}: not in {INVENTORY} (no current command writes it? delete it, or list its writer)"
            for f in present_files(root) if f not in listed]


def missing(root: str | os.PathLike, rows: list[Output]) -> list[str]:
    """Listed files that are not in the tree, except rows marked pending."""
    root = Path(root)
    return [f"{r.path}: listed in {INVENTORY} but missing (run `{r.command}`, or mark it pending)"
            for r in rows if not r.pending and not (root / r.path).is_file()]


_HOLE = "\0"  # stands for each ``{...}`` of an f-string in a template


def _template(node: ast.AST) -> str | None:
    """A string literal's text, or an f-string's with each ``{...}`` as ``_HOLE``; else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else _HOLE
                       for v in node.values)
    return None


def _regex(template: str) -> str:
    """A template as a regex: literal text as is, each hole any run of characters but a slash."""
    return "[^/]*".join(re.escape(s) for s in template.split(_HOLE))


def written_patterns(source: str) -> list[re.Pattern]:
    """Regexes for the file names a Python source writes, found statically:

    * ``write_table(df, NAME, ...)`` writes ``NAME.csv`` and ``NAME.md``, ``save_figure(fig, NAME,
      ...)`` writes ``NAME.png`` (NAME a literal, or an f-string that starts with literal text:
      ``f"benchmark_extraction{suffix}"``);
    * any string literal or f-string whose last path component is a file name that starts with
      3 literal characters (``"isg_model.pt"``, ``f"table_{n}{suffix}.csv"``);
      ``f"{name}.csv"`` names no particular file and is left out.

    A static scan: a name that the source only reads also matches.
    """
    pats: list[re.Pattern] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            fn = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if fn in HELPERS:
                arg = node.args[1] if len(node.args) > 1 else next(
                    (k.value for k in node.keywords if k.arg == "name"), None)
                tpl = _template(arg) if arg is not None else None
                if tpl and not tpl.startswith(_HOLE) and "/" not in tpl:
                    pats.append(re.compile(f"{_regex(tpl)}\\.(?:{'|'.join(HELPERS[fn])})"))
        tpl = _template(node)
        if tpl is None:
            continue
        base = tpl.rsplit("/", 1)[-1]
        if len(base.split(_HOLE)[0]) >= 3 and _FILE_NAME.fullmatch(base.replace(_HOLE, "x")):
            pats.append(re.compile(_regex(base)))
    return pats


def imported_modules(source: str, root: Path) -> list[Path]:
    """The ``isg_core`` module files that ``source`` imports (one level, as found under ``root``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "isg_core":
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] == "isg_core")
    files = []
    for n in sorted(names):
        base = root.joinpath(*n.split("."))
        for cand in (base.with_suffix(".py"), base / "__init__.py"):
            if cand.is_file():
                files.append(cand)
                break
    return files


def writer_patterns(root: str | os.PathLike, writer: str) -> list[re.Pattern]:
    """:func:`written_patterns` of ``writer`` and of the ``isg_core`` modules it imports."""
    root = Path(root)
    src = (root / writer).read_text()
    pats = written_patterns(src)
    for mod in imported_modules(src, root):
        pats += written_patterns(mod.read_text())
    return pats


def unwritten(root: str | os.PathLike, rows: list[Output]) -> list[str]:
    """Rows whose writer is missing (pending rows excepted) or writes no file of that name."""
    root = Path(root)
    problems, cache = [], {}
    for r in rows:
        if not (root / r.writer).is_file():
            if not r.pending:
                problems.append(f"{r.path}: its writer {r.writer} does not exist")
            continue
        if r.writer not in cache:
            try:
                cache[r.writer] = writer_patterns(root, r.writer)
            except SyntaxError as e:
                raise IsgError(root / r.writer, f"cannot parse: {e.msg} (line {e.lineno})") from None
        name = r.path.rsplit("/", 1)[-1]
        if not any(p.fullmatch(name) for p in cache[r.writer]):
            problems.append(f"{r.path}: {r.writer} (and the isg_core modules it imports) writes no file named {name}")
    return problems


def made_by(text: str) -> str | None:
    """The command on a result's ``Made by: `...``` line, or None."""
    m = _MADE_BY.search(text)
    return m.group("command").strip() if m else None


def writer_mention(writer: str) -> str:
    """What a ``Made by:`` command must contain to name ``writer``: the notebook a
    ``notebooks/src/NN_x.py`` builds (``notebooks/NN_x.ipynb``), else the writer's path."""
    p = Path(writer)
    if p.parent.as_posix() == "notebooks/src":
        return f"notebooks/{p.stem}.ipynb"
    if p.parent.as_posix() == STUDIES:
        return f"isg study {p.stem.replace('_', '-')}"
    return p.as_posix()


def normalized_command(command: str) -> str:
    """``command`` with single spaces and without its Python interpreter (``python``,
    ``.venv/bin/python``, ``python3``), so an inventory command compares with a Made-by line."""
    words = command.split()
    if words and re.fullmatch(r"(?:\S*/)?python3?(?:\.\d+)?", words[0]):
        words = words[1:]
    return " ".join(words)


def current_command(command: str, renamed: dict[str, str] | None = None) -> str:
    """``command`` under its current name: a Made-by line of a renamed command (``renamed``,
    default :data:`RENAMED`) as the command that now does the same, with the same options; any
    other unchanged."""
    renamed = RENAMED if renamed is None else renamed
    words = normalized_command(command).split(" ")
    return " ".join([renamed[words[0]]] + words[1:]) if words[0] in renamed else command


def uncommanded(root: str | os.PathLike, rows: list[Output]) -> list[str]:
    """Listed Markdown files (present ones) without a ``Made by:`` command that names their
    writer; for a writer that is not a notebook, the Made-by command must also start with the
    inventory's command (interpreter aside), so the inventory says how the file was made.  A
    renamed command (:data:`RENAMED`) is read under its current name."""
    root = Path(root)
    problems = []
    for r in rows:
        f = root / r.path
        if not r.path.endswith(".md") or not f.is_file():
            continue
        cmd = made_by(f.read_text(errors="replace"))
        if cmd is None:
            problems.append(f"{r.path}: no 'Made by: `command`' line")
        elif writer_mention(r.writer) not in current_command(cmd):
            problems.append(f"{r.path}: its command `{cmd}` does not name {writer_mention(r.writer)}")
        elif not r.writer.startswith("notebooks/") and \
                not normalized_command(current_command(cmd)).startswith(normalized_command(r.command)):
            problems.append(f"{r.path}: made by `{cmd}`, but {INVENTORY} says `{r.command}`")
    return problems


def check(root: str | os.PathLike) -> list[str]:
    """Every problem of the inventory at ``root/results/outputs.csv``, one line each."""
    rows = read_inventory(Path(root) / INVENTORY)
    return strays(root, rows) + missing(root, rows) + unwritten(root, rows) + uncommanded(root, rows)
