"""Writing particle / frame tables (CSV) and JSON reports atomically (temp file + rename)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.files import write_text_atomically
from wirewatch.records import json_ready


def plain(value: Any) -> Any:
    """numpy scalars -> Python; NaN / inf -> None (JSON ``null``, empty CSV cell)."""
    return json_ready(value)


json_safe = json_ready  # recursively strict-JSON serialisable (NaN -> null, arrays -> lists): wirewatch.records


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    return write_text_atomically(path, json.dumps(json_safe(obj), indent=indent, allow_nan=False) + "\n")


def csv_text(header: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(header), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        out = {}
        for k, v in row.items():
            v = plain(v)
            out[k] = "" if v is None else (int(v) if isinstance(v, bool) else v)
        writer.writerow(out)
    return buf.getvalue()


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """CSV with ``header`` columns (missing cells empty, NaN empty, booleans 0/1), written atomically."""
    return write_text_atomically(path, csv_text(header, rows))


def particle_rows(particles: Mapping[str, np.ndarray], **extra: Any) -> list[dict[str, Any]]:
    """One dict per particle from a column table, each with the ``extra`` fields (e.g. image_id) first."""
    n = len(next(iter(particles.values()))) if particles else 0
    cols = {k: np.asarray(v).tolist() for k, v in particles.items()}
    return [{**extra, **{k: v[i] for k, v in cols.items()}} for i in range(n)]
