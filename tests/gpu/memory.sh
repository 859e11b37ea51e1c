#!/usr/bin/env bash
# GPU checks of `gpu-doctor leak-check` and `gpu-doctor inject fragmentation` (docs/memory.md).
# Run on the GPU machine:
#   tests/gpu/memory.sh BIN OUTDIR
# BIN: gpu-doctor release binary. Writes to OUTDIR:
#   GPU-leak-check.json, memory-leak3-destroy.json    leak-check of tests/gpu/leak3.c (GPU = h200,
#                                                     h100, …: the fixture to keep in tests/fixtures/)
#   memory-leak3-sanitizer.txt                        compute-sanitizer --leak-check full on it
#   memory-torch-leak.json, memory-torch-noleak.json  leak-check of a PyTorch loop with/without a leak
#   memory-service.json, memory-service-snapshots.jsonl   a leaking service stopped by --survive-after
#   GPU-inject-fragmentation.json                     the fixture to keep in tests/fixtures/
#   memory-leak-overhead.txt                          bench/leak_overhead.sh with 3 rounds
# Needs gcc and the CUDA headers (nvcc's), python3 (torch: skipped with a note if missing),
# compute-sanitizer (skipped with a note if missing or if it refuses the device, as on gVisor).
# Exits non-zero on a failure.
set -u
BIN=$(realpath "${1:?usage: tests/gpu/memory.sh BIN OUTDIR}")
OUT=${2:?usage: tests/gpu/memory.sh BIN OUTDIR}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# FAILED, pass, fail, check
# shellcheck source-path=SCRIPTDIR source=lib/check.bash
. "$HERE/lib/check.bash"
skip() { echo "SKIP  $*"; }
export PATH="$PATH:/usr/local/cuda/bin"
# NVML's index is CUDA's ordinal: the OOM estimate needs it (docs/memory.md).
export CUDA_DEVICE_ORDER=PCI_BUS_ID

# The GPU's short name, for the fixtures' names (tests/fixtures/h200-…).
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader -i 0 2>/dev/null | grep -oiE 'h100|h200|a100|l40s|b200' | head -1 | tr 'A-Z' 'a-z')
GPU=${GPU:-gpu}

CUDA_INC=$(dirname "$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")")/include
gcc -g -O0 -o "$WORK/leak3" "$HERE/leak3.c" -I"$CUDA_INC" -lcuda || fail "gcc leak3.c"
gcc -g -O2 -o "$WORK/service" "$HERE/service.c" -I"$CUDA_INC" -lcuda || fail "gcc service.c"

# 1. A C program that leaks 3 buffers at 2 call sites: all caught, the right sites and bytes.
"$BIN" leak-check -q -o "$OUT/$GPU-leak-check.json" -- "$WORK/leak3" > "$WORK/log" 2>&1
check "leak-check finds the 3 buffers at their 2 call sites" "$OUT/$GPU-leak-check.json" 0 $? '
    s = l["summary"]
    assert s["at_exit_allocations"] == 3 and s["at_exit_bytes"] == 6 << 20, s
    sites = [(g["site"].split(" ")[0], g["bytes"], g["allocations"]) for g in l["sites"]]
    assert sites == [("leak_site_a", 3 << 20, 2), ("leak_site_b", 3 << 20, 1)], sites
    assert all(g["site"].split(" (")[1].startswith("leak3.c:") for g in l["sites"]), "file and line"
    assert "LEAK_AT_EXIT" in codes, codes
    assert s["frees"] >= 1, "the 4th buffer was freed"
    note("site labels: %s" % [g["site"] for g in l["sites"]])
' "$WORK/log"

"$BIN" leak-check -q -o "$OUT/memory-leak3-destroy.json" -- "$WORK/leak3" destroy > "$WORK/log" 2>&1
check "leak-check: the primary context's reset frees them (freed only by context destroy)" "$OUT/memory-leak3-destroy.json" 0 $? '
    s = l["summary"]
    assert s["ctx_destroy_allocations"] == 3 and s["ctx_destroy_bytes"] == 6 << 20, s
    assert s["at_exit_allocations"] == 0, s
    assert "LEAK_AT_CONTEXT_DESTROY" in codes, codes
' "$WORK/log"

