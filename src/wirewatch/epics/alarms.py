"""EPICS alarm severities from ``valueAlarm`` limits, and the units/descriptions of statistic PVs.

No p4p here: the server uses these to fill ``alarm`` and ``display`` of each ``NTScalar`` (a p4p
``SharedPV`` does not evaluate ``valueAlarm`` itself, an IOC record would).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wirewatch.epics.config import StatisticPV

NO_ALARM, MINOR, MAJOR, INVALID = 0, 1, 2, 3
SEVERITY_NAMES = ("NO_ALARM", "MINOR", "MAJOR", "INVALID")
# PV Access alarm_t.status (pvData AlarmStatus): RECORD for limit alarms, UNDEFINED for NaN.
STATUS_NONE, STATUS_RECORD, STATUS_UNDEFINED = 0, 3, 6


@dataclass(frozen=True)
class AlarmState:
    severity: int
    status: int
    message: str


OK = AlarmState(NO_ALARM, STATUS_NONE, "")


def evaluate(value: float, limits: StatisticPV, previous: AlarmState = OK) -> AlarmState:
    """The alarm of ``value``: MAJOR outside the alarm limits (HIHI/LOLO), MINOR outside the warning
    limits (HIGH/LOW); a raised severity is kept until the value is back inside by ``hysteresis``
    (as an EPICS ai record's HYST). NaN (undefined, e.g. no particles) is INVALID."""
    if not math.isfinite(value):
        return AlarmState(INVALID, STATUS_UNDEFINED, "undefined")
    raw = _level(value, limits, 0.0)
    if raw.severity >= previous.severity or limits.hysteresis <= 0 or previous.severity == INVALID:
        return raw
    held = _level(value, limits, limits.hysteresis)  # limits moved inwards by the hysteresis
    if held.severity >= previous.severity:
        return previous
    return held if held.severity > raw.severity else raw


def _level(value: float, lim: StatisticPV, hyst: float) -> AlarmState:
    if lim.high_alarm is not None and value >= lim.high_alarm - hyst:
        return AlarmState(MAJOR, STATUS_RECORD, "HIHI")
    if lim.low_alarm is not None and value <= lim.low_alarm + hyst:
        return AlarmState(MAJOR, STATUS_RECORD, "LOLO")
    if lim.high_warning is not None and value >= lim.high_warning - hyst:
        return AlarmState(MINOR, STATUS_RECORD, "HIGH")
    if lim.low_warning is not None and value <= lim.low_warning + hyst:
        return AlarmState(MINOR, STATUS_RECORD, "LOW")
    return OK


_UNITS = (("_per_um2", "1/um^2"), ("_nm2", "nm^2"), ("_px", "px"), ("_nm", "nm"), ("_deg", "deg"))
_SUMMARIES = {"mean": "mean", "median": "median", "p10": "10th percentile", "p90": "90th percentile"}


def default_units(name: str) -> str:
    """Units read from a statistic's name as docs/CONTRACTS.md writes them (``length_px_mean`` -> px)."""
    base = name.rsplit("_", 1)[0] if name.rsplit("_", 1)[-1] in _SUMMARIES else name
    if base in ("area_px",):
        return "px^2"
    for suffix, units in _UNITS:
        if base.endswith(suffix):
            return units
    if name == "particle_count":
        return "particles"
    return ""


def default_description(name: str) -> str:
    if name == "particle_count":
        return "particles segmented in the last frame"
    if name == "coverage_fraction":
        return "fraction of the image covered by particles"
    if name == "orientation_mean_deg":
        return "mean particle orientation (axial, ccw from +x)"
    if name == "orientation_order":
        return "orientation order S = |mean exp(2i theta)|"
    if name == "number_density_per_um2":
        return "particles per square micrometre"
    head, _, tail = name.rpartition("_")
    if tail in _SUMMARIES and head:
        return f"{_SUMMARIES[tail]} of per-particle {head}"
    return name.replace("_", " ")
