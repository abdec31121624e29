"""What ``wirewatch demo`` adds for the data product: particle tables beside its record, a report at the end."""

from __future__ import annotations

import logging
import shutil
from importlib.util import find_spec
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def demo_record_options(out: Path) -> dict[str, Any]:
    """``record`` keys of the demo: particle tables in ``out/particles`` (emptied first: one run each) when
    pyarrow is installed; nothing otherwise (the report then has no distributions)."""
    if find_spec("pyarrow") is None:
        log.info("demo: pyarrow not installed ('particles' extra): no particle tables, report without distributions")
        return {}
    folder = out / "particles"
    if folder.exists():
        shutil.rmtree(folder)
    return {"particles_dir": str(folder)}


def demo_report(out: Path) -> list[Path]:
    """``out/report.html`` from the demo's record (and particle tables); a failure is logged, never raised."""
    from .build import build_report

    particles = out / "particles"
    try:
        summary = build_report(out / "record.jsonl", out / "report.html",
                               particles=particles if (particles / "particles").is_dir() else None)
    except Exception as exc:
        log.warning("demo: could not write the report: %r", exc)
        return []
    return [summary.html]
