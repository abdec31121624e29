"""The watched folder's small resume state, written atomically (temporary file + ``os.replace``).

It maps each file taken to the frame ids it was given (``first``, ``frames``) and its size and
mtime, lists the bad files with their error kind, and keeps ``acked``: the highest frame id the
pipeline has published. On restart, files whose frames are all at or below ``acked`` are done;
files given ids above it are read again *with the same ids*, so the record's replay check drops
the frames it already holds and a frame is recorded once even after a SIGKILL between writing
the record and this file. Hand-written (a JSON file) because it is 30 lines and a database would
be a dependency for one dict.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wirewatch.files import write_durably

log = logging.getLogger(__name__)
VERSION = 1


@dataclass
class FolderState:
    path: Path | None
    next_frame: int = 0
    acked: int = -1
    files: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> first, frames, size, mtime_ns
    bad: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> kind, size, mtime_ns

    @classmethod
    def load(cls, path: Path | None) -> FolderState:
        state = cls(path=path)
        if path is None or not path.exists():
            return state
        try:
            data = json.loads(path.read_text())
            state.next_frame = int(data["next_frame"])
            state.acked = int(data["acked"])
            state.files = {str(k): {kk: int(vv) for kk, vv in v.items()} for k, v in data["files"].items()}
            state.bad = {str(k): dict(v) for k, v in data["bad"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.error("folder state %s unreadable (%s): starting afresh (files already processed will be "
                      "read again; the record still skips frames it holds)", path, exc)
            return cls(path=path)
        return state

    def done(self, name: str) -> bool:
        entry = self.files.get(name)
        return entry is not None and entry["first"] + entry["frames"] - 1 <= self.acked

    def unacked(self) -> list[str]:
        """Files given frame ids that were not all published yet, in frame-id order."""
        return sorted((n for n in self.files if not self.done(n)), key=lambda n: self.files[n]["first"])

    def prune(self, existing: set[str]) -> None:
        """Forget finished files that are gone from the folder (keeps the file small on long runs)."""
        for name in [n for n in self.files if n not in existing and self.done(n)]:
            del self.files[name]
        for name in [n for n in self.bad if n not in existing]:
            del self.bad[name]

    def save(self) -> None:
        if self.path is None:
            return
        data = {"version": VERSION, "next_frame": self.next_frame, "acked": self.acked,
                "files": self.files, "bad": self.bad}
        text = json.dumps(data, separators=(",", ":"))
        write_durably(self.path, lambda fh: fh.write(text.encode("utf-8")))
