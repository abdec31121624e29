#!/usr/bin/env bash
# Reproduce the shipped default model (src/wirewatch/models/default.onnx) and its model-card numbers.
# About 23 h of training on a 2-core CPU in the thirteen legs up to leg 17, then ~10 min on one GPU (legs 22-23)
# (see MODEL_CARD.md). Run from
# the repository root. Each leg warm-starts from the previous one's weights with a fresh schedule.
set -euo pipefail
RUNS=${RUNS:-$HOME/wirewatch-runs}
DATA=$RUNS/data/ptycho-512-train-v2

# 1. training data: default preset (ptychography), 512 x 512, seed 1, 80/20 train/val split.
#    (Leg 1 of the shipped model ran on an earlier build of this data whose contrast full scale was 24
#    instead of today's 32; legs 2 and 3 on this data.)
wirewatch synth --out "$DATA" --count 3000 --seed 1 --size 512 --workers 2

# 2. leg 1: from random weights, recipe config/train-compact.yaml, cosine over a 5400 s time budget
wirewatch train --config config/train-compact.yaml --data "$DATA" --out "$RUNS/compact-run1" \
    --time-budget 5400 --no-progress
# 3. leg 2: 200 steps of a fresh warm-up toward lr 0.02 (planned as a long run, cut at 200 steps)
wirewatch train --config config/train-compact.yaml --data "$DATA" --out "$RUNS/compact-long" \
    --init "$RUNS/compact-run1/final.pt" --steps 15000 --max-steps 200 --no-progress
# 4. leg 3: the shipped weights: 20-step warm-up, cosine to zero over a 7200 s time budget
#    (default.leg3-train-config.yaml is this leg's config)
wirewatch train --config src/wirewatch/models/default.leg3-train-config.yaml --data "$DATA" \
    --out "$RUNS/compact-r2" --init "$RUNS/compact-long/last.pt" --no-progress

# 5. leg 3's int8 export (the model shipped before this one, commit 44f431a); its checkpoint was lost with
#    its machine, so leg 4 warm-starts from this file (wirewatch.train.recover: weights dequantised,
#    BatchNorm re-created and recalibrated on 8 training batches)
wirewatch export --checkpoint "$RUNS/compact-r2/final.pt" --format onnx --out "$RUNS/leg3-shipped.onnx"
# 6. leg 4: peak lr 0.01, 50-step warm-up, cosine to zero over the time budget, seed 4,
#    precise BatchNorm statistics before each validation and the final checkpoint. As run: budget 7500 s
#    for steps 0-650, then 7000 s (shortened to fit the session), 1 thread until step 400, then 2;
#    default.leg4-train-config.yaml is the config as it ended.
wirewatch train --config src/wirewatch/models/default.leg4-train-config.yaml --data "$DATA" \
    --out "$RUNS/compact-r4" --init "$RUNS/leg3-shipped.onnx" --no-progress

# 7. leg 4's int8 export (the model shipped before this one, commit 11d9a74); its checkpoint was lost with
#    its machine too, so leg 5 warm-starts from this file as leg 4 did from leg 3's
wirewatch export --checkpoint "$RUNS/compact-r4/final.pt" --format onnx --out "$RUNS/leg4-shipped.onnx"
# 8. leg 5: peak lr 0.005, 50-step warm-up, cosine to zero over 7000 s, seed 5, the mask loss weighted 2x,
#    25 precise-BatchNorm batches, validation every 500 steps (default.leg5-train-config.yaml; shipped in
#    commit 63fca67)
wirewatch train --config src/wirewatch/models/default.leg5-train-config.yaml --data "$DATA" \
    --out "$RUNS/compact-r5" --init "$RUNS/leg4-shipped.onnx" --no-progress
# 9. leg 6: leg 5's recipe, seed 6, cosine over 7200 s, from leg 5's checkpoint
#    (default.leg6-train-config.yaml; shipped in commit 599a5c9)
wirewatch train --config src/wirewatch/models/default.leg6-train-config.yaml --data "$DATA" \
    --out "$RUNS/compact-r6" --init "$RUNS/compact-r5/final.pt" --no-progress
