"""Old home of the cheap start/end classification; each format's file has its own now.

``wirewatch.ingest.formats.is_control(format, parts)`` is the one entry point; these names stay for
callers that used them directly.
"""

from wirewatch.ingest.formats.stream1 import stream1_is_control
from wirewatch.ingest.formats.stream2 import stream2_type

__all__ = ["stream1_is_control", "stream2_type"]
