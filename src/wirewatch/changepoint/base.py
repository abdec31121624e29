"""What detectors see and return, and the protocols they implement.

Indices are *sample* indices: the count of accepted frames since the last reset
(frames with no usable statistic are skipped, so a dropped frame never shifts a
level). ``Snapshot.frames`` maps them back to frame ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Snapshot:
    """The most recent samples, ready for detection.

    ``raw`` (n, d) as received (NaN = missing); ``z`` (n, d) robust-standardised,
    missing values forward-filled and isolated outliers replaced (Hampel filter).
    """

    start: int  # sample index of row 0
    frames: np.ndarray  # (n,) frame ids
    raw: np.ndarray
    z: np.ndarray
    location: np.ndarray  # (d,) per-statistic robust location used for z
    scale: np.ndarray  # (d,) per-statistic robust sigma used for z

    @property
    def end(self) -> int:
        """Sample index one past the last row."""
        return self.start + len(self.frames)

    def since(self, index: int) -> Snapshot:
        """The rows from sample ``index`` on (the whole snapshot if it starts later)."""
        if index <= self.start:
            return self
        cut = slice(min(index, self.end) - self.start, None)
        return Snapshot(start=min(index, self.end), frames=self.frames[cut], raw=self.raw[cut], z=self.z[cut],
                        location=self.location, scale=self.scale)

    def rows(self, start: int, end: int) -> slice:
        """Row slice for sample indices [start, end), clipped to what the snapshot holds."""
        return slice(max(start, self.start) - self.start, max(min(end, self.end), self.start) - self.start)


@dataclass(frozen=True)
class Candidate:
    """A change a detector believes in; the streaming detector describes, merges and reports it."""

    index: int  # sample index of the first sample after the change
    detector: str
    columns: tuple[int, ...] = ()  # statistics that triggered it (empty: all)
    segment_start: int | None = None  # where the segment before it starts (None: last reported change)
    segment_end: int | None = None  # where the segment after it ends (None: now)


class WindowSearch(Protocol):
    """Re-run over the recent window every few frames; returns confirmed changes."""

    name: str
    penalty: float  # in use (the detector scales it by the stream's noise inflation)

    def run(self, snapshot: Snapshot) -> list[Candidate]: ...

    def reset(self) -> None: ...


class OnlineTest(Protocol):
    """Sample-by-sample test for early warning."""

    name: str

    def start(self, location: np.ndarray, slope: np.ndarray | None = None) -> None: ...

    def update(self, index: int, values: np.ndarray, scale: np.ndarray) -> Candidate | None: ...

    def on_change(self, index: int, post_change: np.ndarray) -> None: ...
