#!/usr/bin/env bash
# Times `gpu-doctor health` (the default quick check) on 1, 2, … N GPUs of this machine
# (--device 0 / 0,1 / …), median of 7 runs each, against `nvidia-smi -q` on the same machine
# (what health-check scripts commonly run) in the same run. The quick check gives every GPU its
# work on a thread of its own: the cost must not grow with the GPU count. Prints, per count, the
# wall time, the quick check's wall time and the sum of its per-GPU times (what one GPU after
# another would cost), and the ratio of N GPUs to 1. Target: under 1 s on 8 GPUs.
# Usage: bench/health.sh [BIN]
set -eu
BIN=${1:-target/release/gpu-doctor}
python3 - "$BIN" <<'PY'
import json, statistics, subprocess, sys, time
bin_ = sys.argv[1]
n = len([l for l in subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=True).stdout.splitlines() if l.startswith("GPU ")])

def runs(cmd, k=7):
    subprocess.run(cmd, capture_output=True)  # warm: page cache, the driver's JIT cache
    t, outs = [], []
    for _ in range(k):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        t.append((time.perf_counter() - t0) * 1e3)
        outs.append(p)
    return statistics.median(t), min(t), max(t), outs

smi = runs(["nvidia-smi", "-q"])
print(f"nvidia-smi -q: median {smi[0]:.0f} ms (min {smi[1]:.0f}, max {smi[2]:.0f})")
rows = []
for k in range(1, n + 1):
    devs = ",".join(str(i) for i in range(k))
    med, lo, hi, outs = runs([bin_, "health", "-q", "--json", "--device", devs])
    r = json.loads(outs[-1].stdout)
    c = r["data"]["check"]
    if c.get("unavailable"):
        sys.exit(f"the quick check did not run: {c['unavailable']}")
    wall = c["wall_ms"]
    seq = sum(g["elapsed_ms"] for g in c["gpus"])
    rows.append((k, med, wall, seq))
    print(f"health, {k} GPU(s): median {med:.0f} ms (min {lo:.0f}, max {hi:.0f}); quick check {wall:.0f} ms wall, "
          f"{seq:.0f} ms summed over GPUs; status {r['status']}; {med / smi[0]:.2f} x nvidia-smi -q")
one, last = rows[0], rows[-1]
print(f"cost of {last[0]} GPU(s) / 1 GPU: {last[1] / one[1]:.2f} x wall time, {last[2] / one[2]:.2f} x quick check "
      f"(one after another it would be {last[3] / one[3]:.2f} x)")
ok = last[1] < 1000
print(f"target: under 1000 ms: {last[1]:.0f} ms on {last[0]} GPU(s) {'(ok)' if ok else '(TOO SLOW)'}")
sys.exit(0 if ok else 1)
PY
