"""Replay a folder (or one file) of images or captured messages as a source of raw messages.

Images (PNG, TIFF; a multi-page TIFF stack is a movie, one frame per page) are
turned into ``array-1.0`` messages (frame ids count up from 0 in sorted
file-name order and keep counting when looping), so they go
through the same decoder as network frames. Captured messages (``.cbor``,
``.json`` + ``.bin``, ``.zmsg``; see ``capture``) are replayed as they are;
their format is guessed from the first file. ``rate`` paces delivery in
frames per second (0: as fast as they are taken). A file that cannot be read
is counted in ``stats().rejected`` and skipped.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from wirewatch.errors import DecodeError, InputError
from wirewatch.ingest.base import RawMessage, SourceStats
from wirewatch.ingest.capture import CAPTURE_SUFFIXES, read_capture
from wirewatch.ingest.formats import guess_format, is_control
from wirewatch.ingest.formats.array10 import encode_array10
from wirewatch.ingest.limits import ALLOWED_DTYPES, DEFAULT_LIMITS, DecodeLimits

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".png", ".tif", ".tiff")


def is_tiff(path: Path) -> bool:
    return path.suffix.lower() in (".tif", ".tiff")


def tiff_pages(path: Path) -> int:
    """Number of pages of a TIFF (a stack is a movie: one frame per page); 1 if it cannot be read now."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return max(len(tif.pages), 1)
    except (OSError, ValueError, tifffile.TiffFileError):
        return 1  # reading it will fail and be counted then


def read_image(path: Path, page: int | None = None) -> np.ndarray:
    """A 2-D image in its stored dtype (colour images are converted to grey); ``page`` of a TIFF stack."""
    try:
        if is_tiff(path):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                image = np.asarray(tif.pages[page].asarray() if page is not None else tif.asarray())
        else:
            from PIL import Image

            with Image.open(path) as opened:
                grey = opened.convert("L") if opened.mode in ("RGB", "RGBA", "P", "LA", "CMYK", "YCbCr") else opened
                image = np.asarray(grey)
    except (OSError, ValueError, SyntaxError, IndexError) as exc:  # TiffFileError is a ValueError
        raise InputError(f"cannot read image {path}: {exc}") from None
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        image = image[..., :3].mean(axis=-1).astype(image.dtype)
    if image.ndim != 2:
        raise InputError(f"image {path} has shape {image.shape}; expected a 2-D grey image")
    if image.dtype.name not in ALLOWED_DTYPES:
        image = image.astype(np.float32 if image.dtype.kind == "f" else np.uint16)
    return image


def list_inputs(path: str | Path) -> tuple[list[Path], str]:
    """Files to replay and their kind (``images`` or ``captures``); mixing both is an error."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"replay path not found: {p}")
    candidates = [p] if p.is_file() else sorted(q for q in p.iterdir() if q.is_file())
    images = [q for q in candidates if q.suffix.lower() in IMAGE_SUFFIXES]
    captures = [q for q in candidates if q.suffix in CAPTURE_SUFFIXES
                and (q.suffix != ".json" or q.with_suffix(".bin").exists())]
    if images and captures:
        raise InputError(f"{p} holds both images and captured messages; replay one kind per folder")
    if not images and not captures:
        raise InputError(f"{p} holds no images ({', '.join(IMAGE_SUFFIXES)}) or captured messages "
                         f"({', '.join(CAPTURE_SUFFIXES)})")
    return (images, "images") if images else (captures, "captures")


class FileSource:
    """Replays files in name order at ``rate`` frames/s; same interface as ``ZmqSource``."""

    def __init__(self, path: str | Path, *, rate: float = 0.0, loop: bool = False,
                 limits: DecodeLimits = DEFAULT_LIMITS, signal: str | None = None,
                 pixel_size_nm: float | None = None, on_reject: Callable[[str, str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if rate < 0:
            raise InputError(f"replay rate must be >= 0 frames/s, got {rate}")
        self.files, self.kind = list_inputs(path)
        # (file, page): a multi-page TIFF is a movie, replayed one page per frame
        self.items: list[tuple[Path, int | None]] = []
        for file in self.files:
            pages = tiff_pages(file) if self.kind == "images" and is_tiff(file) else 1
            self.items += [(file, i) for i in range(pages)] if pages > 1 else [(file, None)]
        self.rate, self.loop, self.limits = rate, loop, limits
        self.signal, self.pixel_size_nm = signal, pixel_size_nm
        self._on_reject = on_reject
        self._clock, self._sleep = clock, sleep
        if self.kind == "images":
            self.format_name = "array-1.0"
        else:
            try:
                self.format_name = guess_format(read_capture(self.files[0], limits))
            except DecodeError as exc:
                raise InputError(f"cannot tell the format of {self.files[0]}: {exc}") from None
        self._index = 0
        self._seq = 0
        self._t0: float | None = None
        self._rejected: Counter[str] = Counter()
        self._failures_in_row = 0
        self._received_bytes = 0

    def start(self) -> None:
        self._t0 = self._clock()

    def describe_input(self) -> str:
        what = "image files" if self.kind == "images" else "captured messages"
        where = self.files[0].parent if self.files else "?"
        return f"replay of {len(self.items)} {what} in {where}, format {self.format_name}"

    def close(self) -> None:
        self._index = len(self.items)
        self.loop = False

    @property
    def finished(self) -> bool:
        return not self.loop and self._index >= len(self.items)

    def stats(self) -> SourceStats:
        return SourceStats(received=self._seq + sum(self._rejected.values()), delivered=self._seq, buffered=0,
                           max_buffered=0, dropped={}, rejected=dict(self._rejected),
                           received_bytes=self._received_bytes)

    def get(self, timeout: float | None = None) -> RawMessage | None:
        if self._t0 is None:
            self.start()
        while True:
            if self._index >= len(self.items):
                if not self.loop or not self.items:
                    return None
                self._index = 0
            if self.rate > 0:
                assert self._t0 is not None
                wait = self._t0 + self._seq / self.rate - self._clock()
                if timeout is not None and wait > timeout:
                    self._sleep(max(timeout, 0.0))
                    return None
                if wait > 0:
                    self._sleep(wait)
            path, page = self.items[self._index]
            self._index += 1
            try:
                parts = self._load(path, page)
            except (DecodeError, InputError) as exc:
                kind = exc.kind if isinstance(exc, DecodeError) else "unreadable"
                self._rejected[kind] += 1
                self._failures_in_row += 1
                log.warning("replay: skipping %s: %s", path, exc)
                if self._on_reject is not None:
                    self._on_reject(kind, str(exc))
                if self._failures_in_row >= len(self.items):  # a whole pass without one good file
                    log.error("replay: no file in %d tried could be read; stopping", len(self.items))
                    self.close()
                    return None
                continue
            self._failures_in_row = 0
            msg = RawMessage(parts=tuple(parts), received_at=time.time(), seq=self._seq,
                             control=is_control(self.format_name, parts))
            self._seq += 1
            self._received_bytes += msg.nbytes
            return msg

    def _load(self, path: Path, page: int | None) -> list[bytes]:
        if self.kind == "captures":
            return read_capture(path, self.limits)
        image = read_image(path, page)
        if image.size > self.limits.max_pixels:
            raise DecodeError("oversized", f"{path} has {image.size} pixels, above max_pixels={self.limits.max_pixels}")
        extra: dict[str, object] = {"file": path.name} if page is None else {"file": path.name, "page": page}
        return encode_array10(self._seq, image, timestamp=time.time(), pixel_size_nm=self.pixel_size_nm,
                              signal=self.signal, extra=extra)
