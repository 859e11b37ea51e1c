#!/usr/bin/env bash
# Times `gpu-doctor compare` on two reports with 10,000 findings and 10,000 metrics each
# (the target is under 100 ms, process start and JSON parsing included).
# Usage: bench/compare.sh [N]     (N findings and metrics per report, default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-10000}"
runs=15
target_ms=100

cargo build --release --quiet --bin gpu-doctor --example gen_reports
bin=target/release/gpu-doctor
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
target/release/examples/gen_reports "$dir" "$n"
ls -l "$dir"/*.json | awk '{ printf "  %s %.1f MB\n", $NF, $5 / 1e6 }'

# Warm the page cache, check the result is a regression (exit 1) as generated.
set +e
"$bin" compare "$dir/baseline.json" "$dir/current.json" >/dev/null
rc=$?
set -e
if [ "$rc" -ne 1 ]; then
    echo "FAIL: expected exit 1 (regressions were generated), got $rc" >&2
    exit 1
fi

for fmt in table json markdown junit; do
    times=()
    for _ in $(seq "$runs"); do
        start=$(date +%s%N)
        "$bin" compare "$dir/baseline.json" "$dir/current.json" --format "$fmt" >/dev/null || true
        end=$(date +%s%N)
        times+=($(( (end - start) / 1000 )))
    done
    median_us=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
    awk -v us="$median_us" -v t="$target_ms" -v f="$fmt" -v n="$n" -v r="$runs" 'BEGIN {
        ms = us / 1000
        printf "compare --format %-8s %d findings + %d metrics each: median %.1f ms of %d runs = %.2f x the %d ms target %s\n",
            f, n, n, ms, r, ms / t, t, (ms < t ? "(ok)" : "(TOO SLOW)")
        exit (ms < t ? 0 : 1)
    }'
done
