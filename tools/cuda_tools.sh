#!/usr/bin/env bash
# Install NVRTC and ptxas from NVIDIA's PyPI wheels (no CUDA toolkit, no GPU needed) and print
# the environment that points skinengine at them:
#
#   eval "$(tools/cuda_tools.sh [DIR])"      # DIR defaults to target/cuda-tools
#
# stdout carries exactly two lines, meant for eval:
#   export LD_LIBRARY_PATH=<DIR>/nvidia/cu13/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
#   export SKINENGINE_PTXAS=<DIR>/nvidia/cu13/bin/ptxas
# Everything else (progress, pip output) goes to stderr.
#
# Idempotent: if DIR already holds these exact pins and they still work, nothing is downloaded.
# A changed pin (or a broken install) gets a fresh install into a temporary directory that then
# replaces DIR. Needs python3 with pip only; `pip --target` is not blocked by Debian's PEP 668
# "externally-managed-environment" marker. Linux x86_64 or aarch64 (the only wheels NVIDIA ships).
#
# Installed footprint ~285 MB (wheels ~105 MB download). Only these two wheels are installed, with
# --no-deps: the nvcc wheel declares nvidia-nvvm / nvidia-cuda-runtime / nvidia-cuda-crt, which
# ptxas does not need (ptxas links only against glibc).
#
# Environment knobs: CUDA_TOOLS_PYTHON (default python3).
set -euo pipefail

# Keep both at the same CUDA release: ptxas must accept the PTX ISA that this NVRTC emits.
NVRTC_VERSION=13.5.37
NVCC_VERSION=13.5.37
# sha256 of the wheels, Linux x86_64 and aarch64 (pip picks the one for this machine).
NVRTC_HASHES=(
  86b4d68058807988b7d9af5b44917a0601e9c337f35ccd657bfb3c759ff8d8bc # manylinux_2_12_x86_64
  36e4fa2a8ada293f5693d308e531c196ab6f91cf7a0ff479bf96a537d43a6096 # manylinux_2_17_aarch64
)
NVCC_HASHES=(
  f5c4f7ead5d964fb4af42bbf1e6d3ec3c1e6e9d83b53749f691d387e7fcaa3a7 # manylinux_2_17_x86_64
  588eda18eb5076ae859fe272844b526459228af22df0b117f54eec3aa82bc9c8 # manylinux_2_17_aarch64
)

# Layout inside the install dir (same in both wheels, both architectures).
REL_LIB=nvidia/cu13/lib
REL_PTXAS=nvidia/cu13/bin/ptxas
NVRTC_SONAME=libnvrtc.so.13

PY=${CUDA_TOOLS_PYTHON:-python3}
DIR=${1:-target/cuda-tools}
STAMP_NAME=.skinengine-cuda-tools
STAMP_TEXT="nvidia-cuda-nvrtc==$NVRTC_VERSION nvidia-cuda-nvcc==$NVCC_VERSION"

log() { printf 'cuda_tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# verify ROOT: ptxas runs and reports the pinned release; libnvrtc loads and answers nvrtcVersion
# with the same major.minor. Quiet; non-zero on any problem.
verify() {
  local root=$1 want_mm=${NVCC_VERSION%.*}
  [[ -f $root/$STAMP_NAME && $(<"$root/$STAMP_NAME") == "$STAMP_TEXT" ]] || return 1
  [[ -x $root/$REL_PTXAS && -e $root/$REL_LIB/libnvrtc.so ]] || return 1
  local v
  v=$("$root/$REL_PTXAS" --version 2>/dev/null) || return 1
  [[ $v == *"release $want_mm, V$NVCC_VERSION"* ]] || return 1
  "$PY" - "$root/$REL_LIB/$NVRTC_SONAME" "$want_mm" <<'EOF' >/dev/null 2>&1 || return 1
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
ma, mi = ctypes.c_int(), ctypes.c_int()
assert lib.nvrtcVersion(ctypes.byref(ma), ctypes.byref(mi)) == 0
assert f"{ma.value}.{mi.value}" == sys.argv[2], (ma.value, mi.value)
EOF
}

emit() {
  local root
  root=$(cd "$DIR" && pwd -P)
  log "NVRTC $NVRTC_VERSION in $root/$REL_LIB, ptxas $NVCC_VERSION at $root/$REL_PTXAS"
  # ${LD_LIBRARY_PATH:+...} is expanded by the eval-ing shell; it avoids a trailing ':' (= cwd).
  printf 'export LD_LIBRARY_PATH=%q${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}\n' "$root/$REL_LIB"
  printf 'export SKINENGINE_PTXAS=%q\n' "$root/$REL_PTXAS"
}

if [[ -d $DIR ]] && verify "$DIR"; then
  log "already installed ($STAMP_TEXT) in $DIR"
  emit
  exit 0
fi

# Refuse to wipe a directory this script did not create.
if [[ -d $DIR && -n $(ls -A "$DIR") && ! -f $DIR/$STAMP_NAME ]]; then
  die "$DIR exists, is not empty and was not made by this script; remove it or pass another dir"
fi

"$PY" -m pip --version >/dev/null 2>&1 || die "'$PY -m pip' does not work; install pip (Debian: apt-get install python3-pip)"

parent=$(dirname -- "$DIR")
mkdir -p -- "$parent"
tmp=$(mktemp -d "$parent/.cuda-tools.tmp.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT

req=$tmp/requirements.txt
{
  printf 'nvidia-cuda-nvrtc==%s' "$NVRTC_VERSION"; printf ' --hash=sha256:%s' "${NVRTC_HASHES[@]}"; echo
  printf 'nvidia-cuda-nvcc==%s' "$NVCC_VERSION"; printf ' --hash=sha256:%s' "${NVCC_HASHES[@]}"; echo
} >"$req"

log "installing $STAMP_TEXT into $DIR (~105 MB download, ~285 MB on disk)"
start=$SECONDS
# pip's stdout must not reach our stdout (it is eval'd). The PIP_* variables are ignored by pip
# versions that do not know them, unlike the equivalent command-line options.
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_REQUIRE_VIRTUALENV=0 \
  PIP_NO_INPUT=1 \
  "$PY" -m pip install --quiet --no-deps --no-compile --only-binary=:all: --require-hashes \
  --target "$tmp/install" -r "$req" >&2 || die "pip install failed"

# cudarc (feature cuda-12xxx) probes libnvrtc.so, libnvrtc.so.12, .11, ... but never .so.13.
# The unversioned link must live in the same directory: libnvrtc finds libnvrtc-builtins.so.13.5
# through RPATH $ORIGIN, which is the directory of the path it was opened by, not the link target.
ln -s "$NVRTC_SONAME" "$tmp/install/$REL_LIB/libnvrtc.so"
printf '%s\n' "$STAMP_TEXT" >"$tmp/install/$STAMP_NAME"

verify "$tmp/install" || die "fresh install in $tmp/install does not work (ptxas --version / nvrtcVersion)"

rm -rf -- "$DIR"
mv -- "$tmp/install" "$DIR"
log "installed in $((SECONDS - start)) s"
emit
