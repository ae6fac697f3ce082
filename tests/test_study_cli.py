"""`isg study NAME`: one subcommand per study of the registry, and the command each study's tables record.

Nothing here runs a real study (tens of minutes at quick): parsing, help, errors, and a toy study
registered for the test that writes one table."""
from __future__ import annotations

import argparse
import ast

import pandas as pd
import pytest

from isg_core.cli import build_parser, main
from isg_core.errors import IsgError
from isg_core.paths import repo_root
from isg_core.report.outputs import write_table
from isg_core.studies.registry import STUDIES, Study, get_study, option, profile_option, register
from tests import results_inventory as ri

PACKAGED = ("extractor-choices", "extractor-limits", "extractor-objectives", "extractor-folds", "budget",
            "visible-oracle", "feature-probe")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def study_names() -> list[str]:
    return list(subcommands(subcommands(build_parser())["study"]))


def test_the_parser_lists_exactly_the_registered_studies():
    assert list(STUDIES) == list(PACKAGED)
    assert study_names() == list(STUDIES)


@pytest.mark.parametrize("name", PACKAGED)
def test_study_help(name, capsys):
    with pytest.raises(SystemExit) as e:
        main(["study", name, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: isg study {name}") and "--profile" in out and "--device" in out
    assert " ".join(STUDIES[name].description.split()[:4]) in " ".join(out.split())


def test_study_help_lists_each_study_with_its_description(capsys):
    with pytest.raises(SystemExit):
        main(["study", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for study in STUDIES.values():
        assert study.name in out and " ".join(study.description.split()[:3]) in out


@pytest.mark.parametrize("argv, message", [
    (["study", "no-such-study"], "invalid choice: 'no-such-study'"),
    (["study"], "the following arguments are required: NAME"),
])
def test_an_unknown_or_missing_study_is_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("isg study: error:") and message in err and "\n" not in err
    assert all(name in err for name in STUDIES) or not argv[1:]


def test_get_study_of_an_unknown_name_is_one_line():
    with pytest.raises(IsgError, match="unknown study 'nope' \\(choose one of extractor-choices, ") as e:
        get_study("nope")
    assert "\n" not in str(e.value)


def test_a_study_is_registered_once():
    with pytest.raises(ValueError, match="registered twice"):
        register(Study("budget", "again", "isg_core.studies.budget:run"))


def test_each_study_is_its_module_with_a_run_function():
    """`isg study NAME` runs isg_core/studies/NAME.py's run (dashes as underscores): the inventory
    of results/ names a study's module as the writer of its tables."""
    for study in STUDIES.values():
        module, _, fn = study.entry.partition(":")
        assert module == "isg_core.studies." + study.name.replace("-", "_") and fn == "run"
        path = repo_root() / (module.replace(".", "/") + ".py")
        defs = {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}
        assert fn in defs, path


def test_the_inventory_commands_are_what_the_studies_record():
    """Each inventory command of a study, parsed, gives back itself as the command its tables
    record (defaults included), so rerunning it makes the same Made-by line."""
    rows = [r for r in ri.read_inventory(repo_root() / ri.INVENTORY) if r.writer.startswith(ri.STUDIES + "/")]
    assert {r.command.split()[2] for r in rows} == set(PACKAGED)  # every study has committed results
    for r in rows:
        words = r.command.split()
        assert words[:2] == ["isg", "study"]
        args = build_parser().parse_args(words[1:])
        assert STUDIES[args.study].command(args) == r.command


def test_the_recorded_command_has_every_option_given_or_defaulted():
    p = build_parser()
    args = p.parse_args(["study", "extractor-choices", "--only", "0", "2", "--device", "cpu"])
    assert STUDIES["extractor-choices"].command(args) == \
        "isg study extractor-choices --profile quick --only 0 2 --device cpu"
    args = p.parse_args(["study", "extractor-folds", "--profile", "smoke", "--fold", "3"])
    assert STUDIES["extractor-folds"].command(args) == "isg study extractor-folds --profile smoke --fold 3"


def toy_run(args, command: str) -> None:
    """The toy study: one table whose rows are the options it ran with."""
    if args.n < 0:
        raise IsgError(None, f"--n must be at least 0, got {args.n}")
    df = pd.DataFrame({"n": [args.n], "label": [args.label], "fast": [args.fast]})
    write_table(df, "toy_study", args.profile, command, {"n": args.n}, title="A toy study")


TOY = Study("toy", "a toy study registered by the test", "tests.test_study_cli:toy_run",
            (profile_option(), option("--n", type=int, default=2), option("--label"),
             option("--fast", action="store_true")))


def test_a_registered_study_runs_through_cmd_study_and_records_its_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(STUDIES, "toy", TOY)
    monkeypatch.setenv("ISG_RESULTS_DIR", str(tmp_path))
    assert study_names()[-1] == "toy"  # one registration, and the parser has it
    assert main(["study", "toy", "--profile", "smoke", "--label", "two words", "--fast"]) == 0
    md = (tmp_path / "smoke" / "toy_study.md").read_text()
    assert "Made by: `isg study toy --profile smoke --n 2 --label 'two words' --fast`" in md
    assert pd.read_csv(tmp_path / "smoke" / "toy_study.csv").to_dict("records") == [
        {"n": 2, "label": "two words", "fast": True}]
    assert ri.made_by(md) == "isg study toy --profile smoke --n 2 --label 'two words' --fast"


def test_a_failing_study_is_one_line(tmp_path, monkeypatch, capsys):
    """A study's bad input ends like every isg command: one line, status 2, no table."""
    monkeypatch.setitem(STUDIES, "toy", TOY)
    monkeypatch.setenv("ISG_RESULTS_DIR", str(tmp_path))
    assert main(["study", "toy", "--n", "-1"]) == 2
    assert capsys.readouterr().err == "isg: error: --n must be at least 0, got -1\n"
    assert not (tmp_path / "quick" / "toy_study.md").exists()


def test_an_option_given_no_values_is_recorded_as_its_bare_flag():
    """``--only`` alone (no objective, the --widths curve by itself) is not ``--only`` left out
    (every objective): the recorded command must give back the same arguments."""
    words = "isg study extractor-objectives --profile quick --scales local --only --seeds 0 1 --widths 16 32".split()
    args = build_parser().parse_args(words[1:])
    assert args.only == []
    line = STUDIES["extractor-objectives"].command(args)
    assert " --only --seeds " in line
    assert build_parser().parse_args(line.split()[1:]).only == []
