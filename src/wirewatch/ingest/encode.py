"""Encoders: the exact message parts a real sender produces, for the simulator and tests.

Each format's encoders live in its file in ``wirewatch.ingest.formats``; this module gathers them
under their old names and adds ``encode_series`` for any registered format. Each returns
``list[bytes]``: the parts of ONE ZeroMQ multipart message (``send_multipart(parts)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from wirewatch.ingest.formats import get_format
from wirewatch.ingest.formats.array10 import encode_array10
from wirewatch.ingest.formats.stream1 import (
    encode_stream1_end,
    encode_stream1_header,
    encode_stream1_image,
    stream1_encoding_for,
)
from wirewatch.ingest.formats.stream2 import (
    STREAM2_COMPRESSIONS,
    TYPED_ARRAY_TAG_LE,
    _stream2_array,
    encode_stream2_end,
    encode_stream2_image,
    encode_stream2_start,
)

__all__ = ["STREAM2_COMPRESSIONS", "TYPED_ARRAY_TAG_LE", "_stream2_array", "encode_array10", "encode_series",
           "encode_stream1_end", "encode_stream1_header", "encode_stream1_image", "encode_stream2_end",
           "encode_stream2_image", "encode_stream2_start", "stream1_encoding_for"]


def encode_series(format: str, images: Sequence[np.ndarray], *, series_id: int = 1, first_frame: int = 0,
                  pixel_size_nm: float | None = None, **options: Any) -> list[list[bytes]]:
    """All messages of one series in ``format`` (start, images, end where the protocol has them).

    ``pixel_size_nm`` is the sample pixel size: array-1.0's header field, the DECTRIS formats'
    ``user_data.sample_pixel_size_nm`` (their detector pixel stays the EIGER's 75 um). ``options`` go
    to the format's writer (e.g. ``compression=`` for stream2, ``encoding=`` for stream1). An unknown
    format raises ``ConfigError`` listing the registered ones.
    """
    return get_format(format).encode_series(images, series_id=series_id, first_frame=first_frame,
                                            pixel_size_nm=pixel_size_nm, **options)
