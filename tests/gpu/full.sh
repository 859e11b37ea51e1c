#!/usr/bin/env bash
# GPU check for scenarios/full.toml: every scenario it lists runs and the suite passes.
# Usage: tests/gpu/full.sh BIN OUTDIR. Also runs `fleet` over that report (two nodes, one
# group, none flagged). Writes OUTDIR/suite-full.json (the fixture
# tests/fixtures/<machine>-suite-full.json) and OUTDIR/suite-full.txt.
set -uo pipefail
bin="$(realpath "$1")"
out="$(realpath -m "$2")"
root="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$out"
start=$(date +%s%N)
"$bin" run "$root/scenarios/full.toml" -o "$out/suite-full.json" --no-color \
    >"$out/suite-full.txt" 2>"$out/suite-full.stderr"
rc=$?
end=$(date +%s%N)
echo "== run scenarios/full.toml: exit $rc in $(( (end - start) / 1000000 )) ms"
cat "$out/suite-full.txt"
python3 - "$out/suite-full.json" "$rc" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rc = int(sys.argv[2])
want = [s["name"] for s in r["data"]["suite"]["scenarios"]]
got = [x["scenario"] for x in r["reports"]]
for x in r["reports"]:
    print(f"  {x['scenario']:<24} {x['status']:<8} {x['duration_ms']:>9.0f} ms")
assert got == want, f"ran {got}, listed {want}"
assert all(x["status"] in ("pass", "warn") for x in r["reports"]), "a scenario failed or was skipped"
assert rc == 0 and r["status"] in ("pass", "warn"), f"suite {r['status']}, exit {rc}"
PY
rc_suite=$?

# fleet reads the real suite report as one node of a fleet: one group, nothing flagged.
fleet_dir=$(mktemp -d)
cp "$out/suite-full.json" "$fleet_dir/node-a.json"
cp "$out/suite-full.json" "$fleet_dir/node-b.json"
"$bin" fleet "$fleet_dir" --json >"$out/fleet-full.json" 2>"$out/fleet-full.stderr"
rc_fleet=$?
rm -rf "$fleet_dir"
python3 - "$out/fleet-full.json" "$rc_fleet" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))
rc = int(sys.argv[2])
print(f"  fleet: exit {rc}, {f['nodes']} node(s), {len(f['groups'])} group(s), {len(f['flagged'])} flagged")
assert rc == 0 and f["nodes"] == 2 and len(f["groups"]) == 1 and not f["flagged"], f
PY
rc_fleet=$?
[ "$rc_suite" -eq 0 ] && [ "$rc_fleet" -eq 0 ]
