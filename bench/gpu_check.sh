#!/usr/bin/env bash
# The GPU checks in one command (a few minutes on one GPU): parity in bf16 against the official package, 13B
# transformer forwards against ComfyUI's native classes, the speed options and peak VRAM of the one-node defaults.
# Results: bench/RESULTS.md (a dated section with the GPU's name) and the raw JSON under .bench/gpu/.
#   bash bench/gpu_check.sh            # needs `make setup` (or .venv) and a CUDA GPU with ~40 GB free
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=.bench/gpu
mkdir -p "$OUT"
status=0
step() {  # step NAME COMMAND...: run one check, keep going if it fails, remember the failure
  local name=$1; shift
  echo "== $name: $*"
  if ! "$@" > "$OUT/$name.log" 2>&1; then
    echo "   FAILED (see $OUT/$name.log)"; status=1
  fi
  tail -n 12 "$OUT/$name.log"
}

step parity_bf16 "$PY" bench/bench_models.py --preset tiny --device cuda --dtype bf16 --json "$OUT/parity_bf16.json"
step forward_4992 "$PY" bench/bench_models.py --preset 13b --only transformer --device cuda --dtype bf16 \
  --batch 2 --json "$OUT/forward_4992.json"
step forward_13376 "$PY" bench/bench_models.py --preset 13b-704p --only transformer --device cuda --dtype bf16 \
  --repeats 2 --json "$OUT/forward_13376.json"
step fp8_4992 "$PY" bench/bench_speed.py --preset 13b --device cuda --only fp8 --tokens 4992 --json "$OUT/fp8_4992.json"
step fp8_13376 "$PY" bench/bench_speed.py --preset 13b --device cuda --only fp8 --tokens 13376 \
  --json "$OUT/fp8_13376.json"
step cache "$PY" bench/bench_speed.py --preset 13b --device cuda --dtype bf16 --only cache --steps 20 \
  --json "$OUT/cache.json"
step compile "$PY" bench/bench_speed.py --preset 13b --device cuda --dtype bf16 --only compile --tokens 4992 \
  --json "$OUT/compile.json"
step vram "$PY" bench/bench_speed.py --preset 13b --device cuda --only vram --json "$OUT/vram.json"
"$PY" bench/results_md.py "$OUT" bench/RESULTS.md || status=1
exit $status
