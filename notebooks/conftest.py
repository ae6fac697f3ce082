"""nbval settings for the notebooks (``make test`` runs them with ``--nbval-lax``).

nbval waits at most 5 s (hard-coded) for a cell's outputs on the kernel's IOPub channel after the
cell has finished.  On the 2-core CI machine, after a cell that trained models for half a minute,
those messages were seen to lag the reply by more than that (notebook 05, Table 1 at smoke: 2
failures in 5 fresh runs, each with the cell itself finished), and the cell was failed without an
error of its own.  The wait is raised to 120 s; a cell that raises still fails at once, and a cell
that runs too long still hits nbval's own ``--nbval-cell-timeout``.
"""
from __future__ import annotations

OUTPUT_TIMEOUT_S = 120


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if type(item).__name__ == "IPyNbCell" and hasattr(item, "output_timeout"):
            item.output_timeout = max(item.output_timeout, OUTPUT_TIMEOUT_S)
