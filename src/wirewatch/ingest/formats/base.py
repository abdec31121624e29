"""What a stream format is: ``StreamFormat`` (one per file in this package) and its ``SeriesWriter``.

A format bundles everything wirewatch knows about one wire format, so adding one is one new file
plus one ``register(...)`` line in ``wirewatch.ingest.formats``:

- ``decoder(limits=..., **options)``: a fresh stateful ``Decoder`` (raw parts -> ``Frame`` events);
- ``is_control(parts)``: is this a series start/end message? (cheap: the ZeroMQ drain thread calls it
  for every message, so it never decompresses or fully parses);
- ``writer(...)``: a ``SeriesWriter`` making the exact messages a real sender produces (simulator, tests);
- ``describe(parts, limits)``: one message decoded in full and summarised (``wirewatch inspect``);
- ``sniff(parts)``: does this message look like ours? (``guess_format`` for captured files);
- ``summary``: one line for ``--help`` and error messages.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import numpy as np

from wirewatch.ingest.base import Decoder, Parts
from wirewatch.ingest.limits import DecodeLimits


class SeriesWriter(Protocol):
    """The messages of one series in one format, each a list of parts for ``send_multipart``."""

    def start(self, shape: tuple[int, int], dtype: str, count: int) -> list[list[bytes]]:
        """Messages announcing a series of ``count`` images of ``shape`` (height, width); [] if the format has none."""
        ...

    def image(self, frame: int, image: np.ndarray, *, time: float | None = None) -> list[bytes]:
        """One image message; ``time`` (Unix s) where the format carries an acquisition time."""
        ...

    def end(self) -> list[list[bytes]]:
        """Messages closing the series; [] if the format has none."""
        ...


class StreamFormat(ABC):
    """One wire format; subclass it in ``wirewatch/ingest/formats/<name>.py`` and register an instance."""

    name: ClassVar[str]  # the value of ingest.format / --format, e.g. "stream2"
    summary: ClassVar[str]  # one line: what sends it
    # Decoder keyword options beyond ``limits`` that this format understands; ``make_decoder`` drops the
    # others, so callers can pass the whole ingest config (``channel`` means nothing to array-1.0).
    decoder_options: ClassVar[frozenset[str]] = frozenset()
    # True when pixels at the dtype's maximum mean NODATA (DECTRIS): the simulator keeps scene pixels below it.
    reserves_nodata: ClassVar[bool] = False
    # How ``write_capture`` keeps one message: ".cbor" (a lone CBOR body), ".json" (+ ".bin"), else ".zmsg".
    capture_suffix: ClassVar[str] = ".zmsg"
    # The values of the writer's ``compression`` option (``wirewatch simulate --compression``); () if it has none.
    compressions: ClassVar[tuple[str | None, ...]] = ()

    @abstractmethod
    def decoder(self, *, limits: DecodeLimits, **options: Any) -> Decoder:
        """A fresh decoder (decoders remember the series start, so one per stream)."""

    def is_control(self, parts: Parts) -> bool:
        """Series start/end message? Cheap and prefix-only; such messages are never dropped."""
        return False

    @abstractmethod
    def writer(self, *, series_id: int = 1, series_unique_id: str | None = None,
               pixel_size_nm: float | None = None, signal: str | None = None, i0: float | None = None,
               modality: str | None = None, **options: Any) -> SeriesWriter:
        """A writer of one series. ``pixel_size_nm`` is the sample's; ``series_unique_id``, ``signal``,
        ``i0`` and ``modality`` are written only where the format carries them (ignored elsewhere);
        ``options`` are the format's own (e.g. ``compression`` for Stream V2, one of ``compressions``)
        and a TypeError names any it does not know."""

    @abstractmethod
    def describe(self, parts: list[bytes], limits: DecodeLimits) -> dict[str, Any]:
        """Decode one message fully and summarise it as plain JSON-able data; raises ``DecodeError``."""

    def sniff(self, parts: Sequence[bytes]) -> bool:
        """Does this message look like one of ours (cheap, for captured files without a stated format)?"""
        return False

    def encode_series(self, images: Sequence[np.ndarray], *, series_id: int = 1, first_frame: int = 0,
                      pixel_size_nm: float | None = None, **options: Any) -> list[list[bytes]]:
        """Every message of one series (start, images, end where the protocol has them)."""
        if not images:
            return []
        writer = self.writer(series_id=series_id, pixel_size_nm=pixel_size_nm, **options)
        first = images[0]
        msgs = writer.start((int(first.shape[0]), int(first.shape[1])), first.dtype.name, len(images))
        msgs += [writer.image(first_frame + i, img) for i, img in enumerate(images)]
        return [*msgs, *writer.end()]

    def __repr__(self) -> str:
        return f"<stream format {self.name}>"
