"""JSON forms of the stage dataclasses, as every publisher writes them.

One place decides the wire format of ``FrameStats``, ``ChangePoint`` and
``Alert`` so the ZeroMQ topics, the webhook body and the record agree.
NaN and infinities become ``null`` (JSON has no NaN); times are Unix seconds
as floats plus, for alerts, RFC 3339 strings that HTTP receivers expect.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from wirewatch.types import Alert, ChangePoint, FrameStats


def finite_or_none(value: Any) -> Any:
    """Float-like values that are NaN or infinite become None; others pass through."""
    if isinstance(value, bool) or value is None:
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    if not math.isfinite(number):
        return None
    if isinstance(value, int):
        return value
    return number


def rfc3339(unix_s: float) -> str:
    """``2026-11-26T19:46:47.123Z``: what Alertmanager and most receivers parse."""
    stamp = datetime.fromtimestamp(unix_s, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _numbers(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): finite_or_none(v) for k, v in mapping.items()}


def stats_to_dict(stats: FrameStats) -> dict[str, Any]:
    """Same shape as a record line: ``{"frame", "time", "stats"}``."""
    return {"frame": int(stats.frame_id), "time": float(stats.time), "stats": _numbers(stats.aggregates)}


def changepoint_to_dict(cp: ChangePoint) -> dict[str, Any]:
    """Same keys as the offline ``wirewatch changepoints --json`` events."""
    return {
        "frame": int(cp.frame),
        "detected_at": int(cp.detected_at),
        "delay": int(cp.detected_at) - int(cp.frame),
        "statistics": list(cp.statistics),
        "before": _numbers(cp.before),
        "after": _numbers(cp.after),
        "effect_size": finite_or_none(cp.effect_size),
        "detector": cp.detector,
        "severity": cp.severity,
        "kind": cp.kind,
        "penalty": finite_or_none(cp.penalty),
        "attribution": cp.attribution,
        "suspect": bool(cp.suspect),
    }


def alert_to_dict(alert: Alert) -> dict[str, Any]:
    return {
        "name": alert.name,
        "state": alert.state,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "starts_at": rfc3339(alert.starts_at),
        "ends_at": rfc3339(alert.ends_at) if alert.ends_at is not None else None,
        "frame": alert.frame,
        "fingerprint": alert.fingerprint,
    }


def dumps(payload: Any) -> bytes:
    """Compact UTF-8 JSON; ``allow_nan=False`` so a NaN that slipped through is an error, not bad JSON."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
