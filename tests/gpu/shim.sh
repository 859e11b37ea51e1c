#!/usr/bin/env bash
# GPU checks of program mode (LD_PRELOAD shim, docs/shim.md). Run on the GPU machine:
#   tests/gpu/shim.sh BIN OUTDIR
# BIN: gpu-doctor release binary. Writes each report to OUTDIR/shim-*.json. Needs nvcc, gcc,
# python3 with torch (and cupy: skipped with a note if missing). Exits non-zero on a failure.
# The overhead benchmark is separate: bench/shim_overhead.sh BIN.
set -u
BIN=${1:?usage: tests/gpu/shim.sh BIN OUTDIR}
OUT=${2:?usage: tests/gpu/shim.sh BIN OUTDIR}
mkdir -p "$OUT"
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# FAILED, pass, fail, check
# shellcheck source-path=SCRIPTDIR source=lib/check.bash
. "$HERE/lib/check.bash"

CUDA_INC=$(dirname "$(dirname "$(command -v nvcc)")")/include
nvcc -O2 -o "$WORK/shim_launch" "$HERE/shim_launch.cu" -lcuda || fail "nvcc shim_launch.cu"
gcc -O2 -o "$WORK/ctx_hop" "$HERE/ctx_hop.c" -I"$CUDA_INC" -lcuda -lpthread || fail "gcc ctx_hop.c"

# Which launch entry point does a runtime-API program use? (cuLaunchKernel or cuLaunchKernelEx)
launch_call() {
    "$BIN" inject error --call cuMemcpyDtoH --code 2 --nth 999999999 -q --json -- "$@" 2>/dev/null \
      | python3 -c '
import sys, json
t = sys.stdin.read()
calls = json.loads(t[t.index("{"):])["data"]["calls"]
ex = sum(v for k, v in calls.items() if k.startswith("cuLaunchKernelEx"))
plain = sum(v for k, v in calls.items() if k in ("cuLaunchKernel", "cuLaunchKernel_ptsz"))
print("cuLaunchKernelEx" if ex > plain else "cuLaunchKernel")
print("launch entry points seen: %s" % {k: v for k, v in calls.items() if "Launch" in k}, file=sys.stderr)'
}

# 1. torch: OOM under --limit, caught, keeps running.
cat > "$WORK/torch_oom.py" <<'PY'
import sys, torch
OOM = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
a = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
try:
    b = torch.empty(2 << 30, dtype=torch.uint8, device="cuda")
    print("no OOM under the limit"); sys.exit(5)
except OOM as e:
    print("caught torch.OutOfMemoryError")
free, total = torch.cuda.mem_get_info()
print(f"mem_get_info free={free} total={total}")
c = torch.ones(64 << 20, dtype=torch.uint8, device="cuda")
torch.cuda.synchronize()
print("still running", int(c.sum().item()))
PY
"$BIN" inject oom --limit 1GiB -q -o "$OUT/shim-torch-oom.json" -- python3 "$WORK/torch_oom.py" > "$WORK/log" 2>&1
check "torch sees torch.OutOfMemoryError under --limit 1GiB and keeps running" "$OUT/shim-torch-oom.json" 0 $? '
    assert "caught torch.OutOfMemoryError" in out and "still running" in out, "program output"
    assert d["verdict"] == "survived", d["verdict"]
    inj = d["injected"]
    assert inj and inj[0]["name"] == "CUDA_ERROR_OUT_OF_MEMORY", inj
    assert any(i["size"] >= 2 << 30 for i in inj), [i["size"] for i in inj]
    assert "FAULT_INJECTED" in codes and "PROGRAM_SURVIVED" in codes, codes
    assert d["peak"] and max(p["bytes"] for p in d["peak"]) <= 1 << 30, d["peak"]
    total = [l for l in out.splitlines() if l.startswith("mem_get_info")]
    print("      note: " + (total[0] if total else "no mem_get_info line") + " (total should be the 1 GiB limit: 1073741824)")
' "$WORK/log"

# 2. torch: the same without catching: it must fail (--expect fail passes).
cat > "$WORK/torch_oom_uncaught.py" <<'PY'
import torch
b = torch.empty(2 << 30, dtype=torch.uint8, device="cuda")
print("no OOM")
PY
"$BIN" inject oom --limit 1GiB --expect fail -q -o "$OUT/shim-torch-oom-uncaught.json" -- python3 "$WORK/torch_oom_uncaught.py" > "$WORK/log" 2>&1
check "torch without a handler crashes, --expect fail passes" "$OUT/shim-torch-oom-uncaught.json" 0 $? '
    assert d["verdict"] == "crashed" and d["exit"]["code"] == 1, d["exit"]
    assert d["expectation_met"] is True
    assert "OutOfMemoryError" in out, "traceback names the error"
' "$WORK/log"

# 3. CuPy: the same.
if python3 -c "import cupy; cupy.cuda.runtime.getDeviceCount()" >/dev/null 2>&1; then
cat > "$WORK/cupy_oom.py" <<'PY'
import sys, cupy
a = cupy.zeros(256 << 20, dtype=cupy.uint8)
try:
    b = cupy.zeros(2 << 30, dtype=cupy.uint8)
    print("no OOM under the limit"); sys.exit(5)
except cupy.cuda.memory.OutOfMemoryError:
    print("caught cupy OutOfMemoryError")
