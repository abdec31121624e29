"""Ingest: sources of raw messages (ZeroMQ, file replay), decoders to ``Frame`` events, encoders.

The wire formats are registered in ``wirewatch.ingest.formats`` (one file per format).

Typical use (what the daemon does)::

    cfg = IngestConfig(endpoint="tcp://127.0.0.1:31001", format="stream2")
    source = make_source(cfg, on_drop=lambda reason, msg: ...)
    decoder = make_decoder(cfg.format, channel=cfg.channel, limits=cfg.limits(),
                           sample_pixel_key=cfg.sample_pixel_key, sample_pixel_scale=cfg.sample_pixel_scale)
    source.start()
    while running:
        msg = source.get(timeout=0.1)
        if msg is None:
            continue
        try:
            events = decoder.decode(msg.parts, msg.received_at)  # Frame | SeriesStart | SeriesEnd
        except DecodeError as exc:
            errors_total.labels(kind=exc.kind).inc()   # count, log, skip
    source.close()
"""

from wirewatch.ingest.base import Decoder, RawMessage, Source, SourceStats
from wirewatch.ingest.buffer import MessageBuffer
from wirewatch.ingest.config import IngestConfig, IngestCurveConfig
from wirewatch.ingest.encode import (
    encode_array10,
    encode_series,
    encode_stream1_end,
    encode_stream1_header,
    encode_stream1_image,
    encode_stream2_end,
    encode_stream2_image,
    encode_stream2_start,
)
from wirewatch.ingest.file_source import FileSource
from wirewatch.ingest.formats import StreamFormat, format_names, get_format, make_decoder
from wirewatch.ingest.formats import register as register_format
from wirewatch.ingest.limits import ALLOWED_DTYPES, DEFAULT_LIMITS, ERROR_KINDS, DecodeLimits
from wirewatch.ingest.sources import make_source
from wirewatch.ingest.zmq_source import ZmqSource

__all__ = [
    "ALLOWED_DTYPES", "DEFAULT_LIMITS", "ERROR_KINDS", "FORMATS", "DecodeLimits", "Decoder",
    "FileSource", "IngestConfig", "IngestCurveConfig", "MessageBuffer", "RawMessage", "Source", "SourceStats",
    "StreamFormat", "ZmqSource",
    "encode_array10", "encode_series", "encode_stream1_end", "encode_stream1_header", "encode_stream1_image",
    "encode_stream2_end", "encode_stream2_image", "encode_stream2_start", "format_names", "get_format",
    "make_decoder", "make_source", "register_format",
]


def __getattr__(name: str) -> object:
    if name == "FORMATS":  # the registered format names, read live (never a stale copy)
        return format_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
