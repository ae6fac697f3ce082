"""The studies ``isg study NAME`` runs: a name, a one-line description, options, and the function
that runs it.

Adding a study is one module here with ``run(args, command)`` (it writes its tables with
``write_table(..., command, ...)``, so each records the ``isg study`` line that made it) and one
:func:`register` call below.  The registry imports no study module: a study's module (torch, the
extractors) is imported when it runs, so ``isg --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import shlex
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..config import PROFILES
from ..errors import IsgError


@dataclass(frozen=True)
class Option:
    """One option of a study: ``argparse.ArgumentParser.add_argument(*flags, **kwargs)``."""

    flags: tuple[str, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.flags or not all(f.startswith("-") for f in self.flags):
            raise ValueError(f"a study option is a flag (--name), got {self.flags}")

    @property
    def dest(self) -> str:
        """The attribute of the parsed arguments that holds its value (as argparse names it)."""
        return self.kwargs.get("dest") or self.flag.lstrip("-").replace("-", "_")

    @property
    def flag(self) -> str:
        """The flag the recorded command spells it with: the first long one."""
        return next((f for f in self.flags if f.startswith("--")), self.flags[0])


def option(*flags: str, **kwargs: Any) -> Option:
    return Option(tuple(flags), kwargs)


@dataclass(frozen=True)
class Study:
    """A study: ``entry`` is ``"module:function"``, imported when the study runs and called as
    ``function(args, command)`` with the parsed options and the command line to record."""

    name: str
    description: str  # one line: `isg study --help` lists it
    entry: str
    options: tuple[Option, ...] = ()

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        for o in self.options:
            parser.add_argument(*o.flags, **o.kwargs)

    def command(self, args: argparse.Namespace) -> str:
        """The command line that runs the study with ``args``: ``isg study NAME`` and every option
        that has a value, in the order the study declares them (defaults included, so the line
        alone says what ran); an option given no values is written as its bare flag."""
        words = ["isg", "study", self.name]
        for o in self.options:
            value = getattr(args, o.dest, None)
            if value is None or value is False:
                continue
            words.append(o.flag)  # an empty list stays a bare flag: ``--only`` alone is not its default
            if isinstance(value, (list, tuple)):
                words += [str(v) for v in value]
            elif value is not True:
                words.append(str(value))
        return shlex.join(words)

    def function(self) -> Callable[[argparse.Namespace, str], None]:
        module, _, name = self.entry.partition(":")
        return getattr(importlib.import_module(module), name)

    def run(self, args: argparse.Namespace) -> None:
        """Run the study with the parsed ``args``; its tables record :meth:`command`."""
        self.function()(args, self.command(args))


#: every study ``isg study`` runs, by name, in the order ``isg study --help`` lists them
STUDIES: dict[str, Study] = {}


def register(study: Study) -> Study:
    if study.name in STUDIES:
        raise ValueError(f"study {study.name!r} is registered twice")
    STUDIES[study.name] = study
    return study


def get_study(name: str) -> Study:
    try:
        return STUDIES[name]
    except KeyError:
        raise IsgError(None, f"unknown study {name!r} (choose one of {', '.join(STUDIES)})") from None


def run_study(name: str, args: argparse.Namespace) -> None:
    """Run study ``name`` with the parsed ``args``; its tables record ``isg study NAME ...``."""
    get_study(name).run(args)


# ---- the options several studies share ---------------------------------------------------

def profile_option() -> Option:
    return option("--profile", default="quick", choices=tuple(PROFILES), help="sizes and budgets (default quick)")


def device_option() -> Option:
    return option("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")


# ---- the studies ---------------------------------------------------------------------------

register(Study(
    "extractor-choices",
    "choose how E_L trains: variants of Eq. 2's objective and bank, probed on the development cohort",
    "isg_core.studies.extractor_choices:run",
    (profile_option(),
     option("--only", nargs="*", type=int, help="indices of VARIANTS to run (default: all)"),
     device_option())))

register(Study(
    "extractor-limits",
    "where the extractors lose the cells: input, reconstruction and code probed alike (development cohort)",
    "isg_core.studies.extractor_limits:run",
    (profile_option(), device_option())))

register(Study(
    "extractor-objectives",
    "autoencoders that autoencode: Eq. 2's levers, two seeds each, reconstruction and probes (development cohort)",
    "isg_core.studies.extractor_objectives:run",
    (profile_option(),
     option("--scales", nargs="+", default=["local"], choices=("local", "global"),
            help="which extractors: local (E_L, default), global (E_G)"),
     option("--only", nargs="*", type=int,
            help="indices of OBJECTIVES to run (default: all; --only with no index: none, e.g. --widths alone)"),
     option("--seeds", nargs="+", type=int, default=[0, 1], help="training seeds (default 0 1)"),
     option("--widths", nargs="*", type=int, help="code widths d for a rate-distortion curve (e.g. 16 32 64 128)"),
     option("--local-size", type=int, default=None,
            help="E_L's local patch q in px (default the profile's, 32; 16 is about one nucleus), tiled apart"),
     option("--threads", type=int, default=2,
            help="torch threads (default 2; 1 to run E_L and E_G as two processes on 2 cores)"),
     device_option())))
register(Study(
    "extractor-folds",
    "all-slide against per-fold extractor training, scored on one fold's test slides",
    "isg_core.studies.extractor_folds:run",
    (profile_option(),
     option("--fold", type=int, default=0, help="the fold whose slides the second arm's extractors never see "
                                                "(default 0)"),
     device_option())))

register(Study(
    "budget",
    "the slide model's training budget by inner validation on the development cohort",
    "isg_core.studies.budget:run",
    (profile_option(),
     option("--epochs", type=int, default=40, help="epochs to train without early stopping (default 40)"),
     device_option())))

register(Study(
    "visible-oracle",
    "ISG against CycleMLP, ViT-MB and ABMIL on the full and the visible oracle: is global-guides-local "
    "inference there? (development cohort)",
    "isg_core.studies.visible_oracle:run",
    (profile_option(), device_option())))

register(Study(
    "feature-probe",
    "Table 5's probe on the development cohort: the chosen extractor's features against a random ResNet50 "
    "and the colour statistics, Holm-adjusted",
    "isg_core.studies.feature_probe:run",
    (profile_option(), device_option())))
