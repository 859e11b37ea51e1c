#!/usr/bin/env bash
# GPU checks for `gpu-doctor bandwidth` and `topo --bandwidth` (run on the device machine).
# Usage: tests/gpu/bandwidth.sh BIN OUTDIR
# Writes OUTDIR/bandwidth.json, OUTDIR/topo-bandwidth.json, OUTDIR/bandwidth-sanitizer.txt;
# exits non-zero on any failure.
set -uo pipefail
BIN=$(realpath "$1")
OUT=$2
mkdir -p "$OUT"
FAIL=0
fail() { echo "FAIL: $*"; FAIL=1; }

echo "== bandwidth (defaults)"
start=$(date +%s.%N)
"$BIN" bandwidth --quiet --json -o "$OUT/bandwidth.json" > "$OUT/bandwidth.stdout.json" 2> "$OUT/bandwidth.stderr"
rc=$?
end=$(date +%s.%N)
echo "exit $rc, wall $(python3 -c "print(f'{$end-$start:.2f}')") s"
[ "$rc" -eq 0 ] || { fail "bandwidth exited $rc"; cat "$OUT/bandwidth.stderr"; }

python3 - "$OUT/bandwidth.json" <<'PY' || FAIL=1
import json, sys
r = json.load(open(sys.argv[1]))
d = r["data"]
errors = []
def need(cond, msg):
    if not cond:
        errors.append(msg)
need(r["scenario"] == "bandwidth", "scenario name")
need(r["status"] in ("pass", "warn"), f"status {r['status']}")
for f in r["findings"]:
    print(f"  finding {f['severity']} {f['code']}: {f['message']}")
    need(f["code"] not in ("STEP_MISMATCH", "COPY_MISMATCH", "MEMORY_NOT_RETURNED", "BANDWIDTH_LOW"), f"finding {f['code']}")
need(all(s["ok"] for s in r["steps"]), "a failed step")
multi = len(r["devices"]) > 1
paths = ["h2d_pinned", "d2h_pinned", "bidir_pinned", "h2d_pageable", "d2h_pageable", "d2d_ce", "d2d_sm"]
for dev in r["devices"]:
    i = dev["index"]
    need(dev.get("cuda_ordinal") is not None, f"GPU{i}: cuda_ordinal")
    for p in paths:
        name = f"{p}_gbps" + (f".gpu{i}" if multi else "")
        m = r["metrics"].get(name)
        need(m is not None and m["value"] > 0 and m["better"] == "higher" and m["unit"] == "GB/s", f"metric {name}: {m}")
samples = d["facts"]["samples"]
need(len(samples) >= 7 * len(r["devices"]), f"{len(samples)} samples")
for s in samples:
    need(all(x > 0 for x in s["seconds"]) and len(s["seconds"]) == 3, f"{s['path']} GPU{s['device']}: seconds {s['seconds']}")
    if s["path"] != "p2p_latency":
        need(s.get("verified") is True, f"{s['path']} GPU{s['device']}: verified {s.get('verified')}")
    need("spin kernel may have timed out" not in (s.get("note") or ""), f"{s['path']}: spin kernel did not hold the batch")
for res in d["results"]:
    e = res.get("efficiency")
    line = f"  {res['metric']:32} {res['median']:9.1f} {res['unit']:5} [{res['min']:.1f}–{res['max']:.1f}]"
    if e is not None:
        line += f"  {e:.2f} of {res['theoretical_gbps']:.1f} ({res['theoretical_basis']})"
    print(line)
    if res["path"] in ("h2d_pinned", "d2h_pinned"):
        need(e is not None and 0.5 <= e <= 1.02, f"{res['metric']}: efficiency {e} outside 0.5–1.02 of the PCIe rate")
    if res["path"] in ("d2d_ce", "d2d_sm"):
        need(e is not None and 0.3 <= e <= 1.02, f"{res['metric']}: read+write efficiency {e} outside 0.3–1.02 of the memory rate")
        need(abs(res["read_write_gbps"] - 2 * res["median"]) < 1e-6, "read_write_gbps is 2x")
for dv in d["devices"]:
    print(f"  GPU{dv['index']}: placement {dv['placement']}, PCIe under load Gen{dv.get('pcie_gen_under_load')} x{dv.get('pcie_width_under_load')}, free before/after {dv.get('memory_free_before')}/{dv.get('memory_free_after')}")
    need(dv.get("error") is None, f"GPU{dv['index']}: {dv.get('error')}")
    need(dv["pcie_gen_under_load"] is not None, "PCIe gen under load read")
if multi:
    need(d.get("peers") is not None, "peer phase ran")
    need(any(k.startswith("p2p_staged_") for k in r["metrics"]), "staged peer metrics")
if errors:
    print("FAIL:\n  " + "\n  ".join(errors))
    sys.exit(1)
