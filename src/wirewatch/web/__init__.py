"""The live web view: the latest frame with its masks, statistics over time with change points, firing
alerts (``/``), an upload page for single images (``/segment``) and a JSON API (``/api/...``), served with
``/metrics``, ``/healthz``, ``/readyz`` on one port by ``HttpServer`` (``wirewatch.web.server``). See docs/web.md."""

from wirewatch.web.app import WebApp
from wirewatch.web.config import WebConfig
from wirewatch.web.hub import PushHub
from wirewatch.web.live import LiveState, registry_counters
from wirewatch.web.server import HttpServer

__all__ = ["HttpServer", "LiveState", "PushHub", "WebApp", "WebConfig", "registry_counters"]
