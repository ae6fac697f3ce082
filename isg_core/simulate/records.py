"""Per-slide records of an ISG-Sim cohort: what lets an interrupted ``isg simulate`` resume.

:func:`~.cohort.simulate_cohort` writes the cohort's tables only once every slide is rendered.
So that a run killed after 256 of 300 slides does not render the 256 again, each slide's
worker, once the slide's TIFF and map are written, stores what it returns to the tables in
``<out>/records/<slide_id>.json`` (written atomically; JSON: reading one runs no code):

* ``format``: the layout of the record (:data:`FORMAT`);
* ``identity``: what the slide was made from and what it belongs to: the generator version,
  every :class:`~.cohort.SlideSpec` field that decides the slide's content (all but ``index``,
  its row in the cohort, and ``out``, the folder: both are taken from the spec asking, so a
  cohort moved or copied with its mtimes resumes), and the
  :func:`~isg_core.data.fingerprint.file_fingerprint` of the slide's TIFF and map as written;
* ``result``: the slide's table rows: width, height, scores, truth, z, msi, and the ``patches``
  table as columns, each with its dtype and values (floats as Python's ``repr``, which reads back
  as the same float64).

:func:`load_record` gives the stored result back only when the identity matches the spec and
both files are there with their recorded fingerprints; the tables written from it are then
byte-identical to those of an uninterrupted run.  No record, another spec or generator version,
a file missing or rewritten: the slide is rendered again.  A record that cannot be read back
(truncated, garbage, another layout of its fields) is reported with a
:class:`~isg_core.data.tiling.StaleResultWarning` and the slide rendered again.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from ..config import ALL_GENES
from ..data.fingerprint import file_fingerprint
from ..data.tiling import StaleResultWarning
from ..errors import atomic_write_text, first_line

#: the layout of a record; a record of another layout is not reused
FORMAT = 1
#: the folder of the records inside a cohort
RECORDS = "records"
#: SlideSpec fields that do not decide the slide's content (set from the spec on reuse)
_NOT_IDENTITY = ("index", "out")
#: dtypes a patches column may have, and the Python type of each of its values in JSON
_VALUE_TYPES = {"int64": int, "float64": float, "str": str, "object": str}


class SpecLike(Protocol):
    """What a record needs of a :class:`~.cohort.SlideSpec` (named here, not imported: cohort
    imports this module)."""
    __dataclass_fields__: ClassVar[dict]  # a dataclass: its fields are the identity
    index: int
    slide_id: str
    out: str


def slide_files(spec: SpecLike) -> dict[str, Path]:
    """The files a slide is rendered to: ``{"tiff": slides/<id>.tiff, "map": maps/<id>.npz}``."""
    out = Path(spec.out)
    return {"tiff": out / "slides" / f"{spec.slide_id}.tiff", "map": out / "maps" / f"{spec.slide_id}.npz"}


def record_path(spec: SpecLike) -> Path:
    """``<out>/records/<slide_id>.json``."""
    return Path(spec.out) / RECORDS / f"{spec.slide_id}.json"


def spec_identity(spec: SpecLike, generator_version: str) -> dict[str, Any]:
    """The generator version and the spec's fields that decide the slide (see the module doc)."""
    fields = {k: v for k, v in asdict(spec).items() if k not in _NOT_IDENTITY}
    return {"generator_version": generator_version, "spec": fields}


def save_record(spec: SpecLike, result: dict, generator_version: str) -> Path:
    """Store ``result`` (what :func:`~.cohort.render_slide` returns) with the slide's identity,
    the fingerprints of its files as they are now included.  Call it after both files are written."""
    identity = spec_identity(spec, generator_version)
    identity["files"] = {k: file_fingerprint(p) for k, p in slide_files(spec).items()}
    stored = {k: result[k] for k in ("width", "height", "scores", "truth", "z", "msi")}
    stored["scores"] = {k: float(v) for k, v in stored["scores"].items()}  # np.float64 -> float: same repr
    stored["patches"] = _encode_frame(result["patches"])
    rec = {"format": FORMAT, "identity": identity, "result": stored}
    # allow_nan (the default): NaN and inf are written as JSON's extension and read back as themselves
    return atomic_write_text(record_path(spec), json.dumps(rec) + "\n")


