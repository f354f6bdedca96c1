#!/usr/bin/env bash
# Wall time of `make demo`'s pipeline with two seeds (`python -m asc_kd.pipeline --seeds 2`: the
# demo's synthetic scenes, two teachers, the logits, four systems x 2 seeds, int8, tables) with each
# executor, one after another on this machine: inline, local --max-parallel 2, slurm (needs
# start.sh's cluster). Each run starts from nothing in its own folder under $1 (default a new temp
# dir): it makes its own scenes and cache, as a first `make demo` does. With --write-docs, the
# table between the executor-times markers of docs/pipeline.md is rewritten with the figures and
# this machine's line. Run it on a quiet machine: the figures are only as good as the load.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
WRITE_DOCS=0
if [ "${1:-}" = --write-docs ]; then
    WRITE_DOCS=1
    shift
fi
WORK=$(realpath -m "${1:-$(mktemp -d)}")
PYTHON=$(realpath -ms "$(command -v "${PYTHON:-python}")")  # -s: a venv's python is a link
export WANDB_MODE=offline
mkdir -p "$WORK"
ROWS=""
for executor in inline "local --max-parallel 2" slurm; do
    name=${executor%% *}
    rm -rf "${WORK:?}/$name"
    mkdir -p "$WORK/$name"
    start=$(date +%s%N)
    # shellcheck disable=SC2086
    (cd "$WORK/$name" && $PYTHON -m asc_kd.pipeline --seeds 2 --quiet --executor $executor \
        --data.cache_dir cache --out pipeline >"$WORK/$name.log" 2>&1) || {
        echo "time_executors.sh: --executor $executor failed, see $WORK/$name.log" >&2
        exit 1
    }
    seconds=$((($(date +%s%N) - start) / 1000000000))
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    printf '%-34s %5d s  (load average after: %s)\n' "--executor $executor" "$seconds" "$load"
    ROWS+="| \`--executor $executor\` | $((seconds / 60)) min $((seconds % 60)) s | $load |"$'\n'
done
if [ "$WRITE_DOCS" = 1 ]; then
    MACHINE="$(date +%F), $(nproc) cores of $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
    TABLE="| executor | wall time | load average after (1, 5, 15 min) |"$'\n'"|---|---|---|"$'\n'"$ROWS"
    TABLE+=$'\n'"($MACHINE; from \`tests/cluster/time_executors.sh --write-docs\`.)"
    TABLE="$TABLE" "$PYTHON" - "$REPO/docs/pipeline.md" <<'PY'
import os, re, sys
path = sys.argv[1]
text = open(path).read()
start, end = "<!-- executor-times:start -->", "<!-- executor-times:end -->"
if start not in text or end not in text:
    sys.exit(f"time_executors.sh: {path} has no {start} ... {end} block to rewrite")
new = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: f"{start}\n{os.environ['TABLE']}\n{end}", text, flags=re.S)
open(path, "w").write(new)
PY
    echo "time_executors.sh: rewrote the executor table of docs/pipeline.md"
fi
