#!/usr/bin/env bash
# Overhead of the LD_PRELOAD shim with nothing injected (issue 7 target: < 2% on a
# launch-heavy loop, < 1 µs per intercepted call). Run on the GPU machine:
#   bench/shim_overhead.sh BIN [ROUNDS]
# BIN is the gpu-doctor release binary. Builds tests/gpu/shim_launch.cu with nvcc, then runs
# 100k empty-kernel launches (runtime API, driver API) and 100k tiny PyTorch ops, each
# without and with the shim (alternating, ROUNDS times, median), in this one call. "With the
# shim" = `gpu-doctor inject error` with a failpoint armed on a call the loop never makes, so
# every launch goes through the wrapper and nothing is injected.
set -u
BIN=${1:?usage: bench/shim_overhead.sh BIN [ROUNDS]}
ROUNDS=${2:-5}
N=100000
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

nvcc -O2 -o "$WORK/shim_launch" "$HERE/tests/gpu/shim_launch.cu" -lcuda || { echo "nvcc failed"; exit 1; }
cat > "$WORK/torch_loop.py" <<PY
import time, torch
x = torch.empty(1, device="cuda")
for _ in range(1000):
    x.add_(1)
torch.cuda.synchronize()
t0 = time.perf_counter()
for _ in range($N):
    x.add_(1)
torch.cuda.synchronize()
print("elapsed_us=%d launches=$N" % ((time.perf_counter() - t0) * 1e6))
PY

SHIMMED=("$BIN" inject error --call cuMemcpyDtoH --code 2 --nth 999999999999 -q --timeout 10m --)

elapsed() { grep -o 'elapsed_us=[0-9]*' | head -1 | cut -d= -f2; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

fail=0
bench() {
    local name=$1; shift
    local base=() shim=()
    for _ in $(seq "$ROUNDS"); do
        base+=("$("$@" | elapsed)")
        shim+=("$("${SHIMMED[@]}" "$@" | elapsed)")
    done
    local b s
    b=$(printf '%s\n' "${base[@]}" | grep . | median)
    s=$(printf '%s\n' "${shim[@]}" | grep . | median)
    if [ "$b" = nan ] || [ "$s" = nan ]; then
        echo "$name: no timing (program failed?)"; fail=1; return
    fi
    python3 - "$name" "$b" "$s" "$N" <<'PY'
import sys
name, b, s, n = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
slow = (s - b) / b * 100
per_call_ns = (s - b) * 1000 / n
ok = slow < 2.0
print(f"{name:28s} without {b/1e3:9.1f} ms  with shim {s/1e3:9.1f} ms  slowdown {slow:+6.2f}%  "
      f"({per_call_ns:+.0f} ns/launch)  {'OK' if ok else 'OVER 2%'}")
sys.exit(0 if ok else 1)
PY
    [ $? -eq 0 ] || fail=1
}

echo "shim overhead, $N launches, median of $ROUNDS alternating rounds ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -1))"
bench "runtime API (<<<>>>)" "$WORK/shim_launch" runtime $N
bench "driver API (cuLaunchKernel)" "$WORK/shim_launch" driver $N
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    bench "PyTorch x.add_(1)" python3 "$WORK/torch_loop.py"
else
    echo "PyTorch: not available, skipped"
fi
# Proof the loop went through the shim: the report counts the launches it saw.
"$BIN" inject error --call cuMemcpyDtoH --code 2 --nth 999999999999 -q --json -- "$WORK/shim_launch" driver 1000 2>/dev/null \
  | python3 -c 'import sys,json; t=sys.stdin.read(); r=json.loads(t[t.index("{"):]); print("calls seen by the shim (driver, 1000 launches):", {k:v for k,v in r["data"]["calls"].items() if "Launch" in k})'
exit $fail
