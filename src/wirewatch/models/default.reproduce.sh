#!/usr/bin/env bash
# Reproduce the shipped default model (src/wirewatch/models/default.onnx) and its model-card numbers.
# CPU, 2 cores; see MODEL_CARD.md for the time it took. Run from the repository root.
set -euo pipefail
RUNS=${RUNS:-$HOME/wirewatch-runs}
DATA=$RUNS/data/ptycho-512-train

# 1. training data: default preset (ptychography), 512 x 512, seed 1, 80/20 train/val split
wirewatch synth --out "$DATA" --count 3000 --seed 1 --size 512 --workers 2

# 2. training: compact variant, recipe config/train-compact.yaml (copied as default.train-config.yaml),
#    cosine schedule over a 5400 s time budget (one thread)
wirewatch train --config config/train-compact.yaml --data "$DATA" --out "$RUNS/compact-run1" \
    --time-budget 5400 --no-progress

# 3. export (opset 17, graph ends at the 28 x 28 mask probabilities; score threshold 0.5 in the metadata)
wirewatch export --checkpoint "$RUNS/compact-run1/final.pt" --format onnx --out src/wirewatch/models/default.onnx

# 4. evaluation on fresh images with seeds never used in training
for spec in ptychography:1001 stxm:1002 sem:1003; do
    preset=${spec%%:*}; seed=${spec##*:}
    wirewatch synth --out "$RUNS/data/eval-$preset-200-seed$seed" --preset "$preset" --count 200 \
        --seed "$seed" --no-split
    python -m wirewatch.train.ship --model default --data "$RUNS/data/eval-$preset-200-seed$seed" \
        --option score_threshold=0.05 --json "$RUNS/eval/model-$preset.json"
done
python -m wirewatch.train.ship --backend watershed --data "$RUNS/data/eval-ptychography-200-seed1001" \
    --json "$RUNS/eval/watershed-ptychography.json"
wirewatch bench model --checkpoint "$RUNS/compact-run1/final.pt" --model default --frames 20
