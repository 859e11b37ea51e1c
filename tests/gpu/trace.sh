#!/usr/bin/env bash
# GPU checks for `gpu-doctor trace ctx` (run by the lead on the device machine).
#
#   tests/gpu/trace.sh BIN OUTDIR
#
# Runs every sub-scenario 3 times on GPU 0 with --json and --chrome-trace and checks, each run:
# the report passes; thread-hop's unbound tasks off the creator thread got
# CUDA_ERROR_INVALID_CONTEXT (201) from cuMemsetD32_v2 and cuMemAlloc_v2 and only those; the bound
# and pinned variants are clean; the device mix-up was detected by cuPointerGetAttribute; the
# Chrome trace parses and matches the timeline. Also: a non-default pool (3 threads, 7 tasks),
# re-export from the saved report (--from) gives the same trace, and with 2+ GPUs (nvidia-smi -L)
# the device mix-up across two GPUs. Writes OUTDIR/trace-ctx.json (fixture candidate),
# OUTDIR/trace-ctx.trace.json, the other runs, and exits non-zero on any failure.
set -u
BIN=${1:?usage: tests/gpu/trace.sh BIN OUTDIR}
OUT=${2:?usage: tests/gpu/trace.sh BIN OUTDIR}
mkdir -p "$OUT"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