# 2. compute-sanitizer --leak-check full on the same program (which resets its context): the
#    same 3 allocations and bytes.
if command -v compute-sanitizer >/dev/null 2>&1; then
    compute-sanitizer --leak-check full "$WORK/leak3" destroy > "$OUT/memory-leak3-sanitizer.txt" 2>&1
    if grep -q "Device not supported\|Target application terminated before first instrumented API call" "$OUT/memory-leak3-sanitizer.txt"; then
        skip "compute-sanitizer refuses this device (see memory-leak3-sanitizer.txt)"
    elif python3 - "$OUT/memory-leak3-sanitizer.txt" "$OUT/memory-leak3-destroy.json" <<'PY'
import json, re, sys
text = open(sys.argv[1], errors="replace").read()
r = json.load(open(sys.argv[2]))
s = r["data"]["leaks"]["summary"]
leaked = [int(b.replace(",", "")) for b in re.findall(r"Leaked ([\d,]+) bytes at 0x[0-9a-fA-F]+", text)]
summary = re.search(r"LEAK SUMMARY: ([\d,]+) bytes leaked in (\d+) allocations", text)
print("      note: compute-sanitizer: %s; leak-check: %d bytes in %d allocations" % (
    summary.group(0) if summary else "no LEAK SUMMARY line", s["ctx_destroy_bytes"], s["ctx_destroy_allocations"]))
ok = sorted(leaked) == [1 << 20, 2 << 20, 3 << 20] and len(leaked) == s["ctx_destroy_allocations"] \
    and sum(leaked) == s["ctx_destroy_bytes"]
if summary:
    ok = ok and int(summary.group(1).replace(",", "")) == s["ctx_destroy_bytes"] and int(summary.group(2)) == 3
sys.exit(0 if ok else 1)
PY
    then pass "compute-sanitizer --leak-check full agrees (3 allocations, 6 MiB)"
    else fail "compute-sanitizer and leak-check disagree"; tail -20 "$OUT/memory-leak3-sanitizer.txt" | sed 's/^/      /'
    fi
else
    skip "compute-sanitizer not on PATH"
fi

# 3. PyTorch: a tensor appended to a global list every step (growth detected), and the same
#    loop without the list (no leak; the pool's cache told apart).
if python3 -c 'import torch; assert torch.cuda.is_available()' >/dev/null 2>&1; then
cat > "$WORK/torch_leak.py" <<'PY'
import sys, time, torch
LEAK = sys.argv[1] == "leak"
kept = []
x = torch.zeros(1 << 20, device="cuda")
for step in range(300):
    y = torch.randn(1 << 20, device="cuda") * 2 + x   # 4 MiB
    scratch = torch.empty(8 << 20, device="cuda")       # 32 MiB, freed each step: cached
    del scratch
    if LEAK:
        kept.append(y)
    torch.cuda.synchronize()
    time.sleep(0.02)
print("steps done, kept", len(kept))
PY
"$BIN" leak-check -q --timeout 120s -o "$OUT/memory-torch-leak.json" -- python3 "$WORK/torch_leak.py" leak > "$WORK/log" 2>&1
check "PyTorch: a tensor kept per step is growth (DEVICE_MEMORY_GROWING)" "$OUT/memory-torch-leak.json" 0 $? '
    g = l["timeline"].get("growth")
    assert g, "no growth found: %s" % l["timeline"]["windows"]
    assert g["rate_bytes_per_s"] > 50 << 20, g
    assert "DEVICE_MEMORY_GROWING" in codes, codes
    assert any(p["framework"] == "torch" for p in l["pools"]), l["pools"]
    note("grows %.1f MiB/s over %.1f s, R² %.2f, OOM in %s s" % (g["rate_bytes_per_s"] / 2**20, g["to_s"] - g["from_s"], g["r2"], g.get("oom_in_s")))
