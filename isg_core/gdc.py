"""A cohort from a GDC download: ``isg cohort from-gdc`` and ``isg cohort gdc-query`` (placeholder, being written)."""
from __future__ import annotations


def add_cohort_parser(sub) -> None:
    """Register ``isg cohort ...`` on the ``isg`` subparsers."""
    s = sub.add_parser("cohort", help="build a cohort from a GDC download")
    s.add_subparsers(dest="cohort_command", required=True)
