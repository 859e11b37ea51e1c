#!/usr/bin/env bash
# GPU checks for `gpu-doctor watch` and `gpu-doctor exporter` (run on the device machine).
# Usage: tests/gpu/live.sh BIN OUTDIR
#   1. watch sees the real XID (31 or 43 on H100/H200) that `inject illegal-address` raises,
#      within 1 s of the fault, with its catalog action; its report (watch-xid.json) is the
#      fixture with a real XID (copy it to tests/fixtures/<machine>-watch-xid.json).
#   2. the exporter's values match `gpu-doctor info --json` read at the same time
#      (live-exporter.prom, live-info.json, live-exporter-vs-info.json).
#   3. the scrape benchmark: p50/p99 over 100 HTTP scrapes (LIVE_SCRAPES) next to the NVML reads alone
#      (exporter-scrape-bench.json, via bench/exporter_scrape.sh).
# Exits non-zero when a check fails. About a minute.
set -u
BIN=$(realpath "${1:?usage: $0 BIN OUTDIR}")
OUT=${2:?usage: $0 BIN OUTDIR}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
HERE=$(cd "$(dirname "$0")" && pwd)
FAILS=0
say() { printf '%s\n' "$*"; }
fail() { say "FAIL: $*"; FAILS=$((FAILS + 1)); }
now() { date +%s.%N; }

# --- 1. watch sees the XID of inject illegal-address ----------------------------------------
"$BIN" watch --interval 500ms --for 60s --json -o "$OUT/watch-xid.json" \
  >"$OUT/watch-xid.jsonl" 2>"$OUT/watch-xid.stderr" &
watch_pid=$!
# Ready once its first interval is out: the event sets are registered before it.
for _ in $(seq 100); do
  grep -q '"ev":"interval"' "$OUT/watch-xid.jsonl" 2>/dev/null && break
  sleep 0.1
done
t_before=$(now)
"$BIN" inject illegal-address --json -q >"$OUT/live-inject-illegal-address.json" 2>"$OUT/live-inject.stderr"
inject_rc=$?
t_after=$(now)
sleep 2 # late events
kill -INT "$watch_pid"
wait "$watch_pid"
watch_rc=$?
say "watch exit $watch_rc, inject illegal-address exit $inject_rc"
printf '%s %s\n' "$t_before" "$t_after" >"$OUT/live-inject.window"

python3 - "$OUT" <<'PY' || FAILS=$((FAILS + 1))
import json, os, sys
out = sys.argv[1]
bad = []
def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        bad.append(msg)

t_before, t_after = map(float, open(os.path.join(out, "live-inject.window")).read().split())
lines = [json.loads(l) for l in open(os.path.join(out, "watch-xid.jsonl")) if l.strip()]
report = json.load(open(os.path.join(out, "watch-xid.json")))
inject = json.load(open(os.path.join(out, "live-inject-illegal-address.json")))
check(lines[-1].get("schema_version") == report["schema_version"], "watch: the last JSON line is its report")
check(report["data"]["facts"]["ended_by"] == "interrupt" and not report.get("interrupted"),
      "watch: Ctrl-C ended it with a whole report")
watched = report["data"]["facts"]["event_watch"]
check(all(not w.get("error") for w in watched),
      f"watch: XID events watched on every GPU ({[(w['gpu'], w.get('registered'), w.get('error')) for w in watched]})")

gpu = inject["data"]["facts"]["device"]
seen_by_inject = inject["data"]["facts"]["xid"]["events"]
check(any(e.get("xid") in (31, 43) for e in seen_by_inject),
      f"inject: NVML delivered XID 31 or 43 to the inject itself ({seen_by_inject})")
events = [l for l in lines if l.get("ev") == "event" and l.get("kind") == "xid" and l.get("gpu") == gpu]
xids = sorted({e.get("xid") for e in events})
check(any(x in (31, 43) for x in xids), f"watch: saw XID 31 or 43 on GPU {gpu} (saw {xids})")
pids = {r["facts"]["pid"] for r in inject["data"]["facts"]["runs"] if r.get("facts")}
for e in events:
    t = e["unix_ms"] / 1e3
    check(t_before <= t <= t_after + 2, f"watch: XID {e['xid']} at {t - t_before:.3f} s into the inject run")
    # The inject's own NVML watch stamps the same XID relative to its start (a little after
    # t_before): the watch's lag behind it, an upper bound of its lag behind the fault.
    own = [s for s in seen_by_inject if s.get("xid") == e["xid"]]
    if own:
        lag = t - (t_before + own[0]["at_ms"] / 1e3)
        check(lag <= 1.0, f"watch: XID {e['xid']} shown {lag * 1e3:.0f} ms after the fault's own NVML event (limit 1 s)")
    check(e.get("action") in ("restart_app", "report"), f"watch: XID {e['xid']} action {e.get('action')}: {e.get('what_to_do')}")
    on_gpu = {p["pid"] for p in e.get("processes", [])}
    print(f"     XID {e['xid']}: processes on the GPU then {sorted(on_gpu)}; the variants' pids {sorted(pids)}"
          f" ({'the faulting one among them' if on_gpu & pids else 'the faulting one already gone'})")
codes = {f["code"]: f for f in report["findings"]}
check("XID_APP_ERROR" in codes, f"watch report: XID_APP_ERROR finding ({list(codes)})")
if "XID_APP_ERROR" in codes:
    print("     " + codes["XID_APP_ERROR"]["message"])
sys.exit(1 if bad else 0)
PY

# --- 2. the exporter's values match `info` read at the same time -----------------------------
"$BIN" exporter --listen 127.0.0.1:0 2>"$OUT/live-exporter.stderr" &
exp_pid=$!
addr=
for _ in $(seq 100); do
  addr=$(sed -n 's#.*serving http://\([0-9.:]*\)/metrics.*#\1#p' "$OUT/live-exporter.stderr")
  [ -n "$addr" ] && break
  sleep 0.1
