#!/bin/sh
# Slurm Prolog (deploy/slurm/gpu-doctor.conf): a non-zero exit drains the node and requeues the
# job. The one-line verdict goes to the system log and the report to GPU_DOCTOR_REPORT_DIR.
# GPU_DOCTOR_ON_ERROR (drain or pass) decides what a node where the check cannot run does.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
config=${GPU_DOCTOR_CONFIG:-/etc/default/gpu-doctor}
# shellcheck source=gpu-doctor.env
[ -r "$config" ] && . "$config"
: "${GPU_DOCTOR:=gpu-doctor}"
# The driver's JIT cache for gpu-doctor's kernels (slurmd gives no HOME to cache under).
: "${CUDA_CACHE_PATH:=/var/cache/gpu-doctor}"
export CUDA_CACHE_PATH
: "${GPU_DOCTOR_REPORT_DIR:=/var/lib/gpu-doctor}"
: "${GPU_DOCTOR_ON_ERROR:=drain}"
: "${GPU_DOCTOR_PHASE:=prolog}"
mkdir -p "$GPU_DOCTOR_REPORT_DIR" 2>/dev/null
expect=${GPU_DOCTOR_EXPECT_GPUS:+--expect-gpus $GPU_DOCTOR_EXPECT_GPUS}
# shellcheck disable=SC2086
line=$("$GPU_DOCTOR" --quiet $GPU_DOCTOR_GLOBAL health --format npd --on-error "$GPU_DOCTOR_ON_ERROR" \
  $expect -o "$GPU_DOCTOR_REPORT_DIR/$GPU_DOCTOR_PHASE.json" 2>/dev/null)
rc=$?
command -v logger >/dev/null && logger -t gpu-doctor "$GPU_DOCTOR_PHASE job ${SLURM_JOB_ID:-?}: $line"
printf '%s\n' "$line"
exit $rc
