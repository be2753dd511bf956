#!/usr/bin/env bash
# One lent-GPU call that proves and measures snnkern (issue 13): build, tests on CUDA, memcheck, kernel
# and network benchmarks with their peers in the same run, host overhead, report, one-page summary.
#
#   bash bench/gpu_session.sh [--quick] [--dry] [--stages a,b,...]
#
#   --quick   build + CUDA tests + LIF kernel rows only, within 4 minutes (a retry after a failed call)
#   --dry     the whole control flow on CPU, each stage a tiny real command or its CPU subset (CI runs it:
#             python_tests/test_bench_report.py)
#   --stages  run only these stages (names below); packing and the summary always run
#
# Budget: one command of at most 8 minutes (the device tool allows 10 a call and ~15 minutes of GPU time
# a session, the machine's 1-3 minute start included). Each stage runs under `timeout` with its own cap,
# further cut to what is left of the budget (minus 10 s kept for packing): a stage that fails or times
# out is recorded and the next one runs; one with no time left is recorded as skipped. The exit status
# is 0 only when every stage passed ("unsupported" memcheck counts as passed).
#
#   stage         cap s  quick  expected on the H200 (16 cores)
#   setup            10     10  ~5: wheels from .whl/ into /tmp/site, nvidia-smi, versions (pip, setuptools,
#                               nvcc, commit)
#   build           130    130  ~100-110: snnkern._C for sm_90 (one nvcc translation unit: 107 s on 2 cores
#                               against torch 2.11)
#   info              8      8  ~3-6: snnkern info (backends, extension status; CUDA init, first Triton compile)
#   tests            80     42  ~60-80+: python_tests -m "triton or gpu or cuda_ext" (~1040 tests; ~510 distinct
#                               Triton specializations: bench/compile_census.py counts them under the
#                               interpreter on any machine; each is compiled on a fresh box,
#                               ~0.75-1.1 s each), 16 xdist workers (compiling is CPU work: one per core),
#                               SNNKERN_TILES_AUTOTUNE=0 (the tiles kernels launch their first config: one
#                               compile per shape, no timing; test_forward_every_tile_shape runs each config);
#                               quick: what fits, the junit XML still says how many ran
#   sanitize         30      -  ~20: compute-sanitizer memcheck over bench/sanitize_smoke.py (small shapes; every
#                               tile config of both precisions run alone, no autotuner; ~30 Triton compiles),
#                               PYTORCH_NO_CUDA_MEMORY_CACHING=1 (each tensor its own allocation, so memcheck
#                               sees overruns), SNNKERN_TILES_AUTOTUNE=0
#   lif              60     30  ~40: copy probe + LIF T=16 N=2^22 fp32/bf16 fwd, fwd+bwd vs eager, snnTorch,
#                               SpikingJelly, C++ backend, packed spikes; saved-for-backward bytes
#                               (quick: without the eager and snnTorch peers)
#   compile_peer     30      -  ~25: the torch.compile loop peer (4 inductor compiles), alone so it cannot
#                               starve the other rows
#   spike_linear     50      -  ~30-40: the spike x weight sweep at M=8192 K=N=4096, fp16/fp32 weights,
#                               sparsity 90/98/99.5/99.9%: gather, tiles, dense, auto vs cuBLAS fp16/fp32/TF32
#                               and CSR (60 rows, ~0.1 s each + ~15 s of kernel compiles and autotuning), bits
#                               saved for backward; the train step at 99% (bench/test_spike_sweep.py and
#                               test_spike_linear.py; the full grid, ~4-5 min, runs outside a session)
#   networks         35      -  ~30: seeds' MLP (T=4,8) and spiking VGG CNN (B=64, 32x32x3, T=4,8) train
#                               step + inference vs the dense ANN and SpikingJelly; NVML W and J/sample
#   swap_convert     15      -  ~12: swapped snnTorch/SpikingJelly models, converted CNN
#   overhead         12      -  ~8: bench/test_overhead.py (host cost per call)
#   report           10     10  ~4: bench.report (tables + plots) and bench.summary
#   (pack)        10 kept   10  tar + the $OUT check
#   total          =480    240  (the caps sum to the budget less the 10 s kept for packing)
#
# Benchmarks run with SNNKERN_BENCH_SESSION=1 (bench/common.py): do_bench 10 ms warm-up + 40 ms of
# repeats (medians of CUDA events; peak memory from a call of its own, before the timing), 3
# pytest-benchmark rounds, 1 s NVML windows with the idle baseline measured once per process before its
# GPU work, only the targets' shapes; the tiles autotuners tune in full (SNNKERN_TILES_AUTOTUNE is unset
# for them). The commit measured comes from SNNKERN_COMMIT (the device gets no .git): it is in every
# record, versions.txt, session.json and the summary. Set GPU_SESSION_CAP_<stage>=S to change one cap,
# GPU_SESSION_BUDGET=S the total; GPU_SESSION_FAIL / GPU_SESSION_HANG="stage ..." make stages fail /
# hang (the dry-run tests use them to prove failure isolation and caps).
#
# What comes back ($OUT; at most 8 files of 16 MiB, checked at the end): results.tar.gz (the folder
# <gpu>-<date>/ with every log, JSON, junit XML, plots, nvidia-smi.txt, report.md, summary.*),
# summary.md, summary.json, session.log. Commit the unpacked folder under bench/results/:
#   tar -xzf /work/.device/.../results.tar.gz -C bench/results/     # -> bench/results/h200-YYYYMMDD/
#
# Recipe for a session with a GPU (the device tool's `run`), from the repository root here:
#   1. wheels the device image lacks (its Python is 3.12; all are pure Python):
#        python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#          --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any -d .whl \
#          snntorch==1.0.0 spikingjelly==2.0.0 nir==1.0.8 nirtorch==2.6 mlxtend==0.25.0 loguru==0.7.3
#      (.whl/ is git-ignored; ~2.6 MB. hypothesis, pandas, scikit-learn, matplotlib, tqdm, rich,
#      pytest-benchmark, pytest-xdist, pytest-timeout and nvidia-ml-py are in the image already)
#   2. run(command="SNNKERN_COMMIT=abc1234 bash bench/gpu_session.sh", carry=[".whl"], timeout_s=540)
#      retry: run(command="SNNKERN_COMMIT=abc1234 bash bench/gpu_session.sh --quick", carry=[".whl"],
#      timeout_s=300)
#      with the literal short sha of the tree sent (`git rev-parse --short HEAD` here; commit first) in
#      place of abc1234: the command is typed into the tool call, so $(git ...) would run on the device,
#      which has no .git
#   3. unpack results.tar.gz under bench/results/, commit it with summary.md; quote summary.md's targets.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=0 DRY=0 ONLY=""
for arg in "$@"; do
  case $arg in
    --quick) QUICK=1 ;;
    --dry) DRY=1 ;;
    --stages=*) ONLY=${arg#--stages=} ;;
    -h|--help) awk 'NR > 1 && /^set -uo/ {exit} NR > 1' "$0"; exit 0 ;;
    *) echo "unknown option: $arg (--quick, --dry, --stages=a,b)"; exit 2 ;;
  esac
