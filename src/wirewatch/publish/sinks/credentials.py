"""Secrets for sinks, read from a file or an environment variable and never logged.

``Secret`` hides its value from ``repr``/``str`` so an accidental log line or a
traceback shows ``Secret(file=/etc/...)``, not the key.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from wirewatch.errors import ConfigError
from wirewatch.publish.config import SecretRef
from wirewatch.security import register_secret  # the CLI's log redaction masks it wherever it appears

log = logging.getLogger(__name__)


class Secret:
    __slots__ = ("_source", "_value")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self._source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self._source})"

    __str__ = __repr__


def warn_if_readable_by_others(path: Path, what: str, mode: int | None = None) -> None:
    """Log a warning (never the content) when a key file is readable by group or others."""
    if mode is None:
        try:
            mode = path.stat().st_mode
        except OSError:
            return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("%s: secret file %s is readable by group or others (mode %o); chmod 600 it",
                    what, path, stat.S_IMODE(mode))


def load_secret(ref: SecretRef, what: str) -> Secret:
    """Read the secret ``ref`` names; a missing or empty one is a ConfigError naming where we looked."""
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if not value:
            raise ConfigError(f"{what}: environment variable {ref.env} is not set or empty")
        register_secret(value.strip())
        return Secret(value.strip(), f"env={ref.env}")
    assert ref.file is not None
    path = ref.file
    try:
        info = path.stat()
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read secret file {path}: {exc.strerror or exc}") from None
    warn_if_readable_by_others(path, what, info.st_mode)
    lines = text.splitlines()
    value = lines[0].strip() if lines else ""
    if not value:
        raise ConfigError(f"{what}: secret file {path} is empty")
    register_secret(value)
    return Secret(value, f"file={path}")
