#!/usr/bin/env bash
# GPU check: another process on the GPU is not gpu-doctor's failure (issue 11). Run on the
# device machine.
# Usage: tests/gpu/concurrent.sh BIN OUTDIR
#   BIN     the release binary (target/release/gpu-doctor)
#   OUTDIR  where the reports go (concurrent-oom-<round>-a.json, …-b.json)
# Starts two `gpu-doctor inject oom --device 0` at the same moment, CONCURRENT_ROUNDS times
# (default 3), and checks for each pair: neither reports MEMORY_NOT_RETURNED or
# OOM_ALLOCATABLE_LOW, each names the other's CUDA process (the other's isolated child, its
# `data.facts.memory.own_pids`) in a MEMORY_CHECK_INCONCLUSIVE finding, and neither fails.
# Exits non-zero when any check fails. A few seconds on an idle H200.
set -u
BIN=$(realpath "${1:?usage: $0 BIN OUTDIR}")
OUT=${2:?usage: $0 BIN OUTDIR}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
ROUNDS=${CONCURRENT_ROUNDS:-3}

nvidia-smi --query-gpu=index,name,memory.used,memory.total --format=csv,noheader || true

for round in $(seq 1 "$ROUNDS"); do
  # Both started before either is waited for: they start within a few milliseconds, and each
  # runs for several hundred, so their fills and frees overlap.
  "$BIN" inject oom --device 0 --json -q \
    >"$OUT/concurrent-oom-$round-a.json" 2>"$OUT/concurrent-oom-$round-a.stderr" &
  pid_a=$!
  "$BIN" inject oom --device 0 --json -q \
    >"$OUT/concurrent-oom-$round-b.json" 2>"$OUT/concurrent-oom-$round-b.stderr" &
  pid_b=$!
  wait "$pid_a"
  echo $? >"$OUT/concurrent-oom-$round-a.rc"
  wait "$pid_b"
  echo $? >"$OUT/concurrent-oom-$round-b.rc"
  echo "ran  round $round: exit $(cat "$OUT/concurrent-oom-$round-a.rc") and $(cat "$OUT/concurrent-oom-$round-b.rc")"
done

python3 - "$OUT" "$ROUNDS" <<'PY'
import json, os, sys

out, rounds = sys.argv[1], int(sys.argv[2])
bad = []

def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        bad.append(msg)

def load(name):
    try:
        with open(os.path.join(out, name + ".json")) as f:
            r = json.load(f)
        with open(os.path.join(out, name + ".rc")) as f:
            rc = int(f.read().strip())
        return r, rc
    except Exception as e:
        check(False, f"{name}: cannot read the report ({e}); stderr: "
              + open(os.path.join(out, name + ".stderr"), errors="replace").read()[-500:])
        return None, None

def gib(b):
    return f"{b / 2**30:.2f} GiB" if b is not None else "?"

for n in range(1, rounds + 1):
    a, rc_a = load(f"concurrent-oom-{n}-a")
    b, rc_b = load(f"concurrent-oom-{n}-b")
    if a is None or b is None:
        continue
    runs = {"a": (a, rc_a, b), "b": (b, rc_b, a)}
    for side, (r, rc, other) in runs.items():
        name = f"round {n} {side}"
        codes = [f["code"] for f in r.get("findings", [])]
        facts = r["data"]["facts"]
        m = facts["memory"]
        w = m.get("watch") or {}
        other_pids = other["data"]["facts"]["memory"].get("own_pids", [])
        print(f"     {name}: status {r['status']}, exit {rc}, findings {codes}")
        print(f"     {name}: own pids {m.get('own_pids')}, allocatable {gib(facts['allocatable_bytes'])} of "
              f"{gib(facts['free_before_bytes'])} free, fill {facts.get('fill_started_at_ms')}–{facts.get('fill_ended_at_ms')} ms")
        print(f"     {name}: watch {w.get('samples')} samples ({w.get('failed_samples')} failed) "
              f"{w.get('from_ms')}–{w.get('to_ms')} ms, used {gib(w.get('used_min_bytes'))}–{gib(w.get('used_max_bytes'))}, "
              f"changes {[(c['pid'], c['bytes'], round(c['at_ms'])) for c in w.get('changes', [])]}")
        check("MEMORY_NOT_RETURNED" not in codes, f"{name}: no MEMORY_NOT_RETURNED")
        check("OOM_ALLOCATABLE_LOW" not in codes, f"{name}: no OOM_ALLOCATABLE_LOW")
        check(w.get("samples", 0) > 0 and not w.get("failed_samples"),
              f"{name}: the watch sampled NVML ({w.get('error')})")
        named = [f for f in r.get("findings", [])
                 if f["code"] == "MEMORY_CHECK_INCONCLUSIVE" and f["severity"] == "warn"
                 and any(f"pid {p} " in f["message"] for p in other_pids)]
        check(bool(named), f"{name}: a MEMORY_CHECK_INCONCLUSIVE finding names the other run's pid {other_pids}")
        for f in named:
            print(f"     {name}: {f['message']}")
        fails = [f"{f['code']}: {f['message']}" for f in r.get("findings", []) if f["severity"] == "fail"]
        check(not fails and rc == 0, f"{name}: no fail (exit {rc}) {fails}")

print(f"\n{len(bad)} check(s) failed" if bad else "\nall concurrent checks passed")
sys.exit(1 if bad else 0)
PY
