#!/usr/bin/env bash
# Overhead of `gpu-doctor leak-check` (docs/memory.md: target < 5 % on a launch-heavy loop; the
# allocation-heavy loops are stated, per allocation), measured in this one run with and without
# it, and compute-sanitizer --leak-check full on the same programs for comparison. Run on the GPU
# machine:
#   bench/leak_overhead.sh BIN [ROUNDS]
# Builds tests/gpu/shim_launch.cu (nvcc) and tests/gpu/alloc_loop.c (gcc). Each program times its
# own loop ("elapsed_us="); variants alternate ROUNDS times and the fastest round of each is
# compared (launch rates swing ±10 % between processes on these VMs), the median of the
# per-round differences beside it. Exits 1 when the launch-heavy loops miss the target.
set -u
BIN=${1:?usage: bench/leak_overhead.sh BIN [ROUNDS]}
ROUNDS=${2:-7}
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export PATH="$PATH:/usr/local/cuda/bin"
CUDA_INC=$(dirname "$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")")/include

nvcc -O2 -o "$WORK/shim_launch" "$HERE/tests/gpu/shim_launch.cu" -lcuda || { echo "nvcc failed"; exit 1; }
gcc -O2 -o "$WORK/alloc_loop" "$HERE/tests/gpu/alloc_loop.c" -I"$CUDA_INC" -lcuda || { echo "gcc failed"; exit 1; }

LEAK=("$BIN" leak-check -q --timeout 10m --no-framework-hooks --)
elapsed() { grep -o 'elapsed_us=[0-9]*' | head -1 | cut -d= -f2; }

fail=0
# bench NAME TARGET_PERCENT N CMD…   (TARGET empty: stated only)
bench() {
    local name=$1 target=$2 n=$3; shift 3
    local pairs=()
    for _ in $(seq "$ROUNDS"); do
        local b s
        b=$("$@" 2>/dev/null | elapsed)
        s=$("${LEAK[@]}" "$@" 2>/dev/null | elapsed)
        [ -n "$b" ] && [ -n "$s" ] && pairs+=("$b $s")
    done
    if [ ${#pairs[@]} -eq 0 ]; then
        echo "$name: no timing (program failed?)"; fail=1; return
    fi
    PAIRS=$(printf '%s\n' "${pairs[@]}") python3 - "$name" "$target" "$n" <<'PY'
import os, statistics, sys
name, target, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
pairs = [tuple(map(float, l.split())) for l in os.environ["PAIRS"].splitlines() if l.strip()]
b, s = min(p[0] for p in pairs), min(p[1] for p in pairs)
slow = (s - b) / b * 100
rel = [(si - bi) / bi * 100 for bi, si in pairs]
verdict, ok = "stated", True
if target:
    ok = slow < float(target)
    verdict = "OK" if ok else f"OVER {target}%"
print(f"{name:34s} without {b / n * 1000:8.0f} ns/op  with leak-check {s / n * 1000:8.0f} ns/op  "
      f"{slow:+7.2f}%  ({(s - b) / n * 1000:+.0f} ns/op; paired median {statistics.median(rel):+.1f}%)  {verdict}")
with open(os.environ["BASE_FILE"], "a") as f:
    f.write(f"{name}\t{b / n}\n")
sys.exit(0 if ok else 1)
PY
    [ $? -eq 0 ] || fail=1
}

export BASE_FILE="$WORK/base"
echo "leak-check overhead, $ROUNDS alternating rounds ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -1))"
bench "launch: runtime <<<>>> (100k)" 5 100000 "$WORK/shim_launch" runtime 100000
bench "launch: driver cuLaunchKernel (100k)" 5 100000 "$WORK/shim_launch" driver 100000
bench "alloc: cuMemAlloc+Free 1 MiB (20k)" "" 20000 "$WORK/alloc_loop" sync 20000 1048576
bench "alloc: cuMemAllocAsync+Free 1 MiB (100k)" "" 100000 "$WORK/alloc_loop" async 100000 1048576

# compute-sanitizer's cost on the same programs (fewer iterations: it is much slower).
if command -v compute-sanitizer >/dev/null 2>&1; then
    sanitized() { # NAME N CMD…
        local name=$1 n=$2; shift 2
        local t
        t=$(compute-sanitizer --leak-check full "$@" 2>/dev/null | elapsed)
        if [ -z "$t" ]; then
            echo "$name: compute-sanitizer gave no timing (device refused?)"; return
        fi
        python3 - "$name" "$n" "$t" "$BASE_FILE" <<'PY'
import sys
name, n, t, base_file = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
base = dict(l.rstrip("\n").split("\t") for l in open(base_file))
key = next((k for k in base if k.split(" (")[0] == name), None)
per = t / n * 1000
if key:
    b = float(base[key]) * 1000
    print(f"{name:34s} compute-sanitizer --leak-check full {per:10.0f} ns/op  ({per / b:.1f}x the program alone)")
else:
    print(f"{name:34s} compute-sanitizer --leak-check full {per:10.0f} ns/op")
PY
    }
    sanitized "launch: driver cuLaunchKernel" 10000 "$WORK/shim_launch" driver 10000
    sanitized "alloc: cuMemAlloc+Free 1 MiB" 2000 "$WORK/alloc_loop" sync 2000 1048576
    sanitized "alloc: cuMemAllocAsync+Free 1 MiB" 10000 "$WORK/alloc_loop" async 10000 1048576
else
    echo "compute-sanitizer: not on PATH, not compared"
fi
# Proof the loops went through the shim: the report counts the allocations it saw.
"$BIN" leak-check -q --json --no-framework-hooks -- "$WORK/alloc_loop" sync 1000 1048576 2>/dev/null \
  | python3 -c 'import sys,json; t=sys.stdin.read(); r=json.loads(t[t.index("{"):]); s=r["data"]["leaks"]["summary"]; print("leak-check saw (1000 pairs + 100 warm-up):", s["allocations"], "allocations,", s["frees"], "frees")'
exit $fail
