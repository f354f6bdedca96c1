#!/usr/bin/env bash
# Wall time of the tests' tiny pipeline (tests/fit_helpers.py: pipeline_argv) with each executor,
# one after another on this machine: inline, local --max-parallel 2, slurm (needs start.sh's
# cluster). Each run has its own empty cache and output folder under $1 (default a new temp dir).
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${1:-$(mktemp -d)}
PYTHON=${PYTHON:-python}
export WANDB_MODE=offline
[ -d "$WORK/tiny" ] || $PYTHON -m asc_kd.synthetic "$WORK/tiny" \
    --train-segments-per-scene 8 --test-segments-per-scene 2 --other-device-fraction 0.25 >/dev/null
for executor in inline "local --max-parallel 2" slurm; do
    name=${executor%% *}
    rm -rf "$WORK/$name" "$WORK/cache-$name"
    start=$(date +%s%N)
    # shellcheck disable=SC2086
    $PYTHON -m asc_kd.pipeline --data.root "$WORK/tiny" --data.cache_dir "$WORK/cache-$name" \
        --data.batch_size 16 --out "$WORK/$name" \
        --teachers tests/conf/teacher.yaml tests/conf/teacher_small.yaml --ensemble teacher \
        --systems system1 --student-seeds 2 --max-epochs 1 --quiet --executor $executor \
        -- --trainer.limit_train_batches 2 --trainer.limit_val_batches 1 \
        --trainer.enable_model_summary false >"$WORK/$name.log" 2>&1
    tenths=$((($(date +%s%N) - start) / 100000000))
    printf '%-34s %4d.%d s  (load average after: %s)\n' "--executor $executor" \
        $((tenths / 10)) $((tenths % 10)) "$(cut -d' ' -f1-3 /proc/loadavg)"
done