done

PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 SNNKERN_BENCH_SESSION=1
unset TRITON_INTERPRET  # the tests must run the compiled kernels on the GPU, not the interpreter
# the benchmarks' tiles autotuners tune in full: SNNKERN_TILES_AUTOTUNE=0 is for the tests and sanitize stages only
unset SNNKERN_TILES_AUTOTUNE PYTORCH_NO_CUDA_MEMORY_CACHING
COMMIT=${SNNKERN_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null)}
export SNNKERN_COMMIT=${COMMIT:-unknown}  # bench/common.py's run_metadata records it in every benchmark
MODE=$([ $DRY = 1 ] && echo dry || ([ $QUICK = 1 ] && echo quick || echo full))
if [ $QUICK = 1 ]; then
  STAGES=(setup build info tests lif report)
  BUDGET=${GPU_SESSION_BUDGET:-240}
else
  STAGES=(setup build info tests sanitize lif compile_peer spike_linear networks swap_convert overhead report)
  BUDGET=${GPU_SESSION_BUDGET:-480}
fi
declare -A CAP=([setup]=10 [build]=130 [info]=8 [tests]=80 [sanitize]=30 [lif]=60 [compile_peer]=30
                [spike_linear]=50 [networks]=35 [swap_convert]=15 [overhead]=12 [report]=10)
[ $QUICK = 1 ] && CAP+=([setup]=10 [build]=130 [info]=8 [tests]=42 [lif]=30 [report]=10)
[ $DRY = 1 ] && for s in "${!CAP[@]}"; do CAP[$s]=120; done  # CPU subsets; caps still enforced
PACK_RESERVE=10
FILE_LIMIT=${GPU_SESSION_FILE_LIMIT:-16777216}  # bytes per file that come back from $OUT

if [ $DRY = 1 ]; then
  GPU=dry
else
  GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr 'A-Z' 'a-z' \
        | sed -e 's/^nvidia //' -e 's/[^a-z0-9]\+/-/g' -e 's/-$//')
