#!/usr/bin/env bash
# GPU test entry point, run on a machine with an NVIDIA GPU (the device machine):
#   tests/gpu/run.sh [BIN] [OUTDIR]
# Runs the foundation checks and every area script tests/gpu/<area>.sh with the release binary,
# writes all reports to OUTDIR (default $OUT or ./gpu-out), and exits non-zero on any failure.
set -u
BIN=${1:-target/release/gpu-doctor}
OUTDIR=${2:-${OUT:-gpu-out}}
mkdir -p "$OUTDIR"
export NCCL_NVLS_ENABLE=0
here=$(cd "$(dirname "$0")" && pwd)
failed=()
for script in "$here"/foundation.sh "$here"/*.sh; do
  name=$(basename "$script" .sh)
  [ "$name" = run ] && continue
  case " ${done_:-} " in *" $name "*) continue ;; esac
  done_="${done_:-} $name"
  if [ -n "${GPU_TESTS:-}" ] && ! grep -qw "$name" <<<"$GPU_TESTS"; then continue; fi
  echo "=== $name"
  start=$SECONDS
  if bash "$script" "$BIN" "$OUTDIR"; then
    echo "=== $name: PASS ($((SECONDS - start)) s)"
  else
    echo "=== $name: FAIL"
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "GPU tests FAILED: ${failed[*]}"
  exit 1
fi
echo "GPU tests passed"
