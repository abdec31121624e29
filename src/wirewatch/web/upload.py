"""Uploads for ``POST /api/segment``: a size-limited body reader, a streaming multipart reader with
per-part limits (python-multipart), a guarded image decoder and the segmentation result as JSON
(particles, frame aggregates, overlay and histogram PNGs).

Limits are checked before work is done: the declared ``Content-Length`` is checked before a byte of the
body is read, bytes are counted while reading (chunked uploads have no length), and image dimensions are
checked from the file header before pixels are decoded (decompression bombs).
"""

from __future__ import annotations

import base64
import io
import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from wirewatch.errors import MissingExtra
from wirewatch.segment.base import Segmenter

log = logging.getLogger(__name__)


class HttpError(Exception):
    """An HTTP error answer: ``status`` and a message naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class UploadedFile:
    field: str
    filename: str
    data: bytes


def read_body(rfile: BinaryIO, headers: Mapping[str, str], limit: int) -> bytes:
    """The request body, at most ``limit`` bytes; 413 before reading when the declared length is larger,
    or as soon as a chunked body passes the limit; 411 when neither a length nor chunking is given."""
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        return _read_chunked(rfile, limit)
    raw = headers.get("Content-Length")
    if raw is None:
        raise HttpError(411, "a Content-Length header (or chunked transfer encoding) is required")
    try:
        length = int(raw)
    except ValueError:
        raise HttpError(400, f"bad Content-Length {raw!r}") from None
    if length < 0:
        raise HttpError(400, f"bad Content-Length {raw!r}")
    if length > limit:
        raise HttpError(413, f"upload of {length} bytes exceeds the limit of {limit} bytes")
    body = _read_exactly(rfile, length)
    if len(body) != length:
        raise HttpError(400, f"body ended after {len(body)} of {length} bytes")
    return body


def _read_exactly(rfile: BinaryIO, n: int) -> bytes:
    parts: list[bytes] = []
    left = n
    while left > 0:
        chunk = rfile.read(min(left, 1 << 20))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _read_chunked(rfile: BinaryIO, limit: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = rfile.readline(1024)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HttpError(400, "malformed chunked body") from None
        if size == 0:
            while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        total += size
        if total > limit:
            raise HttpError(413, f"upload exceeds the limit of {limit} bytes")
        chunk = _read_exactly(rfile, size)
        if len(chunk) != size:
            raise HttpError(400, "chunked body ended early")
        parts.append(chunk)
        rfile.readline(1024)  # CRLF after the chunk


class MultipartReader:
    """``multipart/form-data`` parsed while it streams in (python-multipart's parser), with per-part limits.

    Only the form fields named in ``fields`` are accepted, each at most once and at most ``max_part_bytes``
    long: an unknown, repeated or oversized field is refused (``HttpError``) as soon as its headers, or the
    byte that crosses the limit, arrive, so nothing more of the body is read or kept. ``feed`` chunks, then
    ``close()`` returns {field name: file}."""

    def __init__(self, content_type: str | None, *, fields: tuple[str, ...] = ("image",),
                 max_part_bytes: int = 32 * 1024 * 1024, max_parts: int = 8) -> None:
        from python_multipart.multipart import MultipartParser, parse_options_header

        if not content_type or not content_type.lower().startswith("multipart/form-data"):
            raise HttpError(400, f"expected a multipart/form-data upload (field 'image'), got {content_type or 'no Content-Type'}")
        _, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if not boundary:
            raise HttpError(400, "multipart/form-data without a boundary")
        self.fields = fields
        self.max_part_bytes = max_part_bytes
        self.max_parts = max_parts
        self._parse_options = parse_options_header
        self._parts = 0
        self._headers: dict[str, str] = {}
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._name = ""
        self._filename = ""
        self._data = bytearray()
        self._done = False
        self.found: dict[str, UploadedFile] = {}
        try:
            self._parser = MultipartParser(boundary, {
                "on_part_begin": self._part_begin, "on_header_field": self._header_field,
                "on_header_value": self._header_value_data, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
                "on_part_end": self._part_end, "on_end": self._end}, max_header_size=8192, max_header_count=8)
        except ValueError as exc:  # python-multipart's FormParserError: a bad boundary
            raise HttpError(400, f"malformed multipart boundary ({exc})") from None

    def feed(self, chunk: bytes) -> None:
        from python_multipart.exceptions import FormParserError

        try:
            self._parser.write(chunk)
        except FormParserError:
            raise HttpError(400, "malformed multipart body") from None

    def close(self) -> dict[str, UploadedFile]:
        """The fields read; 400 when the body ended before the closing boundary."""
        if not self._done:
            raise HttpError(400, "malformed multipart body (it ended before the closing boundary)")
        return self.found

    # -- python-multipart callbacks (they raise HttpError to stop the upload while it streams) --------------
    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > self.max_parts:
            raise HttpError(400, f"more than {self.max_parts} parts in the form")
        self._headers, self._name, self._filename, self._data = {}, "", "", bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.decode("latin-1").lower()] = self._header_value.decode("latin-1")
        self._header_name, self._header_value = bytearray(), bytearray()

    def _headers_finished(self) -> None:
        kind, options = self._parse_options(self._headers.get("content-disposition", ""))
        raw = options.get(b"name")
        if kind != b"form-data" or raw is None:
            raise HttpError(400, "a form part without Content-Disposition: form-data; name=...")
        name = raw.decode("utf-8", "replace")
        if name not in self.fields:
            raise HttpError(400, f"unexpected form field {name[:64]!r}: the upload takes only "
                                 f"{', '.join(repr(f) for f in self.fields)}")
        if name in self.found:
            raise HttpError(400, f"form field {name!r} given twice")
        self._name = name
        self._filename = options.get(b"filename", b"").decode("utf-8", "replace")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if len(self._data) + (end - start) > self.max_part_bytes:
            raise HttpError(413, f"form field {self._name!r} exceeds the limit of {self.max_part_bytes} bytes")
        self._data += data[start:end]

    def _part_end(self) -> None:
        self.found[self._name] = UploadedFile(self._name, self._filename, bytes(self._data))
        self._data = bytearray()

    def _end(self) -> None:
        self._done = True


def parse_multipart(body: bytes, content_type: str | None, *, fields: tuple[str, ...] = ("image",),
                    max_part_bytes: int = 32 * 1024 * 1024) -> dict[str, UploadedFile]:
    """A whole ``multipart/form-data`` body -> {field name: file} (``MultipartReader``); 400 naming what is wrong."""
    reader = MultipartReader(content_type, fields=fields, max_part_bytes=max_part_bytes)
    reader.feed(body)
    return reader.close()


def sniff_format(data: bytes) -> str | None:
    """'png', 'jpeg' or 'tiff' from the file's magic bytes; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    return None


def decode_image(data: bytes, *, max_pixels: int, name: str = "upload") -> np.ndarray:
    """PNG / JPEG / TIFF bytes -> 2-D float32 in [0, 1] (``wirewatch.segment.io.to_unit_float``).
    400 for anything else, for corrupt files and for images over ``max_pixels`` (checked from the header)."""
    from wirewatch.errors import InputError
    from wirewatch.segment.io import to_unit_float

    kind = sniff_format(data)
    if kind is None:
        raise HttpError(400, f"{name}: not a PNG, TIFF or JPEG image")
    try:
        pixels = _decode_tiff(data, max_pixels, name) if kind == "tiff" else _decode_pillow(data, max_pixels, name)
        return to_unit_float(pixels, source=name)
    except HttpError:
        raise
    except InputError as exc:
        raise HttpError(400, str(exc)) from None
    except Exception as exc:  # decoders raise many types for corrupt files; their text stays in the log
        log.debug("decoding upload %s failed", name, exc_info=True)
        raise HttpError(400, f"{name}: cannot decode the {kind.upper()} image (corrupt or truncated: "
                             f"{type(exc).__name__})") from None


def _too_big(name: str, width: int, height: int, max_pixels: int) -> HttpError:
    return HttpError(400, f"{name}: image of {width} x {height} = {width * height} pixels exceeds the limit of "
                          f"{max_pixels} pixels (decompression bomb guard)")


def _decode_pillow(data: bytes, max_pixels: int, name: str) -> np.ndarray:
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > max_pixels:  # from the header, before any pixel is decoded
                    raise _too_big(name, width, height, max_pixels)
                img.load()
                if img.mode in ("P", "PA", "RGBA", "CMYK", "YCbCr"):
                    return np.asarray(img.convert("RGB"))
                if img.mode in ("LA", "1"):
                    return np.asarray(img.convert("L"))
                return np.asarray(img)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise HttpError(400, f"{name}: {exc} (decompression bomb guard)") from None


def _decode_tiff(data: bytes, max_pixels: int, name: str) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        if not tif.pages:
            raise HttpError(400, f"{name}: TIFF without images")
        page = tif.pages.first
        shape = tuple(int(s) for s in page.shape)
        height, width = (shape[0], shape[1]) if len(shape) >= 2 else (1, shape[0] if shape else 0)
        if int(np.prod(shape)) > max_pixels * 4 or height * width > max_pixels:
            raise _too_big(name, width, height, max_pixels)
        return np.asarray(page.asarray())


# -- the segmentation answer ---------------------------------------------------------------------------------

PARTICLE_FIELDS: tuple[str, ...] = ("id", "score", "mask_score")


def segment_upload(segmenter: Segmenter, image: np.ndarray, *, score_threshold: float = 0.5,
                   pixel_size_nm: float | None = None, histograms: bool = True,
                   overlay_max_side: int | None = 1024) -> dict[str, Any]:
    """Segment one image: ``{"particles": [...], "frame": {...}, "overlay_png", "histograms_png", ...}``.

    Particles carry the ``particles.csv`` descriptors (``wirewatch.stats.PARTICLE_COLUMNS``) plus ``id`` (the
    mask's index in the overlay), ``score`` and ``mask_score``; ``frame`` is the per-frame aggregates (NaN -> null)."""
    from wirewatch.records import json_ready
    from wirewatch.stats import measure_detections

    from .overlay import overlay_png

    t0 = time.perf_counter()
    det = segmenter.segment(image)
    segment_s = time.perf_counter() - t0
    measured = measure_detections(det, image, score_threshold=score_threshold, pixel_size_nm=pixel_size_nm)
    stats = measured.stats
    # id, score, mask_score first (the CSV download's and the table's column order), then the descriptors
    particles = [{"id": int(i), "score": row.pop("score"), "mask_score": row.pop("mask_score"), **json_ready(row)}
                 for i, row in zip(measured.mask_index.tolist(), measured.rows(), strict=True)]
    result: dict[str, Any] = {
        "width": int(image.shape[1]), "height": int(image.shape[0]),
        "detections": len(det), "score_threshold": score_threshold,
        "segment_s": round(segment_s, 4),
        "particles": particles,
        "frame": json_ready(dict(stats.aggregates)),
        "overlay_png": base64.b64encode(overlay_png(image, measured.masks, overlay_max_side)).decode("ascii"),
    }
    if histograms:
        try:
            result["histograms_png"] = base64.b64encode(histograms_png(stats.particles)).decode("ascii")
        except MissingExtra as exc:  # no matplotlib (the plots extra): the segmentation is still answered
            result["histograms_error"] = str(exc)
    return result


def histograms_png(particles: Mapping[str, np.ndarray]) -> bytes:
    """Histogram + KDE of area, aspect ratio and orientation (``wirewatch.plots.plot_distributions``)."""
    from wirewatch.plots import plot_distributions

    with tempfile.TemporaryDirectory(prefix="wirewatch-web-") as tmp:
        path = plot_distributions({"particles": particles}, Path(tmp) / "histograms.png")
        return path.read_bytes()