check() { # check REPORT TRACE_OR_EMPTY MODE
  python3 - "$@" <<'PY'
import json, sys
rp, tp, mode = sys.argv[1], sys.argv[2], sys.argv[3]
r = json.load(open(rp))
errs = []
def err(m): errs.append(m)
d = r.get("data") or {}
tl = d.get("timeline") or []
print(f"  {rp}: status={r['status']} calls={len(tl)} threads={len(d.get('threads') or [])} driver=CUDA {d.get('cuda_driver')}")
for f in r.get("findings", []):
    print(f"    {f['severity']:5} {f['code']}: {f['message'][:240]}")
if r["status"] != "pass":
    err(f"status {r['status']}, expected pass")
bad = [s for s in r.get("steps", []) if not s["ok"]]
for s in bad:
    err(f"step {s['name']!r}: {s['call']} answered {s['observed']['name']}, expected {[c['name'] for c in s['expected']]}")
bad = [e for e in tl if not e["ok"]]
for e in bad[:10]:
    err(f"timeline #{e['seq']} {e['op']} ({e['what']}) answered {e['result']['name']}, expected {[c['name'] for c in e['expected']]}")
subs = d.get("subs") or []

if "thread-hop" in subs:
    h = d.get("thread_hop")
    if not h:
        err("no data.thread_hop")
    else:
        n, tasks = h["threads"], h["tasks"]
        creator = h["creator_tid"]
        for v in ("unbound", "bound", "pinned"):
            evs = [e for e in tl if e["sub"] == "thread-hop" and e.get("variant") == v and e.get("task") is not None]
            seen_tasks = sorted({e["task"] for e in evs})
            if seen_tasks != list(range(tasks)):
                err(f"{v}: tasks on the timeline {seen_tasks}, expected 0..{tasks-1}")
            for k in range(tasks):
                te = [e for e in evs if e["task"] == k]
                tids = {e["thread"] for e in te}
                if len(tids) != 1:
                    err(f"{v} task {k} ran on {len(tids)} threads")
                off_creator = v == "unbound" and k % n != 0
                work = [e for e in te if e["op"] in ("cuMemsetD32_v2", "cuMemAlloc_v2")]
                if len(work) != 2:
                    err(f"{v} task {k}: {len(work)} work calls, expected 2")
                for e in work:
                    want = 201 if off_creator else 0
                    if e["result"]["code"] != want:
                        err(f"{v} task {k} {e['op']} on tid {e['thread']} answered {e['result']['name']}, expected {want}")
                    if off_creator and e["ctx_before"] is not None:
                        err(f"{v} task {k}: a context was current ({e['ctx_before']['id']}) on a non-creator thread")
                if v == "pinned" and tids and tids != {creator}:
                    err(f"pinned task {k} ran off the creator thread")
            run = next((x for x in h["runs"] if x["variant"] == v), None)
            want_unwritten = [k for k in range(tasks) if k % n != 0] if v == "unbound" else []
            if run is None or run["unwritten"] != want_unwritten:
                err(f"{v}: unwritten slots {run and run['unwritten']}, expected {want_unwritten}")
        n201 = sum(1 for e in tl if e.get("variant") == "unbound" and e["result"]["code"] == 201)
        print(f"    thread-hop: unbound 201s = {n201} (expected {2 * sum(1 for k in range(tasks) if k % n)})")

if "device-mixup" in subs:
    m = d.get("device_mixup")
    if not m:
        err("no data.device_mixup")
    else:
        if m["mode"] != mode:
            err(f"device-mixup mode {m['mode']}, expected {mode}")
        wrong, right = m["cases"]
        print(f"    device-mixup ({m['mode']}): meant {wrong['intended_ctx']}/dev {wrong['intended_device']}, landed {wrong['landed_ctx']}/dev {wrong['landed_device']}; fixed landed {right['landed_ctx']}/dev {right['landed_device']}")
        if wrong["landed_ctx"] in (None, wrong["intended_ctx"]):
            err("the deliberate mix-up was not detected")
        if wrong["landed_ctx"] != wrong["current_ctx"]:
            err("memory did not land in the current context")
        if mode == "two-gpus" and wrong["landed_device"] == wrong["intended_device"]:
            err("two GPUs, but the memory landed on the intended device")
        if (right["landed_ctx"], right["landed_device"]) != (right["intended_ctx"], right["intended_device"]):
            err("the fixed case did not land where meant")
        if not any(f["code"] == "DEVICE_MIXUP" for f in r["findings"]):
            err("no DEVICE_MIXUP finding")

if "push-pop" in subs:
    pops = [e for e in tl if e["sub"] == "push-pop" and e["op"] == "cuCtxPopCurrent_v2" and e.get("step")]
    print("    push-pop: " + "; ".join(f"{e['what']} -> {e['result']['name']}" for e in pops))
    if not any(f["code"] == "CTX_STACK_UNBALANCED" for f in r["findings"]):
        err("no CTX_STACK_UNBALANCED finding")

if "primary-lifetime" in subs:
    p = d.get("primary") or {}
    nm = lambda c: c and c["name"]
    print(f"    primary: SetFlags while active -> {nm(p.get('set_flags_while_active'))}, state after {p.get('state_after_set_flags')}, ctx flags {p.get('ctx_flags_after_set')}; "
          f"use after release to zero -> {nm(p.get('use_after_release'))}; over-release -> {nm(p.get('over_release'))}; fixed -> {nm(p.get('fixed_use'))}")
    if p.get("same_handle") is not True:
        err("two retains did not give the same handle")
    if (p.get("state_after_release_to_zero") or {}).get("active") is not False:
        err("primary context still active after the release to zero")
    if (p.get("fixed_use") or {}).get("code") != 0:
        err("one retain per process: the work did not succeed")

summary = d.get("summary") or []
if {s["tid"] for s in summary} != {e["thread"] for e in tl}:
    err("per-thread summary does not cover the timeline's threads")
for m in d.get("memory") or []:
    print(f"    memory GPU {m['nvml']}: before {m['before_bytes']} after {m['after_bytes']} others {m['other_pids']}")

if tp:
    t = json.load(open(tp))
    evs = t["traceEvents"]
    named = {e["tid"] for e in evs if e["ph"] == "M" and e["name"] == "thread_name"}
    used = set()
    calls = instants = 0
    for e in evs:
        ph = e["ph"]
        if ph not in ("M", "X", "i", "s", "f"):
            err(f"trace: phase {ph}")
        if ph == "M":
            continue
        if not isinstance(e["ts"], (int, float)) or e["ts"] < 0:
            err(f"trace: bad ts {e['ts']}")
        used.add(e["tid"])
        if ph == "X":
            if e["dur"] < 0:
                err("trace: X with negative dur")
            if e.get("cat") != "task":
                calls += 1
        if ph == "i":
            instants += 1
            if e.get("s") != "t":
                err("trace: instant not thread-scoped")
    if used - named:
        err(f"trace: tids without thread_name: {used - named}")
    if used != {e["thread"] for e in tl}:
        err("trace: tids differ from the timeline's threads")
    if calls != len(tl):
        err(f"trace: {calls} call slices for {len(tl)} timeline calls")
    if instants != sum(1 for e in tl if e["result"]["code"] != 0):
        err("trace: instants do not match the failed calls")
    last = max(e["t_us"] + e["dur_us"] for e in tl)
    if last > r["duration_ms"] * 1e3 + 1e6:
        err("trace: timestamps are not µs since the scenario started")
    print(f"    trace: {len(evs)} events, {calls} calls, {instants} failures, {len(named)} threads")

for e in errs:
    print("    ERROR:", e)
sys.exit(1 if errs else 0)
PY
}

