#!/usr/bin/env bash
# GPU checks for NVML injection and replay (issue 13). Usage: tests/gpu/nvml.sh BIN OUTDIR
# On the real driver: record a snapshot; replay it and compare info/topo with the live ones
# (apart from readings that move); info/topo under each kind of fault; a pynvml monitor under
# `inject nvml` sees each fault at its time; nvidia-smi is not reached (a documented limit);
# the pass-through cost per NVML call. Writes OUTDIR/nvml/*. Exits non-zero on any failure.
set -uo pipefail
bin="$(realpath "$1")"
out="$(realpath -m "$2")/nvml"
root="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$out"
fail=0
bad() { printf 'FAIL: %s\n' "$*"; fail=1; }
gpus=$(nvidia-smi -L | wc -l)
echo "GPUs: $gpus"

# --- snapshot, and replay against the live machine
start=$(date +%s%N)
"$bin" snapshot -o "$out/snapshot.nvml.json" || bad "snapshot failed"
echo "snapshot took $(( ($(date +%s%N) - start) / 1000000 )) ms, $(stat -c %s "$out/snapshot.nvml.json") bytes"
for cmd in info topo; do
  "$bin" $cmd --json -q >"$out/live-$cmd.json"; echo "live $cmd: exit $?"
  "$bin" --replay "$out/snapshot.nvml.json" $cmd --json -q >"$out/replay-$cmd.json"; echo "replayed $cmd: exit $?"
done
python3 - "$out" <<'PY' || fail=1
import json, sys
out = sys.argv[1]
MOVING = {"temperature_c", "power_draw_w", "sm_clock_mhz", "memory_clock_mhz", "memory_used_bytes",
          "memory_free_bytes", "pstate", "clock_event_reasons", "clock_event_reasons_mask", "processes",
          "ecc_volatile_corrected", "replay_counter"}
def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in MOVING}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v
ok = True
for cmd in ("info", "topo"):
    live = json.load(open(f"{out}/live-{cmd}.json"))
    rep = json.load(open(f"{out}/replay-{cmd}.json"))
    for part in ("devices", "data"):
        a, b = strip(live[part]), strip(rep[part])
        if a != b:
            ok = False
            print(f"FAIL: {cmd} {part} differ between live and replay")
            print("  live  :", json.dumps(a)[:600])
            print("  replay:", json.dumps(b)[:600])
    lc = sorted(f["code"] for f in live["findings"])
    rc = sorted(f["code"] for f in rep["findings"] if f["code"] not in ("REPLAY_QUERY_MISSING",))
    print(f"{cmd}: live findings {lc}, replayed {rc}, missing queries {rep.get('nvml', {}).get('missing_queries')}")
    if [c for c in lc if c not in ("PCIE_REPLAYS",)] != [c for c in rc if c not in ("PCIE_REPLAYS",)]:
        ok = False; print(f"FAIL: {cmd} findings differ")
sys.exit(0 if ok else 1)
PY

# --- faults on the real driver: gpu-doctor's own commands
check() { # name expected-codes... -- args
  local name=$1; shift; local want=(); while [ "$1" != "--" ]; do want+=("$1"); shift; done; shift
  "$bin" "$@" --json -q >"$out/$name.json" 2>"$out/$name.stderr"; local rc=$?
  python3 - "$out/$name.json" "$rc" "${want[@]}" <<'PY' || fail=1
import json, sys
r = json.load(open(sys.argv[1])); rc = int(sys.argv[2]); want = sys.argv[3:]
got = [(f["code"], f.get("device")) for f in r["findings"]]
missing = [w for w in want if not any(c == w.split("@")[0] and (("@" not in w) or str(d) == w.split("@")[1]) for c, d in got)]
print(f"{sys.argv[1].rsplit('/',1)[1]}: exit {rc}, findings {got}, delivered {r.get('nvml', {}).get('delivered')}")
if missing:
    print("FAIL: missing", missing); sys.exit(1)
PY
}
check topo-faults PCIE_WIDTH_DEGRADED@0 NVLINK_INACTIVE@0 FAULT_INJECTED -- --fault pcie-width=8@gpu0 --fault nvlink-down=2@gpu0 topo
check info-faults ROW_REMAP_PENDING@0 ECC_UNCORRECTABLE@0 THERMAL_THROTTLE@0 RECOVERY_ACTION@0 -- \
  --fault row-remap=pending@gpu0 --fault ecc-uncorrectable=3@gpu0 --fault throttle=thermal@gpu0 --fault recovery-action=gpu-reset@gpu0 info
