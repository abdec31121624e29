"""The ``http`` section of the daemon config.

The server itself is ``wirewatch.web.server.HttpServer``: one server for ``/metrics``, ``/healthz``,
``/readyz`` (always) and the web view (when ``web.enabled``), bound to 127.0.0.1 unless configured.
"""

from __future__ import annotations

from pydantic import Field

from wirewatch.config.base import StrictModel
from wirewatch.web.config import WebConfig


class HttpConfig(StrictModel):
    """The ``http`` section. ``port: 0`` picks a free port; ``enabled: false`` runs no server."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)
    bearer_token_file: str | None = None  # a file whose first line is the token; never logged
    # A connection that sends nothing (or stops mid-request) this long is closed, freeing its thread;
    # live pages' event streams are exempt (they use web.write_timeout_s for their writes).
    request_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    # Connections served at once (one thread each, live pages' event streams included); more get 503.
    max_connections: int = Field(default=256, ge=1, le=10_000)
    web: WebConfig = Field(default_factory=WebConfig)  # the web view on the same port (wirewatch.web)
