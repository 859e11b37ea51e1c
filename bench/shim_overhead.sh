#!/usr/bin/env bash
# Overhead of the LD_PRELOAD shim with nothing injected (issue 7 target: < 2% on a
# launch-heavy loop, < 1 µs per intercepted call). Run on the GPU machine:
#   bench/shim_overhead.sh BIN [ROUNDS]
# BIN is the gpu-doctor release binary. Builds tests/gpu/shim_launch.cu with nvcc, then runs
# 100k empty-kernel launches (runtime API, driver API) and 100k tiny PyTorch ops, each
# without and with the shim (alternating, ROUNDS times, median), in this one call. "With the
# shim" = `gpu-doctor inject error` with a failpoint armed on a call the loop never makes, so
# every launch goes through the wrapper and nothing is injected.
# Launch rates swing by ±10% between processes on these VMs (pinning to one CPU made it worse),
# so the variants alternate and the verdict compares the fastest round of each (the least
# disturbed); the median of the per-round differences is shown beside it. A second measurement
# isolates the wrapper itself: 10M cuCtxSetCurrent calls, which cost the driver almost nothing,
# give the shim's cost per intercepted call in ns — and so the slowdown it can cause at most.
set -u
BIN=${1:?usage: bench/shim_overhead.sh BIN [ROUNDS]}
ROUNDS=${2:-11}
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
bench() { # name target_percent cmd...  (target_percent empty: report only)
    local name=$1 target=$2; shift 2
    local pairs=()
    for _ in $(seq "$ROUNDS"); do
        local b s
        b=$("$@" | elapsed)
        s=$("${SHIMMED[@]}" "$@" | elapsed)
        [ -n "$b" ] && [ -n "$s" ] && pairs+=("$b $s")
    done
    if [ ${#pairs[@]} -eq 0 ]; then
        echo "$name: no timing (program failed?)"; fail=1; return
    fi
    PAIRS=$(printf '%s\n' "${pairs[@]}") python3 - "$name" "$target" "$N" "$CALLS" <<'PY'
import os, statistics, sys
name, target = sys.argv[1], sys.argv[2]
n = int(sys.argv[4]) if "SetCurrent" in name else int(sys.argv[3])
pairs = [tuple(map(float, l.split())) for l in os.environ["PAIRS"].splitlines() if l.strip()]
b, s = min(p[0] for p in pairs), min(p[1] for p in pairs)
slow = (s - b) / b * 100
rel = [(si - bi) / bi * 100 for bi, si in pairs]
per_call_ns = (s - b) * 1000 / n
verdict = ""
ok = True
if target:
    ok = slow < float(target)
    verdict = "OK" if ok else f"OVER {target}%"
print(f"{name:30s} fastest without {b/1e3:8.1f} ms  with shim {s/1e3:8.1f} ms  slowdown {slow:+6.2f}%  "
      f"{per_call_ns:+.0f} ns/call  (paired median {statistics.median(rel):+.1f}%, rounds {min(rel):+.1f}..{max(rel):+.1f}%)  {verdict}")
if not target:
    with open(os.environ["WRAPPER_NS_FILE"], "w") as f:
        f.write(f"{per_call_ns}")
sys.exit(0 if ok else 1)
PY
    [ $? -eq 0 ] || fail=1
}

CALLS=10000000
export WRAPPER_NS_FILE="$WORK/wrapper_ns"
echo "shim overhead, $N launches, $ROUNDS alternating rounds ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -1))"
bench "wrapper cost (cuCtxSetCurrent)" "" "$WORK/shim_launch" setcurrent $CALLS
bench "runtime API (<<<>>>)" 2 "$WORK/shim_launch" runtime $N
bench "driver API (cuLaunchKernel)" 2 "$WORK/shim_launch" driver $N
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    bench "PyTorch x.add_(1)" 2 python3 "$WORK/torch_loop.py"
else
    echo "PyTorch: not available, skipped"
fi
if [ -s "$WRAPPER_NS_FILE" ]; then
    python3 - "$(cat "$WRAPPER_NS_FILE")" <<'PY'
import sys
ns = float(sys.argv[1])
print(f"bound: the wrapper adds {ns:.0f} ns per intercepted call (target < 1000 ns); on a ~3.7 us "
      f"empty-kernel launch that is at most {ns / 3700 * 100:.2f}% ({'OK' if ns < 1000 else 'OVER'})")
PY
fi
# Proof the loop went through the shim: the report counts the launches it saw.
"$BIN" inject error --call cuMemcpyDtoH --code 2 --nth 999999999999 -q --json -- "$WORK/shim_launch" driver 1000 2>/dev/null \
  | python3 -c 'import sys,json; t=sys.stdin.read(); r=json.loads(t[t.index("{"):]); print("calls seen by the shim (driver, 1000 launches):", {k:v for k,v in r["data"]["calls"].items() if "Launch" in k})'
exit $fail
