"""Old home of the DECTRIS Stream V2 decoder: see ``wirewatch.ingest.formats.stream2``."""

from wirewatch.ingest.formats.stream2 import (
    DEFAULT_SAMPLE_PIXEL_KEY,
    FORMAT,
    MESSAGE_TYPES,
    METRES_TO_NM,
    SeriesInfo,
    Stream2Decoder,
    channel_arrays,
    nodata_value,
    read_message,
    stream2_type,
    valid_mask,
)

__all__ = ["DEFAULT_SAMPLE_PIXEL_KEY", "FORMAT", "MESSAGE_TYPES", "METRES_TO_NM", "SeriesInfo", "Stream2Decoder",
           "channel_arrays", "nodata_value", "read_message", "stream2_type", "valid_mask"]
