"""The ``http`` section of the daemon config.

The server itself is ``wirewatch.web.server.HttpServer``: one server for ``/metrics``, ``/healthz``,
``/readyz`` (always) and the web view (when ``web.enabled``), bound to 127.0.0.1 unless configured, with
the browser-facing protections of ``wirewatch.web.guard`` (Host allowlist, Origin check, token, sessions).
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
    # A connection that sends nothing (or does not complete its request line and headers) this long is closed;
    # live pages' event streams are exempt (they use web.write_timeout_s for their writes).
    request_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    # Connections open at once (live pages' event streams and idle keep-alive included); more get 503.
    max_connections: int = Field(default=256, ge=1, le=10_000)
    # Host headers answered besides the loopback names and the bound address (others get 421: DNS
    # rebinding): exact names, ".example.org" for a domain and its subdomains, "*" for any.
    allowed_hosts: list[str] = Field(default_factory=list)
    # Origins allowed on state-changing routes (POST) besides the server's own, e.g. a reverse proxy's
    # public "https://wirewatch.example.org"; other origins get 403.
    allowed_origins: list[str] = Field(default_factory=list)
    # Mark the login session cookie Secure (always so when the request came over https).
    secure_cookie: bool = False
    web: WebConfig = Field(default_factory=WebConfig)  # the web view on the same port (wirewatch.web)