# 10. leg 7: the same recipe, seed 7, cosine over 6900 s, from leg 6's checkpoint
#    (default.leg7-train-config.yaml; shipped in commit ee81d79)
wirewatch train --config src/wirewatch/models/default.leg7-train-config.yaml --data "$DATA" \
    --out "$RUNS/compact-r7" --init "$RUNS/compact-r6/final.pt" --no-progress

# 11. leg 7's int8 export (the model shipped before this one); its checkpoint was lost with its machine,
#    so leg 8 warm-starts from this file as legs 4 and 5 did
wirewatch export --checkpoint "$RUNS/compact-r7/final.pt" --format onnx --out "$RUNS/leg7-shipped.onnx"
# 12. leg 8: the same recipe, seed 8, cosine over 6900 s (default.leg8-train-config.yaml; shipped in commit f21d714)
wirewatch train --config src/wirewatch/models/default.leg8-train-config.yaml --data "$DATA" \
    --out "$RUNS/compact-r8" --init "$RUNS/leg7-shipped.onnx" --no-progress
# 13. leg 9: the same recipe, seed 9, cosine over 7000 s, from leg 8's checkpoint (default.leg9-train-config.yaml;
#    not shipped: no better than leg 8 on 100 val images)
wirewatch train --config src/wirewatch/models/default.leg9-train-config.yaml --data "$DATA" \
    --out "$RUNS/compact-r9" --init "$RUNS/compact-r8/final.pt" --no-progress
# 14. leg 10: peak lr halved to 0.0025, seed 10, cosine over 6600 s (default.leg10-train-config.yaml; shipped in
#    commit 2a4fcb6). Leg 11 (its recipe with seed 11, from its checkpoint) was not shipped and is not on this path.
wirewatch train --config src/wirewatch/models/default.leg10-train-config.yaml --data "$DATA" \
    --out "$RUNS/compact-r10" --init "$RUNS/compact-r9/final.pt" --no-progress
# 15. leg 12: leg 10's recipe with 384 px crops instead of 256, seed 12, cosine over 7200 s, from leg 10's
#    checkpoint (default.leg12-train-config.yaml; shipped in commit 69d79ff)
wirewatch train --config src/wirewatch/models/default.leg12-train-config.yaml --data "$DATA" \
    --out "$RUNS/compact-r12" --init "$RUNS/compact-r10/final.pt" --no-progress
# 16. leg 12's int8 export; its checkpoint was lost with its machine, so leg 13 warm-started from this file
wirewatch export --checkpoint "$RUNS/compact-r12/final.pt" --format onnx --out "$RUNS/leg12-shipped.onnx"
# 17. leg 13: leg 12's recipe with whole 512 px frames, seed 13, cosine over 6600 s (default.leg13-train-config.yaml;
#    not shipped: equal to leg 12 on the evaluation images). Legs 14-16 (noise and blur, a Dice term, an aborted
#    longer schedule) were not shipped and are not on this path.
wirewatch train --config src/wirewatch/models/default.leg13-train-config.yaml --data "$DATA" \
    --out "$RUNS/compact-r13" --init "$RUNS/leg12-shipped.onnx" --no-progress
# 18. leg 17: variant compact_m4 (the mask head grown from 2 to 4 convs, the new ones starting as identities),
#    leg 12's recipe, seed 17, cosine over 6600 s, from leg 13's checkpoint (default.leg17-train-config.yaml;
#    shipped before this model)
wirewatch train --config src/wirewatch/models/default.leg17-train-config.yaml --data "$DATA" \
    --out "$RUNS/compact-r17" --init "$RUNS/compact-r13/final.pt" --no-progress
# 19. leg 17's int8 export (shipped in commit 34cb209 and before); the GPU legs start from this file
wirewatch export --checkpoint "$RUNS/compact-r17/final.pt" --format onnx --out "$RUNS/leg17-shipped.onnx"

