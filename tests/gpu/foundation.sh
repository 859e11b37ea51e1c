#!/usr/bin/env bash
# Foundation checks on a real GPU: info and topo run, their JSON matches nvidia-smi field by
# field, the embedded PTX assembles, error paths give the documented exit codes.
set -u
BIN=$1; OUTDIR=$2
here=$(cd "$(dirname "$0")" && pwd)
fail=0
check() { if "$@"; then echo "ok: $*"; else echo "FAIL: $*"; fail=1; fi; }

"$BIN" info --json -o "$OUTDIR/info.json" >/dev/null; rc=$?
check test $rc -le 1
"$BIN" topo --json -o "$OUTDIR/topo.json" >/dev/null; rc=$?
check test $rc -le 1
"$BIN" topo --no-color > "$OUTDIR/topo.txt"; "$BIN" info --no-color > "$OUTDIR/info.txt"
nvidia-smi topo -m > "$OUTDIR/nvidia-smi-topo.txt"
nvidia-smi -q > "$OUTDIR/nvidia-smi-q.txt"
check python3 "$here/compare_smi.py" "$OUTDIR/info.json" "$OUTDIR/topo.json" "$OUTDIR/nvidia-smi-topo.txt" "$OUTDIR/nvidia-smi-q.txt"

# Error paths on a machine that has a driver: they must still be clean one-liners.
"$BIN" topo --device 99 >/dev/null 2>"$OUTDIR/err.txt"; rc=$?
check test $rc -eq 3
check grep -q "device 99 not found" "$OUTDIR/err.txt"
GPU_DOCTOR_LIBNVML=/nonexistent/libnvidia-ml.so.1 "$BIN" info >/dev/null 2>"$OUTDIR/err.txt"; rc=$?
check test $rc -eq 3
check test "$(wc -l < "$OUTDIR/err.txt")" -eq 1
uuid=$(nvidia-smi --query-gpu=uuid --format=csv,noheader | head -1)
"$BIN" topo --device "$uuid" --json > "$OUTDIR/topo-uuid.json"; check test $? -le 1

# The embedded PTX must assemble for this GPU.
if command -v ptxas >/dev/null || [ -x /usr/local/cuda/bin/ptxas ]; then
  PTXAS=$(command -v ptxas || echo /usr/local/cuda/bin/ptxas)
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
  check "$PTXAS" -arch=sm_$cc "$here/../../src/probe/kernels/gpu_doctor.ptx" -o /dev/null
fi
exit $fail
