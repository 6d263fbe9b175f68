#!/usr/bin/env bash
# Append a GPU check's result section to docs/GPU_RESULTS.md (created with its header if absent):
#
#   tools/append_gpu_results.sh FILE [--force]
#
# FILE is gpu_results_section.md as fetched from the device run of tools/gpu_check.sh (the device
# tool's files_at folder). Refuses a file that is not such a section, and one whose heading is
# already in docs/GPU_RESULTS.md (the same run appended twice) unless --force. Commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."

DOC=docs/GPU_RESULTS.md
die() { printf 'append_gpu_results: error: %s\n' "$*" >&2; exit 1; }

[[ $# -ge 1 && $# -le 2 ]] || die "usage: tools/append_gpu_results.sh FILE [--force]"
file=$1
force=${2:-}
[[ -z $force || $force == --force ]] || die "unknown argument: $force"
[[ -s $file ]] || die "$file: missing or empty"
heading=$(head -n 1 "$file")
[[ $heading == "## GPU check "* ]] ||
  die "$file: does not start with '## GPU check ...' (not a tools/gpu_report.py section)"

mkdir -p docs
if [[ ! -f $DOC ]]; then
  cat >"$DOC" <<'HEADER'
# GPU results

Results of the GPU check: skinengine's CUDA backend on a real GPU (the parity suite
`tests/cuda_gpu.rs`, ResNet50 forward throughput and per-layer GEMM throughput), next to PyTorch
on the same card (ResNet50 with TF32 off and on; `torch.matmul` with TF32 off as the cuBLAS
SGEMM anchor for each conv/dense shape; our goal is at least 0.70 of it per shape). CI has no
GPU, so these sections are the only GPU evidence; each is one run, appended as it came back,
newest last, and never edited. Numbers from different cards or runs are not comparable.

How a section is produced (see tools/README.md, "GPU check"):

1. here, on the development machine: `tools/gpu_build.sh` builds `target/release/skinengine` and
   the `cuda_gpu` test binary and copies them into `.gpu-carry/` (git-ignored);
2. on the GPU machine, through the device tool: command `bash tools/gpu_check.sh`, carry
   `[".gpu-carry"]`, timeout_s 600; it writes `gpu_check.log`, `env.txt`, `bench.jsonl`,
   `kernels.jsonl`, `torch.json` and `gpu_results_section.md` under `$OUT` and prints the
   section last;
3. here: `tools/append_gpu_results.sh <files_at>/gpu_results_section.md`, then commit.
HEADER
fi

if grep -qxF -- "$heading" "$DOC" && [[ $force != --force ]]; then
  die "$DOC already holds '$heading' (pass --force to append it again)"
fi
{
  echo
  cat "$file"
} >>"$DOC"
echo "appended '$heading' to $DOC"
