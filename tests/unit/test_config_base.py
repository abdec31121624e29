from typing import Literal

import pytest

from wirewatch.config.base import StrictModel, env_overrides, load_config
from wirewatch.errors import ConfigError


class Inner(StrictModel):
    rate: float = 1.0
    mode: Literal["latest", "queue"] = "latest"


class Outer(StrictModel):
    name: str = "x"
    inner: Inner = Inner()


def test_defaults_without_file() -> None:
    cfg = load_config(Outer, environ={})
    assert cfg.inner.mode == "latest"


def test_yaml_then_env_then_overrides(tmp_path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("name: file\ninner:\n  rate: 2.5\n")
    cfg = load_config(Outer, p, environ={"WIREWATCH_INNER__MODE": "queue", "WIREWATCH_NAME": "env"},
                      overrides={"name": "flag"})
    assert (cfg.name, cfg.inner.rate, cfg.inner.mode) == ("flag", 2.5, "queue")


def test_env_values_are_typed() -> None:
    assert env_overrides({"WIREWATCH_A__B": "10", "WIREWATCH_C": "[x, y]", "OTHER": "1"}) == {
        "a": {"b": 10}, "c": ["x", "y"]}


def test_unknown_key_names_key_and_allowed(tmp_path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("inner:\n  rat: 2\n")
    with pytest.raises(ConfigError) as exc:
        load_config(Outer, p, environ={})
    assert "inner.rat" in str(exc.value)
    assert "mode, rate" in str(exc.value)


def test_bad_value_names_key_and_allowed_values() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(Outer, environ={"WIREWATCH_INNER__MODE": "newest"})
    msg = str(exc.value)
    assert "inner.mode" in msg and "'latest'" in msg and "'queue'" in msg and "newest" in msg


def test_missing_and_bad_yaml(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(Outer, tmp_path / "nope.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Outer, bad, environ={})
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Outer, lst, environ={})