' "$WORK/log"
"$BIN" leak-check -q --timeout 120s -o "$OUT/memory-torch-noleak.json" -- python3 "$WORK/torch_leak.py" noleak > "$WORK/log" 2>&1
check "PyTorch without the leak: no leak, the pool's cache told apart" "$OUT/memory-torch-noleak.json" 0 $? '
    assert "DEVICE_MEMORY_GROWING" not in codes and "LEAK_AT_EXIT" not in codes, codes
    assert l["timeline"].get("growth") is None, l["timeline"]["growth"]
    pools = [p for p in l["pools"] if p["framework"] == "torch"]
    assert pools and pools[0]["reserved_bytes"] >= pools[0]["in_use_bytes"], pools
    s = l["summary"]
    assert s["pool_cached_bytes"] > 0 and "POOL_CACHED_AT_EXIT" in codes, (s, codes)
    assert r["status"] != "fail", r["status"]
    note("cached %d MiB (released at exit), referenced at exit %d MiB" % (s["pool_cached_bytes"] >> 20, s["referenced_at_exit_bytes"] >> 20))
' "$WORK/log"
else
    skip "PyTorch with CUDA not importable"
fi

# 4. A leaking service stopped with --survive-after: the report is written, the growth found.
"$BIN" leak-check -q --survive-after 6s --snapshot-every 1s \
    --snapshot-file "$OUT/memory-service-snapshots.jsonl" \
    -o "$OUT/memory-service.json" -- "$WORK/service" > "$WORK/log" 2>&1
check "a service stopped by --survive-after: report written, growth and OOM estimate" "$OUT/memory-service.json" 0 $? '
    assert d["verdict"] == "kept_running", d["verdict"]
    g = l["timeline"]["growth"]
    assert 50 << 20 < g["rate_bytes_per_s"] < 100 << 20, g
    assert g.get("oom_in_s"), "OOM estimate (NVML free memory): %s" % g
    assert l["sites"][0]["site"].startswith("handle_request"), l["sites"][0]
    held = [f for f in r["findings"] if f["code"] == "LEAK_AT_EXIT"]
    assert held and held[0]["severity"] == "info", held
    snaps = [json.loads(x) for x in open("'"$OUT/memory-service-snapshots.jsonl"'")]
    assert len(snaps) >= 4 and snaps[-1]["held_bytes"] > snaps[0]["held_bytes"], snaps
    note("grows %.1f MiB/s; OOM in about %.0f min" % (g["rate_bytes_per_s"] / 2**20, g["oom_in_s"] / 60))
' "$WORK/log"

# 5. inject fragmentation on this GPU: the fixture.
FIXTURE="$OUT/$GPU-inject-fragmentation.json"
"$BIN" inject fragmentation -q -o "$FIXTURE" > "$WORK/log" 2>&1
rc=$?
check "inject fragmentation: figures, verdict, remedies reach the free memory, memory back" "$FIXTURE" 0 $rc '
    f = d["facts"]
    names = [a["allocator"] for a in f["allocators"]]
    assert names == ["driver", "pool", "vmm"], names
    ratio = {a["allocator"]: a["largest_block_bytes"] / a["available_bytes"] for a in f["allocators"]}
    trim = f["allocators"][1]["after_trim"]
    ratio["pool trimmed"] = trim["largest_block_bytes"] / trim["available_bytes"]
    assert ratio["vmm"] >= 0.95, ratio
    # Trimming releases only chunks with nothing live in them (72% on an H200): never worse.
    assert ratio["pool trimmed"] >= ratio["pool"] - 0.01, ratio
    assert "FRAGMENTATION" in codes, codes
    assert r["status"] in ("pass", "warn"), r["status"]
    assert "MEMORY_NOT_RETURNED" not in codes, codes
    assert all(s["ok"] for s in r["steps"]), [s for s in r["steps"] if not s["ok"]]
    note("largest block / available: " + ", ".join("%s %.3f" % kv for kv in ratio.items()))
' "$WORK/log"

# 6. The overhead benchmark (three rounds here; bench/leak_overhead.sh BIN for the full one).
if bash "$HERE/../../bench/leak_overhead.sh" "$BIN" 3 > "$OUT/memory-leak-overhead.txt" 2>&1; then
    pass "leak-check overhead on the launch-heavy loop under 5% (memory-leak-overhead.txt)"
else
    fail "leak-check overhead (memory-leak-overhead.txt)"
fi
sed 's/^/      /' "$OUT/memory-leak-overhead.txt"

if [ $FAILED -ne 0 ]; then echo "memory.sh: FAILED"; exit 1; fi
echo "memory.sh: all passed"
