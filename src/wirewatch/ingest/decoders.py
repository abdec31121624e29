"""Old home of the decoder registry, kept so ``from wirewatch.ingest.decoders import make_decoder`` works.

The registry is ``wirewatch.ingest.formats``; ``FORMATS`` here is read from it each time (never a copy).
"""

from __future__ import annotations

from typing import Any

from wirewatch.ingest.formats import format_names, make_decoder

__all__ = ["make_decoder"]  # and FORMATS, served by __getattr__ below


def __getattr__(name: str) -> Any:
    if name == "FORMATS":  # live: includes formats registered later (e.g. pva by wirewatch.epics)
        return format_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
