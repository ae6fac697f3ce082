"""The notebooks' measured runtimes at a profile, for their opening cells: ``results/<profile>/notebook_timings.csv``.

``isg reproduce`` writes a ``timings.csv`` (notebook, profile, seconds) beside the notebooks it runs.
Give this tool the one of a from-scratch run (every cache empty: ``make clean-data && make
reproduce``) and, when there is one, the one of a rerun with everything cached; each notebook's
opening cell (:func:`isg_core.report.tutorial.runtime_note`) then states both.

    python tools/notebook_timings.py --profile quick --fresh FRESH.csv [--cached CACHED.csv] --measured "..."
"""
from __future__ import annotations

import argparse
import shlex
import sys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--fresh", required=True, help="timings.csv of a from-scratch run")
    ap.add_argument("--cached", help="timings.csv of a rerun with every result cached")
    ap.add_argument("--measured", default="", help="when, where and on which commit (stated in each notebook)")
    args = ap.parse_args()

    import numpy as np
    import pandas as pd

    from isg_core.errors import IsgError
    from isg_core.report.outputs import write_table
    from isg_core.report.tutorial import TIMINGS

    def read(path: str) -> pd.Series:
        try:
            t = pd.read_csv(path)
        except (OSError, pd.errors.ParserError) as e:
            raise IsgError(path, f"cannot read a timings table ({e})") from None
        if not {"notebook", "seconds"} <= set(t.columns):
            raise IsgError(path, "a timings table needs the columns notebook and seconds")
        return t.set_index("notebook").seconds

    try:
        fresh = read(args.fresh)
        cached = read(args.cached) if args.cached else pd.Series(dtype=float)
    except IsgError as e:
        sys.exit(f"isg: error: {e}")
    out = pd.DataFrame({"notebook": fresh.index, "fresh_s": fresh.to_numpy(),
                        "cached_s": [cached.get(n, np.nan) for n in fresh.index], "measured": args.measured})
    total = pd.DataFrame([{"notebook": "total", "fresh_s": out.fresh_s.sum(), "cached_s": out.cached_s.sum(min_count=1),
                           "measured": args.measured}])
    command = "python tools/notebook_timings.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    write_table(pd.concat([out, total], ignore_index=True), "notebook_timings", args.profile, command,
                title=f"Notebook runtimes at {args.profile}: from scratch and cached (seconds)",
                note="fresh_s: `isg reproduce` from empty caches (the cohort simulated just before; simulation "
                     "is not included); cached_s: a rerun that finds every result on disk.", floatfmt=".0f")
    print(f"{TIMINGS} written")


if __name__ == "__main__":
    main()
