"""``wirewatch serve``: the web view without a stream: ``/segment`` (upload an image), the JSON API,
``/metrics``, ``/healthz``, ``/readyz``."""

from __future__ import annotations

import typer


def serve(
    port: int = typer.Option(8080, "--port", "-p", help="HTTP port (0 = any free port)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0 exposes it to the network)."),
    backend: str = typer.Option("auto", "--backend", "-b", help="auto | onnxruntime | watershed | tensorrt."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model file or shipped model name."),
    max_upload_mb: float = typer.Option(32.0, "--max-upload-mb", help="Larger uploads get 413."),
    token_file: str | None = typer.Option(None, "--bearer-token-file", help="File whose first line is a bearer "
                                          "token required on every route (browsers: log in at /login once)."),
    allowed_hosts: list[str] = typer.Option([], "--allowed-host", help="Host name answered besides loopback and the "
                                            "bound address (repeatable; others get 421)."),
    allowed_origins: list[str] = typer.Option([], "--allowed-origin", help="Origin allowed to POST besides the "
                                              "server's own, e.g. a reverse proxy's https://name (repeatable)."),
) -> None:
    """Serve the upload page and API until Ctrl-C. Example: wirewatch serve --port 8080 --backend watershed"""
    import threading

    from wirewatch.cli.backends import open_segmenter
    from wirewatch.errors import InputError
    from wirewatch.segment import BACKENDS

    if backend != "auto" and backend not in BACKENDS:
        raise InputError(f"--backend {backend!r}: allowed auto, {', '.join(sorted(BACKENDS))}")
    if max_upload_mb <= 0:
        raise InputError(f"--max-upload-mb must be positive, got {max_upload_mb}")
    from prometheus_client import CollectorRegistry

    from wirewatch.daemon.service import _read_token
    from wirewatch.web import HttpServer, WebApp, WebConfig

    # loaded now (a bad model is an error before serving), behind the resize / scale path every model runs in;
    # auto: the daemon's rule (the shipped model when installed, else watershed)
    segmenter, name = open_segmenter(backend, model, {})
    config = WebConfig(max_upload_bytes=int(max_upload_mb * 1024 * 1024))
    app = WebApp(config=config, segmenter=segmenter, backend=name, title="wirewatch")
    server = HttpServer(CollectorRegistry(), host=host, port=port, app=app,
                        bearer_token=_read_token(token_file), allowed_hosts=allowed_hosts,
                        allowed_origins=allowed_origins)
    typer.echo(f"wirewatch web view on {server.url}/segment (backend {name}); Ctrl-C stops")
    stop = threading.Event()
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
