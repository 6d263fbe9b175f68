#!/usr/bin/env bash
# The GPU check, run ON THE DEVICE MACHINE from the repository root, with .gpu-carry carried
# (built here by tools/gpu_build.sh; the device machine has no cargo):
#
#   device tool: command `bash tools/gpu_check.sh`, carry [".gpu-carry"], timeout_s 600
#
# Steps (each logged to $OUT/gpu_check.log between `##[step]` and `##[end]` lines; a failed step
# is recorded and the next one runs):
#   env      nvidia-smi; finds libnvrtc (toolkit, ldconfig, Python's nvidia wheels) and libcuda
#            and puts their folders on LD_LIBRARY_PATH; checks that the tree matches the build
#   doctor   .gpu-carry/skinengine doctor
#   parity   .gpu-carry/op_suites --ignored gpu --test-threads 1   (every op suite's GPU instance)
#   model    .gpu-carry/resnet50_parity --ignored --test-threads 1 (ResNet50 vs torchvision)
#   bench_b32, bench_b128
#            .gpu-carry/skinengine bench --device cuda --precision fp32 --batch B --iters N --json
#   bench_b32_tf32, bench_b32_bf16, bench_b32_fp16, bench_b32_tf32_nchw, bench_b32_bf16_nchw
#            the same at --precision tf32 / bf16 / fp16 (tensor cores), channels-last (default)
#            and, tf32 and bf16, with SKINENGINE_CHANNELS_LAST=0 (NCHW kernels)
#            -> bench_precision.jsonl
#   kernels_fp32, kernels_tf32, kernels_bf16, kernels_fp16
#            .gpu-carry/skinengine bench-kernels --device cuda --precision P --batch 32 --json
#   torch    python3 tools/gpu_bench_torch.py (PyTorch ResNet50 FP32/TF32, cuBLAS SGEMM anchors)
#   grads    .gpu-carry/grads_parity --ignored gpu (every gradient of ResNet50/18 and VGG19 vs PyTorch autograd)
#   train_b32, torch_train: training-step images/s, ours and PyTorch eager FP32 -> train.jsonl
#   train_b32_bf16/fp16, torch_train_amp_bf16/fp16: the same at --precision bf16/fp16 (fp16
#            loss-scaled) against PyTorch AMP (autocast, channels_last; GradScaler for fp16)
#   train_b32_bf16_fp32act: bf16 with SKINENGINE_FP32_ACTIVATIONS=1 (FP32 activation storage)
#   embed_rate  bash tools/gpu_embed_rate.sh: embed (decoding on every core ahead of the device)
#            against the forward alone, full and DCT-scaled JPEG decoding (JSON lines in the log)
#   report   python3 tools/gpu_report.py: the markdown section, printed last
#
# Files under ${OUT:-/tmp/gpu-out} (the device tool returns at most 8): gpu_check.log, env.txt,
# bench.jsonl, kernels.jsonl, torch.json, gpu_results_section.md.
# Exit status 0 when every step passed, else 1. Everything ends within GPU_CHECK_BUDGET_S
# (default 470 s) plus the report's 30 s: later steps get what is left, or are skipped.
#
# Knobs: GPU_CHECK_BUDGET_S, GPU_CHECK_BENCH_ITERS (default 20), NVRTC_DIR (use this libnvrtc
# folder), GPU_CHECK_CARRY (default .gpu-carry).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT" || exit 1
LOG=$OUT/gpu_check.log
ENV_TXT=$OUT/env.txt
BENCH=$OUT/bench.jsonl
BENCH_PREC=$OUT/bench_precision.jsonl
KERNELS=$OUT/kernels.jsonl
TORCH=$OUT/torch.json
SECTION=$OUT/gpu_results_section.md
CARRY=${GPU_CHECK_CARRY:-.gpu-carry}
BIN=$CARRY/skinengine
SUITES=$CARRY/op_suites
MODEL_TEST=$CARRY/resnet50_parity
GRADS_TEST=$CARRY/grads_parity
TRAIN=$OUT/train.jsonl
BUDGET=${GPU_CHECK_BUDGET_S:-470}
ITERS=${GPU_CHECK_BENCH_ITERS:-20}
RESERVE=30 # seconds kept back for the report
START=$(date +%s)
WORK=$(mktemp -d /tmp/gpu_check.XXXXXX) || exit 1
trap 'rm -rf "$WORK"' EXIT

