#!/usr/bin/env bash
# Stops the daemons tests/cluster/start.sh started (slurmd, slurmctld, and munged if it started
# it), by their recorded pids; leaves /etc/slurm/slurm.conf and the state folder for inspection.
set -uo pipefail
DIR=${ASC_KD_SLURM_DIR:-/tmp/asc_kd-slurm}
for daemon in slurmd slurmctld; do
    if [ -f "$DIR/$daemon.pid" ] && kill -0 "$(cat "$DIR/$daemon.pid")" 2>/dev/null; then
        kill "$(cat "$DIR/$daemon.pid")"
    fi
done
if [ -f "$DIR/started-munged" ]; then
    /usr/sbin/munged --stop >/dev/null 2>&1 || true
    rm -f "$DIR/started-munged"
fi
for _ in $(seq 50); do
    pgrep -F "$DIR/slurmctld.pid" >/dev/null 2>&1 || pgrep -F "$DIR/slurmd.pid" >/dev/null 2>&1 || exit 0
    sleep 0.2
done
echo "stop.sh: a SLURM daemon is still running; see $DIR/*.pid" >&2
exit 1
