#!/usr/bin/env bash
# Build what the GPU check runs on the device machine, here (the device machine has no cargo):
#
#   tools/gpu_build.sh
#
# Runs `cargo build --release` and `cargo test --release --no-run --lib --test resnet50_parity`,
# and copies target/release/skinengine and the two test executables (op_suites: every op's suite,
# whose `gpu` instances are the GPU parity tests; resnet50_parity: the model end to end) into
# .gpu-carry/ (git-ignored), with
# .gpu-carry/build_info.txt (commit, local changes, toolchain, source hash) and
# .gpu-carry/source_files.txt (the source files the hash covers, so that tools/gpu_check.sh can
# tell on the device whether the tree it runs in is the one these binaries were built from).
# Debug sections are zlib-compressed (line tables stay, so panics still name file:line) to keep
# the carry well under the device tool's 64 MiB.
#
# Then run, with the device tool: command `bash tools/gpu_check.sh`, carry [".gpu-carry"],
# timeout_s 600. Extra cargo arguments (e.g. --locked) are passed to both cargo commands.
set -euo pipefail
cd "$(dirname "$0")/.."

CARRY=.gpu-carry
MAX_CARRY_BYTES=$((56 * 1024 * 1024)) # the tool's limit is 64 MiB with the working tree

log() { printf 'gpu_build: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v cargo >/dev/null || die "cargo not found"
command -v python3 >/dev/null || die "python3 not found (reads cargo's JSON messages)"
if ! git check-ignore -q "$CARRY/x" 2>/dev/null; then
  die "$CARRY/ is not git-ignored: add '/$CARRY' to .gitignore (it must travel only as a carried path)"
fi

# The sources the binaries are built from: every file under these paths that travels to the
# device (tracked, or untracked and not ignored).
source_files() {
  git ls-files --cached --others --exclude-standard -- \
    build.rs Cargo.toml Cargo.lock src emu tests | LC_ALL=C sort -u |
    while IFS= read -r f; do [[ -f $f ]] && printf '%s\n' "$f"; done
}
source_hash() { source_files | tr '\n' '\0' | xargs -0 sha256sum | sha256sum | cut -d' ' -f1; }

hash_before=$(source_hash)

log "cargo build --release $*"
cargo build --release "$@"

log "cargo test --release --no-run --lib --test resnet50_parity --test grads_parity $*"
json=$(cargo test --release --no-run --lib --test resnet50_parity --test grads_parity --message-format=json "$@")
# The compiler-artifact messages of the test targets carry the executables' paths.
exe_of() {
  printf '%s\n' "$json" | python3 -c '
import json, sys
name, kind = sys.argv[1], sys.argv[2]
exe = ""
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    t = m.get("target") or {}
    if (m.get("reason") == "compiler-artifact" and t.get("name") == name
            and kind in t.get("kind", []) and m.get("executable")
            and (m.get("profile") or {}).get("test")):
        exe = m["executable"]
print(exe)' "$1" "$2"
}
suites_exe=$(exe_of skinengine lib)
parity_exe=$(exe_of resnet50_parity test)
grads_exe=$(exe_of grads_parity test)
[[ -n $suites_exe && -x $suites_exe ]] || die "no lib test executable in cargo's JSON output"
[[ -n $parity_exe && -x $parity_exe ]] || die "no resnet50_parity test executable in cargo's JSON output"
[[ -n $grads_exe && -x $grads_exe ]] || die "no grads_parity test executable in cargo's JSON output"

hash_after=$(source_hash)

rm -rf "$CARRY"
mkdir -p "$CARRY"
cp target/release/skinengine "$CARRY/skinengine"
cp "$suites_exe" "$CARRY/op_suites"
cp "$parity_exe" "$CARRY/resnet50_parity"
cp "$grads_exe" "$CARRY/grads_parity"
BINS=("$CARRY/skinengine" "$CARRY/op_suites" "$CARRY/resnet50_parity" "$CARRY/grads_parity")
for f in "${BINS[@]}"; do
  if command -v objcopy >/dev/null; then
    objcopy --compress-debug-sections=zlib "$f" || log "objcopy failed on $f (left as is)"
  fi
done
total=$(du -cb "${BINS[@]}" | tail -n 1 | cut -f1)
if ((total > MAX_CARRY_BYTES)); then
  log "binaries are $((total / 1048576)) MiB: stripping debug info (panics lose file:line)"
  strip --strip-debug "${BINS[@]}"
  total=$(du -cb "${BINS[@]}" | tail -n 1 | cut -f1)
  ((total <= MAX_CARRY_BYTES)) || die "binaries still $((total / 1048576)) MiB after strip"
fi

source_files >"$CARRY/source_files.txt"
changed=$(git status --porcelain -- build.rs Cargo.toml Cargo.lock src emu tests | wc -l)
{
  echo "commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
  echo "local_changes=$changed"
  echo "built_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "rustc=$(rustc --version 2>/dev/null || echo unknown)"
  echo "source_sha256=$hash_after"
  if [[ $hash_before != "$hash_after" ]]; then
    echo "warning=sources changed while building: the binaries may not match the tree; build again"
  fi
} >"$CARRY/build_info.txt"

[[ $hash_before == "$hash_after" ]] ||
  log "warning: sources changed during the build; the binaries may not match the tree (run again)"
log "built: $(du -h "${BINS[@]}" | tr '\t\n' ' ')"
cat "$CARRY/build_info.txt" >&2
echo "carry: [\"$CARRY\"]"
echo "device command: bash tools/gpu_check.sh   (timeout_s 600)"
