#!/usr/bin/env bash
# Reruns of the same box compare as "within" (issue 11). Usage: tests/gpu/reruns.sh BIN OUTDIR
# Runs scenarios/quick.toml and scenarios/ci.toml RERUNS times each (default 5), compares
# every pair (exit 0 wanted), then a copy with pinned H2D 10% lower and one with a new failing
# finding (exit 1 wanted). The reports are fixtures (OUTDIR/reruns/). Slow: about 2.5 min.
set -uo pipefail
bin="$(realpath "$1")"
out="$(realpath -m "$2")/reruns"
root="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$out"
n=${RERUNS:-5}
fail=0
for suite in quick ci; do
  for i in $(seq 1 "$n"); do
    "$bin" run "$root/scenarios/$suite.toml" -q -o "$out/$suite-$i.json" >/dev/null 2>"$out/$suite-$i.stderr"
    echo "$suite run $i: exit $?"
  done
  for i in $(seq 1 "$n"); do for j in $(seq 1 "$n"); do
    [ "$i" = "$j" ] && continue
    "$bin" compare "$out/$suite-$i.json" "$out/$suite-$j.json" --format markdown >"$out/cmp-$suite-$i-$j.md"; rc=$?
    if [ "$rc" != 0 ]; then echo "FAIL: compare $suite $i $j: exit $rc"; grep -i regress "$out/cmp-$suite-$i-$j.md" | head -5; fail=1; fi
  done; done
  echo "$suite: every pair of $n reruns compared"
done
# History: the last four as baselines, the fifth as current.
"$bin" compare "$out"/ci-1.json "$out"/ci-2.json "$out"/ci-3.json "$out"/ci-4.json "$out/ci-5.json" >/dev/null || { echo "FAIL: history compare"; fail=1; }
python3 - "$out" <<'PY'
import json, sys, copy
out = sys.argv[1]
r = json.load(open(f"{out}/ci-5.json"))
low = copy.deepcopy(r)
for sub in low["reports"]:
    for k, m in sub["metrics"].items():
        if k.startswith("h2d_pinned_gbps"):
            m["value"] *= 0.9
            if m.get("spread"):
                for f in ("min", "median", "max"):
                    m["spread"][f] *= 0.9
json.dump(low, open(f"{out}/derived-h2d-10pct-lower.json", "w"), indent=1)
bad = copy.deepcopy(r)
bad["reports"][0]["findings"].append({"severity": "fail", "code": "ECC_UNCORRECTABLE", "device": 0,
    "message": "GPU 0 counted 2 uncorrectable ECC error(s) since the driver loaded", "hint": None})
bad["reports"][0]["status"] = "fail"; bad["status"] = "fail"
json.dump(bad, open(f"{out}/derived-new-fail.json", "w"), indent=1)
PY
"$bin" compare "$out/ci-4.json" "$out/derived-h2d-10pct-lower.json" >"$out/cmp-h2d-lower.txt"; rc=$?
echo "pinned H2D 10% lower: exit $rc"; [ "$rc" = 1 ] || { echo "FAIL: a 10% pinned drop did not regress"; cat "$out/cmp-h2d-lower.txt"; fail=1; }
"$bin" compare "$out/ci-4.json" "$out/derived-new-fail.json" >"$out/cmp-new-fail.txt"; rc=$?
echo "new failing finding: exit $rc"; [ "$rc" = 1 ] || { echo "FAIL: a new failing finding did not regress"; fail=1; }
[ "$fail" = 0 ] && echo "reruns: all checks passed"
exit $fail