fi
RUN_NAME=${RUN_NAME:-${GPU:-gpu}-$(date -u +%Y%m%d)}
OUT=${OUT:-$ROOT/bench/results/out-$RUN_NAME}
WORK_DIR=${WORK_DIR:-/tmp/gpu_session}
W=$WORK_DIR/$RUN_NAME  # everything the run writes; packed into $OUT/results.tar.gz at the end
rm -rf "$W"
mkdir -p "$W" "$OUT"
OUT=$(cd "$OUT" && pwd)
exec > >(tee "$W/../$RUN_NAME.session.log") 2>&1
START=$SECONDS
printf 'stage\tstatus\trc\tseconds\tcap\tnote\n' > "$W/stages.tsv"
echo "commit: $SNNKERN_COMMIT"
[ "$SNNKERN_COMMIT" = unknown ] && echo "WARNING: no commit id (no .git here): run as SNNKERN_COMMIT=<short sha> bash $0"
STATUS=0

selected() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
has_py() { $PY -c "import $1" >/dev/null 2>&1; }

# run_stage NAME CMD...: run CMD under NAME's cap (cut to the budget left), log to $W/NAME.log, record
# status, rc, seconds in stages.tsv; never stop the session.
run_stage() {
  local name=$1; shift
  local left=$((BUDGET - (SECONDS - START) - PACK_RESERVE))
  local cap=${CAP[$name]}
  local override="GPU_SESSION_CAP_$name"
  [ -n "${!override:-}" ] && cap=${!override}
  [ "$left" -lt "$cap" ] && cap=$left
  if [ "$cap" -lt 3 ]; then
    printf '%s\tskipped\t-\t0\t%s\tno time left in the %s s budget\n' "$name" "$cap" "$BUDGET" >> "$W/stages.tsv"
    echo "=== $name: skipped (no time left)"; STATUS=1; return
  fi
  if [[ " ${GPU_SESSION_FAIL:-} " == *" $name "* ]]; then set -- bash -c 'echo "made to fail (GPU_SESSION_FAIL)"; exit 3'; fi
  if [[ " ${GPU_SESSION_HANG:-} " == *" $name "* ]]; then set -- sleep 600; fi
  echo "=== $name (cap ${cap} s): $*"
  local t0=$SECONDS grace=$(( cap >= 20 ? 8 : 1 ))
  # SIGINT first: pytest then still writes its junit XML and benchmark JSON; KILL after the grace
  timeout -s INT -k "$grace" "$((cap - grace))" "$@" > "$W/$name.log" 2>&1
  local rc=$? took=$((SECONDS - t0)) status=ok note=""
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then status=timeout; note="killed at the ${cap} s cap"
  elif [ $rc -ne 0 ]; then status=failed; note="exit $rc"; fi
  if [ "$name" = sanitize ] && [ $status != ok ] && grep -qiE "device not supported|not supported on this|error 999|unable to find injection|no cuda-capable" "$W/$name.log"; then
    status=unsupported; note="compute-sanitizer cannot run on this runtime"
  fi
  [ -n "${STAGE_NOTE:-}" ] && note="${note:+$note; }$STAGE_NOTE"
  STAGE_NOTE=""
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$took" "$cap" "$note" >> "$W/stages.tsv"
  echo "=== $name: $status (rc=$rc) in ${took} s"
  if [ $status = failed ] || [ $status = timeout ]; then STATUS=1; tail -n 8 "$W/$name.log" | sed 's/^/    /'; fi
}

PYTEST=($PY -m pytest -p no:cacheprovider -q -rfE)
bench() {  # bench NAME FILES/ARGS...: a benchmark stage writing $W/NAME.json
  local name=$1; shift
  run_stage "$name" "${PYTEST[@]}" "$@" --benchmark-json="$W/$name.json"
}

