#!/bin/sh
# Slurm Epilog: the Prolog's check after the job (a job can leave a GPU broken); a non-zero exit
# drains the node.
GPU_DOCTOR_PHASE=epilog
export GPU_DOCTOR_PHASE
exec "$(dirname "$0")/gpu-doctor-prolog.sh"
