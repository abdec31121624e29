"""IngestConfig: defaults, strict validation naming the key, environment overrides, limits, make_source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import BaseModel

from wirewatch.config.base import StrictModel, load_config
from wirewatch.errors import ConfigError
from wirewatch.ingest import FileSource, IngestConfig, ZmqSource, make_source


class Root(StrictModel):
    ingest: IngestConfig = IngestConfig()


def test_defaults_follow_the_dectris_convention() -> None:
    cfg = IngestConfig()
    assert (cfg.socket, cfg.bind, cfg.policy, cfg.format) == ("pull", False, "latest", "stream2")
    limits = cfg.limits()
    assert limits.max_message_bytes == cfg.max_message_bytes and limits.max_pixels == cfg.max_pixels


@pytest.mark.parametrize(("data", "needle"), [
    ({"ingest": {"socket": "push"}}, "ingest.socket"),
    ({"ingest": {"policy": "newest"}}, "ingest.policy"),
    ({"ingest": {"format": "hdf5"}}, "ingest.format"),
    ({"ingest": {"hwm": 0}}, "ingest.hwm"),
    ({"ingest": {"buffer": -1}}, "ingest.buffer"),
    ({"ingest": {"max_message_bytes": 10}}, "ingest.max_message_bytes"),
    ({"ingest": {"rcvhwm": 3}}, "unknown key; allowed keys: bind, buffer, channel"),
    ({"ingest": {"source": "files"}}, "needs 'path'"),
    ({"ingest": {"endpoint": "localhost:5555"}}, "transport://address"),
    ({"ingest": {"topic": "frames"}}, "only applies to socket 'sub'"),
])
def test_bad_values_name_the_key(data: dict, needle: str, tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        load_config(Root, path, environ={})


def test_environment_overrides() -> None:
    cfg = load_config(Root, environ={"WIREWATCH_INGEST__HWM": "3", "WIREWATCH_INGEST__SOCKET": "sub",
                                     "WIREWATCH_INGEST__TOPIC": "frames", "WIREWATCH_INGEST__BIND": "true"})
    assert (cfg.ingest.hwm, cfg.ingest.socket, cfg.ingest.topic, cfg.ingest.bind) == (3, "sub", "frames", True)


def test_make_source_picks_by_config(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "0.png")
    assert isinstance(make_source(IngestConfig(source="files", path=str(tmp_path))), FileSource)
    assert isinstance(make_source(IngestConfig()), ZmqSource)
    assert issubclass(IngestConfig, BaseModel)
