#!/usr/bin/env bash
# One GPU session on a lent device machine (this workplace's `run` tool; $OUT comes back): GPU rows of
# `wirewatch bench model`, the training data rebuilt there, and a GPU fine-tuning leg of the shipped model
# (config/train-compact-gpu.yaml, from src/wirewatch/models/default.onnx). The weights come back in 15 MB parts
# ($OUT's per-file limit): `cat weights.pt.part-* > final.pt`; records in run-records.tar.gz.
# The machine has torch but not pydantic or pycocotools: bring them as Python 3.12 wheels in .whl/ (carried):
#   echo /.whl/ >> .git/info/exclude; python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 \
#     typing-inspection==0.4.5 pycocotools==2.0.11
# A dry run on a CPU: WHEELS=none DEVICE=cpu BUDGET=20 COUNT=40 WORKERS=2 BATCH=2 OUT=/tmp/o PY=python bash $0
# Env: BUDGET (training seconds, 360), COUNT (training images, 3000), DEVICE (cuda), WORKERS (14),
#      BATCH (16), FRAMES (bench frames, 24), PY (python3), WHEELS (.whl), WORK (/tmp/ww),
#      MIX (share of training samples from the realistic preset's wires, config/synth-realistic-no-background.yaml,
#      1500 images, seed 2501, as in leg 25; 0 = none, the default).
# Measured on an H200 (2026-12-04): BUDGET=400 took 464 s in all (synth 17 s beside the r50_fpn bench, training
# 406 s + 40 s of start-up and final BatchNorm, compact bench 12 s); keep BUDGET <= ~450 for one 600 s call.
set -uo pipefail
BUDGET=${BUDGET:-360} COUNT=${COUNT:-3000} DEVICE=${DEVICE:-cuda} WORKERS=${WORKERS:-14} BATCH=${BATCH:-16}
FRAMES=${FRAMES:-24} PY=${PY:-python3} MIX=${MIX:-0}
OUT=${OUT:?set OUT to the folder whose files come back}
WORK=${WORK:-/tmp/ww}
mkdir -p "$WORK"
exec > >(tee "$OUT/log.txt") 2>&1
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
WHEELS=${WHEELS:-.whl}
if [ -d "$WHEELS" ] && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" "$WHEELS"/*.whl || exit 1
  export PYTHONPATH="$PWD/src:$WORK/site"
else
  export PYTHONPATH="$PWD/src"
fi
export PYTHONUNBUFFERED=1
ww() { $PY -m wirewatch "$@"; }
stamp "env"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
$PY -c "import torch, torchvision; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available(), 'torchvision', torchvision.__version__)"
$PY -c "import tensorrt" 2>/dev/null && echo "tensorrt present" || echo "tensorrt: not installed on this machine"
$PY -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"

stamp "synth $COUNT training images (background)"
ww synth --out "$WORK/data" --count "$COUNT" --seed 1 --size 512 --workers "$WORKERS" > "$WORK/synth.log" 2>&1 &
synth_pid=$!
extra=()
if [ "$MIX" != 0 ]; then
  ww synth --preset realistic --config config/synth-realistic-no-background.yaml --out "$WORK/extra" --count 1500 \
    --seed 2501 --workers "$WORKERS" > "$WORK/synth-extra.log" 2>&1 || { cat "$WORK/synth-extra.log"; exit 1; }
  extra=(--extra-data "$WORK/extra:$MIX")
fi

if [ "$DEVICE" != cpu ]; then
  stamp "bench r50_fpn (random weights) on the GPU"
  # random weights: even at score threshold 0.99 their saturated scores keep ~125 detections per frame
  # (measured on the H200), so these rows time the network plus ~125 torchvision mask pastes
  ww bench model --model random --variant r50_fpn --gpu-only --score-threshold 0.99 --frames "$FRAMES" --json "$WORK/bench-r50_fpn.json" 2>&1 | tail -12
fi
wait $synth_pid || { cat "$WORK/synth.log"; exit 1; }
tail -2 "$WORK/synth.log"

stamp "train (budget $BUDGET s)"
timeout $(( BUDGET + 90 )) $PY -m wirewatch train --config config/train-compact-gpu.yaml --data "$WORK/data" \
  --out "$WORK/run" --init src/wirewatch/models/default.onnx --time-budget "$BUDGET" --device "$DEVICE" \
  --loader-workers "$WORKERS" --batch-size "$BATCH" "${extra[@]}" --no-progress 2>&1 | grep --line-buffered -v Warning
stamp "pack weights"
# Weights only (no optimiser), split to fit the 16 MiB-per-file return limit; `cat` joins them again.
$PY - "$WORK/run" "$WORK/weights.pt" <<'PYEOF'
import sys, torch
from pathlib import Path
run = Path(sys.argv[1]); src = run / "final.pt" if (run / "final.pt").exists() else run / "last.pt"
state = torch.load(src, map_location="cpu", weights_only=True)
state.pop("optimizer", None)
torch.save(state, sys.argv[2]); print("packed", src, "step", state["step"])
PYEOF
(cd "$WORK" && split -b 15M -d weights.pt "$OUT/weights.pt.part-" && sha256sum weights.pt > "$WORK/run/weights.sha256")

records() { cp "$WORK"/bench-*.json "$WORK/synth.log" "$WORK/run/" 2>/dev/null
  tar -C "$WORK/run" -czf "$OUT/run-records.tar.gz" --exclude='*.pt' .; }
records  # before the last bench, in case the command's time runs out there
if [ "$DEVICE" != cpu ]; then
  stamp "bench compact_m4 (this leg's weights) on the GPU"
  ww bench model --checkpoint "$WORK/weights.pt" --gpu-only --frames "$FRAMES" --json "$WORK/bench-compact.json" 2>&1 | tail -12
fi
records
stamp "done"; ls -la "$OUT"
