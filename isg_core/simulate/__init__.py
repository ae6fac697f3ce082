"""ISG-Sim: a simulated H&E cohort with known gene-expression ground truth.

Slides are assembled from real H&E texture (the project's sample images), with drawn cell
populations, three cancer-type architectures and textureless artefacts; bulk expression of
the paper's genes follows cell counts visible at the local scale, modulated by context
visible at the global scale, plus noise.  Everything it produces is SIMULATED.

Public API: :func:`simulate_cohort` and :func:`patch_truth`.  See ``data/README.md``.
"""
from .cohort import GENERATOR_VERSION, patch_truth, simulate_cohort

__all__ = ["simulate_cohort", "patch_truth", "GENERATOR_VERSION"]
