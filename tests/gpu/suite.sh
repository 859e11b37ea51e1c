#!/usr/bin/env bash
# GPU checks for suites and compare (issue 5). Usage: tests/gpu/suite.sh BIN OUTDIR
# Runs scenarios/quick.toml and scenarios/ci.toml with BIN, keeps the reports as
# OUTDIR/suite-quick.json and OUTDIR/suite-ci.json (fixtures), then compares them against
# themselves and against regressed copies. Exits non-zero on any failure.
set -uo pipefail
bin="$(realpath "$1")"
out="$(realpath -m "$2")"
root="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$out"
fail=0
say() { printf '%s\n' "$*"; }
bad() { printf 'FAIL: %s\n' "$*"; fail=1; }

run_suite() { # name max_seconds
    local name="$1" max_s="$2" start end rc
    start=$(date +%s%N)
    "$bin" run "$root/scenarios/$name.toml" -o "$out/suite-$name.json" --no-color >"$out/suite-$name.txt" 2>"$out/suite-$name.stderr"
    rc=$?
    end=$(date +%s%N)
    say "== run scenarios/$name.toml: exit $rc in $(( (end - start) / 1000000 )) ms"
    cat "$out/suite-$name.txt"
    python3 - "$out/suite-$name.json" "$rc" "$max_s" "$name" <<'PY' || fail=1
import json, sys
path, rc, max_s, name = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
r = json.load(open(path))
ok = True
def bad(msg):
    global ok
    ok = False
    print("FAIL:", msg)
assert r["schema_version"] == 1 and r["scenario"] == "suite", "not a suite report"
want = [s["name"] for s in r["data"]["suite"]["scenarios"]]
got = [x["scenario"] for x in r["reports"]]
if got != want:
    bad(f"scenarios ran {got}, suite lists {want}")
for x in r["reports"]:
    extra = x.get("data", {}).get("skipped_reason", "") if isinstance(x.get("data"), dict) else ""
    print(f"  {x['scenario']:<24} {x['status']:<8} {x['duration_ms']:>9.0f} ms  {extra}")
    if x["status"] == "skipped":
        bad(f"{x['scenario']} skipped on a GPU machine: {extra}")
    for f in x["findings"]:
        if f["code"] == "THRESHOLD":
            print(f"    THRESHOLD {f['severity']}: {f['message']}")
            if "no such metric" in f["message"]:
                bad(f"{x['scenario']}: a threshold names a metric the report lacks (reconcile names): {f['message']}")
statuses = [x["status"] for x in r["reports"] if x["status"] != "skipped"]
order = ["pass", "warn", "fail", "error"]
worst = max(statuses, key=order.index) if statuses else "skipped"
if r["status"] != worst:
    bad(f"suite status {r['status']} but the worst scenario status is {worst}")
want_rc = 1 if r["status"] in ("fail", "error") else 0
if rc != want_rc:
    bad(f"exit code {rc} for status {r['status']} (want {want_rc})")
if r["duration_ms"] > max_s * 1000:
    bad(f"{name} took {r['duration_ms']:.0f} ms, budget {max_s:.0f} s")
if not r["devices"]:
    bad("no devices in the suite report")
sys.exit(0 if ok else 1)
PY
}

run_suite quick 30
run_suite ci 120

# compare: a report against itself → 0; regressed copies → 1 with the right item named.
q="$out/suite-quick.json"
if [ -f "$q" ]; then
    "$bin" compare "$q" "$q" >/dev/null; rc=$?
    [ "$rc" -eq 0 ] || bad "compare quick quick: exit $rc, want 0"
    python3 - "$q" "$out" <<'PY' || fail=1
import copy, json, sys
r = json.load(open(sys.argv[1])); out = sys.argv[2]
# pass→fail on the first scenario that ran
x = copy.deepcopy(r)
first = next((s for s in x["reports"] if s["status"] != "skipped"), x["reports"][0])
first["status"] = "fail"
json.dump(x, open(f"{out}/regressed-status.json", "w"))
# a finding added on GPU 0
x = copy.deepcopy(r)
x["reports"][0]["findings"].append({"severity": "fail", "code": "ECC_UNCORRECTABLE", "device": 0,
    "message": "injected <by> tests/gpu/suite.sh & \"friends\"", "hint": None})
json.dump(x, open(f"{out}/regressed-finding.json", "w"))
# device swapped: GPU 0's UUID changes everywhere (information only)
if r["devices"]:
    uuid = r["devices"][0]["uuid"]
    s = json.dumps(r).replace(uuid, "GPU-00000000-1111-2222-3333-444444444444")
    open(f"{out}/swapped-device.json", "w").write(s)
else:
    print("FAIL: no device in the quick report: cannot check a swapped device")
    sys.exit(1)
PY
    for case in status finding; do
        "$bin" compare "$q" "$out/regressed-$case.json" --format junit >"$out/compare-$case.xml"; rc=$?
        [ "$rc" -eq 1 ] || bad "compare regressed-$case: exit $rc, want 1"
        python3 -c "import sys, xml.etree.ElementTree as E; t = E.parse(sys.argv[1]); n = int(t.getroot().get('failures')); sys.exit(0 if n >= 1 else 1)" "$out/compare-$case.xml" \
            || bad "junit for regressed-$case is not well-formed or has no failure"
        "$bin" compare "$q" "$out/regressed-$case.json" --format markdown >"$out/compare-$case.md"
        grep -q "REGRESSION" "$out/compare-$case.md" || bad "markdown for regressed-$case lacks REGRESSION"
    done
    if [ -f "$out/swapped-device.json" ]; then
        "$bin" compare "$q" "$out/swapped-device.json" >"$out/compare-swapped.txt"; rc=$?
        [ "$rc" -eq 0 ] || bad "compare swapped-device: exit $rc, want 0 (device changes are information)"
        grep -q "replaced" "$out/compare-swapped.txt" || bad "compare swapped-device does not report the replacement"
    fi
    # the bandwidth metrics of ci.toml, down 20 %
    c="$out/suite-ci.json"
    if [ -f "$c" ]; then
        python3 - "$c" "$out/regressed-metric.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
n = 0
for x in r["reports"]:
    for m in x["metrics"].values():
        m["value"] = m["value"] * (0.8 if m["better"] == "higher" else 1.25)
        n += 1
print(f"  regressed {n} metrics by 20 %")
json.dump(r, open(sys.argv[2], "w"))
PY
        "$bin" compare "$c" "$out/regressed-metric.json" >/dev/null; rc=$?
        if python3 -c "import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if any(x['metrics'] for x in r['reports']) else 1)" "$c"; then
            [ "$rc" -eq 1 ] || bad "compare regressed-metric: exit $rc, want 1"
        fi
    fi
fi

if [ "$fail" -eq 0 ]; then say "suite.sh: all checks passed"; else say "suite.sh: FAILED"; fi
exit "$fail"