if [ "$gpus" -ge 2 ]; then
  check info-lost GPU_LOST@1 -- --fault gpu-lost@gpu1 info
  check topo-lost GPU_LOST@1 -- --fault gpu-lost@gpu1 topo
fi

# --- a pynvml monitor under inject nvml (real driver) and under replay
mon="$root/tests/nvml/pynvml_monitor.py"
"$bin" -q inject nvml --fault pcie-width=8@gpu0 --fault xid=79@gpu0+1s -o "$out/inject-nvml.json" -- python3 "$mon" 2.5 >"$out/inject-nvml.monitor.jsonl"
echo "inject nvml: exit $?"
"$bin" -q replay "$out/snapshot.nvml.json" --fault gpu-lost@gpu0+800ms -o "$out/replay.json" -- python3 "$mon" 1.6 >"$out/replay.monitor.jsonl"
echo "replay: exit $?"
python3 - "$out" <<'PY' || fail=1
import json, sys
out = sys.argv[1]; ok = True
def fail(m):
    global ok; ok = False; print("FAIL:", m)
r = json.load(open(f"{out}/inject-nvml.json"))
inj = [f for f in r["findings"] if f["code"] == "FAULT_INJECTED"]
print("inject nvml findings:", [(f["code"], f["message"][:100]) for f in r["findings"]])
if len(inj) != 2: fail(f"inject nvml: {len(inj)} faults reached the monitor, want 2")
lines = [json.loads(l) for l in open(f"{out}/inject-nvml.monitor.jsonl") if l.startswith("{")]
widths = {l.get("width") for l in lines if l.get("gpu") == 0 and "width" in l}
xids = [l for l in lines if "xid" in l]
print("monitor saw widths", widths, "xids", [(x["xid"], round(x["t"], 2)) for x in xids])
if widths != {8}: fail(f"the monitor read widths {widths} on GPU 0, want {{8}}")
# The delay counts from the library's load in the monitor, a little before its own clock starts.
if not xids or xids[0]["xid"] != 79 or not (0.7 <= xids[0]["t"] <= 2.0):
    fail(f"XID 79 not seen at ~1 s: {xids}")
r = json.load(open(f"{out}/replay.json"))
print("replay findings:", [(f["code"], f["message"][:100]) for f in r["findings"]])
lost = [l for l in (json.loads(l) for l in open(f"{out}/replay.monitor.jsonl") if l.startswith("{")) if "lookup" in l]
if not lost or lost[0]["t"] < 0.7: fail(f"gpu-lost not seen after 800 ms: {lost[:2]}")
sys.exit(0 if ok else 1)
PY

# --- nvidia-smi is not reached (documented limit), and the pass-through cost
lib="$(dirname "$bin")/libgpu_doctor_nvml.so"
if [ -f "$lib" ]; then
  echo "nvidia-smi under the interposer with pcie-width=8@gpu0 (does the rewrite reach it?):"
  LD_PRELOAD="$lib" GPU_DOCTOR_NVML_FAULTS='pcie-width=8@gpu0' nvidia-smi --query-gpu=index,pcie.link.width.current --format=csv,noheader | tee "$out/nvidia-smi.txt"
  timeout 120 bash "$root/bench/nvml_overhead.sh" "$lib" "${NVML_BENCH_CALLS:-200000}" 3 | tee "$out/overhead.txt"
else
  echo "no $lib: overhead not measured"
fi
[ "$fail" = 0 ] && echo "nvml: all checks passed"
exit $fail
