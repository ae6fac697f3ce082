# shim until the merge: import from isg_core.models
"""Moved to :mod:`isg_core.models.baselines.he2rna`."""
from isg_core.models.baselines.he2rna import (  # noqa: F401
    DEFAULT_KS,
    HE2RNA,
    HE2RNAMSI,
    HE2RNAConfig,
    HE2RNAOnFeatures,
    kmeans,
    supertiles,
)
