#!/usr/bin/env bash
# GPU checks for `gpu-doctor inject …` (run on the device machine).
# Usage: tests/gpu/inject.sh BIN OUTDIR
#   BIN     the release binary (target/release/gpu-doctor)
#   OUTDIR  where each JSON report goes (inject-oom.json, inject-all.json, …)
# Exits non-zero when any check fails. Takes well under a minute on an idle H100.
set -u
BIN=$(realpath "${1:?usage: $0 BIN OUTDIR}")
OUT=${2:?usage: $0 BIN OUTDIR}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
FAILS=0

say() { printf '%s\n' "$*"; }
fail() { say "FAIL: $*"; FAILS=$((FAILS + 1)); }

# run NAME ARGS… : writes OUT/NAME.json, records exit code and wall time.
run() {
  local name=$1
  shift
  local t0 t1 rc
  t0=$(date +%s.%N)
  "$BIN" "$@" --json -q >"$OUT/$name.json" 2>"$OUT/$name.stderr"
  rc=$?
  t1=$(date +%s.%N)
  printf '%s %s\n' "$rc" "$(python3 -c "print(round($t1-$t0,3))")" >"$OUT/$name.meta"
  say "ran  $name: exit $rc in $(cut -d' ' -f2 "$OUT/$name.meta") s  ($*)"
  if [ "$rc" -ne 0 ]; then
    fail "$name exited $rc"
    tail -5 "$OUT/$name.stderr"
  fi
}

nvidia-smi --query-gpu=index,name,memory.used,memory.total --format=csv,noheader || true

run inject-oom inject oom
run inject-oom-async inject oom --allocator async
run inject-oom-fraction inject oom --fraction 0.5 --hold 1s
run inject-ctx-destroy inject ctx-destroy
run inject-stream-misuse inject stream-misuse
run inject-illegal-address inject illegal-address
run inject-all inject all

# --- compute-sanitizer on the missing-event race only -------------------------------------
# racecheck finds shared-memory hazards inside a kernel, synccheck barrier misuse, memcheck
# out-of-bounds accesses. Our race is between a kernel on S1 and a copy on S2 (no shared
# memory, no barrier, every access in bounds), so all three must report 0: they agree that
# each operation is correct on its own, and the stale reads come from the missing
# inter-stream dependency, which none of the tools checks (gpu-doctor's stale-read count does).
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "${SAN:-}" ]; then
  for tool in racecheck synccheck memcheck; do
    t0=$(date +%s.%N)
    "$SAN" --tool "$tool" --target-processes all --log-file "$OUT/sanitizer-$tool.%p.log" \
      "$BIN" inject stream-misuse --only missing-event --iterations 5 --timeout 180s --json -q \
      >"$OUT/sanitizer-$tool.json" 2>"$OUT/sanitizer-$tool.stderr"
    rc=$?
    t1=$(date +%s.%N)
    printf '%s %s\n' "$rc" "$(python3 -c "print(round($t1-$t0,3))")" >"$OUT/sanitizer-$tool.meta"
    say "ran  sanitizer-$tool: exit $rc  ($(cat "$OUT"/sanitizer-$tool.*.log 2>/dev/null | grep -h 'SUMMARY' | tr '\n' ' '))"
  done
else
  say "SKIP compute-sanitizer: not found"
fi

python3 - "$OUT" <<'PY' || FAILS=$((FAILS + 1))
import glob, json, os, re, sys

out = sys.argv[1]
bad = []

def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        bad.append(msg)

def load(name):
    p = os.path.join(out, name + ".json")
    try:
        with open(p) as f:
            return json.load(f)
    except Exception as e:
        check(False, f"{name}: cannot read report ({e})")
        return None

def codes(r):
    return [f["code"] for f in r.get("findings", [])]

def mismatches(r):
    return [f"{s['name']}: {s['observed']['name']}" for s in r.get("steps", []) if not s["ok"]]

