"""Old home of the DECTRIS Stream V1 decoder: see ``wirewatch.ingest.formats.stream1``."""

from wirewatch.ingest.formats.stream1 import (
    ENCODINGS,
    FORMAT,
    HTYPES,
    Stream1Decoder,
    decode_payload,
    stream1_is_control,
)

__all__ = ["ENCODINGS", "FORMAT", "HTYPES", "Stream1Decoder", "decode_payload", "stream1_is_control"]
