#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv.
#   scripts/setup.sh            runtime only (the daemon and demo: CPU onnxruntime and plots, no torch)
#   scripts/setup.sh full       runtime + training/export + test tools
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-runtime}"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
fi
pip=".venv/bin/pip"
stamp=".venv/.wirewatch-$profile"
# Re-install only when the dependency list changed: keeps repeated runs fast.
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
case "$profile" in
    runtime) extras="[cpu,plots]" ;;
    full)    extras="[train,dev]" ;;
    *) echo "setup.sh: unknown profile '$profile' (allowed: runtime, full)" >&2; exit 2 ;;
esac
"$pip" install --quiet --disable-pip-version-check -e ".${extras}"
echo "$want" > "$stamp"
