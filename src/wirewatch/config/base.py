"""Strict pydantic models, YAML loading and ``WIREWATCH_...`` environment overrides.

Every config model derives from ``StrictModel`` (unknown keys are errors). The
loader turns pydantic's validation errors into one ``ConfigError`` whose
message names each bad key by its dotted path and, where known, the allowed
keys or values.

Environment overrides: ``WIREWATCH_<SECTION>__<KEY>=value`` sets ``section.key``
(double underscore separates levels, case-insensitive). Values are parsed as
YAML scalars/lists, so ``WIREWATCH_INGEST__RCVHWM=10`` gives an int and
``WIREWATCH_CHANGEPOINT__STATS=[a, b]`` a list.

Renamed keys: a model lists ``RENAMED_KEYS = {"old.dotted.key": "new.dotted.key"}``; the old key keeps
working (moved to the new one in each layer: file, environment, overrides) with a ``DeprecationWarning``
and a log line naming the new key (``rename_keys``).
"""

from __future__ import annotations

import logging
import os
import reprlib
import warnings
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from wirewatch.errors import ConfigError

log = logging.getLogger(__name__)

ENV_PREFIX = "WIREWATCH_"
ENV_SEPARATOR = "__"
MAX_REPORTED_ERRORS = 20

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every config section: unknown keys rejected, values validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or a non-mapping document is a ConfigError."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {p} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {p} must hold a mapping of keys, got {type(data).__name__}")
    return dict(data)


def env_overrides(environ: Mapping[str, str] | None = None, prefix: str = ENV_PREFIX) -> dict[str, Any]:
    """Nested dict from ``WIREWATCH_A__B=value`` variables (keys lower-cased)."""
    environ = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.upper().startswith(prefix) or name.upper() == prefix:
            continue
        path = [part.lower() for part in name[len(prefix):].split(ENV_SEPARATOR)]
        if any(not part for part in path):
            raise ConfigError(f"environment variable {name}: empty key between '{ENV_SEPARATOR}' separators")
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name} conflicts with another WIREWATCH_ variable")
        node[path[-1]] = value
    return out


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base``."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def rename_keys(data: Mapping[str, Any], renamed: Mapping[str, str], source: str = "config") -> dict[str, Any]:
    """``data`` with each old dotted key of ``renamed`` moved to its new key, warning once per key.

    Where both are given, the old key's value is merged over the new one's (it was given on purpose, e.g.
    an environment variable over a shipped file that already uses the new key); ``None`` replaces it."""
    out = dict(data)
    for old, new in renamed.items():
        *old_parents, old_leaf = old.split(".")
        parent: Any = out
        for part in old_parents:
            parent = parent.get(part) if isinstance(parent, Mapping) else None
        if not isinstance(parent, Mapping) or old_leaf not in parent:
            continue
        where = "" if source == "config" else f" (in {source})"
        message = f"config key {old} is deprecated, use {new}: same value{where}"
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        log.warning("%s", message)
        value = parent[old_leaf]
        out = _without(out, old.split("."))
        *new_parents, new_leaf = new.split(".")
        node = out
        for part in new_parents:
            child = dict(node[part]) if isinstance(node.get(part), Mapping) else {}
            node[part] = child
            node = child
        current = node.get(new_leaf)
        node[new_leaf] = (deep_merge(current, value) if isinstance(current, Mapping) and isinstance(value, Mapping)
                          else value)
    return out


def _without(data: Mapping[str, Any], path: list[str]) -> dict[str, Any]:
    """A copy of ``data`` (copied along ``path`` only) without the key at ``path``."""
    out = dict(data)
    if len(path) == 1:
        out.pop(path[0], None)
    else:
        out[path[0]] = _without(out[path[0]], path[1:])
    return out


def validate(model: type[M], data: Mapping[str, Any], source: str = "config") -> M:
    """Validate ``data`` against ``model``; errors name each key path and the allowed keys/values."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(model, exc, source)) from None


def load_config(model: type[M], path: str | Path | None = None, *,
                overrides: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None,
                env_prefix: str = ENV_PREFIX) -> M:
    """File (optional) <- environment variables <- explicit overrides (e.g. CLI flags), then validate."""
    renamed: Mapping[str, str] = getattr(model, "RENAMED_KEYS", {})
    source = str(path) if path is not None else "config"
    # old keys are moved in each layer before merging, so a later layer wins whichever name each one uses
    data: dict[str, Any] = rename_keys(read_yaml(path), renamed, source) if path is not None else {}
    data = deep_merge(data, rename_keys(env_overrides(environ, env_prefix), renamed, "environment"))
    if overrides:
        data = deep_merge(data, rename_keys(overrides, renamed, "overrides"))
    return validate(model, data, source)


def format_validation_error(model: type[BaseModel], exc: ValidationError, source: str) -> str:
    lines = [f"invalid {source}:"]
    errors = exc.errors()
    if len(errors) > MAX_REPORTED_ERRORS:  # a long list of bad items: the first few say what is wrong
        lines.append(f"  ({len(errors)} problems; the first {MAX_REPORTED_ERRORS} follow)")
    for err in errors[:MAX_REPORTED_ERRORS]:
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc) or "(root)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            msg = f"unknown key; allowed keys: {', '.join(allowed)}" if allowed else "unknown key"
            lines.append(f"  {key}: {msg}")
        else:
            lines.append(f"  {key}: {msg} (got {_short_repr(err.get('input'))})")
    return "\n".join(lines)


def _short_repr(value: Any) -> str:
    """A bounded repr of a rejected value: a YAML alias bomb ('billion laughs') shares one list 9^9 times,
    and a plain repr would expand it into gigabytes."""
    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxtuple, r.maxdict, r.maxset = 2, 6, 6, 6, 6
    r.maxstring, r.maxother, r.maxlong = 80, 80, 40
    return r.repr(value)


def _allowed_keys(model: type[BaseModel], loc: list[str]) -> list[str]:
    """Field names of the sub-model at ``loc`` (best effort; [] when it cannot be followed)."""
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        annotation = fields[part].annotation
        current = _model_in(annotation)
        if current is None:
            return []
    fields = getattr(current, "model_fields", None)
    return sorted(fields) if fields else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def shipped_dir() -> Path:
    """The folder of shipped configs (``default.yaml``, ``scenarios/``) inside the installed package.

    ``wirewatch/config/shipped`` links to the repository's ``config/`` and is package data, so a
    checkout, an editable install and a wheel all find the same files.
    """
    return Path(str(resources.files("wirewatch.config").joinpath("shipped")))
