"""Old home of the ``array-1.0`` decoder: see ``wirewatch.ingest.formats.array10``."""

from wirewatch.ingest.formats.array10 import HTYPE, SIGNALS, Array10Decoder, encode_array10

__all__ = ["HTYPE", "SIGNALS", "Array10Decoder", "encode_array10"]
