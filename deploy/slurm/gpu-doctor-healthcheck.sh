#!/bin/sh
# Slurm HealthCheckProgram (deploy/slurm/gpu-doctor.conf). slurmd runs it as root with only
# SLURMD_NODENAME set and ignores its exit code: `health --drain` drains this node itself when
# it is unhealthy (scontrol update … State=DRAIN Reason="gpu-doctor: CODE gpuN …").
# Settings: /etc/default/gpu-doctor (deploy/slurm/gpu-doctor.env), or GPU_DOCTOR_CONFIG.
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
mkdir -p "$GPU_DOCTOR_REPORT_DIR" 2>/dev/null
expect=${GPU_DOCTOR_EXPECT_GPUS:+--expect-gpus $GPU_DOCTOR_EXPECT_GPUS}
# GPU_DOCTOR_GLOBAL: flags before the command (tests replay a recorded machine with it).
# shellcheck disable=SC2086
exec "$GPU_DOCTOR" --quiet $GPU_DOCTOR_GLOBAL health --drain $expect $GPU_DOCTOR_HEALTH_ARGS \
  -o "$GPU_DOCTOR_REPORT_DIR/healthcheck.json" >/dev/null
