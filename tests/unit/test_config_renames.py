"""Renamed config keys and Python names keep working, with a DeprecationWarning naming the new one.

``alerts.zmq`` (the ZeroMQ stream of stats, change points and alerts, which is no alert sink) is now
``publish.zmq``; ``wirewatch.publish.build_engine`` (the alert engine, not a TensorRT engine) is
``build_alert_engine``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wirewatch.config.base import rename_keys
from wirewatch.config.daemon import DaemonConfig, load_daemon_config, shipped_config_path
from wirewatch.publish.config import AlertsConfig

STREAM = {"bind": "tcp://127.0.0.1:6001", "topics": ["stats"], "sndhwm": 7}


def test_alerts_zmq_is_read_as_publish_zmq_with_a_warning_naming_it() -> None:
    with pytest.warns(DeprecationWarning, match=r"alerts\.zmq is deprecated, use publish\.zmq"):
        cfg = DaemonConfig.model_validate({"alerts": {"zmq": STREAM, "sinks": []}})
    assert cfg.publish.zmq is not None and cfg.publish.zmq.model_dump(exclude_none=True) == STREAM
    assert cfg.alerts.zmq is None and cfg.alerts.sinks == []
    with pytest.warns(DeprecationWarning):
        off = DaemonConfig.model_validate({"alerts": {"zmq": None}, "publish": {"zmq": STREAM}})
    assert off.publish.zmq is None  # the old key, given on purpose, wins (here: the stream off)


def test_the_new_key_gives_no_warning(recwarn: pytest.WarningsRecorder) -> None:
    cfg = DaemonConfig.model_validate({"publish": {"zmq": STREAM}})
    shipped = load_daemon_config(shipped_config_path(), environ={})
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]
    assert cfg.publish.zmq is not None and cfg.publish.zmq.sndhwm == 7
    assert shipped.publish.zmq is not None and shipped.publish.zmq.bind == "tcp://127.0.0.1:5560"


def test_each_layer_is_renamed_before_merging(tmp_path: Path) -> None:
    """An old environment variable over a shipped file that uses the new key changes only what it names, and a
    new one over an old file wins: every layer keeps its precedence whichever name it uses."""
    with pytest.warns(DeprecationWarning, match=r"config key alerts\.zmq is deprecated, use publish\.zmq: same value \(in environment\)"):
        cfg = load_daemon_config(shipped_config_path(), environ={"WIREWATCH_ALERTS__ZMQ__BIND": "tcp://127.0.0.1:6002"})
    assert cfg.publish.zmq is not None and cfg.publish.zmq.bind == "tcp://127.0.0.1:6002"
    assert cfg.publish.zmq.topics == ["stats", "changepoint", "alert"]  # the rest from the shipped file
    with pytest.warns(DeprecationWarning):
        off = load_daemon_config(shipped_config_path(), environ={"WIREWATCH_ALERTS__ZMQ": "null"})
    assert off.publish.zmq is None
    old_file = tmp_path / "old.yaml"
    old_file.write_text(yaml.safe_dump({"alerts": {"zmq": {"bind": "tcp://127.0.0.1:6003", "sndhwm": 9}}}))
    with pytest.warns(DeprecationWarning, match=str(old_file)):
        cfg = load_daemon_config(old_file, environ={"WIREWATCH_PUBLISH__ZMQ__BIND": "tcp://127.0.0.1:6004"},
                                 overrides={"publish": {"zmq": {"topics": ["alert"]}}})
    assert cfg.publish.zmq is not None
    assert (cfg.publish.zmq.bind, cfg.publish.zmq.sndhwm, cfg.publish.zmq.topics) == ("tcp://127.0.0.1:6004", 9,
                                                                                      ["alert"])


def test_an_alerts_section_alone_still_takes_zmq() -> None:
    """``AlertsConfig`` built alone (the Python API, ``build_publisher(alerts)``) keeps its old ``zmq``."""
    with pytest.warns(DeprecationWarning, match=r"use publish\.zmq"):
        alerts = AlertsConfig.model_validate({"zmq": STREAM})
    assert alerts.zmq is not None and alerts.zmq.bind == STREAM["bind"]
    assert "zmq" not in alerts.model_dump()  # never written back out under the old name


def test_rename_keys_leaves_other_keys_and_the_input_alone() -> None:
    data = {"alerts": {"zmq": {"bind": "x"}, "rules": []}, "http": {"port": 0}}
    with pytest.warns(DeprecationWarning):
        out = rename_keys(data, {"alerts.zmq": "publish.zmq"})
    assert out == {"alerts": {"rules": []}, "http": {"port": 0}, "publish": {"zmq": {"bind": "x"}}}
    assert data == {"alerts": {"zmq": {"bind": "x"}, "rules": []}, "http": {"port": 0}}  # not modified
    assert rename_keys({"alerts": None}, {"alerts.zmq": "publish.zmq"}) == {"alerts": None}


def test_old_python_name_of_the_alert_engine_builder() -> None:
    import wirewatch.publish as publish

    with pytest.warns(DeprecationWarning, match="build_engine is deprecated, use build_alert_engine"):
        old = publish.build_engine
    assert old is publish.build_alert_engine
    with pytest.raises(AttributeError):
        publish.no_such_name  # noqa: B018


def test_old_python_names_of_the_record_writer_and_the_tiled_module() -> None:
    from wirewatch.publish import record, tiled
    from wirewatch.publish.sinks import tiled as old_tiled

    assert record.RecordSink is record.RecordWriter  # the record file's writer: no ResultSink
    assert old_tiled.TiledSink is tiled.TiledSink and old_tiled.TiledConfig is tiled.TiledConfig
