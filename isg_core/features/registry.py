"""Every feature set by name: what encodes it, on which patches, whether it has a local cube.

A feature set is stored in each slide's HDF5 as ``features/<name>`` (f_i, and R_i where it has a
local cube; :mod:`isg_core.features.extract`), except the oracle's, which is ISG-Sim's truth
(:mod:`isg_core.features.oracle`), read at run time.  One :class:`FeatureSet` record per name;
:func:`get_feature_set` is the one parser of a feature set's name:

* ``fe``, ``resnet50``, ...: a registered name;
* ``fe-without-fold3``: a name registered as a template ``fe-without-fold<k>`` (k: a fold);
* ``fe:global``: a view of a set's f_i alone (Table 5's probes), whatever its local cube.

:func:`register_feature_set` adds one (a new extractor needs no other edit to be extracted by
:func:`isg_core.features.workflow.ensure_features` and read by the experiments).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from ..errors import IsgError
from .extract import DescriptorEncoder, PatchEncoder, ResNet50Encoder, StyleGANEncoder

#: the placeholder of a fold in a template name (``fe-without-fold<k>``)
FOLD = "<k>"
#: the suffix of a view of a set's global features alone
GLOBAL_VIEW = ":global"


@dataclass(frozen=True)
class EncoderContext:
    """What an encoder factory may use: the profile, the cohort's folder, progress bars, the device,
    and ``extractor(scale, held_out=None)``: the checkpoint of the profile's trained ``scale``
    extractor (``"global"`` / ``"local"``; trained now if need be), without fold ``held_out``."""

    profile: object
    cohort_root: "str | os.PathLike | None"
    progress: bool
    device: str | None
    extractor: Callable[..., Path]


@dataclass(frozen=True)
class FeatureSet:
    """One feature set.

    * ``name``: as registered (a template holds ``<k>``: ``fe-without-fold<k>``);
    * ``encoder``: ``encoder(feature_set, context) -> PatchEncoder`` (:class:`EncoderContext`); None
      for a set that is not extracted (the oracle: ISG-Sim's truth, read at run time);
    * ``patches``: the ``patches=`` set it is encoded on (:func:`isg_core.features.extract.
      extract_cohort`): what the tables read of it;
    * ``local``: whether it has a local cube R_i;
    * ``fold``, ``global_only``: filled in by :func:`get_feature_set` (the fold of a template's
      name; a ``:global`` view)."""

    name: str
    encoder: "Callable[[FeatureSet, EncoderContext], PatchEncoder] | None"
    patches: str = "kept"
    local: bool = True
    fold: int | None = None
    global_only: bool = False

    @property
    def key(self) -> str:
        """The stored name (``features/<key>`` in the HDF5): the template with its fold filled in."""
        return self.name.replace(FOLD, str(self.fold)) if self.fold is not None else self.name

    @property
    def extracted(self) -> bool:
        """Extracted into the slides' HDF5 (False: the oracle's truth, read at run time)."""
        return self.encoder is not None

    @property
    def reads_local(self) -> bool:
        """Has a local cube and is not a ``:global`` view."""
        return self.local and not self.global_only

    def make_encoder(self, context: EncoderContext) -> PatchEncoder:
        if self.encoder is None:
            raise IsgError(None, f"feature set {self.key!r} is not extracted (it is read at run time)")
        return self.encoder(self, context)


#: every feature set by its registered name, in registration order
FEATURE_SETS: dict[str, FeatureSet] = {}


def register_feature_set(feature_set: FeatureSet) -> FeatureSet:
    """Add ``feature_set`` under its name (a template name holds ``<k>`` once, at the end)."""
    name = feature_set.name
    if name in FEATURE_SETS:
        raise ValueError(f"feature set {name!r} is registered already")
    if ":" in name or (FOLD in name and not name.endswith(FOLD)):
        raise ValueError(f"a feature set's name has no ':' and '<k>' only at its end, not {name!r}")
    FEATURE_SETS[name] = feature_set
    return feature_set


def unregister_feature_set(name: str) -> None:
    """Remove a feature set :func:`register_feature_set` added (a test's toy set)."""
    FEATURE_SETS.pop(name)


def feature_set_names() -> str:
    return ", ".join(FEATURE_SETS)


def get_feature_set(name: str) -> FeatureSet:
    """The record of feature set ``name``: a registered name, a template's name with its fold
    (``fe-without-fold3``), either with ``:global`` (f_i alone).  Unknown: an :class:`IsgError`."""
    base, sep, view = str(name).partition(":")
    if sep and view != GLOBAL_VIEW[1:]:
        raise IsgError(None, f"unknown feature set {name!r}: only ':global' follows a name "
                             f"({feature_set_names()})")
    found = FEATURE_SETS.get(base)
    if found is None:
        for template, fs in FEATURE_SETS.items():
            m = re.fullmatch(re.escape(template[: -len(FOLD)]) + r"(\d+)", base) if template.endswith(FOLD) else None
            if m:
                found = replace(fs, fold=int(m.group(1)))
                break
    if found is None:
        raise IsgError(None, f"unknown feature set {name!r} (choose from {feature_set_names()})")
    return replace(found, global_only=True) if sep else found


# --- the built-in feature sets ---------------------------------------------------------------------
def _fe(fs: FeatureSet, ctx: EncoderContext) -> PatchEncoder:
    """The trained E_G and E_L; with a fold, the pair trained without that fold's slides."""
    enc = StyleGANEncoder(ctx.extractor("global", held_out=fs.fold), ctx.extractor("local", held_out=fs.fold),
                          device=ctx.device)
    if fs.fold is not None:
        enc.name = fs.key  # stored as features/<name>, beside the all-slide extractors' features/fe
    return enc


def _fe_untrained(fs: FeatureSet, ctx: EncoderContext) -> PatchEncoder:
    """E_G's shapes with random weights, no local cube: a control."""
    return StyleGANEncoder(ctx.extractor("global"), None, device=ctx.device, untrained=True)


def _resnet50(fs: FeatureSet, ctx: EncoderContext) -> PatchEncoder:
    return ResNet50Encoder(ctx.profile.features.resnet_input, device=ctx.device)


def _descriptor(fs: FeatureSet, ctx: EncoderContext) -> PatchEncoder:
    return DescriptorEncoder(device="cpu")


# The patches each set is encoded on: what the tables read of it.  ``fe`` serves every selector's
# and every Table 4 threshold's row; ResNet50 serves HE2RNA on Otsu's and Shannon's patches
# (Tables 1, 3, 5); every other set (the Table 5 controls, the per-fold extractors of the fold
# study) Shannon's.  A row that keeps a patch outside its features stops with an error.
#: our extractors, E_G and E_L (paper Sec. 3.2)
FE = register_feature_set(FeatureSet("fe", _fe, patches="candidates"))
#: the FE architecture with random weights (a control; f_i only)
register_feature_set(FeatureSet("fe-untrained", _fe_untrained, local=False))
#: E_G and E_L trained on every slide except fold k's (fold k's test slides unseen, as a per-fold
#: extractor would have them)
register_feature_set(FeatureSet(f"fe-without-fold{FOLD}", _fe))
#: pooled ResNet50 features of the global patch (ImageNet when cached, else random; no local cube)
register_feature_set(FeatureSet("resnet50", _resnet50, patches="kept:shannon,otsu", local=False))
#: no network: colour statistics of the global patch and of each local patch
register_feature_set(FeatureSet("descriptor", _descriptor))
#: ISG-Sim's true per-patch cell counts (:mod:`isg_core.features.oracle`): the simulator's truth,
#: not a stored extraction
ORACLE = register_feature_set(FeatureSet("oracle", None)).name
#: the same truth, only what pixels show: T and B cells as one lymphocyte-like count, no
#: lymphocyte context (:data:`isg_core.features.oracle.ORACLE_VIEWS`)
register_feature_set(FeatureSet("oracle-visible", None))


def _classical(fs: FeatureSet, ctx: EncoderContext) -> PatchEncoder:
    from .nuclei import ClassicalEncoder  # scikit-image's filters: imported only when used
    return ClassicalEncoder(ctx.profile.tiling.mpp)


#: no network, not the paper's: the descriptor plus nucleus count, area fraction, area and
#: haematoxylin density of each patch and local patch (:mod:`isg_core.features.nuclei`)
register_feature_set(FeatureSet("classical", _classical))
