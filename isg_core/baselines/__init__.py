# shim until the merge: import from isg_core.models
"""Moved to :mod:`isg_core.models.baselines`."""
from isg_core.models.baselines import *  # noqa: F401,F403
from isg_core.models.baselines import __all__  # noqa: F401
