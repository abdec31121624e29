#!/usr/bin/env bash
# Set up everything (runtime, training extras, test tools) and run lint, type check, import rules and the tests.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh full
.venv/bin/ruff check src tests deploy
.venv/bin/mypy
.venv/bin/lint-imports --no-logo  # the import rules ([tool.importlinter] in pyproject.toml, docs/CONTRACTS.md)
.venv/bin/python -m pytest "$@"
