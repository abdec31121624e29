"""Alerts and event publishing: rules -> ``AlertEngine`` -> sinks (Alertmanager v2, webhook, ZeroMQ PUB).

Entry point for the daemon::

    from wirewatch.publish import AlertsConfig, build_publisher
    publisher = build_publisher(config.alerts, registry)   # private CollectorRegistry
    publisher.start()                                       # ticker for time-based rules
    alerts = publisher.publish(stats, changepoints)         # once per processed frame
    publisher.close()                                       # on shutdown
"""

from wirewatch.publish.build import build_engine, build_publisher, build_sinks, build_zmq_publisher
from wirewatch.publish.config import AlertsConfig
from wirewatch.publish.engine import AlertEngine
from wirewatch.publish.publisher import Publisher

__all__ = ["AlertEngine", "AlertsConfig", "Publisher", "build_engine", "build_publisher", "build_sinks",
           "build_zmq_publisher"]
