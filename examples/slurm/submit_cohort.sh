#!/usr/bin/env bash
# The whole preprocessing of a cohort on a SLURM cluster, as dependent jobs:
#   1. prepare (tile + Shannon selection): a CPU array of N_PREP tasks;
#   2. train the global and local extractors (train_ddp.sbatch: torchrun, DDP over the node's GPUs);
#   3. extract features: a GPU array of N_EXT tasks.
#
#   COHORT=/data/tcga-lihc N_PREP=16 N_EXT=8 bash examples/slurm/submit_cohort.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${COHORT:?set COHORT}"
prep=$(sbatch --parsable --array=1-"${N_PREP:-16}" --export=ALL "$here/prepare_array.sbatch")
train=$(sbatch --parsable --dependency=afterok:"$prep" --export=ALL "$here/train_ddp.sbatch")
ext=$(sbatch --parsable --array=1-"${N_EXT:-8}" --dependency=afterok:"$train" --export=ALL "$here/extract_array.sbatch")
echo "prepare: $prep  train: $train  extract: $ext"