: >"$LOG"
: >"$ENV_TXT"
: >"$BENCH"
: >"$BENCH_PREC"
: >"$TRAIN"
: >"$KERNELS"
rm -f "$TORCH" "$SECTION"
export RUST_BACKTRACE=1 PYTHONUNBUFFERED=1
# PyTorch runs with the environment's own library path: the folders that the env step puts first
# for skinengine (e.g. the toolkit's lib64) would take precedence over torch's own CUDA wheels.
if [[ -n ${LD_LIBRARY_PATH+x} ]]; then
  TORCH_ENV=(env "LD_LIBRARY_PATH=$LD_LIBRARY_PATH")
else
  TORCH_ENV=(env -u LD_LIBRARY_PATH)
fi
FAILED=()

say() { printf 'gpu_check: %s\n' "$*"; }
envkv() { printf '%s=%s\n' "$1" "$2" >>"$ENV_TXT"; }

# run_step NAME CAP_S SINK CHECK CMD...
#   CAP_S  the step's own time limit, clipped to what the budget has left; 0: run CMD (a shell
#          function) in this shell without a time limit (only for the quick env step)
#   SINK   '-': stdout and stderr together into the log; else a file that gets CMD's stdout
#          (its stderr goes to the log, then the stdout is copied there too)
#   CHECK  a function run after exit status 0, given the output file; non-zero fails the step
#          ('true': none)
run_step() {
  local name=$1 cap=$2 sink=$3 check=$4
  shift 4
  local t=$cap now left rc status t0 secs out=$WORK/$name.out
  now=$(date +%s)
  if [[ $name == report ]]; then
    left=$((START + BUDGET + RESERVE - now))
  else
    left=$((START + BUDGET - now))
  fi
  ((left < t)) && t=$left
  printf '##[step] %s | timeout %ss | %s | %s\n' "$name" "$t" "$(date -u +%H:%M:%SZ)" "$*" >>"$LOG"
  if ((cap > 0 && t < 5)); then
    echo "skipped: the time budget of ${BUDGET}s is spent" >>"$LOG"
    printf '##[end] %s | status=skipped | rc=- | secs=0\n' "$name" >>"$LOG"
    FAILED+=("$name")
    say "$name: skipped (time budget spent)"
    return 0
  fi
  t0=$(date +%s%N)
  if ((cap == 0)); then
    "$@" >"$out" 2>&1
    rc=$?
    cat "$out" >>"$LOG"
  elif [[ $sink == - ]]; then
    timeout -k 10 "$t" "$@" >"$out" 2>&1
    rc=$?
    cat "$out" >>"$LOG"
  else
    timeout -k 10 "$t" "$@" >"$sink" 2>"$out"
    rc=$?
    {
      cat "$out"
      echo "--- stdout ---"
      cat "$sink"
    } >>"$LOG"
    out=$sink
  fi
  secs=$((($(date +%s%N) - t0) / 1000000))
  secs=$((secs / 1000)).$(printf '%03d' $((secs % 1000)))
  if ((rc == 124 || rc == 137)) && ((cap > 0)); then
    status=timeout
    echo "timed out after ${t}s" >>"$LOG"
  elif ((rc != 0)); then
    status=fail
  elif [[ $check != true ]] && ! "$check" "$out" >>"$LOG" 2>&1; then
    status=fail
  else
    status=pass
  fi
  printf '##[end] %s | status=%s | rc=%s | secs=%s\n' "$name" "$status" "$rc" "$secs" >>"$LOG"
  [[ $status == pass ]] || FAILED+=("$name")
  say "$name: $status (rc $rc, ${secs}s)"
}

