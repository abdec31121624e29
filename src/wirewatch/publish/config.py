"""The ``alerts`` config section (rules, sinks, rate limit) and the ``publish`` section (the ZeroMQ stream of
stats, change points and alerts; the Tiled catalog).

Rules and sinks are lists of tagged models (``kind:`` for rules, ``type:`` for
sinks) so a YAML file reads like the alert it makes::

    rules:
      - kind: threshold
        name: ParticleCountLow
        statistic: particle_count
        min: 5
        for_frames: 10

Secrets (HMAC key, bearer token) are never in the config itself: a
``SecretRef`` names a file or an environment variable that holds them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from wirewatch.config.base import StrictModel, rename_keys
from wirewatch.publish.templates import TemplateError, check_template

Severity = Literal["info", "warning", "critical"]
Attribution = Literal["sample", "instrument"]

_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ALERT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_:.-]*$")
_SINK_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
# Labels the engine sets itself; a rule may not override them.
RESERVED_LABELS = frozenset({"alertname", "severity", "statistic"})

# Placeholders each rule kind offers to its annotation templates, with sample values to
# check format specs at load time (floats where the runtime value is a float).
_COMMON_FIELDS: dict[str, Any] = {"alertname": "X", "severity": "warning", "rule": "X"}
TEMPLATE_FIELDS: dict[str, dict[str, Any]] = {
    "changepoint": {**_COMMON_FIELDS, "statistic": "s", "detector": "d", "frame": 1, "detected_at": 2,
                    "delay": 1, "before": 1.0, "after": 2.0, "effect_size": 1.0, "change_severity": "warning",
                    "attribution": "sample", "suspect": False},
    "threshold": {**_COMMON_FIELDS, "statistic": "s", "value": 1.0, "min": 0.0, "max": 2.0, "frame": 1,
                  "for_frames": 1, "breach_frames": 1, "condition": "below 0"},
    "no_frames": {**_COMMON_FIELDS, "after_s": 1.0, "silence_s": 2.0, "last_frame": 1},
}
DEFAULT_ANNOTATIONS: dict[str, dict[str, str]] = {
    "changepoint": {
        "summary": "Change point in {statistic}",
        "description": ("{detector} found a change in {statistic} at frame {frame} (detected at frame "
                        "{detected_at}, delay {delay} frames): {before:.4g} -> {after:.4g}, "
                        "effect size {effect_size:.2f}"),
    },
    "threshold": {
        "summary": "{statistic} {condition}",
        "description": "{statistic} = {value:.4g} at frame {frame}, {condition} for {breach_frames} frames in a row",
    },
    "no_frames": {
        "summary": "No frames for {silence_s:.0f} s",
        "description": "No frame processed for {silence_s:.0f} s (limit {after_s:g} s); last frame {last_frame}",
    },
}


class _RuleBase(StrictModel):
    name: str = Field(description="Alert name (Alertmanager's alertname label), e.g. ParticleCountLow.")
    severity: Severity | None = Field(default=None, description="Severity label; default 'warning' (changepoint rules: "
                                                        "the change point's own severity).")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels for routing.")
    annotations: dict[str, str] = Field(default_factory=dict,
                                        description="Annotation templates; override or add to the defaults.")
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        if not _ALERT_NAME.match(v):
            raise ValueError(f"alert name {v!r} must match {_ALERT_NAME.pattern}")
        return v

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not _LABEL_NAME.match(key):
                raise ValueError(f"label name {key!r} must match {_LABEL_NAME.pattern}")
            if key in RESERVED_LABELS:
                raise ValueError(f"label {key!r} is set by the rule itself; use 'name'/'severity' instead")
        return v

    @model_validator(mode="after")
    def _check_templates(self) -> Any:
        kind = getattr(self, "kind")  # noqa: B009 - every subclass has a literal kind
        fields = TEMPLATE_FIELDS[kind]
        for key, template in self.annotations.items():
            try:
                check_template(template, fields, fields)
            except TemplateError as exc:
                raise ValueError(f"annotation {key!r}: {exc}") from None
        return self


class ChangepointRule(_RuleBase):
    """Fires on every change point that matches; resolves ``resolve_after_s`` after the last one."""

    kind: Literal["changepoint"]
    statistics: list[str] = Field(default_factory=list, description="Statistics to watch; empty = any.")
    detectors: list[str] = Field(default_factory=list, description="Detectors to accept; empty = any.")
    min_severity: Severity = "info"
    min_effect_size: float = Field(default=0.0, ge=0.0)
    # Which change points: the sample's (default), the instrument's (refocus, beam, magnification: an
    # InstrumentChanged rule), or both; suspect ones (segmentation unreliable then) only when asked.
    attributions: list[Attribution] = Field(default_factory=lambda: list[Attribution](["sample"]), min_length=1)
    include_suspect: bool = False
    resolve_after_s: PositiveFloat = Field(default=300.0, description="A change point is an event: its alert "
                                                              "resolves this long after the last match.")


class ThresholdRule(_RuleBase):
    """Fires when a statistic is below ``min`` or above ``max`` for ``for_frames`` frames in a row."""

    kind: Literal["threshold"]
    statistic: str
    min: float | None = None
    max: float | None = None
    for_frames: PositiveInt = 1
    clear_frames: PositiveInt = Field(default=1, description="Frames back in range before the alert resolves.")
    on_missing: Literal["ignore", "breach", "clear"] = Field(
        default="ignore", description="NaN or absent value (empty frame): skip it, count it as a breach, or as in range.")

    @model_validator(mode="after")
    def _check_bounds(self) -> ThresholdRule:
        if self.min is None and self.max is None:
            raise ValueError("a threshold rule needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class NoFramesRule(_RuleBase):
    """Fires when no frame has been processed for ``after_s`` seconds; resolves on the next frame."""

    kind: Literal["no_frames"]
    after_s: PositiveFloat


RuleConfig = Annotated[ChangepointRule | ThresholdRule | NoFramesRule, Field(discriminator="kind")]


class SecretRef(StrictModel):
    """Where a secret lives: a file (first line, trailing newline stripped) or an environment variable."""

    file: Path | None = None
    env: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.file is None) == (self.env is None):
            raise ValueError("give exactly one of 'file' or 'env'")
        return self


def _check_http_url(v: str) -> str:
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{v!r} is not an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValueError("credentials in the URL would be logged; use 'bearer_token' instead")
    return v


class _HttpSinkBase(StrictModel):
    url: str
    timeout_s: PositiveFloat = 5.0
    backoff_initial_s: PositiveFloat = 0.5
    backoff_max_s: PositiveFloat = 60.0
    backoff_multiplier: float = Field(default=2.0, ge=1.0)
    jitter: float = Field(default=0.1, ge=0.0, le=1.0, description="Backoff delays vary by +- this fraction.")
    bearer_token: SecretRef | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_http_url(v)

    @field_validator("name", check_fields=False)
    @classmethod
    def _sink_name(cls, v: str) -> str:
        if not _SINK_NAME.match(v):
            raise ValueError(f"sink name {v!r} must match {_SINK_NAME.pattern}")
        return v


class AlertmanagerSinkConfig(_HttpSinkBase):
    """Alertmanager API v2: ``POST {url}/api/v2/alerts``."""

    type: Literal["alertmanager"]
    name: str = "alertmanager"
    resend_interval_s: PositiveFloat = Field(
        default=60.0, description="Firing alerts are posted again this often so Alertmanager keeps them active.")
    firing_ttl_s: PositiveFloat | None = Field(
        default=None, description="endsAt sent with firing alerts (now + this); None leaves it to Alertmanager's "
                          "resolve_timeout. Keep it above resend_interval_s.")
    max_attempts: PositiveInt = 5
    queue_size: PositiveInt = 1000
    max_batch: PositiveInt = 64
    generator_url: str | None = None

    @model_validator(mode="after")
    def _ttl(self) -> AlertmanagerSinkConfig:
        if self.firing_ttl_s is not None and self.firing_ttl_s <= self.resend_interval_s:
            raise ValueError(f"firing_ttl_s ({self.firing_ttl_s}) must exceed resend_interval_s "
                             f"({self.resend_interval_s}) or alerts flap between resends")
        return self


class WebhookSinkConfig(_HttpSinkBase):
    """Generic JSON webhook with HMAC signature and an on-disk spool (delivered once per idempotency key)."""

    type: Literal["webhook"]
    name: str = "webhook"
    spool_dir: Path
    hmac_secret: SecretRef | None = None
    signature_header: str = "X-Wirewatch-Signature-256"
    signature_version: Literal["v1", "body-only"] = Field(
        default="v1", description="v1: 't=<time>,v1=<HMAC of time.body>' (replay-protected); body-only: the older "
                          "'sha256=<HMAC of body>', replayable, only for a receiver not yet updated.")
    max_failed_files: PositiveInt = Field(
        default=1000, description="Undeliverable alerts kept in spool_dir/failed; the oldest are deleted beyond it.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra, non-secret request headers.")
    max_spool_files: PositiveInt = 10000
    max_age_s: PositiveFloat | None = Field(
        default=None, description="Spooled alerts older than this are moved to spool_dir/failed instead of sent.")

    @field_validator("headers")
    @classmethod
    def _no_secret_headers(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if key.lower() in ("authorization", "cookie", "proxy-authorization"):
                raise ValueError(f"header {key!r} carries a secret; use 'bearer_token' (a file or env var)")
        return v


SinkConfig = Annotated[AlertmanagerSinkConfig | WebhookSinkConfig, Field(discriminator="type")]

Topic = Literal["stats", "changepoint", "alert"]
_ALL_TOPICS: list[Topic] = ["stats", "changepoint", "alert"]


class ZmqCurveConfig(StrictModel):
    """CURVE encryption (and optionally client authentication) for the PUB socket; keys from files.

    Certificates as written by ``zmq.auth.create_certificates`` (or ``wirewatch``'s key tool):
    ``server_secret_file`` is the server's ``.key_secret``; clients need its public ``.key``.
    """

    server_secret_file: Path
    authorized_clients_dir: Path | None = Field(
        default=None, description="Directory of client public certificates allowed to subscribe; "
                          "None: any client that knows the server's public key (encryption only).")


class ZmqPublishConfig(StrictModel):
    """ZeroMQ PUB socket; message = [topic, JSON]. Binds loopback unless told otherwise."""

    bind: str = "tcp://127.0.0.1:5560"
    topics: list[Topic] = Field(default_factory=lambda: list(_ALL_TOPICS))
    sndhwm: PositiveInt = 1000
    curve: ZmqCurveConfig | None = None


class RateLimitConfig(StrictModel):
    """At most ``max_alerts`` new firing alerts per ``per_s`` seconds; the rest wait (resolutions always pass)."""

    max_alerts: PositiveInt = 30
    per_s: PositiveFloat = 60.0


class AlertsConfig(StrictModel):
    enabled: bool = True
    labels: dict[str, str] = Field(default_factory=dict,
                                   description="Labels added to every alert, e.g. instance, beamline.")
    rules: list[RuleConfig] = Field(default_factory=list)
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    sinks: list[SinkConfig] = Field(default_factory=list)
    # deprecated: the ZeroMQ stream is ``publish.zmq`` (DaemonConfig moves alerts.zmq there); kept so an
    # ``AlertsConfig`` built alone with ``zmq`` still works, with a DeprecationWarning
    zmq: ZmqPublishConfig | None = Field(default=None, exclude=True)
    tick_interval_s: PositiveFloat = Field(default=1.0, description="How often time-based rules are checked.")

    @model_validator(mode="before")
    @classmethod
    def _deprecated_zmq(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("zmq") is not None:
            rename_keys({"alerts": {"zmq": data["zmq"]}}, {"alerts.zmq": "publish.zmq"})  # warns, names publish.zmq
        return data

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not _LABEL_NAME.match(key) or key in RESERVED_LABELS:
                raise ValueError(f"label name {key!r} is invalid or reserved ({', '.join(sorted(RESERVED_LABELS))})")
        return v

    @model_validator(mode="after")
    def _unique_names(self) -> AlertsConfig:
        for what, names in (("rule", [r.name for r in self.rules]), ("sink", [s.name for s in self.sinks])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what} names must be unique; repeated: {', '.join(dupes)}")
        return self


class TiledConfig(StrictModel):
    """``publish.tiled``: where the run's container is written (``wirewatch.publish.tiled``)."""

    uri: str  # e.g. http://tiled.facility:8000 (optionally with a path to a container inside the server)
    api_key: str | None = None
    api_key_file: Path | None = None  # alternative to api_key: first line of this file
    container: str | None = None  # key of the run's container; default wirewatch-<UTC start time>
    batch_frames: int = Field(default=20, ge=1)  # rows sent once this many frames were collected
    queue_batches: int = Field(default=16, ge=1)  # batches waiting for the server; more are dropped (counted)
    retries: int = Field(default=3, ge=1)  # attempts per batch before it is dropped
    timeout_s: float = Field(default=10.0, gt=0)  # per HTTP request
    close_timeout_s: float = Field(default=10.0, gt=0)  # at shutdown, time left to send what waits


class PublishConfig(StrictModel):
    """The daemon's ``publish`` section: where results go besides the alert sinks and the record.

    ``zmq``: the ZeroMQ PUB stream (topics ``stats``, ``changepoint``, ``alert``; was ``alerts.zmq``);
    ``tiled``: the facility's Tiled catalog (docs/products.md)."""

    zmq: ZmqPublishConfig | None = None
    tiled: TiledConfig | None = None