# 20. leg 22, on one CUDA GPU (a lent NVIDIA H200; scripts/device/gpu-leg.sh ran legs 22-23 and the GPU bench
#    there): leg 17's recipe with batch 16, lr 0.01, 100-step warm-up, 14 crop worker processes, seed 22,
#    cosine over 400 s, from leg 17's shipped file (default.leg22-train-config.yaml)
wirewatch train --config config/train-compact-gpu.yaml --data "$DATA" --out "$RUNS/gpu-r22" \
    --init "$RUNS/leg17-shipped.onnx" --time-budget 400 --device cuda --loader-workers 14 --no-progress
# 21. leg 23, the shipped weights: from leg 22's checkpoint, lr 0.004, seed 23, cosine over 180 s
#    (default.train-config.yaml)
wirewatch train --config config/train-compact-gpu.yaml --data "$DATA" --out "$RUNS/gpu-r23" \
    --init "$RUNS/gpu-r22/final.pt" --time-budget 180 --lr 0.004 --seed 23 --device cuda --loader-workers 14 \
    --no-progress

# 22. export: int8 backbone/FPN/RPN convolutions (the default; --precision fp32 for the float graph)
wirewatch export --checkpoint "$RUNS/gpu-r23/final.pt" --format onnx --out src/wirewatch/models/default.onnx

# 23. evaluation on fresh images with seeds never used in training
mkdir -p "$RUNS/eval-r23"
for spec in ptychography:1001:200 stxm:1002:100 sem:1003:100; do  # preset:seed:images scored
    IFS=: read -r preset seed limit <<< "$spec"
    [ -d "$RUNS/data/eval-$preset-200-seed$seed" ] || wirewatch synth --out "$RUNS/data/eval-$preset-200-seed$seed" \
        --preset "$preset" --count 200 --seed "$seed" --no-split
    python -m wirewatch.train.ship --model default --data "$RUNS/data/eval-$preset-200-seed$seed" --limit "$limit" \
        --option score_threshold=0.05 --json "$RUNS/eval-r23/model-$preset.json"
done
python -m wirewatch.train.ship --backend watershed --data "$RUNS/data/eval-ptychography-200-seed1001" \
    --json "$RUNS/eval-r23/watershed-ptychography.json"
# CPU rows here; the GPU rows come from the GPU machine (gpu-leg.sh: bench model --gpu-only), appended to the JSON
wirewatch bench model --checkpoint "$RUNS/gpu-r23/final.pt" --model default --frames 20 \
    --json "$RUNS/eval-r23/bench-model.json"
python -m wirewatch.train.card --run "$RUNS/gpu-r23" --eval-dir "$RUNS/eval-r23" \
    --out src/wirewatch/models --bench "$RUNS/eval-r23/bench-model.json" --model src/wirewatch/models/default.onnx

# 24. (2026-12-04) the runtime levels each frame's background before the model (background=level, the
#    backends' default since then): the same file rescored levelled (the card's model-* rows), as given
#    (-as-given rows: step 23's figures) and with fitted rectangles (-rect rows) and rods (-rod rows), in eval-r23b
mkdir -p "$RUNS/eval-r23b"
cp "$RUNS/eval-r23/watershed-ptychography.json" "$RUNS/eval-r23b/"
for spec in ptychography:1001:200 stxm:1002:100 sem:1003:100; do
    IFS=: read -r preset seed limit <<< "$spec"
    for variant in ":" "-as-given:background=none" "-rect:mask_shape=rect" "-rod:mask_shape=rod"; do
        IFS=: read -r suffix option <<< "$variant"
        python -m wirewatch.train.ship --model default --data "$RUNS/data/eval-$preset-200-seed$seed" --limit "$limit" \
            --option score_threshold=0.05 ${option:+--option "$option"} --json "$RUNS/eval-r23b/model-$preset$suffix.json"
    done
done
for shape in rect rod; do
    python -m wirewatch.train.ship --model default --data "$RUNS/data/eval-ptychography-200-seed1001" \
        --option score_threshold=0.05 --option mask_shape=$shape --option views=4 \
        --json "$RUNS/eval-r23b/model-ptychography-$shape-views4.json"