def common(name, r):
    check(r["status"] == "pass", f"{name}: status {r['status']} (mismatches: {mismatches(r)}; findings: {codes(r)})")
    check("MEMORY_NOT_RETURNED" not in codes(r), f"{name}: memory back to baseline")
    m = r["data"]["facts"]["memory"]
    print(f"     memory: cuda free {m.get('cuda_free_before')} -> {m.get('cuda_free_after')}, "
          f"nvml used {m.get('nvml_used_before')} -> {m.get('nvml_used_after')}, "
          f"tolerance {m['tolerance_bytes']}, other processes {m.get('foreign_processes')}")
    w = m.get("watch") or {}
    check(w.get("samples", 0) >= 2 and not w.get("failed_samples") and not w.get("changes"),
          f"{name}: NVML watched the GPU during the run ({w.get('samples')} samples, "
          f"{w.get('failed_samples')} failed, used {w.get('used_min_bytes')}–{w.get('used_max_bytes')}, "
          f"own pids {w.get('own_pids')}, other processes' changes {w.get('changes')}, error {w.get('error')})")

def wall(name):
    with open(os.path.join(out, name + ".meta")) as f:
        return float(f.read().split()[1])

r = load("inject-oom")
if r:
    common("oom", r)
    f = r["data"]["facts"]
    check(f["reached_oom"] and f["stopped_by"] == "oom", f"oom: edge reached (stopped by {f['stopped_by']})")
    check((f.get("last_refused_bytes") or 1 << 62) <= f["granularity_bytes"], "oom: edge found within the granularity")
    proofs = [s for s in r["steps"] if s["name"].startswith("after OOM: ")]
    check(len(proofs) >= 5 and all(s["ok"] for s in proofs), f"oom: {len(proofs)} post-OOM proofs succeed (OOM not sticky)")
    check(f.get("proof_value_ok") is True, "oom: kernel after OOM wrote its value")
    check(r["metrics"]["ratio"]["value"] > 0.9, f"oom: ratio {r['metrics']['ratio']['value']:.4f}")
    check(len(r["steps"]) < 40, f"oom: {len(r['steps'])} steps (no per-allocation steps)")
    print(f"     allocatable {f['allocatable_bytes']} of free {f['free_before_bytes']} in {f['allocations']} allocations; "
          f"edge {f['time_to_edge_ms']:.1f} ms, free {f['free_ms']:.1f} ms; process wall {wall('inject-oom')} s")
    check(wall("inject-oom") < 1.5, f"oom: whole run {wall('inject-oom')} s (target < 1 s; see bench/oom.sh)")

r = load("inject-oom-async")
if r:
    common("oom async", r)
    f = r["data"]["facts"]
    check(f["allocator"] == "async" and f["reached_oom"], "oom async: edge reached")
    check(f["oom_surfaced_at"] in ("call", "sync"), f"oom async: OOM surfaced at {f['oom_surfaced_at']}")
    p = f["pool"] or {}
    check((p.get("reserved_after_trim_bytes") or 0) <= f["memory"]["tolerance_bytes"],
          f"oom async: trim returned the pool (reserved after free {p.get('reserved_after_free_bytes')}, after trim {p.get('reserved_after_trim_bytes')})")
    check("POOL_TRIM_NO_EFFECT" not in codes(r), "oom async: no POOL_TRIM_NO_EFFECT")

r = load("inject-oom-fraction")
if r:
    common("oom fraction", r)
    f = r["data"]["facts"]
    check(f["stopped_by"] == "fraction", f"oom fraction: stopped by {f['stopped_by']}")
    check(abs(f["allocatable_bytes"] - 0.5 * f["free_before_bytes"]) <= f["granularity_bytes"] + (64 << 20),
          f"oom fraction: allocated {f['allocatable_bytes']} ~ half of {f['free_before_bytes']}")
    check(f["held_ms"] >= 1000, f"oom fraction: held {f['held_ms']:.0f} ms")

r = load("inject-ctx-destroy")
if r:
    common("ctx-destroy", r)
    f = r["data"]["facts"]
    for v in f["variants"]:
        check(v["in_flight_at_destroy"], f"ctx-destroy {v['name']}: kernel in flight at destroy ({v['destroy_ms']:.1f} ms, owner current after: {v['owner_current_after']})")
    check(f["recovery_ok"], "ctx-destroy: fresh context works")
    p = f.get("primary") or {}
    check((p.get("release_after_reset") or {}).get("code") == 0, "ctx-destroy: retain count kept across the reset")
    for s in r["steps"]:
        if ": stale " in s["name"] or s["name"].startswith("primary: holder"):
            print(f"     {s['name']}: {s['observed']['name']} ({s['observed']['code']})")

