#!/usr/bin/env bash
# Everything a GPU box must check and measure, in stages, so that each call of a lent machine
# (the device tool: 10 minutes a call) runs a few of them; every log and JSON lands in $OUT
# (default bench/results/run-<date>). For example, three calls:
#
#   bash bench/gpu_session.sh build test
#   bash bench/gpu_session.sh build sanitize kernels
#   bash bench/gpu_session.sh build networks report
#
# Stages: build (peers from .whl/ if carried, snnkern._C for sm_90, `snnkern info`), test (the whole
# python_tests suite on CUDA), sanitize (compute-sanitizer memcheck over the C++/CUDA kernels'
# tests), kernels (bench/test_lif.py + test_spike_linear.py), networks (swap, convert, networks),
# report (bench.report over every JSON in $OUT, plots beside it). A fresh machine keeps nothing, so
# `build` leads each call (the whole install took ~2 min on the 2-core CPU box for sm_90 — one
# translation unit, so more cores help little; on a warm machine it is a no-op). A failed stage does
# not stop the next; the exit status says whether any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/run-$(date +%Y%m%d)}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
status=0

run() {  # run NAME CMD...: log to $OUT/NAME.log, remember a failure, go on with the next stage
  echo "=== $1: ${*:2}"
  local t0=$SECONDS
  "${@:2}" 2>&1 | tee "$OUT/$1.log"
  local rc=${PIPESTATUS[0]}
  echo "=== $1: rc=$rc in $((SECONDS - t0)) s" | tee -a "$OUT/stages.txt"
  [ "$rc" -eq 0 ] || status=1
}

stage_build() {
  if ls .whl/*.whl >/dev/null 2>&1; then  # snnTorch / SpikingJelly, carried (the box has no network)
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-16} SNNKERN_FORCE_CUDA_BUILD=1 \
    run build $PY -m pip install --no-build-isolation --no-deps -e .
  nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
  run info $PY -m snnkern info
}

stage_test() {
  run test $PY -m pytest python_tests -q -rs -p no:cacheprovider --junitxml="$OUT/tests.xml"
}

stage_sanitize() {
  # the C++/CUDA kernels' tests (ids carry "cuda"), small shapes: memcheck slows each launch a lot
  run sanitize compute-sanitizer --tool memcheck --error-exitcode 1 --print-limit 20 \
    $PY -m pytest python_tests/test_lif_kernels.py python_tests/test_spikes.py python_tests/test_extension.py \
    -q -p no:cacheprovider -k "cuda and not large"
}

stage_kernels() {
  run kernels $PY -m pytest bench/test_lif.py bench/test_spike_linear.py bench/test_overhead.py -q -s \
    -p no:cacheprovider --benchmark-json="$OUT/kernels.json"
}

stage_networks() {
  run networks $PY -m pytest bench/test_swap.py bench/test_convert.py bench/test_networks.py -q \
    -p no:cacheprovider --benchmark-json="$OUT/networks.json"
}

stage_report() {
  local jsons=("$OUT"/*.json)
  [ -e "${jsons[0]}" ] || { echo "no benchmark JSON in $OUT"; status=1; return; }
  run report $PY -m bench.report "${jsons[@]}" --plots "$OUT" --out "$OUT/report.md"
}

[ $# -gt 0 ] || set -- build test
for stage in "$@"; do
  case $stage in
    build|test|sanitize|kernels|networks|report) "stage_$stage" ;;
    *) echo "unknown stage: $stage (build test sanitize kernels networks report)"; exit 2 ;;
  esac
done
cat "$OUT/stages.txt"
exit $status
