"""What a table's config records of what made it: the cohort's fingerprint and the environment."""
import dataclasses

import pandas as pd

from isg_core.cohorts.folder import Cohort
from isg_core.devices import CPU_FLAGS, cpu_description, environment

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse sse2 avx avx2 fma bmi2
processor\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse sse2 avx avx2 fma bmi2
"""


def test_cpu_description_reads_the_model_and_only_the_listed_flags():
    d = cpu_description(CPUINFO)
    assert d == {"cpu": "AMD EPYC 7B13", "cpu flags": ["avx", "avx2", "fma"]}
    arm = cpu_description("CPU implementer\t: 0x41\nFeatures\t: fp asimd sve\n")
    assert arm["cpu flags"] == ["asimd", "sve"] and set(arm["cpu flags"]) <= set(CPU_FLAGS)


def test_environment_records_torch_and_numpy_as_installed():
    import numpy
    import torch

    env = environment()
    assert env["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert env["numpy"] == numpy.__version__
    assert env["torch threads"] == torch.get_num_threads()


def cohort(**change):
    man = pd.DataFrame({"slide_id": ["a", "b"], "path": ["/x/a.tif", "/x/b.tif"], "cancer_type": ["LIHC", "COAD"],
                        "fold": [0, 1]})
    targets = pd.DataFrame({"G1": [1.0, 2.0]}, index=["a", "b"])
    c = Cohort(root=None, manifest=man, targets=targets, meta={})
    return dataclasses.replace(c, **change)


def test_cohort_fingerprint_follows_slides_folds_and_targets_not_paths():
    base = cohort()
    moved = cohort(manifest=base.manifest.assign(path=["/elsewhere/a.tif", "/elsewhere/b.tif"]))
    refolded = cohort(manifest=base.manifest.assign(fold=[1, 0]))
    retargeted = cohort(targets=base.targets.assign(G1=[1.0, 2.001]))
    assert len(base.fingerprint) == 16
    assert moved.fingerprint == base.fingerprint
    assert len({base.fingerprint, refolded.fingerprint, retargeted.fingerprint}) == 3


def test_every_table_config_carries_the_cohort_fingerprint_and_environment():
    from isg_core.config import get_profile
    from isg_core.experiments.tables import cohort_config

    c = cohort(meta={"simulated": True, "parameters": {"seed": 1}})
    cfg = cohort_config(get_profile("quick"), c)
    assert cfg["cohort_seed"] == 1 and cfg["cohort_fingerprint"] == c.fingerprint
    assert cfg["environment"]["numpy"] and "cpu flags" in cfg["environment"]
