"""Read annotated series in the format of the Turing Change Point Dataset (TCPD).

TCPD (van den Burg & Williams 2020, github.com/alan-turing-institute/TCPD) stores
each series as ``<name>.json`` (``{"name", "n_obs", "n_dim", "time": {"index": [...]},
"series": [{"label", "raw": [...]}, ...]}``, missing values ``null``) and the
annotations of all series in one ``annotations.json`` (``{name: {annotator:
[indices]}}``; indices are positions in the series, 0-based). This module turns a
folder of them into ``EvalStream`` objects carrying every annotator's changes, so
``python -m wirewatch.changepoint.evaluate --tcpd FOLDER`` scores the detector
with TCPDBench's F1 and covering (``evaluate.tcpd_f1``, ``evaluate.covering``).

Why hand-written: TCPD ships a validator and a loader only inside its own
repository scripts (not a package), and the format is a few keys of plain JSON.
The data itself is never shipped with wirewatch: licences vary per dataset.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.changepoint.evaluate import EvalStream
from wirewatch.errors import InputError

log = logging.getLogger(__name__)

ANNOTATIONS = "annotations.json"
NOT_SERIES = {ANNOTATIONS, "checksums.json", "schema.json"}


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None


def _value(v: Any, where: str) -> float:
    if v is None:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InputError(f"{where}: values must be numbers or null, got {v!r}")
    return float(v)


def read_annotations(path: str | Path) -> dict[str, tuple[tuple[int, ...], ...]]:
    """``annotations.json`` -> series name -> one tuple of change indices per annotator."""
    p = Path(path)
    doc = _load_json(p)
    if not isinstance(doc, dict):
        raise InputError(f"{p}: expected an object of series name -> {{annotator: [indices]}}")
    out: dict[str, tuple[tuple[int, ...], ...]] = {}
    for name, by_annotator in doc.items():
        if not isinstance(by_annotator, dict) or not by_annotator:
            raise InputError(f"{p}: {name!r} must map annotator ids to lists of indices (at least one annotator)")
        rows = []
        for annotator, cps in by_annotator.items():
            if not isinstance(cps, list) or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in cps):
                raise InputError(f"{p}: {name!r} annotator {annotator!r}: expected a list of indices >= 0, got {cps!r}")
            rows.append(tuple(sorted(set(cps))))
        out[str(name)] = tuple(rows)
    return out


def read_series(path: str | Path, annotations: tuple[tuple[int, ...], ...] = ()) -> EvalStream:
    """One TCPD series file -> ``EvalStream`` (one statistic per dimension, named by its label)."""
    p = Path(path)
    doc = _load_json(p)
    if not isinstance(doc, dict) or not isinstance(doc.get("series"), list) or not doc["series"]:
        raise InputError(f"{p}: expected a TCPD series object with a non-empty 'series' list")
    name = str(doc.get("name") or p.stem)
    columns: dict[str, np.ndarray] = {}
    for j, dim in enumerate(doc["series"]):
        raw = dim.get("raw") if isinstance(dim, Mapping) else None
        if not isinstance(raw, list) or not raw:
            raise InputError(f"{p}: series[{j}] needs a non-empty 'raw' list of numbers")
        label = str(dim.get("label") or f"V{j + 1}")
        if label in columns:
            label = f"{label}_{j + 1}"
        columns[label] = np.array([_value(v, f"{p}: series[{j}].raw[{i}]") for i, v in enumerate(raw)])
    lengths = {len(c) for c in columns.values()}
    if len(lengths) != 1:
        raise InputError(f"{p}: the dimensions have different lengths {sorted(lengths)}")
    n = lengths.pop()
    declared = doc.get("n_obs")
    if isinstance(declared, int) and declared != n:
        raise InputError(f"{p}: n_obs is {declared} but the series holds {n} values")
    for k, cps in enumerate(annotations):
        if cps and max(cps) >= n:
            raise InputError(f"{p}: annotator {k + 1} marks index {max(cps)} beyond the series' {n} values")
    first = annotations[0] if annotations else ()
    return EvalStream(name=name, frames=np.arange(n), stats=columns, truth=first, annotations=tuple(annotations))


def read_folder(folder: str | Path) -> list[EvalStream]:
    """Every annotated series under ``folder`` (``annotations.json`` at its top; series files anywhere below,
    e.g. TCPD's ``datasets/<name>/<name>.json``), sorted by name. Series files without annotations are
    skipped with a warning; annotated series without a file (TCPD's fetch-script datasets) are logged."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"TCPD folder {root} does not exist or is not a folder")
    if not (root / ANNOTATIONS).is_file():
        raise InputError(f"TCPD folder {root} has no {ANNOTATIONS} ({{series: {{annotator: [indices]}}}})")
    annotations = read_annotations(root / ANNOTATIONS)
    streams = []
    seen = set()
    for path in sorted(root.rglob("*.json")):
        if path.name in NOT_SERIES:
            continue
        name = path.stem
        if name not in annotations:
            log.warning("skipping %s: no annotations for %r in %s", path, name, root / ANNOTATIONS)
            continue
        if name in seen:
            raise InputError(f"two series files named {name}.json under {root}")
        seen.add(name)
        streams.append(read_series(path, annotations[name]))
    missing = sorted(set(annotations) - seen)
    if missing:
        log.info("annotated series without a file under %s (not scored): %s", root, ", ".join(missing))
    if not streams:
        raise InputError(f"no annotated series files under {root}")
    return streams
