"""Decode-time benchmark: one 514 x 1030 bslz4 uint16 Stream V2 image (target < 5 ms).

Two inputs: the real EIGER2 capture (``bslz4_16bit/000001.cbor``, three
channels in the message, one decoded, as the daemon does) when the shared data
folder is present, and a synthetic single-channel frame made by our encoder
(Poisson counts with a NODATA module gap), so the figure exists on any machine.
The time covers everything ``Stream2Decoder.decode`` does: structural scan,
CBOR parse, bounded decompression of the selected channel, NODATA mask.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wirewatch.ingest.encode import encode_stream2_image
from wirewatch.ingest.stream2 import Stream2Decoder

DETECTOR_SHAPE = (514, 1030)
REAL_CAPTURE = Path(__file__).resolve().parents[3].parent / "shared/data/dectris-stream2/bslz4_16bit/000001.cbor"
TARGET_MS = 5.0


@dataclass(frozen=True)
class DecodeTiming:
    name: str
    message_bytes: int
    repeats: int
    median_ms: float
    p90_ms: float
    min_ms: float

    @property
    def meets_target(self) -> bool:
        return self.median_ms < TARGET_MS


def synthetic_message(dtype: str = "uint16", compression: str | None = "bslz4", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    image = rng.poisson(2.0, DETECTOR_SHAPE).astype(dtype)
    image[:, 513:517] = np.iinfo(dtype).max  # a vertical module gap of NODATA pixels
    return encode_stream2_image(0, image, compression=compression)[0]


def time_decode(name: str, body: bytes, repeats: int = 200, warmup: int = 5) -> DecodeTiming:
    decoder = Stream2Decoder()
    for _ in range(warmup):
        decoder.decode([body], 0.0)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        decoder.decode([body], 0.0)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return DecodeTiming(name=name, message_bytes=len(body), repeats=repeats, median_ms=statistics.median(times),
                        p90_ms=times[int(0.9 * (len(times) - 1))], min_ms=times[0])


def run_decode_bench(repeats: int = 200, capture: Path | None = None) -> list[DecodeTiming]:
    results = []
    capture = capture if capture is not None else REAL_CAPTURE
    if capture.exists():
        results.append(time_decode(f"real EIGER2 capture {capture.parent.name}/{capture.name} "
                                   "(3 channels, 1 decoded)", capture.read_bytes(), repeats))
    results.append(time_decode("synthetic uint16 bslz4", synthetic_message("uint16", "bslz4"), repeats))
    results.append(time_decode("synthetic uint32 bslz4", synthetic_message("uint32", "bslz4"), repeats))
    results.append(time_decode("synthetic uint16 lz4", synthetic_message("uint16", "lz4"), repeats))
    results.append(time_decode("synthetic uint16 uncompressed", synthetic_message("uint16", None), repeats))
    return results
