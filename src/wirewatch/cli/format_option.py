"""The ``--format`` option of ``wirewatch run`` and ``wirewatch simulate``: checked against the registry.

Its values are the registered stream formats (``wirewatch.ingest.formats``) plus the input kinds a
command handles itself (``pva``: EPICS PV Access, ``folder``: a watched folder). A bad value is a usage
error naming the flag and every allowed value, not a config error that would blame the shipped config
file for what was typed.
"""

from __future__ import annotations

from collections.abc import Sequence

import typer


def allowed_formats(input_kinds: Sequence[str] = ()) -> tuple[str, ...]:
    from wirewatch.ingest.formats import format_names

    return tuple(dict.fromkeys((*format_names(), *input_kinds)))


def check_format(value: str | None, *, input_kinds: Sequence[str] = ()) -> None:
    """Raise ``typer.BadParameter`` for a ``--format`` value that is neither registered nor in ``input_kinds``."""
    if value is None:
        return
    allowed = allowed_formats(input_kinds)
    if value not in allowed:
        raise typer.BadParameter(f"{value!r} is not a stream format; allowed: {', '.join(allowed)}",
                                 param_hint="'--format'")
