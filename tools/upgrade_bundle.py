"""Rewrite a model bundle of the first format (``isg-bundle/1``) in the current one.

    python tools/upgrade_bundle.py OLD.pt NEW.pt     (NEW may be OLD: the file is replaced atomically)

``isg predict`` reads old bundles as they are (they are converted in memory on load); this writes
the conversion (:func:`isg_core.deploy.bundle.upgrade`) to disk, checked by building the model once.
"""
from __future__ import annotations

import argparse
import sys

from isg_core.deploy.bundle import BUNDLE_FORMAT, upgrade_bundle_file
from isg_core.errors import IsgError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", help="bundle to read (any format)")
    ap.add_argument("new", help=f"where to write it in {BUNDLE_FORMAT}")
    args = ap.parse_args(argv)
    try:
        out = upgrade_bundle_file(args.old, args.new)
    except IsgError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.old} -> {out} ({BUNDLE_FORMAT})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
