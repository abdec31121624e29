"""One exception tree for the whole package.

Every message names the bad value (and, where it helps, the allowed ones), so a
scientist at 3 a.m. can fix the input without reading the code.
"""


class WirewatchError(Exception):
    """Base of every error wirewatch raises on purpose."""


class ConfigError(WirewatchError):
    """A configuration file, option or environment variable is invalid."""


class DecodeError(WirewatchError):
    """A network message or captured file could not be decoded.

    ``kind`` is a short, stable label used as the ``kind`` label of
    ``wirewatch_frame_errors_total`` (e.g. ``truncated``, ``bad_dtype``).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ModelError(WirewatchError):
    """A model file is missing, corrupt, or does not match the requested input."""


class BackendUnavailable(WirewatchError):
    """A segmenter backend cannot run on this machine (e.g. no GPU); the message says why."""


class InputError(WirewatchError):
    """A user-supplied file or value (image, COCO file, option) is unusable."""


class SinkError(WirewatchError):
    """A downstream sink (record file, alert receiver) failed."""


class MissingExtra(WirewatchError):
    """An optional library is not installed; the message names the pip extra that brings it
    (``wirewatch.extras``)."""

    def __init__(self, message: str, *, module: str, extra: str) -> None:
        super().__init__(message)
        self.module = module
        self.extra = extra
