#!/usr/bin/env bash
# GPU checks for `gpu-doctor health` (run on the device machine).
# Usage: tests/gpu/health.sh BIN OUTDIR
# Writes OUTDIR/health.json (default run), health-expect.json, health-npd.json and .line,
# health-npd-lost.json and .line (NVML fault gpu-lost@gpu0 on the real driver),
# health-thorough.json, health-times.txt (wall times). Exits non-zero when a check fails.
set -u
BIN=$(realpath "${1:?usage: $0 BIN OUTDIR}")
OUT=${2:?usage: $0 BIN OUTDIR}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
FAILS=0
say() { printf '%s\n' "$*"; }
fail() { say "FAIL: $*"; FAILS=$((FAILS + 1)); }

NGPU=$(nvidia-smi -L | grep -c '^GPU ')
say "GPUs: $NGPU"

# Warm-up (driver JIT cache for the PTX, page cache for the binary), then 5 timed runs.
"$BIN" health -q >/dev/null 2>&1
times=()
for i in 1 2 3 4 5; do
  t0=$(date +%s%N)
  "$BIN" health -q --no-color -o "$OUT/health.json" >"$OUT/health.txt" 2>"$OUT/health.stderr"
  rc=$?
  t1=$(date +%s%N)
  times+=($(( (t1 - t0) / 1000000 )))
  [ "$rc" -eq 0 ] || fail "health exited $rc (run $i): $(tail -3 "$OUT/health.stderr")"
done
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
printf 'health on %s GPU(s): wall ms %s, median %s ms (target < 1000 ms on 8 GPUs)\n' "$NGPU" "${times[*]}" "$median" | tee "$OUT/health-times.txt"
[ "$median" -lt 1000 ] || fail "health took $median ms (median of 5), over 1 s"

python3 - "$OUT/health.json" "$NGPU" <<'PY' || FAILS=$((FAILS + 1))
import json, sys
r = json.load(open(sys.argv[1])); n = int(sys.argv[2])
bad = [f for f in r["findings"] if f["severity"] != "info"]
assert not bad, f"a healthy box has findings: {bad}"
c = r["data"]["check"]
assert c.get("unavailable") is None, c
assert len(c["gpus"]) == n, f"{len(c['gpus'])} GPUs checked of {n}"
for g in c["gpus"]:
    assert g["value_ok"] is True and not g["timed_out"], g
    assert all(x["observed"]["code"] == 0 for x in g["calls"]), g["calls"]
    print(f"  GPU {g['index']} (CUDA {g.get('cuda_ordinal')}): quick check {g['elapsed_ms']:.0f} ms, {len(g['calls'])} calls")
print(f"  quick check wall {c['wall_ms']:.0f} ms for {n} GPU(s) (sum of per-GPU times {sum(g['elapsed_ms'] for g in c['gpus']):.0f} ms); report {r['duration_ms']:.0f} ms")
PY

"$BIN" health -q --expect-gpus "$NGPU" --json >"$OUT/health-expect.json" 2>/dev/null \
  || fail "health --expect-gpus $NGPU exited $?"
"$BIN" health -q --expect-gpus $((NGPU + 1)) --format npd >"$OUT/health-expect-wrong.line" 2>/dev/null
rc=$?
[ "$rc" -eq 1 ] && grep -q '^GPU_COUNT_MISMATCH: ' "$OUT/health-expect-wrong.line" \
  || fail "--expect-gpus $((NGPU + 1)): exit $rc, line $(cat "$OUT/health-expect-wrong.line")"

# node-problem-detector's protocol on the real driver: healthy, then a GPU lost (NVML fault).
"$BIN" health -q --format npd -o "$OUT/health-npd.json" >"$OUT/health-npd.line" 2>"$OUT/health-npd.stderr"
rc=$?
say "npd healthy: exit $rc: $(cat "$OUT/health-npd.line")"
[ "$rc" -eq 0 ] && grep -q "^OK: $NGPU GPU" "$OUT/health-npd.line" || fail "npd healthy: exit $rc"
"$BIN" --fault gpu-lost@gpu0 health -q --format npd -o "$OUT/health-npd-lost.json" \
  >"$OUT/health-npd-lost.line" 2>"$OUT/health-npd-lost.stderr"
rc=$?
line=$(cat "$OUT/health-npd-lost.line")
say "npd gpu-lost@gpu0: exit $rc: $line"
[ "$rc" -eq 1 ] || fail "npd under gpu-lost@gpu0: exit $rc (expected 1)"
[ "$line" = "GPU_LOST gpu0: fallen off the bus (XID 79): drain, reboot" ] || fail "npd line: $line"
[ "${#line}" -le 80 ] || fail "npd line longer than 80: ${#line}"
python3 - "$OUT/health-npd-lost.json" "$NGPU" <<'PY' || FAILS=$((FAILS + 1))
import json, sys
r = json.load(open(sys.argv[1])); n = int(sys.argv[2])
assert any(f["code"] == "GPU_LOST" and f["device"] == 0 for f in r["findings"]), r["findings"]
assert r["nvml"]["faults"] == ["gpu-lost@gpu0"], r["nvml"]
checked = [g["index"] for g in r["data"]["check"]["gpus"]]
assert 0 not in checked and len(checked) == n - 1, f"the lost GPU is not given work, the others are: {checked}"
PY

# --thorough: inject oom on every GPU and bandwidth against its thresholds.
t0=$(date +%s)
"$BIN" health -q --thorough --min-h2d-gbps 40 --min-d2h-gbps 40 --json >"$OUT/health-thorough.json" 2>"$OUT/health-thorough.stderr"
rc=$?
say "health --thorough: exit $rc in $(( $(date +%s) - t0 )) s"
[ "$rc" -eq 0 ] || fail "health --thorough exited $rc: $(tail -3 "$OUT/health-thorough.stderr")"
python3 - "$OUT/health-thorough.json" "$NGPU" <<'PY' || FAILS=$((FAILS + 1))
import json, sys
r = json.load(open(sys.argv[1])); n = int(sys.argv[2])
assert len(r["data"]["oom"]) == n, "inject oom ran on every GPU"
assert all(o["status"] == "pass" for o in r["data"]["oom"]), [o["status"] for o in r["data"]["oom"]]
assert r["data"].get("bandwidth"), "bandwidth measured"
names = [k for k in r["metrics"] if k.startswith("h2d_pinned_gbps")]
assert len(names) == n, names
print("  metrics:", ", ".join(f"{k}={v['value']:.1f}" for k, v in sorted(r["metrics"].items()) if "pinned" in k))
PY

[ "$FAILS" -eq 0 ] || { say "health: $FAILS check(s) failed"; exit 1; }
say "health: all checks passed"
