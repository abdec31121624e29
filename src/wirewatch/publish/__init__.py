"""Alerts and event publishing: rules -> ``AlertEngine`` -> sinks (Alertmanager v2, webhook, ZeroMQ PUB).

Entry point for the daemon::

    from wirewatch.publish import AlertsConfig, build_publisher
    publisher = build_publisher(config.alerts, registry, zmq_config=config.publish.zmq)  # private registry
    publisher.start()                                       # ticker for time-based rules
    alerts = publisher.publish(stats, changepoints)         # once per processed frame
    publisher.close()                                       # on shutdown
"""

import warnings
from typing import Any

from wirewatch.publish.build import build_alert_engine, build_publisher, build_sinks, build_zmq_publisher
from wirewatch.publish.config import AlertsConfig
from wirewatch.publish.engine import AlertEngine
from wirewatch.publish.publisher import Publisher

__all__ = ["AlertEngine", "AlertsConfig", "Publisher", "build_alert_engine", "build_publisher", "build_sinks",
           "build_zmq_publisher"]

_RENAMED = {"build_engine": "build_alert_engine"}  # old name -> new name (export.tensorrt builds TensorRT engines)


def __getattr__(name: str) -> Any:
    if name in _RENAMED:
        warnings.warn(f"wirewatch.publish.{name} is deprecated, use {_RENAMED[name]}", DeprecationWarning,
                      stacklevel=2)
        return globals()[_RENAMED[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
