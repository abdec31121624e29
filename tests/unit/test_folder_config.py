"""Config of the watched folder and of tracking: validation, defaults, environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from wirewatch.config.daemon import load_daemon_config
from wirewatch.errors import InputError
from wirewatch.ingest.config import IngestConfig
from wirewatch.ingest.folder import FolderSource, default_state_path
from wirewatch.ingest.folder_config import WatchConfig


def test_folder_source_needs_a_path_and_names_the_key() -> None:
    with pytest.raises(ValidationError, match=r"watch\.path"):
        IngestConfig.model_validate({"source": "folder"})
    cfg = IngestConfig.model_validate({"source": "folder", "watch": {"path": "/data", "observer": "polling"}})
    assert cfg.watch.observer == "polling" and cfg.watch.settle_s == 2.0 and "*.part" in cfg.watch.ignore
    with pytest.raises(ValidationError, match="observer"):
        IngestConfig.model_validate({"source": "folder", "watch": {"path": "/d", "observer": "fanotify"}})


def test_state_file_sits_beside_the_record_else_in_the_folder(tmp_path: Path) -> None:
    watch = WatchConfig(path=str(tmp_path))
    assert default_state_path(watch, tmp_path / "run.jsonl") == tmp_path / "run.jsonl.folder-state.json"
    assert default_state_path(watch, None) == tmp_path / ".wirewatch-folder-state.json"
    assert default_state_path(WatchConfig(path=str(tmp_path), state_file=tmp_path / "s.json"), None) == tmp_path / "s.json"


def test_a_missing_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        FolderSource(WatchConfig(path=str(tmp_path / "nope")))


def test_environment_turns_tracking_and_the_folder_on() -> None:
    cfg = load_daemon_config(environ={"WIREWATCH_TRACK__ENABLED": "true", "WIREWATCH_TRACK__MAX_GAP_FRAMES": "4",
                                      "WIREWATCH_INGEST__SOURCE": "folder", "WIREWATCH_INGEST__WATCH__PATH": "/data"})
    assert cfg.track.enabled and cfg.track.max_gap_frames == 4
    assert cfg.ingest.source == "folder" and cfg.ingest.watch.path == "/data"