r = load("inject-stream-misuse")
if r:
    common("stream-misuse", r)
    f = r["data"]["facts"]
    race = f["race"]
    check(race["stale_with_event"] == 0, f"stream-misuse: 0 stale reads with the event ({race['stale_with_event']}/{race['ran_with_event']})")
    check(race["stale_without_event"] > 0, f"stream-misuse: stale reads without the event ({race['stale_without_event']}/{race['ran_without_event']}): {race.get('example')}")
    check("STALE_READS_WITHOUT_EVENT" in codes(r), "stream-misuse: finding names the unsafe pattern and the fix")
    check(f["capture"]["status_after_sync"] == "invalidated", f"stream-misuse: capture invalidated by the sync ({f['capture']['status_after_sync']})")
    d = f["default_stream"]
    check(d["legacy_wait_ms"] >= d["kernel_delay_ms"] / 2 and d["per_thread_wait_ms"] < d["kernel_delay_ms"] / 2,
          f"stream-misuse: blocking stream waits {d['legacy_wait_ms']:.2f} ms on legacy, {d['per_thread_wait_ms']:.2f} ms on per-thread")
    for s in r["steps"]:
        if s["name"].replace("[own process] ", "").startswith(("destroyed-stream: ", "cross-context: ", "capture: ", "stale-launch: ")) and s["observed"]["code"] != 0:
            print(f"     {s['name']}: {s['observed']['name']} ({s['observed']['code']})")

r = load("inject-illegal-address")
if r:
    common("illegal-address", r)
    f = r["data"]["facts"]
    runs = {x["variant"]: x for x in f["runs"]}
    check(set(runs) == {"illegal-address", "trap", "recover"}, f"illegal-address: three processes ran ({list(runs)})")
    for v, want in (("illegal-address", 700), ("trap", 719)):
        vf = runs.get(v, {}).get("facts", {})
        check((vf.get("fault") or {}).get("code") == want, f"illegal-address {v}: fault {vf.get('fault')}")
        after = [c["code"] for c in vf.get("after_fault", [])]
        check(len(after) == 4 and all(c == want for c in after), f"illegal-address {v}: sticky after the fault {after}")
    check(runs.get("recover", {}).get("facts", {}).get("value_ok") is True, "illegal-address: fresh process recovered")
    print(f"     XID: {f['xid']}")

r = load("inject-all")
if r:
    check(r["status"] == "pass", f"inject all: status {r['status']} ({[(x['scenario'], x['status']) for x in r['reports']]})")
    check(len(r["reports"]) == 4, "inject all: four reports")
    check(wall("inject-all") < 30, f"inject all: {wall('inject-all')} s (< 30 s)")

for tool in ("racecheck", "synccheck", "memcheck"):
    logs = glob.glob(os.path.join(out, f"sanitizer-{tool}.*.log"))
    if not logs:
        continue
    text = "".join(open(p, errors="replace").read() for p in logs)
    summ = re.findall(r"(?:ERROR|RACECHECK|SYNCCHECK) SUMMARY: (\d+)", text)
    check(summ and all(int(x) == 0 for x in summ),
          f"sanitizer {tool}: {summ} (0 expected: the stale reads are an inter-stream ordering bug it does not model)")
    r = load(f"sanitizer-{tool}")
    if r:
        race = r["data"]["facts"].get("race") or {}
        print(f"     under {tool}: stale without event {race.get('stale_without_event')}/{race.get('ran_without_event')}, "
              f"with event {race.get('stale_with_event')}/{race.get('ran_with_event')} (instrumentation may serialise)")
        check(race.get("stale_with_event") == 0, f"sanitizer {tool}: 0 stale reads with the event")

print(f"\n{len(bad)} check(s) failed" if bad else "\nall inject checks passed")
sys.exit(1 if bad else 0)
PY

if [ "$FAILS" -ne 0 ]; then
  say "inject GPU tests: $FAILS failure(s); reports in $OUT"
  exit 1
fi
say "inject GPU tests: all passed; reports in $OUT"