def load_record(spec: SpecLike, generator_version: str) -> dict | None:
    """The result stored for ``spec`` if its record matches the spec and its files (module doc),
    with ``index`` and ``path`` of this spec; else None (with a warning for a damaged record)."""
    path = record_path(spec)
    if not path.exists():
        return None
    try:
        rec = json.loads(path.read_bytes())
        if not isinstance(rec, dict) or rec.get("format") != FORMAT:
            raise ValueError(f"format {rec.get('format') if isinstance(rec, dict) else None}, "
                             f"this isg writes {FORMAT}")
        identity = dict(rec["identity"])
        files = identity.pop("files")
        if identity != spec_identity(spec, generator_version):
            return None  # made for another slide or by another generator: not damaged, just not this one
        for key, f in slide_files(spec).items():
            # the record belongs to the files it was written with: a slide re-rendered, replaced or
            # copied over since then is not described by it
            if not f.exists() or file_fingerprint(f) != files[key]:
                return None
        result = _decode_result(rec["result"])
    except Exception as e:  # noqa: BLE001 - truncated, garbage, a missing or odd field: all mean "render again"
        warnings.warn(f"{path}: damaged record ({first_line(e)}); rendering {spec.slide_id} again",
                      StaleResultWarning, stacklevel=2)
        return None
    return {"index": spec.index, "slide_id": spec.slide_id, "path": str(slide_files(spec)["tiff"]), **result}


def _decode_result(stored: dict) -> dict:
    """The stored result, checked: what the cohort tables need, of the types render_slide returns
    and in its order."""
    genes = {"scores": None, "truth": ALL_GENES, "z": ALL_GENES}
    out: dict[str, Any] = {}
    for k in ("width", "height", "scores", "truth", "z", "msi"):
        v = stored[k]
        if k in genes:
            if not isinstance(v, dict) or not all(type(x) is float for x in v.values()):
                raise ValueError(f"{k} is not a table of floats")
            if genes[k] is not None and set(v) != set(genes[k]):
                raise ValueError(f"{k} lacks gene(s) or has others")
            v = dict(v)
        elif type(v) is not int:
            raise ValueError(f"{k} is not an integer")
        out[k] = v
    out["patches"] = _decode_frame(stored["patches"])
    return out


def _encode_frame(df: pd.DataFrame) -> dict:
    """A table as its columns, their dtypes and their values (see :data:`_VALUE_TYPES`)."""
    dtypes = [str(d) for d in df.dtypes]
    for c, d in zip(df.columns, dtypes):
        if d not in _VALUE_TYPES:  # a programming error: the record could not give this column back
            raise TypeError(f"cannot record column {c!r} of dtype {d}")
    return {"columns": [str(c) for c in df.columns], "dtypes": dtypes,
            "values": [df[c].tolist() for c in df.columns]}


def _decode_frame(spec: dict) -> pd.DataFrame:
    """The table :func:`_encode_frame` stored: same columns, order, dtypes and values, RangeIndex."""
    columns, dtypes, values = spec["columns"], spec["dtypes"], spec["values"]
    if not (len(columns) == len(dtypes) == len(values)) or len({len(v) for v in values}) > 1:
        raise ValueError("patches columns of unequal lengths")
    cols = {}
    for c, d, v in zip(columns, dtypes, values):
        kind = _VALUE_TYPES.get(d)
        if kind is None or not all(type(x) is kind for x in v):  # e.g. 1.5 in an int64 column
            raise ValueError(f"patches column {c!r} does not hold {d} values")
        # an empty object array keeps an empty column its dtype; NumPy's own for numbers
        arr = np.array(v, dtype=object) if kind is str else np.array(v, dtype=d)
        cols[c] = pd.Series(arr, dtype=d, copy=False)
    df = pd.DataFrame(cols) if cols else pd.DataFrame(index=pd.RangeIndex(0))
    if [str(x) for x in df.dtypes] != list(dtypes):
        raise ValueError(f"patches read back with dtypes {[str(x) for x in df.dtypes]}")
    return df
