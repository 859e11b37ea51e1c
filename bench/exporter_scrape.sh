#!/usr/bin/env bash
# Scrape cost of `gpu-doctor exporter` on this machine: p50/p99 of N (default 1,000) HTTP scrapes
# of /metrics, as Prometheus asks (OpenMetrics), next to the cost of the NVML reads alone (every
# GPU read once, in parallel: the floor) and of a whole scrape without HTTP, both from
# `exporter --bench-reads N` (NVML initialised once, as in the server).
# Usage: bench/exporter_scrape.sh [BIN] [OUTDIR]
#   SNAPSHOT=box.nvml.json replays a recorded machine instead (no GPU needed; not a real cost).
#   OUTDIR gets exporter-scrape-bench.json.
set -eu
BIN=${1:-target/release/gpu-doctor}
OUTDIR=${2:-}
N=${N:-1000}
pre=()
if [ -n "${SNAPSHOT:-}" ]; then pre=(--replay "$SNAPSHOT"); fi

floor=$("$BIN" "${pre[@]}" exporter --bench-reads "$N")

err=$(mktemp)
"$BIN" "${pre[@]}" exporter --listen 127.0.0.1:0 2>"$err" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$err"' EXIT
addr=
for _ in $(seq 100); do
  addr=$(sed -n 's#.*serving http://\([0-9.:]*\)/metrics.*#\1#p' "$err")
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { echo "the exporter did not start: $(cat "$err")" >&2; exit 1; }

python3 - "$addr" "$N" "$floor" "$OUTDIR" <<'PY'
import json, os, socket, sys, time
addr, n, floor, outdir = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
host, port = addr.rsplit(":", 1)
req = (f"GET /metrics HTTP/1.1\r\nHost: {addr}\r\n"
       "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n\r\n").encode()
def scrape():
    with socket.create_connection((host, int(port))) as s:
        s.sendall(req)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    body = b"".join(chunks)
    assert body.startswith(b"HTTP/1.1 200"), body[:80]
    return len(body)
size = scrape()  # warm-up
t = []
for _ in range(n):
    t0 = time.perf_counter(); scrape(); t.append((time.perf_counter() - t0) * 1e3)
t.sort()
pct = lambda q: t[round((len(t) - 1) * q)]
http = {"p50": pct(0.5), "p99": pct(0.99), "max": t[-1]}
reads, inproc = floor["nvml_reads_ms"], floor["scrape_in_process_ms"]
print(f"gpu-doctor exporter, {floor['gpus']} GPU(s), {n} scrapes, {size} bytes each")
print(f"  NVML reads alone (floor)  : p50 {reads['p50']:.3f} ms  p99 {reads['p99']:.3f} ms")
print(f"  scrape in process         : p50 {inproc['p50']:.3f} ms  p99 {inproc['p99']:.3f} ms")
print(f"  HTTP scrape (OpenMetrics) : p50 {http['p50']:.3f} ms  p99 {http['p99']:.3f} ms")
print(f"  ratio HTTP/floor          : p50 {http['p50'] / reads['p50']:.2f}  p99 {http['p99'] / reads['p99']:.2f}")
if outdir:
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "exporter-scrape-bench.json"), "w") as f:
        json.dump({"gpus": floor["gpus"], "n": n, "bytes": size, "nvml_reads_ms": reads,
                   "scrape_in_process_ms": inproc, "http_scrape_ms": http,
                   "snapshot": os.environ.get("SNAPSHOT") or None}, f, indent=1)
PY
