#!/usr/bin/env bash
# Issue 37 part 3: the broad training mix of docs/model.md ("The first candidates under the panel rule"),
# seeds 5101-5112 (the panel draws from 3700 + set). A few minutes on 2 cores. Usage:
#   bash config/synth-mix/make-data.sh [OUT_DIR]      (default ~/wirewatch-runs/mix/data)
set -euo pipefail
cd "$(dirname "$0")/../.."
W=.venv/bin/wirewatch
C=config/synth-mix
D="${1:-$HOME/wirewatch-runs/mix/data}"
mkdir -p "$D"
$W synth --preset ptychography --out "$D/ptycho" --count 500 --seed 5101 --workers 2
$W synth --preset realistic --out "$D/realistic" --count 300 --seed 5102 --workers 2
$W synth --preset stxm --out "$D/stxm" --count 300 --seed 5103 --workers 2
$W synth --preset sem --out "$D/sem" --count 300 --seed 5104 --workers 2
$W synth --preset ptychography --config $C/absorption.yaml --out "$D/absorption" --count 250 --seed 5105 --workers 2
$W synth --preset ptychography --config $C/brightfield.yaml --out "$D/brightfield" --count 250 --seed 5106 --workers 2
$W synth --preset ptychography --config $C/noisy.yaml --out "$D/noisy" --count 200 --seed 5107 --workers 2
$W synth --preset ptychography --config $C/uneven.yaml --out "$D/uneven" --count 200 --seed 5108 --workers 2
$W synth --preset ptychography --config $C/agglom.yaml --out "$D/agglom" --count 150 --seed 5109 --workers 2
# dense, aligned wires (mix legs 4-5)
$W synth --preset ptychography --config $C/aligned1.yaml --out "$D/aligned1" --count 250 --seed 5111 --workers 2
$W synth --preset ptychography --config $C/aligned2.yaml --out "$D/aligned2" --count 200 --seed 5112 --workers 2
# mix leg 1 (docs/model.md):
#   wirewatch train --config config/train-mix-cpu.yaml --data $D/ptycho --extra-data $D/realistic:0.12 \
#     --extra-data $D/stxm:0.10 --extra-data $D/sem:0.14 --extra-data $D/absorption:0.10 \
#     --extra-data $D/brightfield:0.12 --extra-data $D/noisy:0.08 --extra-data $D/uneven:0.06 \
#     --out RUN --init src/wirewatch/models/default.onnx --time-budget 5400
