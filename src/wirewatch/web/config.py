"""The HTTP port's settings: ``HttpConfig`` (the ``http`` section of the daemon config) and ``WebConfig``
(limits and rates of the web view: ``http.web``, flags of ``wirewatch serve``).

They live beside the server they describe (``wirewatch.web.server.HttpServer``: one server for ``/metrics``,
``/healthz``, ``/readyz`` (always) and the web view (when ``web.enabled``), bound to 127.0.0.1 unless
configured, with the browser-facing protections of ``wirewatch.web.guard``), so that the config layer
never imports the daemon.
"""

from __future__ import annotations

from pydantic import Field

from wirewatch.config.base import StrictModel


class WebConfig(StrictModel):
    enabled: bool = True
    max_upload_bytes: int = Field(default=32 * 1024 * 1024, ge=1)  # larger uploads: 413 before reading
    max_image_pixels: int = Field(default=40_000_000, ge=1)  # decompression-bomb guard (from the header)
    max_concurrent_segmentations: int = Field(default=1, ge=1)  # uploads segmented at once (CPU guard)
    max_pending_uploads: int = Field(default=4, ge=1)  # uploads in flight; more get 503
    score_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    overlay_interval_s: float = Field(default=1.0, ge=0.0)  # at most one live overlay per interval
    push_interval_s: float = Field(default=0.5, ge=0.0)  # a page's events are written in batches this often
    overlay_max_side: int = Field(default=512, ge=16)  # live overlays are subsampled to this size
    history: int = Field(default=5000, ge=10)  # records kept for /api/series and the sparklines
    client_queue: int = Field(default=64, ge=1)  # events buffered per browser before it is dropped
    max_clients: int = Field(default=16, ge=1)  # concurrent live pages (SSE connections)
    write_timeout_s: float = Field(default=10.0, gt=0)  # a stuck browser's socket write gives up after this


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
