#!/usr/bin/env bash
# Recreate the world model's training data on the real emulator (several hundred thousand frames).
# Resumable: re-running skips episodes already written. Usage: bash scripts/collect_training_set.sh [OUT] [SCALE]
# SCALE multiplies every step budget (1.0 = ~230k training frames + ~20k frames of held-out levels).
set -euo pipefail
OUT=${1:-dataset_files/smb}
SCALE=${2:-1.0}
W=${WORKERS:-2}
TRAIN_LEVELS="[1-1,1-2,1-3,1-4,2-1,2-2,2-3,4-1,5-1,6-1,7-1,7-2,8-1]"   # ground, underground, castle, water
HELDOUT_LEVELS="[3-1,4-2]"                                         # never trained on
steps() { python -c "print(int($1 * $SCALE))"; }
c() { python src/collect.py max_steps=1500 workers=$W "$@"; }
c agent=scripted agent.explore=0.1 level=$TRAIN_LEVELS total_steps=$(steps 100000) out_dir=$OUT/train seed=1
c agent=balanced level=$TRAIN_LEVELS total_steps=$(steps 70000) out_dir=$OUT/train seed=2
c agent=scripted agent.explore=0.3 level=$TRAIN_LEVELS total_steps=$(steps 40000) out_dir=$OUT/train seed=3
c agent=random level=$TRAIN_LEVELS total_steps=$(steps 20000) out_dir=$OUT/train seed=4
c agent=scripted agent.explore=0.1 level=$HELDOUT_LEVELS total_steps=$(steps 12000) out_dir=$OUT/heldout_levels seed=5
c agent=balanced level=$HELDOUT_LEVELS total_steps=$(steps 8000) out_dir=$OUT/heldout_levels seed=6
