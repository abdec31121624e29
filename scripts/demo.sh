#!/usr/bin/env bash
# Set up the runtime (no torch) and run the main job: the demo daemon on its built-in defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh runtime
exec .venv/bin/wirewatch demo "$@"