print("bandwidth report: ok")
PY

echo "== re-analysis of the saved report (no GPU calls) and table rendering"
"$BIN" bandwidth --from "$OUT/bandwidth.json" > "$OUT/bandwidth-from.txt"; rc=$?
[ "$rc" -le 1 ] || fail "bandwidth --from exited $rc"
grep -q "Bandwidth (" "$OUT/bandwidth-from.txt" || fail "bandwidth table missing"
"$BIN" bandwidth --from "$OUT/bandwidth.json" --min-efficiency 0.99 --json > "$OUT/bandwidth-strict.json"; rc=$?
[ "$rc" -eq 1 ] || fail "--min-efficiency 0.99 should fail the saved report (exit $rc)"
grep -q BANDWIDTH_LOW "$OUT/bandwidth-strict.json" || fail "strict threshold gives no BANDWIDTH_LOW"

echo "== topo --bandwidth"
"$BIN" topo --bandwidth --quiet --json -o "$OUT/topo-bandwidth.json" > /dev/null; rc=$?
[ "$rc" -eq 0 ] || fail "topo --bandwidth exited $rc"
python3 - "$OUT/topo-bandwidth.json" <<'PY' || FAIL=1
import json, sys
r = json.load(open(sys.argv[1]))
ok = r["scenario"] == "topo" and "facts" in r["data"] and "bandwidth" in r["data"] \
    and any(k.startswith("h2d_pinned_gbps") for k in r["metrics"])
print("topo --bandwidth:", "ok" if ok else "FAIL", sorted(r["metrics"])[:4])
sys.exit(0 if ok else 1)
PY
"$BIN" topo --quiet --json > "$OUT/topo-plain.json" || fail "plain topo"
python3 -c "import json,sys; r=json.load(open('$OUT/topo-plain.json')); sys.exit(1 if r['metrics'] or 'bandwidth' in r['data'] or r['steps'] else 0)" \
    || fail "plain topo measured bandwidth"

echo "== --p2p-budget (a budget below one pair: rings; two GPUs still get both pairs)"
"$BIN" bandwidth --size 64MiB --samples 1 --copies 2 --warmup 1 --slow-copies 1 --no-pageable \
    --p2p-budget 1ms --quiet -o "$OUT/bandwidth-p2p-budget.json" > "$OUT/bandwidth-p2p-budget.txt" 2>&1
rc=$?
[ "$rc" -le 1 ] || fail "bandwidth --p2p-budget 1ms exited $rc"
python3 - "$OUT/bandwidth-p2p-budget.json" <<'PY' || fail "--p2p-budget"
import json, sys
r = json.load(open(sys.argv[1]))
n = len(r["devices"])
peers = r["data"].get("peers")
if n < 2:
    print("one GPU: no peer paths"); sys.exit(0)
ordered = {(s["device"], s.get("peer")) for s in r["data"]["facts"]["samples"] if s["path"] == "p2p"}
skipped = [tuple(p) for p in (peers.get("skipped") or {}).get("pairs", [])]
print(f"{n} GPUs: {len(ordered)} ordered pairs measured, {len(skipped)} skipped")
if n == 2:
    assert len(ordered) == 2 and not skipped, "two GPUs must get both pairs"
else:
    assert len(ordered) == n and len(skipped) == n * (n - 1) - n, "one ring of n pairs"
    assert {a for a, _ in ordered} == set(d["index"] for d in r["devices"]), "every GPU a source"
    assert peers["skipped"]["reason"], "a reason"
PY

echo "== compute-sanitizer --leak-check full (64 MiB, short)"
compute-sanitizer --leak-check full --error-exitcode 99 \
    "$BIN" bandwidth --size 64MiB --samples 1 --copies 2 --warmup 1 --slow-copies 1 --quiet \
    -o "$OUT/bandwidth-sanitizer.json" > "$OUT/bandwidth-sanitizer.txt" 2>&1
rc=$?
grep -E "^=========" "$OUT/bandwidth-sanitizer.txt" | tail -5
if [ "$rc" -eq 99 ] || grep -qE "LEAK SUMMARY: [1-9]" "$OUT/bandwidth-sanitizer.txt"; then
    fail "compute-sanitizer reports errors or leaks (exit $rc), see $OUT/bandwidth-sanitizer.txt"
elif [ "$rc" -gt 1 ]; then
    fail "bandwidth under compute-sanitizer exited $rc"
fi
grep -q "ERROR SUMMARY: 0 errors" "$OUT/bandwidth-sanitizer.txt" || fail "no clean ERROR SUMMARY"

if [ "$FAIL" -ne 0 ]; then echo "bandwidth GPU checks: FAILED"; exit 1; fi
echo "bandwidth GPU checks: ok"
