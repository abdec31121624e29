"""The one ``wirewatch`` command and its sub-commands.

Each sub-command lives in its own module under ``wirewatch.cli`` and is
registered explicitly below. Command modules import heavy libraries (torch,
matplotlib, onnxruntime) inside the command function, so ``--help`` stays fast.
"""

from __future__ import annotations

import sys

import typer

from wirewatch import __version__
from wirewatch.errors import WirewatchError

app = typer.Typer(
    name="wirewatch",
    help="Segment nanowires in streamed microscope frames, measure them, detect change points, raise alerts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks: speed figures of each part on this machine.", no_args_is_help=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wirewatch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging (else WIREWATCH_LOG_LEVEL, else INFO)."),
    log_format: str = typer.Option(None, "--log-format", help="text or json (JSON lines; default: "
                                   "WIREWATCH_LOG_FORMAT, else text).", show_default=False),
) -> None:
    from wirewatch.logsetup import configure_logging

    configure_logging(verbose=verbose, log_format=log_format)  # with the log redaction (wirewatch.security)


def _register() -> None:
    # One line per sub-command; keep this list explicit (no discovery).
    from wirewatch.cli import synth as synth_cli; app.command("synth")(synth_cli.synth)  # noqa: E702, I001
    from wirewatch.cli import train as train_cli; app.command("train")(train_cli.train)  # noqa: E702, I001
    from wirewatch.cli import export as export_cli; app.command("export")(export_cli.export)  # noqa: E702, I001
    from wirewatch.cli import bench_model; bench_app.command("model")(bench_model.bench_model)  # noqa: E702, I001
    from wirewatch.cli import inspect as inspect_cli; app.command("inspect")(inspect_cli.inspect)  # noqa: E702, I001
    from wirewatch.cli import bench_decode; bench_app.command("decode")(bench_decode.decode)  # noqa: E702, I001
    from wirewatch.cli import bench_ingest; bench_app.command("ingest")(bench_ingest.ingest)  # noqa: E702, I001
    from wirewatch.cli import bench_synth; bench_app.command("synth")(bench_synth.bench_synth)  # noqa: E702, I001
    from wirewatch.cli import run as run_cli; app.command("run")(run_cli.run)  # noqa: E702, I001
    from wirewatch.cli import simulate as simulate_cli; app.command("simulate")(simulate_cli.simulate)  # noqa: E702, I001
    from wirewatch.cli import demo as demo_cli; app.command("demo")(demo_cli.demo)  # noqa: E702, I001
    from wirewatch.cli import bench_daemon; bench_app.command("daemon")(bench_daemon.bench_daemon)  # noqa: E702, I001
    from wirewatch.cli import alerts as alerts_cli; app.add_typer(alerts_cli.alerts_app, name="alerts")  # noqa: E702, I001
    from wirewatch.cli import bench_alerts; bench_app.command("alerts")(bench_alerts.bench_alerts)  # noqa: E702, I001
    from wirewatch.cli import changepoints as changepoints_cli; app.command("changepoints")(changepoints_cli.changepoints)  # noqa: E702, I001
    from wirewatch.cli import report as report_cli; app.command("report")(report_cli.report)  # noqa: E702, I001
    from wirewatch.cli import bench_particles; bench_app.command("particles")(bench_particles.bench_particles)  # noqa: E702, I001
    from wirewatch.cli import bench_changepoint; bench_app.command("changepoint")(bench_changepoint.bench_changepoint)  # noqa: E702, I001
    from wirewatch.cli import stats as stats_cli; app.command("stats")(stats_cli.stats)  # noqa: E702, I001
    from wirewatch.cli import stats as stats_cli; bench_app.command("stats")(stats_cli.bench_stats)  # noqa: E702, I001
    from wirewatch.cli import segment as segment_cli; app.command("segment")(segment_cli.segment)  # noqa: E702, I001
    from wirewatch.cli import evaluate as evaluate_cli; app.command("evaluate")(evaluate_cli.evaluate)  # noqa: E702, I001
    from wirewatch.cli import serve as serve_cli; app.command("serve")(serve_cli.serve)  # noqa: E702, I001
    from wirewatch.cli import bench_web; bench_app.command("web")(bench_web.bench_web)  # noqa: E702, I001
    from wirewatch.cli import keys as keys_cli; app.add_typer(keys_cli.keys_app, name="keys")  # noqa: E702, I001
    from wirewatch.cli import bench_pva; bench_app.command("pva")(bench_pva.bench_pva)  # noqa: E702, I001
    from wirewatch.cli import bench_track; bench_app.command("track")(bench_track.bench_track)  # noqa: E702, I001
    pass


_register()
if bench_app.registered_commands:
    app.add_typer(bench_app, name="bench")


def main() -> None:
    """Entry point: WirewatchError becomes a one-line message and exit code 2, not a traceback."""
    try:
        # standalone_mode=False: click *returns* the code of a typer.Exit(n) instead of exiting with it
        code = app(standalone_mode=False)
    except WirewatchError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.secho("aborted", err=True)
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in standalone_mode=False
        if _is_click_exception(exc):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        raise
    if isinstance(code, int) and code:
        sys.exit(code)


def _is_click_exception(exc: BaseException) -> bool:
    """A click usage error, from click itself or the copy newer typer releases vendor (``typer._click``)."""
    return any(cls.__name__ == "ClickException" for cls in type(exc).__mro__) and hasattr(exc, "show")
