#!/usr/bin/env bash
# Run every `wirewatch bench` sub-command and keep its output in OUT_DIR/<name>.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-results}"
mkdir -p "$out"
for name in synth stats decode ingest changepoint alerts model daemon web pva; do
    echo "== wirewatch bench $name"
    .venv/bin/wirewatch bench "$name" 2>&1 | tee "$out/$name.txt" || echo "bench $name failed (see $out/$name.txt)"
done
