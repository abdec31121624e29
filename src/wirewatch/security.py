"""Small security helpers shared by the command line and the daemon.

- ``check_file_permissions``: a warning (never the content) when a config, key or token file can be read
  (or changed) by users other than its owner. A config file names the key and token files and where
  alerts go, so a world-readable one tells every local user where the secrets are, and a
  group/world-writable one lets them redirect alerts or the input.
- ``RedactingFilter`` / ``install_log_redaction``: a logging filter on the output handlers that masks
  bearer tokens, ``token=`` / ``secret=`` / ``password=`` query or key-value parameters and any secret
  value registered with ``register_secret``, so a secret that reaches a log call by accident (a request
  line with ``?token=...``, an exception text) is not written out.
- ``generate_curve_keypair``: a ZeroMQ CURVE certificate pair (``NAME.key`` public, ``NAME.key_secret``
  private, mode 0600), as ``zmq.auth.create_certificates`` writes them, for ``wirewatch keys generate``.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
from pathlib import Path

log = logging.getLogger(__name__)

MASK = "***"
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
# Secrets shorter than this are not masked by value (masking "1" would garble every log line).
MIN_REGISTERED_LENGTH = 6
_PATTERNS = (
    # Authorization: Bearer <token>, "Bearer <token>"
    re.compile(r"(?i)(\bbearer\s+)([^\s'\",;]+)"),
    # token=..., secret=..., password=..., api_key=... in query strings, cookies and key=value text
    re.compile(r"(?i)(\b(?:[a-z_]*token|[a-z_]*secret|password|passwd|api_?key)=)([^\s&'\";,]+)"),
)


def check_file_permissions(path: str | Path, what: str, *, secret: bool) -> list[str]:
    """Warn about ``path``'s mode; returns the problems found (empty when fine or unreadable).

    ``secret=True`` (key and token files): readable or writable by group or others is a problem.
    ``secret=False`` (config files): readable by others, or writable by group or others.
    """
    p = Path(path)
    try:
        mode = stat.S_IMODE(p.stat().st_mode)
    except OSError:
        return []  # the reader of the file reports a missing / unreadable file with its own error
    problems = []
    readable = stat.S_IRGRP | stat.S_IROTH if secret else stat.S_IROTH
    if mode & readable:
        problems.append("readable by " + ("group or others" if secret else "other users"))
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        problems.append("writable by group or others")
    if problems:
        fix = "chmod 600" if secret else "chmod 640 (or 600)"
        log.warning("%s %s is %s (mode %03o); %s it", what, p, " and ".join(problems), mode, fix)
    return problems


def register_secret(value: str) -> None:
    """Mask ``value`` wherever it appears in a log line from now on (values shorter than 6 are ignored)."""
    if value and len(value) >= MIN_REGISTERED_LENGTH:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with registered secrets and token-like parameters replaced by ``***``."""
    with _secrets_lock:
        values = sorted(_secrets, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and exception text) through ``redact`` before it is emitted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> RedactingFilter:
    """Add one ``RedactingFilter`` to every handler of ``logger`` (default: the root logger); idempotent.

    Handler filters see every record that reaches the handler, including those propagated from the
    ``wirewatch.*`` loggers (a filter on the logger itself would only see its own records)."""
    target = logger if logger is not None else logging.getLogger()
    existing = next((f for h in target.handlers for f in h.filters if isinstance(f, RedactingFilter)), None)
    flt = existing or RedactingFilter()
    for handler in target.handlers:
        if flt not in handler.filters:
            handler.addFilter(flt)
    return flt


def generate_curve_keypair(directory: str | Path, name: str, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``NAME.key`` (public, 0644) and ``NAME.key_secret`` (0600) under ``directory``."""
    import zmq.auth

    from wirewatch.errors import ConfigError, InputError

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise InputError(f"key name {name!r}: use letters, digits, '_', '.', '-'")
    folder = Path(directory)
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    if not overwrite and (public.exists() or secret.exists()):
        raise ConfigError(f"{public} or {secret} already exists (pass --force to replace it)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        old_umask = os.umask(0o077)  # the secret file is never readable by others, not even briefly
        try:
            pub, sec = zmq.auth.create_certificates(str(folder), name)
        finally:
            os.umask(old_umask)
        Path(sec).chmod(0o600)
        Path(pub).chmod(0o644)
    except OSError as exc:
        raise ConfigError(f"cannot write keys under {folder}: {exc}") from None
    return Path(pub), Path(sec)
