"""``wirewatch demo``: simulator + daemon on loopback with the shipped model and config."""

from __future__ import annotations

import time
from pathlib import Path

import typer


def demo(
    frames: int = typer.Option(300, "--frames", "-n", help="Frames to simulate."),
    rate: float = typer.Option(4.0, "--rate", help="Simulated frames per second."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder (default: a fresh "
                                    "./wirewatch-demo-YYYYmmdd-HHMMSS)."),
    scenario: str = typer.Option("demo", "--scenario", "-s", help="Scenario YAML file or shipped name."),
    format: str = typer.Option("stream2", "--format", "-f", help="array-1.0 | stream2 | stream1."),
    backend: str | None = typer.Option(None, "--backend", "-b", help="Override the config's segmenter backend."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Daemon config (default: the shipped one)."),
    policy: str = typer.Option("latest", "--policy", help="latest (live) or queue (process every frame)."),
) -> None:
    """Stream a simulated experiment through the daemon; live progress, then stats.png and overlay.png."""
    import logging

    from wirewatch.demo import run_demo
    from wirewatch.errors import ConfigError

    if not logging.getLogger().isEnabledFor(logging.DEBUG):  # the live view says what matters; -v for logs
        logging.getLogger("wirewatch").setLevel(logging.WARNING)

    if policy not in ("latest", "queue"):
        raise ConfigError(f"--policy must be latest or queue, got {policy!r}")
    if frames < 1:
        raise ConfigError(f"--frames must be >= 1, got {frames}")
    out = out or Path(f"wirewatch-demo-{time.strftime('%Y%m%d-%H%M%S')}")
    summary = run_demo(out, frames=frames, rate=rate, scenario=scenario, format=format, policy=policy,
                       backend=backend, config_path=config)
    if summary.interrupted:
        raise typer.Exit(130)
