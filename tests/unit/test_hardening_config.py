"""Property tests of the config loader (``wirewatch.config``): whatever a config file or a
``WIREWATCH_...`` environment variable holds, loading gives a validated ``DaemonConfig`` or one
``ConfigError`` that names the problem; never another exception, never a hang."""

from __future__ import annotations

import string
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wirewatch.config.daemon import DaemonConfig, load_daemon_config
from wirewatch.errors import ConfigError

PROFILE = settings(max_examples=80, deadline=3000, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Real names first, so generated documents get past the top level and exercise every section's validation.
SECTIONS = sorted(DaemonConfig.model_fields)
KEYS = sorted({k for s in SECTIONS for k in getattr(DaemonConfig.model_fields[s].annotation, "model_fields", {})})
NAMES = st.sampled_from(SECTIONS + KEYS) | st.text(string.ascii_letters + "_.-", min_size=1, max_size=8)
SCALARS = (st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True)
           | st.text(max_size=12) | st.sampled_from(["latest", "queue", "stream2", "watershed", "tcp://127.0.0.1:*",
                                                    "interval", "-1", "1e400", "", "~"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NAMES, inner, max_size=4),
                      max_leaves=25)
DOCUMENTS = st.dictionaries(st.sampled_from(SECTIONS) | NAMES, VALUES, max_size=5)


def load_or_config_error(path: Path | None, environ: dict[str, str] | None = None) -> DaemonConfig | None:
    try:
        return load_daemon_config(path, environ=environ or {})
    except ConfigError as exc:
        message = str(exc)
        assert message and "Traceback" not in message
        return None


@pytest.mark.timeout(300)
@PROFILE
@given(doc=DOCUMENTS)
def test_any_yaml_document_loads_or_is_a_config_error(tmp_path: Path, doc: dict[str, Any]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    cfg = load_or_config_error(path)
    if cfg is not None:  # whatever is accepted round-trips through the strict model
        assert DaemonConfig.model_validate(cfg.model_dump()) == cfg


@pytest.mark.timeout(300)
@PROFILE
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_bytes_as_a_config_file_is_a_config_error_or_loads(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(raw)
    load_or_config_error(path)


@pytest.mark.timeout(300)
@PROFILE
@given(env=st.dictionaries(st.builds(lambda a, b: f"WIREWATCH_{a}__{b}".upper(), st.sampled_from(SECTIONS) | NAMES,
                                     st.sampled_from(KEYS) | NAMES)
                           | st.text(string.ascii_uppercase + "_", max_size=20).map(lambda t: "WIREWATCH_" + t),
                           st.text(max_size=20) | SCALARS.map(str), max_size=4))
def test_any_environment_overrides_load_or_are_a_config_error(env: dict[str, str]) -> None:
    load_or_config_error(None, env)


@pytest.mark.parametrize("raw", [
    b"\xff\xfe\x00garbage",  # not UTF-8
    b"ingest: {endpoint: tcp://x:1}\n\x80\x81",  # valid start, invalid UTF-8 later
    b"a: &a [1, 2]\nb: *a\nc: *nope\n",  # undefined alias
    b"!!python/object/apply:os.system ['true']",  # unsafe tags are refused, never executed
    b"ingest: !!binary AAAA\n",
    b"- just\n- a list\n",
    b"ingest: [unclosed\n",
    b"\x00" * 100,
])
def test_hostile_config_files_are_one_config_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as info:
        load_daemon_config(path, environ={})
    assert str(path) in str(info.value) or "invalid" in str(info.value)


def _alias_bomb(where: str) -> str:
    """A 'billion laughs' YAML document: 9 levels of 9 aliases (9^9 leaves if expanded), used at ``where``."""
    lines = ["  a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        lines.append(f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    return "segment:\n options:\n" + "\n".join(" " + ln for ln in lines) + f"\n{where}\n"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", [
    "unknown_section: *a9",  # an unknown key
    "ingest: {hwm: *a9}",  # a wrong type: the error message must not print the expanded value
    "alerts: {labels: *a9}",
    "changepoint: {stats: *a9}",
])
def test_yaml_alias_bomb_is_refused_quickly(tmp_path: Path, where: str) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(where))
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_daemon_config(path, environ={})
    assert time.monotonic() - t0 < 5.0
    assert len(str(info.value)) < 5000


def test_directory_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    for path in (tmp_path, tmp_path / "missing.yaml"):
        with pytest.raises(ConfigError, match=str(path)):
            load_daemon_config(path, environ={})
