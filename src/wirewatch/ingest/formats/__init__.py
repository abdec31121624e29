"""The registry of stream formats: the one place that says which wire formats wirewatch reads.

Everything that depends on the format asks here: ``IngestConfig.format``'s allowed values, the
decoder the daemon builds (``make_decoder``), the ZeroMQ / file sources' start/end classification
(``is_control``), ``wirewatch inspect`` (``describe``), captured files without a stated format
(``guess_format``) and the simulator's messages (``get_format(name).writer(...)``).

Adding a format is one new file, ``formats/<name>.py`` with a ``StreamFormat`` subclass (decoder,
encoder, control-message test, description), plus one ``register(...)`` line below; a package outside
``ingest`` registers its own the same way (``wirewatch.epics`` adds ``pva`` when its source is built).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wirewatch.errors import ConfigError
from wirewatch.ingest.base import Decoder, Parts
from wirewatch.ingest.formats.array10 import ARRAY10
from wirewatch.ingest.formats.base import SeriesWriter, StreamFormat
from wirewatch.ingest.formats.stream1 import STREAM1
from wirewatch.ingest.formats.stream2 import STREAM2
from wirewatch.ingest.limits import DEFAULT_LIMITS, DecodeLimits

__all__ = ["DEFAULT_FORMAT", "SeriesWriter", "StreamFormat", "format_names", "get_format", "guess_format",
           "is_control", "make_decoder", "register", "unregister"]

_REGISTRY: dict[str, StreamFormat] = {}
DEFAULT_FORMAT = "stream2"  # ingest.format's default, and what an unrecognised capture is tried as


def register(fmt: StreamFormat, *, replace: bool = False) -> StreamFormat:
    """Add ``fmt`` under ``fmt.name``; registering the same instance again is a no-op."""
    known = _REGISTRY.get(fmt.name)
    if known is not None and known is not fmt and not replace:
        raise ValueError(f"stream format {fmt.name!r} is already registered ({known!r})")
    _REGISTRY[fmt.name] = fmt
    return fmt


def unregister(name: str) -> None:
    """Remove a format (tests that register their own)."""
    _REGISTRY.pop(name, None)


register(ARRAY10)
register(STREAM2)
register(STREAM1)


def format_names() -> tuple[str, ...]:
    """The registered format names, in registration order."""
    return tuple(_REGISTRY)


def unknown_format_message(value: object, *, what: str = "input format", also: Sequence[str] = ()) -> str:
    """``unknown input format 'x'; allowed: array-1.0, stream2, stream1`` (+ ``also``, e.g. CLI-only values)."""
    allowed = [*format_names(), *(a for a in also if a not in _REGISTRY)]
    return f"unknown {what} {value!r}; allowed: {', '.join(allowed)}"


def get_format(name: str) -> StreamFormat:
    """The registered format ``name``; ``ConfigError`` listing the registered ones otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(unknown_format_message(name)) from None


def make_decoder(format: str, *, limits: DecodeLimits = DEFAULT_LIMITS, **options: Any) -> Decoder:
    """A fresh decoder for ``format``.

    Options a format does not use are dropped, so the daemon can pass the whole ingest config:
    ``channel=`` (Stream V2), ``sample_pixel_key=`` / ``sample_pixel_scale=`` (where the DECTRIS formats
    keep the sample pixel size).
    """
    fmt = get_format(format)
    return fmt.decoder(limits=limits, **{k: v for k, v in options.items() if k in fmt.decoder_options})


def is_control(format: str, parts: Parts) -> bool:
    """Series start/end message of ``format``? Cheap, prefix-only; False for an unregistered format."""
    fmt = _REGISTRY.get(format)
    return fmt is not None and fmt.is_control(parts)


def guess_format(parts: Sequence[bytes]) -> str:
    """The first registered format that recognises the message (``sniff``), else ``DEFAULT_FORMAT``."""
    for fmt in _REGISTRY.values():
        if fmt.sniff(parts):
            return fmt.name
    return DEFAULT_FORMAT
