"""``wirewatch run``: the monitoring daemon beside a live instrument."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from wirewatch.cli.format_option import check_format

INPUT_KINDS = ("pva", "folder")  # --format values that pick an input of their own rather than a stream format


def run(
    config: Path | None = typer.Option(None, "--config", "-c", help="Daemon YAML config (default: the shipped "
                                       "config/default.yaml). Flags override it; WIREWATCH_<SECTION>__<KEY> too."),
    input: str | None = typer.Option(None, "--input", "-i", help="Input endpoint, e.g. tcp://detector:31001."),
    socket: str | None = typer.Option(None, "--socket", help="pull (default, DECTRIS convention) or sub."),
    bind: bool | None = typer.Option(None, "--bind/--connect", help="Bind the input endpoint instead of "
                                     "connecting to it (default: connect)."),
    format: str | None = typer.Option(None, "--format", "-f", help="array-1.0 | stream2 | stream1 | pva (EPICS "
                                      "PV Access: --input is an NTNDArray PV) | folder (a watched folder: "
                                      "--input DIR; TIFF, HDF5/NeXus, MRC, DM3/DM4, EMD files)."),
    backend: str | None = typer.Option(None, "--backend", "-b",
                                       help="auto | onnxruntime | watershed | tensorrt | ray (options: segment.options)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model file or shipped model name."),
    record: Path | None = typer.Option(None, "--record", "-r", help="Append one JSON line per frame here."),
    particles: Path | None = typer.Option(None, "--particles", help="Write per-particle Parquet tables into this "
                                          "folder (record.particles_dir; needs the 'particles' extra)."),
    metrics_port: int | None = typer.Option(None, "--metrics-port", help="HTTP port of /metrics, /healthz, "
                                            "/readyz (0 = any free port)."),
    policy: str | None = typer.Option(None, "--policy", help="latest (live: keep the newest frame) or queue "
                                      "(lossless replay)."),
    publish: str | None = typer.Option(None, "--publish", help="Bind a ZeroMQ PUB socket here for the stats, "
                                       "changepoint and alert topics."),
    pv_prefix: str | None = typer.Option(None, "--pv-prefix", help="Serve results as EPICS PV Access PVs named "
                                         "PREFIX<statistic>, PREFIX status, ... (docs/epics.md)."),
) -> None:
    """Run the monitoring daemon until SIGTERM / Ctrl-C (then drain, flush and exit 0)."""
    from wirewatch.config.daemon import load_daemon_config, shipped_config_path
    from wirewatch.daemon.service import Daemon
    from wirewatch.epics.cli import pva_extensions
    from wirewatch.security import check_file_permissions

    check_format(format, input_kinds=INPUT_KINDS)
    path = config
    if path is None and shipped_config_path().is_file():
        path = shipped_config_path()
    elif path is not None:
        check_file_permissions(path, "config file", secret=False)  # a warning, never the content
    overrides: dict[str, Any] = {}

    def put(section: str, key: str, value: Any) -> None:
        if value is not None:
            overrides.setdefault(section, {})[key] = value

    pva = format == "pva"  # EPICS PV Access input: --input names a PV, not an endpoint (wirewatch.epics)
    folder = format == "folder"  # a watched folder: --input names it (docs/ingest.md)
    if folder:
        put("ingest", "source", "folder")
        overrides.setdefault("ingest", {}).setdefault("watch", {})["path"] = input
    put("ingest", "endpoint", None if pva or folder else input)
    put("ingest", "socket", socket)
    put("ingest", "bind", bind)
    put("ingest", "format", None if pva or folder else format)
    put("ingest", "policy", policy)
    put("segment", "backend", backend)
    put("segment", "model", model)
    put("record", "path", str(record) if record is not None else None)
    put("record", "particles_dir", str(particles) if particles is not None else None)
    put("http", "port", metrics_port)
    if publish is not None:
        overrides.setdefault("publish", {})["zmq"] = {"bind": publish}
    cfg = load_daemon_config(path, overrides=overrides)
    # plug-ins of the daemon (wirewatch.extension): PV Access input / server; the web view comes with http.web
    extensions = pva_extensions(cfg, input_pv=input if pva else None, pv_prefix=pv_prefix, require_input=pva)
    daemon = Daemon(cfg, extensions=extensions)
    daemon.install_signal_handlers()
    daemon.start()
    drained = daemon.wait()
    if daemon.pipeline.error is not None:
        typer.secho(f"error: the pipeline stopped: {daemon.pipeline.error!r}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    if not drained:
        typer.secho("shutdown timeout: frames still in flight were abandoned (counted as dropped)", err=True)