done
# CPU rows with the fitted shapes and 4 views beside them; the GPU rows of step 23 appended as before
wirewatch bench model --checkpoint "$RUNS/gpu-r23/final.pt" --model default --frames 20 --views 4 \
    --mask-shape rect --mask-shape rod \
    --json "$RUNS/eval-r23b/bench-model.json"
python -m wirewatch.train.card --run "$RUNS/gpu-r23" --eval-dir "$RUNS/eval-r23b" \
    --out src/wirewatch/models --bench "$RUNS/eval-r23b/bench-model.json" --model src/wirewatch/models/default.onnx

# 25. (2026-12-05) the mask refiner for this model (default.refiner.onnx: segment.refine, train.refiner), trained on
#    the shipped model's own masks of 1200 training images for 2400 s on the 2-core CPU (default.refiner.json), on by
#    default since (mask_refine=auto). Eval rows in eval-r23c: refined (no suffix, -rect, -rect-views4) and step 24's
#    files renamed -unrefined; the refined-vs-plain pairs (docs/model.md "Refined masks") come from running
#    train.ship twice per set, with --option mask_refine=none and =default, and train.ship.paired_folds on the two.
python -m wirewatch.train.refiner --data "$RUNS/data/ptycho-512-train-v2" --images 1200 --val-images 30 \
    --time-budget 2400 --seed 0 --out "$RUNS/refiner-r1"
cp "$RUNS/refiner-r1/refiner.onnx" src/wirewatch/models/default.refiner.onnx
cp "$RUNS/refiner-r1/metrics.csv" src/wirewatch/models/default.refiner-metrics.csv
cp "$RUNS/refiner-r1/summary.json" src/wirewatch/models/default.refiner.json
mkdir -p "$RUNS/eval-r23c"
cp "$RUNS/eval-r23b/watershed-ptychography.json" "$RUNS/eval-r23c/"
for f in "$RUNS"/eval-r23b/model-*.json; do cp "$f" "$RUNS/eval-r23c/$(basename "$f" .json)-unrefined.json"; done
for spec in ptychography:1001:200 stxm:1002:100 sem:1003:100; do
    IFS=: read -r preset seed limit <<< "$spec"
    python -m wirewatch.train.ship --model default --data "$RUNS/data/eval-$preset-200-seed$seed" --limit "$limit" \
        --option score_threshold=0.05 --json "$RUNS/eval-r23c/model-$preset.json"
done
python -m wirewatch.train.ship --model default --data "$RUNS/data/eval-ptychography-200-seed1001" \
    --option score_threshold=0.05 --option mask_shape=rect --json "$RUNS/eval-r23c/model-ptychography-rect.json"
python -m wirewatch.train.ship --model default --data "$RUNS/data/eval-ptychography-200-seed1001" \
    --option score_threshold=0.05 --option mask_shape=rect --option views=4 \
    --json "$RUNS/eval-r23c/model-ptychography-rect-views4.json"
# CPU rows (the onnxruntime rows paste the head's masks, as PyTorch does; the mask_refine row adds the refiner);
# the GPU rows of step 23 appended to the JSON as before
wirewatch bench model --checkpoint "$RUNS/gpu-r23/final.pt" --model default --frames 20 --views 4 \
    --mask-shape rect --mask-shape rod --mask-refine default --json "$RUNS/eval-r23c/bench-model.json"
python -m wirewatch.train.card --run "$RUNS/gpu-r23" --eval-dir "$RUNS/eval-r23c" \
    --out src/wirewatch/models --bench "$RUNS/eval-r23c/bench-model.json" --model src/wirewatch/models/default.onnx

# 26. (2026-12-05, later) refiner 2 (axis prior from the box, box guard, 24 channels; docs/model.md "Refined masks"),
#    shipped as default.refiner.onnx in place of step 25's. Step 25's refiner widened to 24 channels ran 400 steps
#    with the 3-input code of commit 57664d9 plus --channels/--init (stopped after its step-400 checkpoint when the
#    axis prior was written), then, with the 4-input code:
python -m wirewatch.train.refiner --data "$RUNS/data/ptycho-512-train-v2" --images 2400 --val-images 30 \
    --time-budget 4200 --channels 24 --init "$RUNS/refiner-r1/last.pt" --peak-lr 0.001 --out "$RUNS/refiner-r2" \
    || true  # (stopped by hand after step 400, as described above)
