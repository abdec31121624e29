"""``IngestConfig``: where frames come from and how much of them we accept."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from wirewatch.config.base import StrictModel
from wirewatch.ingest.limits import DecodeLimits, MiB


class IngestConfig(StrictModel):
    """The ``ingest`` section of the daemon config (env: ``WIREWATCH_INGEST__<KEY>``)."""

    source: Literal["zmq", "files"] = "zmq"
    # ZeroMQ input. DECTRIS convention: the detector binds PUSH, we connect PULL.
    endpoint: str = Field("tcp://127.0.0.1:31001", min_length=1, max_length=1024)
    socket: Literal["pull", "sub"] = "pull"
    bind: bool = False
    topic: str = Field("", max_length=256, description="SUB prefix filter; a first part equal to it is stripped")
    format: Literal["array-1.0", "stream2", "stream1"] = "stream2"
    channel: str | None = Field(None, description="Stream V2 channel; default: the first one")
    # Overload: 'latest' keeps the newest frames (live monitoring), 'queue' is lossless (back-pressure).
    policy: Literal["latest", "queue"] = "latest"
    buffer: int = Field(2, ge=1, le=100_000, description="raw messages held between the socket and the decoder")
    hwm: int = Field(16, ge=1, le=1_000_000, description="ZeroMQ receive high-water mark (messages)")
    # Untrusted input limits.
    max_message_bytes: int = Field(64 * MiB, ge=1024, le=4096 * MiB)
    max_pixels: int = Field(16 * MiB, ge=1, le=1 << 32)
    max_decompressed_bytes: int = Field(256 * MiB, ge=1024, le=8192 * MiB)
    # File replay.
    path: str | None = Field(None, description="folder or file to replay when source is 'files'")
    rate: float = Field(0.0, ge=0.0, le=1e6, description="replay frames per second; 0 = as fast as consumed")
    loop: bool = False

    @model_validator(mode="after")
    def _files_need_path(self) -> IngestConfig:
        if self.source == "files" and not self.path:
            raise ValueError("source 'files' needs 'path' (a folder of images or captured messages)")
        if "://" not in self.endpoint:
            raise ValueError(f"endpoint {self.endpoint!r} must look like transport://address, "
                             "e.g. tcp://127.0.0.1:31001 or ipc:///tmp/frames")
        return self

    def limits(self) -> DecodeLimits:
        return DecodeLimits(max_message_bytes=self.max_message_bytes, max_pixels=self.max_pixels,
                            max_decompressed_bytes=self.max_decompressed_bytes)
