"""Configuration: strict pydantic models loaded from YAML with ``WIREWATCH_...`` overrides."""

from wirewatch.config.base import StrictModel, env_overrides, load_config, read_yaml, validate

__all__ = ["StrictModel", "env_overrides", "load_config", "read_yaml", "validate"]
