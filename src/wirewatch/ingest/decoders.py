"""The explicit registry of decoders: format name -> class."""

from __future__ import annotations

from typing import Any

from wirewatch.errors import ConfigError
from wirewatch.ingest.array10 import Array10Decoder
from wirewatch.ingest.base import Decoder
from wirewatch.ingest.stream1 import Stream1Decoder
from wirewatch.ingest.stream2 import Stream2Decoder

DECODERS: dict[str, type[Any]] = {
    "array-1.0": Array10Decoder,
    "stream2": Stream2Decoder,
    "stream1": Stream1Decoder,
}
FORMATS: tuple[str, ...] = tuple(DECODERS)


def make_decoder(format: str, **options: Any) -> Decoder:
    """A fresh decoder for ``format`` (``array-1.0``, ``stream2``, ``stream1``).

    Options: ``limits=DecodeLimits(...)`` for all; ``channel=`` for ``stream2``; ``sample_pixel_key=`` and
    ``sample_pixel_scale=`` (where the sample pixel size is) for the DECTRIS formats.
    """
    try:
        cls = DECODERS[format]
    except KeyError:
        raise ConfigError(f"unknown input format {format!r}; allowed: {', '.join(FORMATS)}") from None
    if format != "stream2":
        options.pop("channel", None)  # only Stream V2 has channels
    if format not in ("stream2", "stream1"):
        # array-1.0 headers carry pixel_size_nm (the sample's) themselves
        options.pop("sample_pixel_key", None)
        options.pop("sample_pixel_scale", None)
    decoder: Decoder = cls(**options)
    return decoder