c = cupy.ones(1 << 20, dtype=cupy.float32)
print("still running", float(c.sum()))
PY
"$BIN" inject oom --limit 1GiB -q -o "$OUT/shim-cupy-oom.json" -- python3 "$WORK/cupy_oom.py" > "$WORK/log" 2>&1
check "CuPy sees OutOfMemoryError under --limit 1GiB and keeps running" "$OUT/shim-cupy-oom.json" 0 $? '
    assert "caught cupy OutOfMemoryError" in out and "still running" in out, "program output"
    assert d["verdict"] == "survived"
    assert d["injected"] and d["injected"][0]["code"] == 2
' "$WORK/log"
else
    echo "SKIP  CuPy not importable"
fi

# 4. nth-launch failure reaches a driver-API program (linked against libcuda).
"$BIN" inject error --call cuLaunchKernel --code CUDA_ERROR_LAUNCH_FAILED --nth 50 --expect fail -q \
    -o "$OUT/shim-error-driver-launch.json" -- "$WORK/shim_launch" driver 100 > "$WORK/log" 2>&1
check "inject error --nth 50 on cuLaunchKernel reaches a driver-API program" "$OUT/shim-error-driver-launch.json" 0 $? '
    assert "launch 49 failed: 719" in out, "program output (a warm-up launch precedes the loop: the 50th call is launch 49)"
    assert d["injected"][0]["index"] == 50 and d["injected"][0]["call"].startswith("cuLaunchKernel")
    assert d["exit"]["code"] == 3
' "$WORK/log"

# 5. nth-launch failure through the runtime API (<<<>>>).
CALL=$(launch_call "$WORK/shim_launch" runtime 10); CALL=${CALL:-cuLaunchKernel}
"$BIN" inject error --call "$CALL" --code CUDA_ERROR_LAUNCH_FAILED --nth 50 --expect fail -q \
    -o "$OUT/shim-error-runtime-launch.json" -- "$WORK/shim_launch" runtime 100 > "$WORK/log" 2>&1
check "inject error --nth 50 on $CALL reaches a runtime-API program" "$OUT/shim-error-runtime-launch.json" 0 $? '
    assert "launch 49 failed: 719" in out, "program output (a warm-up launch precedes the loop: the 50th call is launch 49)"
    assert d["injected"][0]["index"] == 50
' "$WORK/log"

# 6. nth-launch failure reaches PyTorch, which raises and (here) handles it.
cat > "$WORK/torch_launch.py" <<'PY'
import sys, torch
x = torch.zeros(1, device="cuda")
torch.cuda.synchronize()
try:
    for i in range(300):
        x.add_(1)
    torch.cuda.synchronize()
    print("no error"); sys.exit(5)
except RuntimeError as e:
    print("caught RuntimeError:", str(e).splitlines()[0])
PY
CALL=$(launch_call python3 "$WORK/torch_launch.py"); CALL=${CALL:-cuLaunchKernel}
"$BIN" inject error --call "$CALL" --code CUDA_ERROR_LAUNCH_FAILED --nth 100 -q \
    -o "$OUT/shim-error-torch-launch.json" -- python3 "$WORK/torch_launch.py" > "$WORK/log" 2>&1
check "inject error --nth 100 on $CALL reaches PyTorch as RuntimeError" "$OUT/shim-error-torch-launch.json" 0 $? '
    assert "caught RuntimeError" in out, "program output"
    assert d["injected"][0]["index"] == 100
    assert d["verdict"] == "survived"
' "$WORK/log"

# 7. trace ctx -- on a program whose second thread uses the driver without a context.
"$BIN" trace ctx -q -o "$OUT/shim-trace-ctx-hop.json" -- "$WORK/ctx_hop" > "$WORK/log" 2>&1
check "trace ctx -- shows the unbound thread and the 201" "$OUT/shim-trace-ctx-hop.json" 0 $? '
    assert "unbound thread: 201, after cuCtxSetCurrent: 0" in out, "program output"
    tl = d["timeline"]
    retain = [e for e in tl if e["op"] == "cuDevicePrimaryCtxRetain"]
    assert retain and retain[0]["result"]["code"] == 0, "retain traced"
    bad = [e for e in tl if e["result"]["code"] == 201]
    assert bad and bad[0]["op"].startswith("cuMemAlloc") and bad[0]["ctx_before"] == "0x0", bad
    assert bad[0]["thread"] != retain[0]["thread"], "another OS thread"
    sets = [e for e in tl if e["op"] == "cuCtxSetCurrent" and e["thread"] == bad[0]["thread"]]
    assert sets and sets[0]["ctx_after"] == retain[0]["ctx"], "the worker then binds the primary context"
    assert "CTX_UNBOUND_CALL" in codes, codes
    assert len(d["threads"]) >= 2
' "$WORK/log"

# 8. trace ctx -- on PyTorch: the runtime's primary context, nothing broken.
"$BIN" trace ctx -q -o "$OUT/shim-trace-torch.json" -- python3 -c "import torch; print(torch.ones(4, device='cuda').sum().item())" > "$WORK/log" 2>&1
check "trace ctx -- on a small PyTorch job" "$OUT/shim-trace-torch.json" 0 $? '
    assert "4.0" in out
    assert d["verdict"] == "survived"
    ops = {e["op"] for e in d["timeline"]}
    print("      note: context ops seen:", sorted(o for o in ops if o))
    print("      note: hooks:", sorted({(h["call"], h["via"], h["match"]) for h in d["shim"]["hooks"]})[:40])
' "$WORK/log"

if [ $FAILED -ne 0 ]; then echo "shim.sh: FAILED"; exit 1; fi
echo "shim.sh: all passed"
