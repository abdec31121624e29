"""JSON forms of the stage dataclasses, as every publisher writes them.

The frame and change-point objects are ``wirewatch.records``' (the record line and the
``changepoints --json`` object), so the ZeroMQ topics, the webhook body and the record agree;
this module adds the alert object and the compact UTF-8 encoding. NaN and infinities become
``null`` (JSON has no NaN); times are Unix seconds as floats plus, for alerts, RFC 3339
strings that HTTP receivers expect.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from wirewatch.records import FrameRecord, changepoint_to_json, finite_or_none
from wirewatch.types import Alert, FrameStats

__all__ = ["alert_to_dict", "changepoint_to_dict", "dumps", "finite_or_none", "rfc3339", "stats_to_dict"]


def rfc3339(unix_s: float) -> str:
    """``2026-11-26T19:46:47.123Z``: what Alertmanager and most receivers parse."""
    stamp = datetime.fromtimestamp(unix_s, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def stats_to_dict(stats: FrameStats) -> dict[str, Any]:
    """The ZeroMQ ``stats`` topic: the frame's record line without ``series``."""
    return FrameRecord.from_stats(stats).to_json(with_series=False)


changepoint_to_dict = changepoint_to_json  # the one change-point object (wirewatch.records)


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