python -m wirewatch.train.refiner --data "$RUNS/data/ptycho-512-train-v2" --images 2400 --val-images 30 \
    --time-budget 4200 --channels 24 --init "$RUNS/refiner-r2/last.pt" --peak-lr 0.001 --out "$RUNS/refiner-r3"
cp "$RUNS/refiner-r3/refiner.onnx" src/wirewatch/models/default.refiner.onnx
cp "$RUNS/refiner-r3/metrics.csv" src/wirewatch/models/default.refiner-metrics.csv
cp "$RUNS/refiner-r3/summary.json" src/wirewatch/models/default.refiner.json
# Paired refined-vs-plain scoring: train.ship with --option mask_refine=none and =default per set (score threshold
# 0.05; ptychography 200, stxm and sem first 100, shaped and realistic 100, noise / agg / bg 30), paired_folds on the
# two. card_rows OUT PREV NOTES: the card's eval folder OUT (PREV's -unrefined rows, the refined rows of
# ptychography / stxm / sem, -rect, and the bench; step 23's GPU rows appended to bench-model.json as before) and
# the card from it; steps 26 and 27.
card_rows() {
    local out="$RUNS/$1" prev="$RUNS/$2" notes="$RUNS/$3"
    mkdir -p "$out"
    cp "$prev/watershed-ptychography.json" "$prev"/*-unrefined.json "$out/"
    for spec in ptychography:1001:200 stxm:1002:100 sem:1003:100; do
        IFS=: read -r preset seed limit <<< "$spec"
        python -m wirewatch.train.ship --model default --data "$RUNS/data/eval-$preset-200-seed$seed" \
            --limit "$limit" --option score_threshold=0.05 --json "$out/model-$preset.json"
    done
    python -m wirewatch.train.ship --model default --data "$RUNS/data/eval-ptychography-200-seed1001" \
        --option score_threshold=0.05 --option mask_shape=rect --json "$out/model-ptychography-rect.json"
    wirewatch bench model --checkpoint "$RUNS/gpu-r23/final.pt" --model default --frames 20 --views 4 \
        --mask-shape rect --mask-shape rod --mask-refine default --json "$out/bench-model.json"
    python -m wirewatch.train.card --run "$RUNS/gpu-r23" --eval-dir "$out" --out src/wirewatch/models \
        --bench "$out/bench-model.json" --model src/wirewatch/models/default.onnx --notes "$notes"
}
card_rows eval-r34c eval-r23c card-notes-r34.md

# 27. (2026-12-05, second session) refiner 3, shipped as default.refiner.onnx in place of step 26's: refiner 2 taught
#    the sem / stxm presets' contrast and the realistic preset's wire shapes (3000 s on the default preset's 2400
#    training images plus 400 of each of those), then 900 s on the default preset alone (1200 images) to give back
#    what the mix took there. Chosen by a rule written before scoring (docs/model.md "Refined masks", refiner 3).
wirewatch synth --preset sem --out "$RUNS/data/sem-train-seed2901" --count 500 --seed 2901 --workers 2
wirewatch synth --preset stxm --out "$RUNS/data/stxm-train-seed2902" --count 500 --seed 2902 --workers 2
python -m wirewatch.train.refiner --data "$RUNS/data/ptycho-512-train-v2" --images 2400 \
    --extra-data "$RUNS/data/sem-train-seed2901:400" --extra-data "$RUNS/data/stxm-train-seed2902:400" \
    --extra-data "$RUNS/data/realistic-nobg-train-seed2501:400" --val-images 40 --channels 24 \
    --init "$RUNS/refiner-r3/last.pt" --peak-lr 5e-4 --time-budget 3000 --out "$RUNS/refiner-r4"
python -m wirewatch.train.refiner --data "$RUNS/data/ptycho-512-train-v2" --images 1200 --val-images 40 \
    --channels 24 --init "$RUNS/refiner-r4/last.pt" --peak-lr 2e-4 --time-budget 900 --seed 1 --out "$RUNS/refiner-r5"
cp "$RUNS/refiner-r5/refiner.onnx" src/wirewatch/models/default.refiner.onnx
# default.refiner.json: refiner-r5's summary.json with refiner-r4's as "init_run"; default.refiner-metrics.csv: the
# two runs' metrics.csv one after the other (steps and seconds running on, a "stage" column)
python - "$RUNS" <<'PY'
import csv, json, sys
runs, models = sys.argv[1], "src/wirewatch/models"
summary = json.load(open(f"{runs}/refiner-r5/summary.json"))
summary["init_run"] = json.load(open(f"{runs}/refiner-r4/summary.json"))
json.dump(summary, open(f"{models}/default.refiner.json", "w"), indent=1)
rows, step, seconds = [], 0, 0.0
for stage, run in (("mixed presets", "refiner-r4"), ("default preset only", "refiner-r5")):
    for row in csv.DictReader(open(f"{runs}/{run}/metrics.csv")):
        rows.append([int(row["step"]) + step, round(float(row["seconds"]) + seconds, 1), row["lr"], row["loss"], stage])
    step, seconds = rows[-1][0], rows[-1][1]
with open(f"{models}/default.refiner-metrics.csv", "w", newline="") as f:
    csv.writer(f).writerows([["step", "seconds", "lr", "loss", "stage"], *rows])
PY
# Paired scoring as in step 26 (mask_refine=none vs default; eval-r35), and the card's refined rows again:
card_rows eval-r35c eval-r34c card-notes-r35.md

# --- Issue 37: the shipped default since 2026-12-07 is mix leg 5 with refiner 4 (MODEL_CARD.md, lead table). ---
# Five legs on 2 CPU cores from the model above (about 5 h in all), each from the previous leg's weights; the
# recipes are the packaged default.mix1-4-train-config.yaml and default.train-config.yaml (leg 5), whose `data`,
# `extra_data`, `init` and `out` paths point at $RUNS/mix (edit them for another $RUNS).
bash config/synth-mix/make-data.sh "$RUNS/mix/data"
cp src/wirewatch/models/default.onnx "$RUNS/leg23-shipped.onnx"   # before this script overwrites it
for n in 1 2 3 4; do
    wirewatch train --config src/wirewatch/models/default.mix$n-train-config.yaml --out "$RUNS/mix/run$n" --no-progress
done
# (leg 1's config names the previous default.onnx as init: use $RUNS/leg23-shipped.onnx)
wirewatch train --config src/wirewatch/models/default.train-config.yaml --out "$RUNS/mix/run5" --no-progress
wirewatch export --checkpoint "$RUNS/mix/run5/final.pt" --out "$RUNS/mix/cand5.onnx"
wirewatch export --checkpoint "$RUNS/mix/run4/final.pt" --out "$RUNS/mix/cand4.onnx"
# refiner 4: on leg 4's masks, from refiner 3's weights (shipped-init.pt: refiner 3's ONNX weights read back)
python -m wirewatch.train.refiner --model "$RUNS/mix/cand4.onnx" --data "$RUNS/mix/data/ptycho" --images 250 \
    --extra-data "$RUNS/mix/data/aligned1:60" --extra-data "$RUNS/mix/data/agglom:50" \
    --extra-data "$RUNS/mix/data/uneven:40" --channels 24 --init "$RUNS/mix/refiner3/shipped-init.pt" \
    --peak-lr 2e-4 --time-budget 600 --out "$RUNS/mix/refiner4/run"
cp "$RUNS/mix/cand5.onnx" src/wirewatch/models/default.onnx
cp "$RUNS/mix/refiner4/run/refiner.onnx" src/wirewatch/models/default.refiner.onnx
# then re-stamp the refiner for default.onnx (its metadata's trained_for_model_sha256; MODEL_CARD.md "Training")
# and score the panel as in MODEL_CARD.md's lead table.
