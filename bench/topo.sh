#!/usr/bin/env bash
# Times `gpu-doctor topo` against `nvidia-smi topo -m` on the same machine, median of 10 each,
# and prints the ratio (< 1 means gpu-doctor is quicker). Usage: bench/topo.sh [BIN]
set -eu
BIN=${1:-target/release/gpu-doctor}
python3 - "$BIN" <<'PY'
import statistics, subprocess, sys, time
def median_ms(cmd, n=10):
    subprocess.run(cmd, capture_output=True)  # warm the page cache
    t = []
    for _ in range(n):
        t0 = time.perf_counter(); subprocess.run(cmd, capture_output=True, check=True); t.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t), min(t), max(t)
ours = median_ms([sys.argv[1], "topo", "--json"])
ours_table = median_ms([sys.argv[1], "topo", "--no-color"])
smi = median_ms(["nvidia-smi", "topo", "-m"])
print(f"gpu-doctor topo --json : median {ours[0]:.1f} ms (min {ours[1]:.1f}, max {ours[2]:.1f})")
print(f"gpu-doctor topo (table): median {ours_table[0]:.1f} ms (min {ours_table[1]:.1f}, max {ours_table[2]:.1f})")
print(f"nvidia-smi topo -m     : median {smi[0]:.1f} ms (min {smi[1]:.1f}, max {smi[2]:.1f})")
print(f"ratio gpu-doctor/nvidia-smi: {ours[0]/smi[0]:.2f} (json), {ours_table[0]/smi[0]:.2f} (table)")
PY