done
if [ -z "$addr" ]; then
  fail "exporter did not start: $(cat "$OUT/live-exporter.stderr")"
else
  python3 - "$addr" "$OUT/live-exporter-before.prom" <<'PY'
import sys, urllib.request
open(sys.argv[2], "w").write(urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=30).read().decode())
PY
  "$BIN" info --json -q >"$OUT/live-info.json"
  python3 - "$addr" "$OUT/live-exporter.prom" <<'PY'
import sys, urllib.request
open(sys.argv[2], "w").write(urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=30).read().decode())
PY
  python3 - "$OUT" <<'PY' || FAILS=$((FAILS + 1))
import json, os, re, sys
out = sys.argv[1]
bad, rows = [], []
def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        bad.append(msg)

def parse(path):
    m = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        mm = re.match(r'([a-z_:]+)(\{.*\})? (\S+)$', line.strip())
        if not mm:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', mm.group(2) or ""))
        m.setdefault(mm.group(1), []).append((labels, float(mm.group(3))))
    return m

before, after = parse(os.path.join(out, "live-exporter-before.prom")), parse(os.path.join(out, "live-exporter.prom"))
info = json.load(open(os.path.join(out, "live-info.json")))

def vals(m, name, uuid, **more):
    return [v for l, v in m.get(name, []) if l.get("uuid") == uuid and all(l.get(k) == x for k, x in more.items())]

def compare(what, name, uuid, want, tol=0.0, **more):
    gpu = next(g["index"] for g in info["data"]["gpus"] if g["uuid"] == uuid)
    got = vals(before, name, uuid, **more) + vals(after, name, uuid, **more)
    if want is None:
        rows.append({"gpu": uuid, "what": what, "info": None, "exporter": got, "ok": None})
        return
    ok = bool(got) and min(got) - tol <= want <= max(got) + tol
    rows.append({"gpu": uuid, "what": what, "info": want, "exporter": got, "ok": ok})
    check(ok, f"GPU {gpu} {what}: info {want}, exporter {got} (tolerance {tol})")

host = info["host"]
gi = after.get("gpu_doctor_info", [({}, 0)])[0][0]
check(gi.get("driver_version") == host.get("driver_version") and gi.get("cuda_driver_version") == host.get("cuda_driver_version"),
      f"gpu_doctor_info versions {gi} vs info {host}")
for g in info["data"]["gpus"]:
    u = g["uuid"]
    b = lambda v: None if v is None else float(bool(v))
    compare("memory total", "gpu_doctor_memory_total_bytes", u, g.get("memory_total_bytes"))
    compare("memory used", "gpu_doctor_memory_used_bytes", u, g.get("memory_used_bytes"), tol=64 << 20)
    compare("temperature", "gpu_doctor_temperature_celsius", u, g.get("temperature_c"), tol=3)
    pw = g.get("power_draw_w")
    compare("power draw", "gpu_doctor_power_draw_watts", u, pw, tol=max(20.0, (pw or 0) * 0.1))
    compare("power limit", "gpu_doctor_power_limit_watts", u, g.get("power_limit_w"))
    compare("ECC uncorrected (volatile)", "gpu_doctor_ecc_errors_total", u, g.get("ecc_volatile_uncorrected"), type="uncorrected")
    compare("ECC corrected (volatile)", "gpu_doctor_ecc_errors_total", u, g.get("ecc_volatile_corrected"), type="corrected")
    compare("row remap pending", "gpu_doctor_row_remap_pending", u, b(g.get("remap_pending")))
    compare("row remap failed", "gpu_doctor_row_remap_failed", u, b(g.get("remap_failed")))
    compare("retired pages dbe", "gpu_doctor_retired_pages", u, g.get("retired_pages_dbe"), cause="dbe")
    actions = ["none", "gpu_reset", "node_reboot", "drain_p2p", "drain_and_reset"]
    ra = g.get("recovery_action")
    compare("recovery action", "gpu_doctor_recovery_action", u, actions.index(ra) if ra in actions else None)
    compare("processes", "gpu_doctor_processes", u, len(g.get("processes", [])), tol=1)
    check(vals(after, "gpu_doctor_gpu_up", u) == [1.0], f"GPU {g['index']} gpu_up 1")
fin = [(l["code"], l["severity"], l["gpu"]) for l, v in after.get("gpu_doctor_finding", []) if v == 1.0]
want = sorted((f["code"], f["severity"], str(f["device"])) for f in info["findings"] if f["device"] is not None)
print(f"     findings: exporter {sorted(fin)}; info {want}")
check(set(want) <= set(fin), "every finding of info is a gpu_doctor_finding at 1")
json.dump({"rows": rows, "findings_exporter": sorted(fin), "findings_info": want}, open(os.path.join(out, "live-exporter-vs-info.json"), "w"), indent=1)
sys.exit(1 if bad else 0)
PY
fi
kill -TERM "$exp_pid" 2>/dev/null
wait "$exp_pid" 2>/dev/null

# --- 3. scrape benchmark ------------------------------------------------------------------
if N=${LIVE_SCRAPES:-100} bash "$HERE/../../bench/exporter_scrape.sh" "$BIN" "$OUT" >"$OUT/exporter-scrape-bench.txt" 2>&1; then
  cat "$OUT/exporter-scrape-bench.txt"
else
  fail "scrape benchmark: $(tail -5 "$OUT/exporter-scrape-bench.txt")"
fi

[ "$FAILS" -eq 0 ] && say "live: all checks passed"
exit "$FAILS"
