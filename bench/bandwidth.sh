#!/usr/bin/env bash
# Speed bar for `gpu-doctor bandwidth`: builds the CUDA C++ reference (bench/bandwidth_ref.cu,
# NVIDIA's method) and runs it and gpu-doctor alternately in one call (ref, ours, ref, ours),
# then prints per path: reference GB/s, ours, ratio (best of two runs each).
# Bar: every pinned, device-local and P2P path >= 0.97 × the reference; pageable paths are
# printed with their spread, no bar. Also times the default run on one GPU (bar: < 10 s).
# Usage: bench/bandwidth.sh BIN OUTDIR   (exits non-zero when a bar is missed)
set -euo pipefail
BIN=$(realpath "$1")
OUT=$2
mkdir -p "$OUT"
HERE=$(cd "$(dirname "$0")" && pwd)

echo "== building the reference (nvcc, sm_90)"
nvcc -O2 -std=c++17 -arch=sm_90 -o "$OUT/bandwidth_ref" "$HERE/bandwidth_ref.cu"

python3 - "$BIN" "$OUT" <<'PY'
import json, re, subprocess, sys, time

bin_, out = sys.argv[1], sys.argv[2]

def ref(tag):
    p = subprocess.run([f"{out}/bandwidth_ref"], capture_output=True, text=True)
    open(f"{out}/ref{tag}.txt", "w").write(p.stdout + p.stderr)
    if p.returncode != 0:
        sys.exit(f"reference failed ({p.returncode}):\n{p.stderr}")
    rows = {}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            kv = dict(x.split("=", 1) for x in line.split()[1:])
            rows[(kv["path"], kv["bus"].lower()[-12:], kv["peer"].lower()[-12:])] = float(kv["gbps"])
    return rows

def ours(tag, extra=()):
    path = f"{out}/bandwidth{tag}.json"
    t0 = time.monotonic()
    p = subprocess.run([bin_, "bandwidth", "--quiet", "-o", path, *extra], capture_output=True, text=True)
    wall = time.monotonic() - t0
    open(f"{out}/bandwidth{tag}.txt", "w").write(p.stdout + p.stderr)
    if p.returncode not in (0, 1):
        sys.exit(f"gpu-doctor bandwidth exited {p.returncode}:\n{p.stderr}")
    return json.load(open(path)), wall

r1 = ref(1)
o1, wall1 = ours(1)
r2 = ref(2)
o2, _ = ours(2)

def bus_index(report):
    return {d["pci_bus_id"].lower()[-12:]: d["index"] for d in report["devices"]}

multi = len(o1["devices"]) > 1
def metric(report, path, bus, peer):
    idx = bus_index(report)
    if bus not in idx:
        return None
    a = idx[bus]
    if peer != "-":
        if peer not in idx:
            return None
        name = f"{path}_{a}_{idx[peer]}_gbps"
        # Bidirectional pairs are named lower NVML index first; CUDA may order them otherwise.
        if path == "p2p_bidir" and name not in report["metrics"]:
            name = f"{path}_{idx[peer]}_{a}_gbps"
    else:
        name = f"{path}_gbps" + (f".gpu{a}" if multi else "")
    m = report["metrics"].get(name)
    return (name, m["value"]) if m else None

BAR = {"h2d_pinned", "d2h_pinned", "bidir_pinned", "d2d_ce", "d2d_sm", "p2p", "p2p_bidir"}
failed = []
print(f"\n{'metric':34} {'reference':>18} {'gpu-doctor':>18} {'ratio':>7}  bar")
for key in sorted(set(r1) | set(r2)):
    path, bus, peer = key
    refs = [r[key] for r in (r1, r2) if key in r]
    got = [metric(o, path, bus, peer) for o in (o1, o2)]
    if not any(got):
        print(f"{path:34} {'':>18} {'MISSING':>18}")
        if path in BAR:
            failed.append(f"{path} {bus}->{peer}: missing in gpu-doctor's report")
        continue
    name = next(g[0] for g in got if g)
    vals = [g[1] for g in got if g]
    if path in BAR:
        ratio = max(vals) / max(refs)
        ok = ratio >= 0.97
        if not ok:
            failed.append(f"{name}: {max(vals):.1f} vs reference {max(refs):.1f} (ratio {ratio:.3f})")
        print(f"{name:34} {max(refs):18.1f} {max(vals):18.1f} {ratio:7.3f}  {'ok' if ok else 'BELOW 0.97'}")
    else:
        spread = lambda v: f"{min(v):.1f}-{max(v):.1f}"
        print(f"{name:34} {spread(refs):>18} {spread(vals):>18} {'':>7}  (pageable: spread, no bar)")

wall = wall1
if multi:
    first = o1["devices"][0]["index"]
    _, wall = ours("-one-gpu", ["--device", str(first)])
print(f"\ndefault run on one GPU (process start to exit, CUDA start-up included): {wall:.2f} s (bar < 10 s)")
if wall >= 10:
    failed.append(f"default run took {wall:.2f} s")
for o in (o1, o2):
    bad = [f for f in o["findings"] if f["code"] in ("COPY_MISMATCH", "STEP_MISMATCH")]
    for f in bad:
        failed.append(f"{f['code']}: {f['message']}")
if failed:
    print("\nFAILED:\n  " + "\n  ".join(failed))
    sys.exit(1)
print("\nall bars met")
PY
