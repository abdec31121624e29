"""Builders: config -> alert engine, alert sinks, ZeroMQ publisher, and the ``Publisher`` that holds them.

The daemon calls ``build_publisher(config.alerts, registry, zmq_config=config.publish.zmq)``; tests and other
tools may build the parts alone. Registries are explicit dicts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import zmq
from prometheus_client import CollectorRegistry

from wirewatch.publish.config import AlertsConfig, ZmqPublishConfig
from wirewatch.publish.engine import AlertEngine, RateLimiter
from wirewatch.publish.metrics import AlertMetrics
from wirewatch.publish.publisher import Publisher
from wirewatch.publish.rules import build_rule
from wirewatch.publish.sinks.alertmanager import AlertmanagerSink
from wirewatch.publish.sinks.base import AlertSink
from wirewatch.publish.sinks.transport import HttpTransport
from wirewatch.publish.sinks.webhook import WebhookSink
from wirewatch.publish.zmq_pub import ZmqAlertSink, ZmqPublisher

# Sink config ``type`` -> sink class.
SINK_TYPES: dict[str, Callable[..., Any]] = {
    "alertmanager": AlertmanagerSink,
    "webhook": WebhookSink,
}


def build_alert_engine(config: AlertsConfig, *, registry: CollectorRegistry | None = None) -> AlertEngine:
    """The rules of ``config`` in an ``AlertEngine`` (none when alerts are disabled)."""
    rules = [build_rule(r) for r in config.rules if r.enabled] if config.enabled else []
    limiter = RateLimiter(config.rate_limit.max_alerts, config.rate_limit.per_s)
    metrics = AlertMetrics.on(registry) if registry is not None else None
    return AlertEngine(rules, labels=config.labels, rate_limiter=limiter, metrics=metrics)


def build_zmq_publisher(config: ZmqPublishConfig | None, registry: CollectorRegistry, *,
                        context: zmq.Context | None = None) -> ZmqPublisher | None:
    """The ZeroMQ PUB stream (``publish.zmq``), or None when not configured."""
    if config is None:
        return None
    return ZmqPublisher(config.bind, topics=config.topics, sndhwm=config.sndhwm,
                        metrics=AlertMetrics.on(registry), context=context, curve=config.curve)


def build_sinks(config: AlertsConfig, registry: CollectorRegistry, *, zmq_publisher: ZmqPublisher | None = None,
                transport: HttpTransport | None = None, generator_url: str | None = None) -> list[AlertSink]:
    """HTTP sinks from ``config.sinks`` plus the ZeroMQ ``alert`` topic when a publisher is given."""
    if not config.enabled:
        return []
    metrics = AlertMetrics.on(registry)
    sinks: list[AlertSink] = []
    try:
        for sink_config in config.sinks:
            kwargs: dict[str, Any] = {"metrics": metrics, "transport": transport}
            if sink_config.type == "alertmanager":
                kwargs["generator_url"] = generator_url
            sinks.append(SINK_TYPES[sink_config.type](sink_config, **kwargs))
    except Exception:
        for sink in sinks:  # do not leave worker threads behind a half-built list
            sink.close(0.5)
        raise
    if zmq_publisher is not None and "alert" in zmq_publisher.topics:
        sinks.append(ZmqAlertSink(zmq_publisher, metrics=metrics))
    return sinks


def build_publisher(config: AlertsConfig, registry: CollectorRegistry, *, zmq_config: ZmqPublishConfig | None = None,
                    transport: HttpTransport | None = None, generator_url: str | None = None,
                    context: zmq.Context | None = None) -> Publisher:
    """Everything the daemon needs for change points and alerts; call ``start()`` then ``publish()`` per frame.
    ``zmq_config``: the ZeroMQ stream (``publish.zmq``); the deprecated ``config.zmq`` is used when it is not given."""
    zmq_publisher = build_zmq_publisher(zmq_config if zmq_config is not None else config.zmq, registry, context=context)
    try:
        sinks = build_sinks(config, registry, zmq_publisher=zmq_publisher, transport=transport,
                            generator_url=generator_url)
    except Exception:
        if zmq_publisher is not None:
            zmq_publisher.close()
        raise
    return Publisher(engine=build_alert_engine(config, registry=registry), sinks=sinks, metrics=AlertMetrics.on(registry),
                     zmq=zmq_publisher, tick_interval_s=config.tick_interval_s)
