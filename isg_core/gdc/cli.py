"""The ``isg cohort`` subcommands, ``from-gdc`` and ``gdc-query``, on the ``isg`` parser
(:func:`add_cohort_parser`, called by :func:`isg_core.cli.build_parser`)."""
from __future__ import annotations

from pathlib import Path

from .build import build_cohort_from_gdc, check_cohort
from .query import write_gdc_query
from .report import FromGdcConfig

# --------------------------------------------------------------------------- CLI


def _cmd_from_gdc(args) -> None:
    cfg = FromGdcConfig(Path(args.slides), Path(args.expression), Path(args.sample_sheet), Path(args.out),
                        Path(args.clinical) if args.clinical else None, folds=args.folds, seed=args.seed)
    rep = build_cohort_from_gdc(cfg)
    print(rep.to_markdown(cfg, max_items=10), end="")
    print(f"{cfg.out}: {rep.summary()}")
    check_cohort(cfg.out)


def _cmd_gdc_query(args) -> None:
    paths = write_gdc_query(args.project, args.out)
    for p in paths:
        print(p)
    print(f"next: bash {Path(args.out) / 'download.sh'}  (needs curl, gdc-client and the network)")


def add_cohort_parser(sub) -> None:
    """Register ``isg cohort from-gdc`` and ``isg cohort gdc-query`` on the ``isg`` subparsers."""
    s = sub.add_parser("cohort", help="build a cohort from a GDC download")
    cs = s.add_subparsers(dest="cohort_command", required=True)

    f = cs.add_parser("from-gdc", help="manifest, targets and report from gdc-client downloads and the sample sheet")
    f.add_argument("--slides", required=True, help="folder of the slide download (<uuid>/<name>.svs)")
    f.add_argument("--expression", required=True, help="folder of the STAR-Counts download (may be --slides)")
    f.add_argument("--sample-sheet", required=True, help="GDC sample sheet (portal export or API TSV)")
    f.add_argument("--out", required=True, help="cohort folder to write")
    f.add_argument("--clinical", help="GDC clinical.tsv: join stage, vital status ... into clinical.csv")
    f.add_argument("--folds", type=int, default=5, help="cross-validation folds, by patient (default 5)")
    f.add_argument("--seed", type=int, default=0, help="seed of the fold assignment (default 0)")
    f.set_defaults(func=_cmd_from_gdc)

    q = cs.add_parser("gdc-query", help="write the GDC API requests and download commands for projects")
    q.add_argument("--project", required=True, nargs="+", action="extend", help="e.g. TCGA-LIHC (several allowed)")
    q.add_argument("--out", required=True, help="folder for the requests, download.sh and README.md")
    q.set_defaults(func=_cmd_gdc_query)
