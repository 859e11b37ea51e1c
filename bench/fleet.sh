#!/usr/bin/env bash
# Times `gpu-doctor fleet` on N node reports (default 10,000 copies of the real CI suite report
# with hostnames and rerun spread, three planted outliers: tests/fixtures/fleet.py; ~110 KB
# each, ~1.1 GB in all) against two references in the same run: reading the same bytes (cat,
# the I/O floor) and Python's json.load of every report keeping what fleet keeps (a plain
# single-process reader). Prints throughput, the ratios, and the peak memory at N/10 and N:
# memory follows the number of nodes and metrics, not the gigabyte of reports.
# Target: N = 10,000 in under 5 s. Usage: bench/fleet.sh [BIN] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/gpu-doctor}
N=${2:-10000}
target_s=5
if [ ! -x "$BIN" ]; then
    cargo build --release --quiet --bin gpu-doctor
    BIN=target/release/gpu-doctor
fi
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
echo "making $N reports in $dir ..."
python3 tests/fixtures/fleet.py "$dir/all" --nodes "$N" --outliers >/dev/null
python3 - "$BIN" "$dir" "$N" "$target_s" <<'PY'
import glob, json, os, resource, statistics, subprocess, sys, time
bin_, d, n, target = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
files = sorted(glob.glob(os.path.join(d, "all", "*.json")))
total = sum(os.path.getsize(f) for f in files)
os.makedirs(os.path.join(d, "tenth"))
for f in files[: n // 10]:
    os.symlink(f, os.path.join(d, "tenth", os.path.basename(f)))

def timed(cmd, runs=3):
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t.append(time.perf_counter() - t0)
    return statistics.median(t), p.returncode

def peak_rss_mb(cmd):
    # Peak of the child alone: a fresh Python whose only child is the command.
    code = "import resource,subprocess,sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    out = subprocess.run([sys.executable, "-c", code] + cmd, capture_output=True, text=True, check=True)
    return int(out.stdout.strip()) / 1024

subprocess.run(["cat"] + files, stdout=subprocess.DEVNULL)  # warm the page cache
cat_s, _ = timed(["sh", "-c", f"cat {os.path.join(d, 'all')}/*.json > /dev/null"])
ours_s, rc = timed([bin_, "fleet", os.path.join(d, "all"), "--json"])
if rc != 1:
    sys.exit(f"FAIL: fleet should flag the three planted nodes (exit 1), exit {rc}")
flagged = json.loads(subprocess.run([bin_, "fleet", os.path.join(d, "all"), "--json"], capture_output=True).stdout)["flagged"]
names = sorted(f["node"] for f in flagged)
if names != ["node-017", "node-033", "node-050"]:
    sys.exit(f"FAIL: flagged {names}")

def python_reference():
    t0 = time.perf_counter()
    kept = []
    for f in files:
        with open(f) as fh:
            r = json.load(fh)
        subs = r.get("reports") or [r]
        kept.append((r["host"]["hostname"], {f"{s['scenario']}/{k}": m["value"] for s in subs for k, m in s.get("metrics", {}).items()}))
    return time.perf_counter() - t0
py_s = python_reference()

mb = total / 1e6
print(f"{n} reports, {mb:,.0f} MB (page cache warm)")
print(f"gpu-doctor fleet : {ours_s:6.2f} s  {n / ours_s:8,.0f} reports/s  {mb / ours_s:7,.0f} MB/s  (median of 3, exit {rc}, flagged {names})")
print(f"cat (I/O floor)  : {cat_s:6.2f} s  {mb / cat_s:7,.0f} MB/s   -> fleet = {ours_s / cat_s:.1f} x reading the bytes")
print(f"python json.load : {py_s:6.2f} s  {mb / py_s:7,.0f} MB/s   -> fleet = {py_s / ours_s:.1f} x faster than the plain reader")
tenth = peak_rss_mb([bin_, "fleet", os.path.join(d, "tenth"), "--json"])
whole = peak_rss_mb([bin_, "fleet", os.path.join(d, "all"), "--json"])
print(f"peak memory      : {tenth:.0f} MB for {n // 10} reports, {whole:.0f} MB for {n} ({mb:,.0f} MB of reports)")
ok = ours_s < target
print(f"target: {n} reports in under {target:.0f} s: {ours_s / target:.2f} x the target {'(ok)' if ok else '(TOO SLOW)'}")
sys.exit(0 if ok else 1)
PY
