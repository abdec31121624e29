"""What every decoder and source looks like (``Decoder``, ``Source``) and the raw message between them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from wirewatch.types import StreamEvent

Parts = Sequence[bytes]


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One multipart message as received, not yet decoded.

    ``control`` is True for series start/end messages (classified cheaply,
    without decoding); those are never dropped. ``seq`` counts messages in
    arrival order from 0.
    """

    parts: tuple[bytes, ...]
    received_at: float
    seq: int
    control: bool = False

    @property
    def nbytes(self) -> int:
        return sum(len(p) for p in self.parts)


@runtime_checkable
class Decoder(Protocol):
    """Turns one raw message into stream events; raises ``DecodeError(kind, msg)`` on bad input.

    Decoders are stateful per stream (they remember the series start: pixel
    size, channels, image size) and are used from one thread.
    """

    format_name: str

    def decode(self, parts: Parts, received_at: float | None = None) -> list[StreamEvent]: ...

    def is_control(self, parts: Parts) -> bool:
        """Cheap: is this a series start/end message? Never decompresses or fully parses."""
        ...


@dataclass(frozen=True)
class SourceStats:
    """Counters of a source. ``received == delivered + sum(dropped) + sum(rejected) + buffered``."""

    received: int
    delivered: int
    buffered: int
    max_buffered: int
    dropped: Mapping[str, int] = field(default_factory=dict)  # reason -> count (e.g. overflow)
    rejected: Mapping[str, int] = field(default_factory=dict)  # DecodeError kind -> count (e.g. oversized)
    received_bytes: int = 0
    reconnects: int = 0  # times a dropped connection was re-established by us (ZmqSource)


@runtime_checkable
class Source(Protocol):
    """Where raw messages come from (ZeroMQ socket, file replay)."""

    format_name: str  # the decoder format its messages need

    def start(self) -> None: ...

    def get(self, timeout: float | None = None) -> RawMessage | None:
        """The next message, or None after ``timeout`` seconds (or when a finite source is exhausted)."""
        ...

    @property
    def finished(self) -> bool:
        """True once a finite source has delivered everything (never for a live socket)."""
        ...

    def stats(self) -> SourceStats: ...

    def close(self) -> None: ...


def describe_input(source: object) -> str:
    """One line for the daemon's start-up log: the source's own ``describe_input()`` where it has one
    (ZeroMQ, PV Access, files, watched folder), else its class and format."""
    describe = getattr(source, "describe_input", None)
    if callable(describe):
        return str(describe())
    return f"{type(source).__name__}, format {getattr(source, 'format_name', '?')}"
