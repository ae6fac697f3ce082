"""Where tensors go, and what computes them: one rule for every part of the package that picks a
device, and the record of the environment a result was computed on.

A table is reproducible byte for byte on one environment and, across environments, only within
its intervals (floating-point reductions differ between library builds and CPU instruction sets),
so each result table's config records the environment beside the cohort that made it.
"""
from __future__ import annotations

import platform
import sys
from functools import lru_cache
from importlib import metadata

import torch


def resolve_device(device: "str | torch.device | None" = None) -> torch.device:
    """``device`` as a :class:`torch.device`; None picks CUDA when it is available, else the CPU."""
    if device is not None and str(device) != "":
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")

#: the distributions whose numerics reach a table (pixels, features, training, statistics)
PACKAGES = ("torch", "torchvision", "numpy", "scipy", "scikit-image", "pandas", "tifffile",
            "imagecodecs", "openslide-python", "h5py", "Pillow")
#: CPU instruction sets that change which kernels numerical libraries run
CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "asimd", "sve")


def cpu_description(cpuinfo: str) -> dict:
    """The CPU model and the :data:`CPU_FLAGS` it has, from the text of ``/proc/cpuinfo``."""
    model, flags = platform.processor() or platform.machine(), set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model", "hardware") and value.strip():
            model = value.strip()
        elif key in ("flags", "features"):
            flags |= set(value.split())
    return {"cpu": model, "cpu flags": [f for f in CPU_FLAGS if f in flags]}


@lru_cache(maxsize=1)
def _installed() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = cpu_description(fh.read())
    except OSError:  # not Linux
        cpu = cpu_description("")
    return {"python": sys.version.split()[0], "platform": platform.platform(terse=True), **versions, **cpu}


def environment() -> dict:
    """Python, the :data:`PACKAGES` installed (``None`` if absent), the CPU and torch's threads now."""
    return {**_installed(), "torch threads": torch.get_num_threads()}
