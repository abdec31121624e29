"""The one ``wirewatch`` command and its sub-commands.

Each sub-command lives in its own module under ``wirewatch.cli`` and is
registered explicitly below. Command modules import heavy libraries (torch,
matplotlib, onnxruntime) inside the command function, so ``--help`` stays fast.
"""

from __future__ import annotations

import importlib
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


# Every sub-command: (name, "module:attribute"), in the order ``--help`` lists them. A function becomes a
# command, a ``typer.Typer`` a command group. Kept explicit (no discovery). Only the small command modules
# are imported here: each imports its heavy libraries (torch, matplotlib, onnxruntime) inside the command.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("synth", "wirewatch.cli.synth:synth"),
    ("train", "wirewatch.cli.train:train"),
    ("export", "wirewatch.cli.export:export"),
    ("inspect", "wirewatch.cli.inspect:inspect"),
    ("run", "wirewatch.cli.run:run"),
    ("simulate", "wirewatch.cli.simulate:simulate"),
    ("demo", "wirewatch.cli.demo:demo"),
    ("alerts", "wirewatch.cli.alerts:alerts_app"),
    ("changepoints", "wirewatch.cli.changepoints:changepoints"),
    ("report", "wirewatch.cli.report:report"),
    ("stats", "wirewatch.cli.stats:stats"),
    ("segment", "wirewatch.cli.segment:segment"),
    ("evaluate", "wirewatch.cli.evaluate:evaluate"),
    ("serve", "wirewatch.cli.serve:serve"),
    ("keys", "wirewatch.cli.keys:keys_app"),
)
# ``wirewatch bench <name>``
BENCH_COMMANDS: tuple[tuple[str, str], ...] = (
    ("model", "wirewatch.cli.bench_model:bench_model"),
    ("decode", "wirewatch.cli.bench_decode:decode"),
    ("ingest", "wirewatch.cli.bench_ingest:ingest"),
    ("synth", "wirewatch.cli.bench_synth:bench_synth"),
    ("daemon", "wirewatch.cli.bench_daemon:bench_daemon"),
    ("alerts", "wirewatch.cli.bench_alerts:bench_alerts"),
    ("particles", "wirewatch.cli.bench_particles:bench_particles"),
    ("changepoint", "wirewatch.cli.bench_changepoint:bench_changepoint"),
    ("stats", "wirewatch.cli.bench_stats:bench_stats"),
    ("web", "wirewatch.cli.bench_web:bench_web"),
    ("pva", "wirewatch.cli.bench_pva:bench_pva"),
    ("track", "wirewatch.cli.bench_track:bench_track"),
)


def _register(group: typer.Typer, commands: tuple[tuple[str, str], ...]) -> None:
    for name, target in commands:
        module, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if isinstance(command, typer.Typer):
            group.add_typer(command, name=name)
        else:
            group.command(name)(command)


_register(app, COMMANDS)
_register(bench_app, BENCH_COMMANDS)
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
    except ModuleNotFoundError as exc:  # a library of an extra that is not installed: name the extra
        from wirewatch.extras import missing

        error = missing(exc.name or "", "this command")
        if error is None:
            raise
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        sys.exit(2)
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
