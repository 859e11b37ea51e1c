#!/usr/bin/env bash
# Speed of `gpu-doctor inject oom` against the loop a user would write in PyTorch, measured in
# the same call on the device machine (python3 there has torch).
# Usage: bench/oom.sh BIN [RUNS]
# Prints fill / free times of both, their ratio (target <= 1.3) and gpu-doctor's whole-process
# wall time including CUDA start-up (target < 1 s). Not a pass/fail test: it prints numbers
# and exits 0 unless a run fails.
set -eu
BIN=$(realpath "${1:?usage: $0 BIN [RUNS]}")
RUNS=${2:-3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

for i in $(seq 1 "$RUNS"); do
  t0=$(date +%s.%N)
  "$BIN" inject oom --json -q >"$TMP/doctor-$i.json"
  t1=$(date +%s.%N)
  python3 -c "print(round($t1-$t0,4))" >"$TMP/doctor-$i.wall"
done

python3 - "$TMP" "$RUNS" <<'PY'
import json, statistics, sys, time
tmp, runs = sys.argv[1], int(sys.argv[2])

import torch

def torch_loop():
    torch.empty(1, device="cuda")
    torch.cuda.synchronize()
    free_before, _ = torch.cuda.mem_get_info()
    GiB, MiB2 = 1 << 30, 2 << 20
    bufs = []
    t = time.perf_counter()
    for size in (GiB, MiB2):
        try:
            while True:
                bufs.append(torch.empty(size, dtype=torch.uint8, device="cuda"))
        except torch.OutOfMemoryError:
            pass
    fill = time.perf_counter() - t
    n = sum(b.numel() for b in bufs)
    t = time.perf_counter()
    del bufs
    torch.cuda.empty_cache()
    torch.cuda.synchronize()
    free = time.perf_counter() - t
    return fill * 1e3, free * 1e3, n, free_before

ref = [torch_loop() for _ in range(runs)]
doc = []
for i in range(1, runs + 1):
    r = json.load(open(f"{tmp}/doctor-{i}.json"))
    f = r["data"]["facts"]
    wall = float(open(f"{tmp}/doctor-{i}.wall").read())
    doc.append((f["time_to_edge_ms"], f["free_ms"], f["allocatable_bytes"], f["free_before_bytes"], wall, r["status"], f["allocations"]))

def med(xs):
    return statistics.median(xs)

print(f"{'run':>4} {'doctor fill ms':>15} {'free ms':>9} {'allocated GB':>13} {'allocs':>7} {'wall s':>7} {'status':>7} | {'torch fill ms':>14} {'free ms':>9} {'allocated GB':>13}")
for i in range(runs):
    d, t = doc[i], ref[i]
    print(f"{i+1:>4} {d[0]:>15.1f} {d[1]:>9.1f} {d[2]/1e9:>13.3f} {d[6]:>7} {d[4]:>7.3f} {d[5]:>7} | {t[0]:>14.1f} {t[1]:>9.1f} {t[2]/1e9:>13.3f}")
doctor_ms = med([d[0] + d[1] for d in doc])
torch_ms = med([t[0] + t[1] for t in ref])
print(f"\nmedian fill+free: gpu-doctor {doctor_ms:.1f} ms, PyTorch {torch_ms:.1f} ms, ratio {doctor_ms / torch_ms:.2f} (target <= 1.3)")
print(f"median gpu-doctor process wall time incl. CUDA start-up: {med([d[4] for d in doc]):.3f} s (target < 1 s)")
print(f"edge: gpu-doctor allocated {med([d[2] for d in doc])/1e9:.3f} GB of {med([d[3] for d in doc])/1e9:.3f} GB free; "
      f"PyTorch {med([t[2] for t in ref])/1e9:.3f} GB of {med([t[3] for t in ref])/1e9:.3f} GB")
PY