echo "== trace ctx, all sub-scenarios on GPU 0, 3 runs (the thread-hop failure must reproduce every run)"
for i in 1 2 3; do
  rep="$OUT/trace-ctx-run$i.json" tr="$OUT/trace-ctx-run$i.trace.json"
  "$BIN" trace ctx --device 0 --quiet --json -o "$rep" --chrome-trace "$tr" >/dev/null 2>"$OUT/trace-ctx-run$i.stderr"
  rc=$?
  [ $rc -eq 0 ] || { fail "run $i exited $rc"; cat "$OUT/trace-ctx-run$i.stderr"; }
  [ -s "$rep" ] && check "$rep" "$tr" two-contexts || fail "run $i checks"
done
cp "$OUT/trace-ctx-run1.json" "$OUT/trace-ctx.json" 2>/dev/null
cp "$OUT/trace-ctx-run1.trace.json" "$OUT/trace-ctx.trace.json" 2>/dev/null

echo "== thread-hop with 3 threads and 7 tasks (positional sub-scenario)"
"$BIN" trace ctx thread-hop --threads 3 --tasks 7 --device 0 --quiet --json -o "$OUT/trace-ctx-hop-3x7.json" \
  --chrome-trace "$OUT/trace-ctx-hop-3x7.trace.json" >/dev/null || fail "thread-hop 3x7 exited $?"
check "$OUT/trace-ctx-hop-3x7.json" "$OUT/trace-ctx-hop-3x7.trace.json" two-contexts || fail "thread-hop 3x7 checks"

echo "== re-export from the saved report (--from): same trace, same verdict"
"$BIN" trace ctx --from "$OUT/trace-ctx.json" --chrome-trace "$OUT/trace-ctx-from.trace.json" --json >"$OUT/trace-ctx-from.json" \
  || fail "--from exited $?"
python3 - "$OUT/trace-ctx.trace.json" "$OUT/trace-ctx-from.trace.json" "$OUT/trace-ctx.json" "$OUT/trace-ctx-from.json" <<'PY' || fail "--from differs"
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
ra, rb = json.load(open(sys.argv[3])), json.load(open(sys.argv[4]))
ok = a == b and ra["status"] == rb["status"] and sorted(f["code"] for f in ra["findings"]) == sorted(f["code"] for f in rb["findings"])
print("  --from: trace identical and same findings" if ok else "  --from: DIFFERENT")
sys.exit(0 if ok else 1)
PY

ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
if [ "${ngpu:-0}" -ge 2 ]; then
  echo "== device-mixup across two GPUs ($ngpu GPUs)"
  "$BIN" trace ctx device-mixup --device 0,1 --quiet --json -o "$OUT/trace-ctx-2gpu.json" \
    --chrome-trace "$OUT/trace-ctx-2gpu.trace.json" >/dev/null || fail "2-GPU device-mixup exited $?"
  check "$OUT/trace-ctx-2gpu.json" "$OUT/trace-ctx-2gpu.trace.json" two-gpus || fail "2-GPU device-mixup checks"
else
  echo "== device-mixup across two GPUs: skipped (nvidia-smi -L shows ${ngpu:-0} GPU)"
fi

if [ $failures -eq 0 ]; then
  echo "trace.sh: all checks passed"
else
  echo "trace.sh: $failures failure(s)"
fi
[ $failures -eq 0 ]
