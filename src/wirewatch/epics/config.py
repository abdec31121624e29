"""``EpicsConfig``: the PV Access input (areaDetector NTNDArray) and the PV Access server of the daemon.

Pure pydantic: importing it never imports p4p.
"""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from wirewatch.config.base import StrictModel

# What a PV name may hold (EPICS record names: letters, digits and _ - : ; . [ ] < > ; no spaces).
PV_NAME = re.compile(r"^[A-Za-z0-9_\-:;.\[\]<>{}$]+$")


def check_pv_name(name: str, what: str) -> str:
    if not PV_NAME.match(name) or len(name) > 128:
        raise ValueError(f"{what} {name!r} is not a valid PV name (letters, digits, _ - : ; . [ ] <> only, "
                         "at most 128 characters)")
    return name


class StatisticPV(StrictModel):
    """Display and alarm metadata of one statistic PV. Limits follow EPICS ``valueAlarm``: outside
    ``low_warning``..``high_warning`` is MINOR, outside ``low_alarm``..``high_alarm`` is MAJOR; an alarm
    clears only once the value is back inside by ``hysteresis``."""

    units: str | None = Field(default=None, max_length=32, description="display.units (default: from the name)")
    description: str | None = Field(default=None, max_length=256, description="display.description")
    low_alarm: float | None = None
    low_warning: float | None = None
    high_warning: float | None = None
    high_alarm: float | None = None
    hysteresis: float = Field(default=0.0, ge=0.0)
    precision: int = Field(default=3, ge=0, le=12)

    @model_validator(mode="after")
    def _ordered(self) -> StatisticPV:
        order = [v for v in (self.low_alarm, self.low_warning, self.high_warning, self.high_alarm) if v is not None]
        if any(not math.isfinite(v) for v in order):
            raise ValueError("alarm limits must be finite numbers")
        if order != sorted(order):
            raise ValueError("limits must satisfy low_alarm <= low_warning <= high_warning <= high_alarm, got "
                             f"{self.low_alarm}, {self.low_warning}, {self.high_warning}, {self.high_alarm}")
        return self


class EpicsInputConfig(StrictModel):
    """``--format pva --input PV``: subscribe to an areaDetector NTNDArray PV (NDPluginPva)."""

    pv: str | None = Field(default=None, description="NTNDArray PV, e.g. 13SIM1:Pva1:Image")
    pixel_size_attribute: str | None = Field(default="PixelSizeNm", max_length=128, description="NDAttribute "
                                             "carrying the pixel size (absent from a frame: none); None: never read")
    pixel_size_scale: float = Field(default=1.0, gt=0, description="factor from the attribute's unit to nm (um: 1000)")
    monitor_queue: int = Field(default=4, ge=1, le=1024, description="PV Access monitor queue (request queueSize)")
    resubscribe_s: float = Field(default=1.0, gt=0, le=60, description="retry interval when the PV closed the monitor")

    @field_validator("pv")
    @classmethod
    def _pv(cls, v: str | None) -> str | None:
        return None if v is None else check_pv_name(v, "epics.input.pv")


class EpicsServerConfig(StrictModel):
    """``--pv-prefix PREFIX``: the daemon's own PV Access server."""

    prefix: str | None = Field(default=None, description="PV name prefix, e.g. BL7:WW: (None: no server)")
    statistics: dict[str, StatisticPV] = Field(default_factory=dict, description="per-statistic metadata and "
                                               "alarm limits, keyed by the record's stats names")
    overlay_interval_s: float = Field(default=1.0, ge=0, description="least time between overlay image updates")
    overlay: bool = True
    changepoint_history: int = Field(default=20, ge=1, le=10_000, description="rows of the changepoints table")
    heartbeat_s: float = Field(default=1.0, gt=0, le=60, description="status/fps update interval")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str | None) -> str | None:
        return None if v is None else check_pv_name(v, "epics.server.prefix")


class PvWriter(StrictModel):
    """Who may write the control PVs: a client host (an IP address or a network such as 10.0.3.0/24),
    an account (the user name the PV Access client presents), or both (then both must match)."""

    host: str | None = Field(default=None, description="client IP address or CIDR network")
    account: str | None = Field(default=None, min_length=1, max_length=128, description="client account name")

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            ipaddress.ip_network(v, strict=False)
        except ValueError:
            raise ValueError(f"epics.writers host {v!r} is not an IP address or network (e.g. 10.0.3.7 or "
                             "10.0.3.0/24); host names are not accepted, as a name is only as trustworthy as "
                             "the DNS that answers it") from None
        return v

    @model_validator(mode="after")
    def _something(self) -> PvWriter:
        if self.host is None and self.account is None:
            raise ValueError("an epics.writers entry needs 'host', 'account' or both")
        return self

    def allows(self, peer_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, account: str | None) -> bool:
        if self.host is not None and (peer_ip is None or peer_ip not in ipaddress.ip_network(self.host, strict=False)):
            return False
        return self.account is None or account == self.account


class EpicsConfig(StrictModel):
    """The ``epics`` section (env ``WIREWATCH_EPICS__<KEY>``). ``pva`` holds ``EPICS_PVA_*`` / ``EPICS_PVAS_*``
    settings given to the p4p client and server instead of the process environment's (e.g. a port)."""

    input: EpicsInputConfig = Field(default_factory=lambda: EpicsInputConfig.model_validate({}))
    server: EpicsServerConfig = Field(default_factory=lambda: EpicsServerConfig.model_validate({}))
    pva: dict[str, str] = Field(default_factory=dict)
    policy: Literal["latest", "queue"] | None = Field(default=None, description="override ingest.policy for PVA input")
    # The control PVs (alerts_paused, reset_changepoints) are read-only unless a client matches an entry here.
    writers: list[PvWriter] = Field(default_factory=list, description="clients allowed to write the control PVs")

    @field_validator("pva")
    @classmethod
    def _pva_keys(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not (key.startswith("EPICS_PVA_") or key.startswith("EPICS_PVAS_")):
                raise ValueError(f"epics.pva key {key!r} is not an EPICS_PVA_* / EPICS_PVAS_* setting")
        return v
