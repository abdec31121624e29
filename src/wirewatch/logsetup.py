"""The command line's logging: text or JSON lines on stderr, the level from ``-v`` or the environment.

- ``WIREWATCH_LOG_LEVEL``: ``DEBUG``, ``INFO`` (default), ``WARNING``, ``ERROR``, ``CRITICAL`` (any case)
  or a number; ``--verbose`` still means DEBUG. A value that is none of these is a ``ConfigError``.
- ``WIREWATCH_LOG_FORMAT`` / ``--log-format``: ``text`` (default, ``time LEVEL logger: message``) or
  ``json``: one JSON object per line, ``{"time", "level", "logger", "message", "thread"}`` plus
  ``"exception"`` (the traceback text) when there is one, as container log collectors (Loki, Fluent Bit,
  Cloud Logging) parse without a regular expression.

The JSON formatter is a few lines over ``json`` rather than a dependency (python-json-logger): the output
is a fixed handful of fields. The redaction filter (``wirewatch.security``) runs on the handler before
either formatter, so tokens are masked in both forms.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping

from wirewatch.errors import ConfigError

LEVEL_ENV = "WIREWATCH_LOG_LEVEL"
FORMAT_ENV = "WIREWATCH_LOG_FORMAT"
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside the message are escaped by JSON)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


def level_from(environ: Mapping[str, str], *, verbose: bool = False) -> int:
    """The log level: DEBUG with ``verbose``, else ``WIREWATCH_LOG_LEVEL``, else INFO."""
    if verbose:
        return logging.DEBUG
    raw = environ.get(LEVEL_ENV, "").strip()
    if not raw:
        return logging.INFO
    if raw.upper() in _LEVELS:
        return int(getattr(logging, raw.upper()))
    if raw.isdigit():
        return int(raw)
    raise ConfigError(f"{LEVEL_ENV}={raw!r} is not a log level: use one of {', '.join(_LEVELS)} or a number")


def format_from(environ: Mapping[str, str], option: str | None = None) -> str:
    """``text`` or ``json``: the ``--log-format`` option, else ``WIREWATCH_LOG_FORMAT``, else text."""
    raw = (option or environ.get(FORMAT_ENV, "") or "text").strip().lower()
    if raw not in FORMATS:
        where = "--log-format" if option else FORMAT_ENV
        raise ConfigError(f"{where}={raw!r} is not a log format: use text or json")
    return raw


def configure_logging(*, verbose: bool = False, log_format: str | None = None,
                      environ: Mapping[str, str] | None = None) -> None:
    """Give the root logger a stderr handler with this level and format, as ``logging.basicConfig`` did:
    when the root logger already has handlers that are not ours (an embedding program, pytest), they are
    left alone. A second call re-configures our own handler."""
    env = os.environ if environ is None else environ
    level = level_from(env, verbose=verbose)  # checked even when nothing is configured: a typo is an error
    fmt = format_from(env, log_format)
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_wirewatch", False)]
    if ours or not root.handlers:
        if not ours:
            handler: logging.Handler = logging.StreamHandler(sys.stderr)
            handler._wirewatch = True  # type: ignore[attr-defined]
            root.addHandler(handler)
            ours = [handler]
        formatter: logging.Formatter = JsonLinesFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)
        for ours_handler in ours:
            ours_handler.setFormatter(formatter)
        root.setLevel(level)
    from wirewatch.security import install_log_redaction

    install_log_redaction()  # tokens and registered secrets never reach the log output
