#!/usr/bin/env bash
# Pass-through cost of the NVML interposer (issue 13 target: well under 1 µs per call).
#   bench/nvml_overhead.sh LIB [CALLS] [ROUNDS]
# LIB is libgpu_doctor_nvml.so (a release build: `cargo build -p gpu-doctor-nvml-shim
# --release`). Builds tests/nvml/dlsym_client.c and times CALLS calls of
# nvmlDeviceGetCurrPcieLinkWidth on GPU 0 (loaded with dlopen + dlsym, as Go's bindings do),
# without and with the library preloaded, alternating ROUNDS times; prints the fastest round
# of each and the difference per call. "With" runs twice: no fault at all, and a fault on
# another call (temperature), which must cost the same.
# On a GPU machine the real libnvidia-ml answers. Without one, set SNAPSHOT=file.nvml.json:
# a copy of LIB named libnvidia-ml.so.1 then plays the real library (replaying SNAPSHOT).
set -u
LIB=$(realpath "${1:?usage: bench/nvml_overhead.sh LIB [CALLS] [ROUNDS]}")
CALLS=${2:-2000000}
ROUNDS=${3:-5}
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cc -O2 -o "$WORK/client" "$HERE/tests/nvml/dlsym_client.c" -ldl || { echo "cc failed"; exit 1; }
if [ -n "${SNAPSHOT:-}" ]; then
    mkdir "$WORK/lib" && cp "$LIB" "$WORK/lib/libnvidia-ml.so.1"
    export LD_LIBRARY_PATH="$WORK/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export GPU_DOCTOR_NVML_REPLAY=$(realpath "$SNAPSHOT")
fi
unset GPU_DOCTOR_NVML_FAULTS GPU_DOCTOR_NVML_EVENTS

ns() { grep -o '"ns_per_call":[0-9.]*' | cut -d: -f2; }
best() { sort -n | head -1; }
plain=() with=() faulted=()
for _ in $(seq "$ROUNDS"); do
    plain+=("$("$WORK/client" bench "$CALLS" | ns)")
    with+=("$(LD_PRELOAD="$LIB" "$WORK/client" bench "$CALLS" | ns)")
    faulted+=("$(GPU_DOCTOR_NVML_FAULTS=temperature=90 LD_PRELOAD="$LIB" "$WORK/client" bench "$CALLS" | ns)")
done
p=$(printf '%s\n' "${plain[@]}" | best)
w=$(printf '%s\n' "${with[@]}" | best)
f=$(printf '%s\n' "${faulted[@]}" | best)
echo "without the interposer: $p ns/call"
diff() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f", a - b }'; }
echo "with, no fault:         $w ns/call ($(diff "$w" "$p") ns)"
echo "with, another fault:    $f ns/call ($(diff "$f" "$p") ns)"
