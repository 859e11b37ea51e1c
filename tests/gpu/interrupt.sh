#!/usr/bin/env bash
# Ctrl-C during a scenario: the memory it holds is freed, the report is written marked
# interrupted, and the exit code is 130. Usage: tests/gpu/interrupt.sh BIN OUTDIR
set -u
BIN=$1; OUT=$2
mkdir -p "$OUT"
fail=0
used() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 | tr -d ' '; }
before=$(used)
# Hold 90% of the GPU for 60 s; interrupt it after 3 s (SIGINT to the process group, as a
# terminal's Ctrl-C does).
setsid "$BIN" inject oom --fraction 0.9 --hold 60s -q -o "$OUT/inject-oom-interrupted.json" >/dev/null 2>"$OUT/interrupt.stderr" &
pid=$!
sleep 3
during=$(used)
kill -INT -- -"$pid"
wait "$pid"; rc=$?
sleep 1
after=$(used)
echo "memory used (MiB): before $before, while holding $during, after Ctrl-C $after; exit $rc"
[ "$rc" -eq 130 ] || { echo "FAIL: exit $rc, expected 130"; fail=1; }
[ "$during" -gt $((before + 10000)) ] || { echo "FAIL: the hold did not take memory"; fail=1; }
[ "$after" -le $((before + 64)) ] || { echo "FAIL: memory not returned after Ctrl-C"; fail=1; }
python3 - "$OUT/inject-oom-interrupted.json" <<'PY' || fail=1
import json, sys
r = json.load(open(sys.argv[1]))
codes = [f["code"] for f in r["findings"]]
print(f"report: status {r['status']}, interrupted {r.get('interrupted')}, findings {codes}")
assert r.get("interrupted") is True, "report not marked interrupted"
assert "INTERRUPTED" in codes
PY
[ $fail -eq 0 ] && echo "interrupt: ok"
exit $fail
