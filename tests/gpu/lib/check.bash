# Sourced by tests/gpu/shim.sh and tests/gpu/memory.sh (a library, not an area script: run.sh
# runs tests/gpu/*.sh only). Defines FAILED=0, pass, fail, and:
#
# check NAME REPORT EXPECTED_EXIT ACTUAL_EXIT PYTHON_ASSERTIONS LOG
#   The assertions run in Python with r = the report, d = its data, l = data.leaks, codes = its
#   finding codes, out = LOG (the program's output), note(msg). A failed assertion prints the
#   findings and what the report holds of the shim, the calls and the leaks.
FAILED=0
pass() { echo "PASS  $*"; }
fail() { echo "FAIL  $*"; FAILED=1; }

check() {
    local name=$1 report=$2 want=$3 got=$4 asserts=$5 log=$6
    if [ "$got" != "$want" ]; then
        fail "$name: gpu-doctor exit $got, expected $want"; sed 's/^/      /' "$log" | tail -25; return
    fi
    if python3 - "$report" "$log" <<PY
import json, sys
r = json.load(open(sys.argv[1]))
out = open(sys.argv[2], errors="replace").read()
d = r["data"]
l = d.get("leaks") or {}
codes = [f["code"] for f in r["findings"]]
def note(msg):
    print("      note: " + msg)
def fail(msg):
    print("      " + msg)
    print("      findings:", [(f["code"], f["message"][:200]) for f in r["findings"]])
    for k in ("shim", "calls"):
        if k in d:
            print(f"      {k}:", json.dumps(d[k])[:600])
    if l:
        print("      summary:", json.dumps(l.get("summary", {}))[:800])
        print("      sites:", json.dumps([(s["site"], s["bytes"], s["allocations"]) for s in l.get("sites", [])])[:800])
    sys.exit(1)
try:
$asserts
except AssertionError as e:
    fail("assertion failed: %s" % e)
except (KeyError, IndexError, TypeError) as e:
    fail("missing field: %r" % e)
PY
    then pass "$name"; else fail "$name"; fi
}
