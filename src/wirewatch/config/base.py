"""Strict pydantic models, YAML loading and ``WIREWATCH_...`` environment overrides.

Every config model derives from ``StrictModel`` (unknown keys are errors). The
loader turns pydantic's validation errors into one ``ConfigError`` whose
message names each bad key by its dotted path and, where known, the allowed
keys or values.

Environment overrides: ``WIREWATCH_<SECTION>__<KEY>=value`` sets ``section.key``
(double underscore separates levels, case-insensitive). Values are parsed as
YAML scalars/lists, so ``WIREWATCH_INGEST__RCVHWM=10`` gives an int and
``WIREWATCH_CHANGEPOINT__STATS=[a, b]`` a list.
"""

from __future__ import annotations

import os
import reprlib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from wirewatch.errors import ConfigError

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
    data: dict[str, Any] = read_yaml(path) if path is not None else {}
    data = deep_merge(data, env_overrides(environ, env_prefix))
    if overrides:
        data = deep_merge(data, overrides)
    source = str(path) if path is not None else "config"
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