stage_setup() {
  if [ $DRY = 0 ] && ls .whl/*.whl >/dev/null 2>&1; then  # the box has no network: peers come as wheels
    run_stage setup $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  else
    STAGE_NOTE=$([ $DRY = 1 ] && echo "dry: no wheels installed" || echo "no .whl/ carried: peers may be missing")
    run_stage setup $PY -c "import sys; print(sys.version)"
  fi
  (nvidia-smi && nvidia-smi -q -d CLOCK,POWER,MEMORY || echo "nvidia-smi: not available") > "$W/nvidia-smi.txt" 2>&1
  # what the editable build needs: setuptools >= 64 (PEP 660), an nvcc of torch's CUDA (13 for cu130)
  local nvcc=${CUDA_HOME:-${CUDA_PATH:-}}
  nvcc=$([ -n "$nvcc" ] && echo "$nvcc/bin/nvcc" || command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  {
    echo "commit $SNNKERN_COMMIT"
    $PY -m pip list 2>/dev/null | grep -iE "^(torch|triton|snntorch|spikingjelly|nir|nirtorch|hypothesis|pytest|numpy|nvidia-ml-py) "
    echo "pip: $($PY -m pip --version 2>&1)"
    echo "setuptools: $($PY -c 'import setuptools; print(setuptools.__version__)' 2>&1 | tail -n 1)"
    echo "nvcc ($nvcc):"
    "$nvcc" --version 2>&1 || echo "nvcc: not found"
  } > "$W/versions.txt"
}

stage_build() {
  if [ $DRY = 1 ]; then
    run_stage build $PY -c "import setuptools; print('dry: would build snnkern._C for sm_90 with setuptools', setuptools.__version__)"
    return
  fi
  # all cores; one architecture (sm_90) only; fail loudly if the extension cannot be built. --use-pep517:
  # an older pip with setuptools >= 80 (a Python 3.12 torch venv) otherwise re-invokes pip with build
  # isolation, where torch is missing (seen with torch 2.11 / pip 23.2 / setuptools 81)
  run_stage build env TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS="$(nproc)" SNNKERN_FORCE_CUDA_BUILD=1 \
    $PY -m pip install --use-pep517 --no-build-isolation --no-deps -e .
}

stage_info() { run_stage info $PY -m snnkern info; }

stage_tests() {
  if [ $DRY = 1 ]; then
    run_stage tests env SNNKERN_TILES_AUTOTUNE=0 "${PYTEST[@]}" python_tests/test_lif_reference.py -k "by_hand" \
      --junitxml="$W/tests.xml"
    return
  fi
  local extra=()
  has_py xdist && extra+=(-n "${GPU_SESSION_XDIST:-16}")  # Triton compiles are CPU work: a worker per core
  has_py pytest_timeout && extra+=(--timeout 60)  # one hung test fails alone instead of eating the cap
  # every test that runs a kernel (Triton on CUDA, the C++ extension, GPU-only); reference-only and
  # compile-check tests are CPU CI's
  # SNNKERN_TILES_AUTOTUNE=0: the tiles kernels launch their first config (every shape would otherwise compile
  # all 3-4 configs and time each for 25 ms + 100 ms; the tests check results, and test_forward_every_tile_shape
  # runs every config alone)
  run_stage tests env SNNKERN_TILES_AUTOTUNE=0 "${PYTEST[@]}" python_tests -m "triton or gpu or cuda_ext" "${extra[@]}" \
    --junitxml="$W/tests.xml"
}

stage_sanitize() {
  local cs
  cs=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)
  # without PyTorch's caching allocator every tensor is its own cudaMalloc, so memcheck sees a read or write
  # past its end (inside a 2 MiB cached segment it would not); sanitize_smoke runs each tile config alone
  # (no autotuner), and SNNKERN_TILES_AUTOTUNE=0 keeps every other tiles call off the autotuner too
  local env=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 SNNKERN_TILES_AUTOTUNE=0)
  if [ $DRY = 1 ]; then
    # the Triton kernels in the interpreter too (backend triton on CPU), so the tile-config loop runs
    STAGE_NOTE="dry: the smoke workload without the sanitizer, Triton interpreted"
    run_stage sanitize "${env[@]}" TRITON_INTERPRET=1 $PY -m bench.sanitize_smoke
  elif [ -z "$cs" ]; then
    printf 'sanitize\tunsupported\t-\t0\t%s\tno compute-sanitizer on this machine\n' "${CAP[sanitize]}" >> "$W/stages.tsv"
    echo "=== sanitize: unsupported (no compute-sanitizer)"
  else
    run_stage sanitize "${env[@]}" "$cs" --tool memcheck --error-exitcode 1 --print-limit 20 $PY -m bench.sanitize_smoke
  fi
}

stage_lif() {
  local k=()
  [ $DRY = 1 ] && k=(-k "copy or snnkern-fwd-4-1024-fp32 or spikingjelly-fwd-4-1024-fp32 or (saved and snnkern-fp32)")
  [ $DRY = 0 ] && k=(-k "not compile")
  [ $DRY = 0 ] && [ $QUICK = 1 ] && k=(-k "not compile and not eager and not snntorch")  # fits its 30 s
  bench lif bench/test_lif.py "${k[@]}"
}

stage_compile_peer() {
  if [ $DRY = 1 ]; then  # on CPU the compile peer skips (SNNKERN_BENCH_FULL=1 runs it): the stage still runs
    bench compile_peer bench/test_lif.py -k "compile and fwd"
  else
    bench compile_peer bench/test_lif.py -k "compile"
  fi
}

stage_spike_linear() {
  local k=()
  [ $DRY = 1 ] && k=(-k "sweep and (cublas or csr)")  # the sweep's CPU rows that need no interpreter
  bench spike_linear bench/test_spike_sweep.py bench/test_spike_linear.py "${k[@]}"
}

stage_networks() {
  local k=()
  [ $DRY = 1 ] && k=(-k "vgg_cnn and inference")
  bench networks bench/test_networks.py "${k[@]}"
}

stage_swap_convert() {
  local k=()
  [ $DRY = 1 ] && k=(-k "converted_inference[0] or converted_inference[4]")
  bench swap_convert bench/test_swap.py bench/test_convert.py "${k[@]}"
}

stage_overhead() {
  local k=()
  [ $DRY = 1 ] && k=(-k "baseline_plain_function or functional_no_grad or ratios")
  bench overhead bench/test_overhead.py "${k[@]}"
}

stage_report() {
  local jsons=() f
  for f in lif compile_peer spike_linear networks swap_convert overhead; do  # kernel metadata first
    [ -s "$W/$f.json" ] && jsons+=("$W/$f.json")
  done
  if [ ${#jsons[@]} -eq 0 ]; then
    printf 'report\tfailed\t-\t0\t%s\tno benchmark JSON in this run\n' "${CAP[report]}" >> "$W/stages.tsv"
    echo "=== report: failed (no benchmark JSON)"; STATUS=1; return
  fi
  run_stage report $PY -m bench.report "${jsons[@]}" --plots "$W/plots" --out "$W/report.md"
}

for stage in "${STAGES[@]}"; do
  selected "$stage" && "stage_$stage"
done

# ---- summary and packing: always ------------------------------------------------------------------------
ELAPSED=$((SECONDS - START))
printf '{"run_name": "%s", "mode": "%s", "budget_s": %s, "elapsed_s": %s, "stages_selected": "%s", "commit": "%s"}\n' \
  "$RUN_NAME" "$MODE" "$BUDGET" "$ELAPSED" "${ONLY:-all}" "$SNNKERN_COMMIT" > "$W/session.json"
if ! $PY -m bench.summary "$W" --md "$W/summary.md" --json "$W/summary.json" > "$W/summary.log" 2>&1; then
  echo "summary failed:"; tail -n 20 "$W/summary.log"; STATUS=1
  printf '# GPU session %s: the summary failed\n\nSee summary.log in results.tar.gz.\n' "$RUN_NAME" > "$W/summary.md"
  echo '{"error": "bench.summary failed"}' > "$W/summary.json"
fi
[ $STATUS -ne 0 ] && printf '\nExit status 1: a stage failed, timed out or was skipped (table above).\n' >> "$W/summary.md"

pack() {
  tar -czf "$OUT/results.tar.gz" -C "$WORK_DIR" "$RUN_NAME"
}
rm -f "$OUT/results.tar.gz" "$OUT/summary.md" "$OUT/summary.json" "$OUT/session.log"
pack
if [ "$(stat -c %s "$OUT/results.tar.gz")" -gt "$FILE_LIMIT" ]; then
  echo "results.tar.gz over $FILE_LIMIT bytes: logs cut to their last 256 KiB, packed again"
  for f in "$W"/*.log; do tail -c 262144 "$f" > "$f.tail" && mv "$f.tail" "$f"; done
  pack
fi
cp "$W/summary.md" "$W/summary.json" "$OUT/"

# the device tool brings back at most 8 files of at most 16 MiB each, no deeper than $OUT/a/b/file
check_out() {
  local n big deep
  n=$(find "$OUT" -type f | wc -l)
  big=$(find "$OUT" -type f -size +"${FILE_LIMIT}"c | wc -l)
  deep=$(find "$OUT" -mindepth 4 | wc -l)
  echo "\$OUT: $n files (at most 8), $big over $FILE_LIMIT bytes, $deep too deep"
  find "$OUT" -type f -printf '  %P  %s bytes\n'
  [ "$n" -le 8 ] && [ "$big" -eq 0 ] && [ "$deep" -eq 0 ]
}
cat "$W/summary.md"
echo "ran $MODE in $((SECONDS - START)) s of a $BUDGET s budget"
cp "$W/../$RUN_NAME.session.log" "$OUT/session.log"  # this console so far (it is still being written)
if ! check_out; then echo "PACK CHECK FAILED: what is in \$OUT would not all come back"; STATUS=1; fi
exit $STATUS
