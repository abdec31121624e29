"""``IngestConfig``: where frames come from and how much of them we accept."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from wirewatch.config.base import StrictModel
from wirewatch.ingest.folder_config import WatchConfig
from wirewatch.ingest.formats import DEFAULT_FORMAT, format_names
from wirewatch.ingest.limits import DecodeLimits, MiB


class IngestCurveConfig(StrictModel):
    """CURVE encryption and authentication of the frame input; keys from certificate files.

    Certificates as written by ``zmq.auth.create_certificates``. ``secret_file`` is this
    side's ``.key_secret`` (a client keypair when connecting, the server keypair when binding).
    Connecting needs the sender's public ``.key`` (``server_public_file``); binding may restrict
    senders to the public certificates in ``authorized_clients_dir`` (None: any sender that
    knows our public key, i.e. encryption only).
    """

    secret_file: Path
    server_public_file: Path | None = Field(default=None, description="the sender's public certificate (connect)")
    authorized_clients_dir: Path | None = Field(default=None, description="allowed senders' public certificates (bind)")


class IngestConfig(StrictModel):
    """The ``ingest`` section of the daemon config (env: ``WIREWATCH_INGEST__<KEY>``)."""

    source: Literal["zmq", "files", "folder"] = "zmq"  # folder: a watched folder (``watch``)
    # ZeroMQ input. DECTRIS convention: the detector binds PUSH, we connect PULL.
    endpoint: str = Field(default="tcp://127.0.0.1:31001", min_length=1, max_length=1024)
    socket: Literal["pull", "sub"] = "pull"
    bind: bool = False
    topic: str = Field(default="", max_length=256, description="SUB prefix filter; a first part equal to it is stripped")
    # One of the registered stream formats (wirewatch.ingest.formats), checked when the config is read.
    format: str = Field(default=DEFAULT_FORMAT, description="a registered stream format, e.g. stream2, stream1, "
                        "array-1.0 (wirewatch.ingest.formats.format_names())")
    channel: str | None = Field(default=None, description="Stream V2 channel; default: the first one")
    # The sample pixel size (nm) of DECTRIS streams: a dotted field of the series start message (Stream V2)
    # or detector configuration (Stream V1). Never the detector's own pixel_size_x. None: not from the stream.
    sample_pixel_key: str | None = Field(default="user_data.sample_pixel_size_nm", max_length=256)
    sample_pixel_scale: float = Field(default=1.0, gt=0, description="factor from the field's unit to nm (um: 1000)")
    # Overload: 'latest' keeps the newest frames (live monitoring), 'queue' is lossless (back-pressure).
    policy: Literal["latest", "queue"] = "latest"
    buffer: int = Field(default=2, ge=1, le=100_000, description="raw messages held between the socket and the decoder")
    hwm: int = Field(default=16, ge=1, le=1_000_000, description="ZeroMQ receive high-water mark (messages)")
    # Untrusted input limits.
    max_message_bytes: int = Field(default=64 * MiB, ge=1024, le=4096 * MiB)
    max_pixels: int = Field(default=16 * MiB, ge=1, le=1 << 32)
    max_decompressed_bytes: int = Field(default=256 * MiB, ge=1024, le=8192 * MiB)
    # File replay.
    path: str | None = Field(default=None, description="folder or file to replay when source is 'files'")
    rate: float = Field(default=0.0, ge=0.0, le=1e6, description="replay frames per second; 0 = as fast as consumed")
    loop: bool = False
    # Watched folder (source 'folder'; wirewatch run --format folder --input DIR).
    watch: WatchConfig = Field(default_factory=WatchConfig)
    # Security (optional).
    curve: IngestCurveConfig | None = None

    @field_validator("format")
    @classmethod
    def _registered_format(cls, value: str) -> str:
        allowed = format_names()
        if value not in allowed:
            # PydanticCustomError: the message as written, without pydantic's "Value error, " prefix
            raise PydanticCustomError("stream_format", "not a registered stream format; allowed: {allowed} "
                                      "(PV Access input: epics.input.pv, or wirewatch run --format pva)",
                                      {"allowed": ", ".join(allowed)})
        return value

    @model_validator(mode="after")
    def _files_need_path(self) -> IngestConfig:
        if self.source == "files" and not self.path:
            raise ValueError("source 'files' needs 'path' (a folder of images or captured messages)")
        if self.source == "folder" and not self.watch.path:
            raise ValueError("source 'folder' needs 'watch.path' (the folder the instrument writes files into)")
        if self.topic and self.socket != "sub":
            raise ValueError(f"topic {self.topic!r} only applies to socket 'sub' (socket is {self.socket!r})")
        if "://" not in self.endpoint:
            raise ValueError(f"endpoint {self.endpoint!r} must look like transport://address, "
                             "e.g. tcp://127.0.0.1:31001 or ipc:///tmp/frames")
        if self.curve is not None and self.source == "zmq":
            if self.bind and self.curve.server_public_file is not None:
                raise ValueError("curve.server_public_file is for connecting; when binding give "
                                 "curve.authorized_clients_dir (or nothing, for encryption only)")
            if not self.bind and self.curve.server_public_file is None:
                raise ValueError("curve needs server_public_file (the sender's public certificate) when connecting")
            if not self.bind and self.curve.authorized_clients_dir is not None:
                raise ValueError("curve.authorized_clients_dir is for binding; when connecting give "
                                 "curve.server_public_file")
        return self

    def limits(self) -> DecodeLimits:
        return DecodeLimits(max_message_bytes=self.max_message_bytes, max_pixels=self.max_pixels,
                            max_decompressed_bytes=self.max_decompressed_bytes)