# --- step checks -----------------------------------------------------------------------------
has_json_line() { grep -q '^[[:space:]]*{' "$1" || { echo "check: no JSON object on stdout"; return 1; }; }
check_parity() {
  grep -q '^test result: ok\.' "$1" || { echo "check: no 'test result: ok.' line"; return 1; }
  if grep -q '^test result: ok\. 0 passed' "$1"; then
    echo "check: no test ran (0 passed)"
    return 1
  fi
}
check_torch() { [[ -s $TORCH ]] || { echo "check: $TORCH was not written"; return 1; }; }
check_report() { [[ -s $SECTION ]] || { echo "check: $SECTION was not written"; return 1; }; }

# --- env -------------------------------------------------------------------------------------
# Folders that hold LIB (a file name), in order of preference: NVRTC_DIR, the CUDA toolkit,
# the loader cache, Python's NVIDIA wheels (torch's own libnvrtc).
lib_dirs() {
  local lib=$1 d
  {
    [[ -n ${NVRTC_DIR:-} ]] && echo "$NVRTC_DIR"
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/*/lib /usr/local/cuda-*/lib64 \
      /usr/local/cuda-*/targets/*/lib /usr/local/nvidia/lib64 /usr/local/nvidia/lib \
      /usr/lib/x86_64-linux-gnu /usr/lib64; do
      echo "$d"
    done
    ldconfig -p 2>/dev/null | awk -v l="$lib" '$1 == l { print $NF }' | xargs -r -n1 dirname
    timeout 30 python3 - <<'EOF' 2>/dev/null
import glob, os, site, sys
roots = list(sys.path)
try:
    roots += site.getsitepackages() + [site.getusersitepackages()]
except Exception:
    pass
seen = set()
for r in roots:
    for d in sorted(glob.glob(os.path.join(r, "nvidia", "*", "lib"))):
        d = os.path.realpath(d)
        if d not in seen:
            seen.add(d)
            print(d)
EOF
  } | while IFS= read -r d; do [[ -e $d/$lib ]] && realpath "$d"; done | awk '!seen[$0]++'
}

step_env() {
  local rc=0 q card driver mem cudav lib d nvrtc="" libcuda="" cands kv h
  envkv date_utc "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  envkv host "$(hostname 2>/dev/null || echo unknown)"
  envkv bench_iters "$ITERS"
  echo "\$ nvidia-smi -L"
  timeout 30 nvidia-smi -L || { echo "nvidia-smi -L failed"; rc=1; }
  q=$(timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader |
    head -n 1)
  IFS=',' read -r card driver mem <<<"$q"
  envkv card "$(echo "${card:-unknown}" | xargs)"
  envkv driver "$(echo "${driver:-unknown}" | xargs)"
  envkv gpu_memory "$(echo "${mem:-unknown}" | xargs)"
  cudav=$(timeout 30 nvidia-smi 2>/dev/null | grep -o 'CUDA Version: *[0-9.]*' | grep -o '[0-9.]*$')
  envkv cuda_driver_api "${cudav:-unknown}"
  echo "card=$card driver=$driver memory=$mem cuda=$cudav"

  # A shared library the carried binaries need but this machine lacks fails every later step:
  # say which, up front.
  if ldd "$BIN" "$SUITES" "$MODEL_TEST" "$GRADS_TEST" 2>&1 | grep 'not found'; then
    echo "carried binaries need libraries this machine lacks (above)"
  fi

  for lib in libnvrtc.so.13 libnvrtc.so.12 libnvrtc.so; do
    cands=$(lib_dirs "$lib")
    echo "folders with $lib: $(echo "$cands" | xargs)"
    if [[ -n $cands ]]; then
      d=$(echo "$cands" | head -n 1)
      nvrtc=$d/$lib
      envkv nvrtc_candidates "$(echo "$cands" | xargs)"
      break
    fi
  done
  if [[ -n $nvrtc ]]; then
    export LD_LIBRARY_PATH=$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    envkv nvrtc "$(realpath "$nvrtc")"
    echo "nvrtc: $nvrtc"
  else
    envkv nvrtc "not found"
    echo "no libnvrtc found (toolkit, ldconfig, python nvidia wheels)"
    rc=1
  fi
  if ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
    libcuda=$(ldconfig -p | awk '$1 == "libcuda.so.1" { print $NF; exit }')
  else
    d=$(lib_dirs libcuda.so.1 | grep -v '/cuda[^/]*/compat' | head -n 1)
    if [[ -n $d ]]; then
      libcuda=$d/libcuda.so.1
      export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$d
    fi
  fi
  envkv libcuda "${libcuda:-not found}"
  [[ -n $libcuda ]] || { echo "no libcuda.so.1 found"; rc=1; }
  envkv ld_library_path "${LD_LIBRARY_PATH:-}"
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"

  if [[ -f $CARRY/build_info.txt ]]; then
    while IFS= read -r kv; do envkv "build_${kv%%=*}" "${kv#*=}"; done <"$CARRY/build_info.txt"
    cat "$CARRY/build_info.txt"
    if [[ -f $CARRY/source_files.txt ]]; then
      h=$(tr '\n' '\0' <"$CARRY/source_files.txt" | xargs -0 sha256sum 2>/dev/null |
        sha256sum | cut -d' ' -f1)
      if [[ $h == "$(grep '^source_sha256=' "$CARRY/build_info.txt" | cut -d= -f2)" ]]; then
        envkv source_match yes
      else
        envkv source_match no
        echo "WARNING: this tree's sources differ from those the binaries were built from"
      fi
    fi
  else
    echo "no $CARRY/build_info.txt: was tools/gpu_build.sh run and $CARRY carried?"
    rc=1
  fi
  for f in "$BIN" "$SUITES" "$MODEL_TEST" "$GRADS_TEST"; do
    if [[ -f $f ]]; then
      chmod +x "$f" 2>/dev/null
    else
      echo "missing $f (run tools/gpu_build.sh here and carry $CARRY)"
      rc=1
    fi
  done
  return "$rc"
}

# --- the run ---------------------------------------------------------------------------------
say "writing to $OUT (budget ${BUDGET}s)"
run_step env 0 - true step_env
run_step doctor 30 - true "$BIN" doctor
run_step parity 120 - check_parity "$SUITES" --ignored gpu --test-threads 1
run_step model 60 - check_parity "$MODEL_TEST" --ignored --test-threads 1
run_step grads 60 - check_parity "$GRADS_TEST" --ignored gpu --test-threads 1
# Training steps (ResNet50, batch 32, FP32): ours, then PyTorch eager (TF32 off) in the same run.
run_step train_b32 90 "$WORK/train_b32.json" has_json_line \
  "$BIN" bench --train --device cuda --precision fp32 --batch 32 --iters 5 --json
grep '^[[:space:]]*{' "$WORK/train_b32.json" >>"$TRAIN" 2>/dev/null
for b in 32 128; do
  cap=60
  ((b > 32)) && cap=75
  run_step "bench_b$b" "$cap" "$WORK/bench_b$b.json" has_json_line \
    "$BIN" bench --device cuda --precision fp32 --batch "$b" --iters "$ITERS" --json
  grep '^[[:space:]]*{' "$WORK/bench_b$b.json" >>"$BENCH" 2>/dev/null
done
# The tensor-core precisions (README "--precision"), batch 32; bench.jsonl stays the FP32 table
# the report reads. PyTorch's matching anchors: torch.json "resnet50_precision".
for p in tf32 bf16 fp16; do
  run_step "bench_b32_$p" 60 "$WORK/bench_b32_$p.json" has_json_line \
    "$BIN" bench --device cuda --precision "$p" --batch 32 --iters "$ITERS" --json
  grep '^[[:space:]]*{' "$WORK/bench_b32_$p.json" >>"$BENCH_PREC" 2>/dev/null
done
# The same on the NCHW tensor-core kernels (FP32 storage, the activation operand gathered through
# registers) against the channels-last default (16-bit storage at bf16, both operands by
# cp.async): the JSON's "layout" tells the lines apart.
for p in tf32 bf16; do
  run_step "bench_b32_${p}_nchw" 60 "$WORK/bench_b32_${p}_nchw.json" has_json_line \
    env SKINENGINE_CHANNELS_LAST=0 "$BIN" bench --device cuda --precision "$p" --batch 32 \
    --iters "$ITERS" --json
  grep '^[[:space:]]*{' "$WORK/bench_b32_${p}_nchw.json" >>"$BENCH_PREC" 2>/dev/null
done
# Per shape at each precision (FP32 CUDA cores; TF32, BF16 and FP16 tensor cores, whose lines add the
# channels-last convolutions as kind conv_cl); the torch step times cuBLAS at each line's
# precision.
for p in fp32 tf32 bf16 fp16; do
  run_step "kernels_$p" 60 "$WORK/kernels_$p.json" has_json_line \
    "$BIN" bench-kernels --device cuda --precision "$p" --batch 32 --json
  grep '^[[:space:]]*{' "$WORK/kernels_$p.json" >>"$KERNELS" 2>/dev/null
done
run_step torch 120 - check_torch \
  "${TORCH_ENV[@]}" python3 tools/gpu_bench_torch.py --kernels "$KERNELS" --out "$TORCH"
run_step torch_train 90 "$WORK/torch_train.json" has_json_line \
  "${TORCH_ENV[@]}" python3 tools/bench_train_torch.py --device cuda --batch 32 --iters 5
grep '^[[:space:]]*{' "$WORK/torch_train.json" >>"$TRAIN" 2>/dev/null
# Mixed-precision training steps: ours at bf16/fp16 (fp16 loss-scaled, as train runs it) and
# PyTorch AMP (autocast + channels_last; GradScaler for fp16), batch 32.
for p in bf16 fp16; do
  run_step "train_b32_$p" 60 "$WORK/train_b32_$p.json" has_json_line \
    "$BIN" bench --train --device cuda --precision "$p" --batch 32 --iters 5 --json
  grep '^[[:space:]]*{' "$WORK/train_b32_$p.json" >>"$TRAIN" 2>/dev/null
  run_step "torch_train_amp_$p" 60 "$WORK/torch_train_$p.json" has_json_line \
    "${TORCH_ENV[@]}" python3 tools/bench_train_torch.py --device cuda --batch 32 --iters 5 --amp "$p"
  grep '^[[:space:]]*{' "$WORK/torch_train_$p.json" >>"$TRAIN" 2>/dev/null
done
# bf16 arithmetic with FP32 activation storage: what storing activations in 16 bits gains
# (the JSON's "activations" key tells the two bf16 lines apart).
run_step train_b32_bf16_fp32act 60 "$WORK/train_b32_bf16_fp32act.json" has_json_line \
  env SKINENGINE_FP32_ACTIVATIONS=1 "$BIN" bench --train --device cuda --precision bf16 \
  --batch 32 --iters 5 --json
grep '^[[:space:]]*{' "$WORK/train_b32_bf16_fp32act.json" >>"$TRAIN" 2>/dev/null
# Decoding against the device (issue 13: embed within 80% of the forward-only rate): embed
# over synthetic JPEGs, full and DCT-scaled decoding, against bench's forward; the JSON lines
# land in this log (the report reads them there: $OUT already holds the 8 files the device
# tool returns).
run_step embed_rate 120 "$WORK/embed_rate.json" has_json_line \
  env OUT="$WORK/embed_rate" BIN="$BIN" bash tools/gpu_embed_rate.sh
run_step report 30 - check_report "${TORCH_ENV[@]}" python3 tools/gpu_report.py --dir "$OUT"

if [[ ! -s $SECTION ]]; then
  # The report itself failed: a bare section from the log, with no numbers.
  {
    echo "## GPU check $(date -u '+%Y-%m-%d %H:%M UTC') — report generation FAILED"
    echo
    echo "tools/gpu_report.py did not write this section; step results from gpu_check.log:"
    echo
    echo '```'
    grep '^##\[end\]' "$LOG"
    echo '```'
    echo
    echo "Report error tail:"
    echo
    echo '```'
    tail -n 30 "$WORK/report.out" 2>/dev/null
    echo '```'
  } >"$SECTION"
fi

echo
if ((${#FAILED[@]})); then
  say "FAILED steps: ${FAILED[*]} (log: $LOG)"
else
  say "all steps passed"
fi
say "files: $(find "$OUT" -maxdepth 1 -type f -printf '%f\n' | sort | xargs)"
echo
cat "$SECTION"
((${#FAILED[@]} == 0))
