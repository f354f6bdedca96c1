#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the tests of `--executor slurm` (run as root).
# Installs nothing: CI runs `apt-get install -y slurmctld slurmd munge slurm-client` first.
# Writes /etc/slurm/slurm.conf (this machine's CPUs and memory, one default partition), keeps
# state, spool and logs under $ASC_KD_SLURM_DIR (default /tmp/asc_kd-slurm), starts munged,
# slurmctld and slurmd, and waits until `sinfo` shows the node idle. Idempotent: a cluster
# that already answers with this configuration is left running. tests/cluster/stop.sh stops
# what this started.
set -euo pipefail
DIR=${ASC_KD_SLURM_DIR:-/tmp/asc_kd-slurm}
CONF=/etc/slurm/slurm.conf

for command in munged slurmctld slurmd sinfo sbatch; do
    command -v "$command" >/dev/null || {
        echo "start.sh: $command not found; install it: apt-get install -y slurmctld slurmd munge slurm-client" >&2
        exit 1
    }
done
if [ "$(id -u)" != 0 ]; then
    echo "start.sh: run as root (the daemons run as root, SlurmUser=root)" >&2
    exit 1
fi

idle() { sinfo --noheader --responding --states=idle,mixed,allocated -o %N 2>/dev/null | grep -q .; }
running() { [ -f "$DIR/$1.pid" ] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" /etc/slurm
HOST=$(hostname -s)
# The node's hardware as slurmd sees it (CPUs, sockets, cores, threads, RealMemory).
NODE=$(slurmd -C | head -1 | sed "s/^NodeName=[^ ]*/NodeName=$HOST/")
CPUS=$(echo "$NODE" | sed -n 's/.* CPUs=\([0-9]*\).*/\1/p')
MEMORY=$(echo "$NODE" | sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p')
cat >"$CONF.tmp" <<CONF
# Written by asc_kd's tests/cluster/start.sh: a one-node cluster for tests.
ClusterName=asc_kd
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$((MEMORY / CPUS / 2))
# --mem is enforced as on a real cluster: every second a step's memory is read from /proc, and a
# step over its job's --mem is killed and the job ends OUT_OF_MEMORY (no cgroups needed).
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
# A requeued job (time limit, preemption) may start again after cred_expire s (default 120).
AuthInfo=cred_expire=20
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
KillWait=5
MinJobAge=600
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
$NODE State=UNKNOWN
# Two jobs may share a core: tests that submit at the same time (two xdist workers) never wait
# on each other, so the jobs of one pipeline still run side by side.
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:2
CONF
if cmp -s "$CONF.tmp" "$CONF" && idle && running slurmctld && running slurmd; then
    rm "$CONF.tmp"
    echo "start.sh: SLURM already up: $(sinfo --noheader -o '%P %t %c CPUs %m MB' | head -1)"
    exit 0
fi
mv "$CONF.tmp" "$CONF"

# munged, as the munge user, with the key the package made.
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    [ -s /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || /usr/sbin/create-munge-key -f; }
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    su -s /bin/sh munge -c "/usr/sbin/munged --force"
    for _ in $(seq 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
    touch "$DIR/started-munged"
fi

# A restart picks up the configuration just written.
for daemon in slurmd slurmctld; do
    if running "$daemon"; then kill "$(cat "$DIR/$daemon.pid")"; fi
done
for _ in $(seq 50); do running slurmctld || running slurmd || break; sleep 0.2; done
slurmctld
slurmd
scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
for _ in $(seq 120); do
    if idle; then
        echo "start.sh: SLURM up: $(sinfo --noheader -o '%P %t %c CPUs %m MB' | head -1)"
        exit 0
    fi
    sleep 0.5
done
echo "start.sh: the node did not become idle in 60 s; logs in $DIR/log:" >&2
sinfo -R >&2 || true
tail -n 20 "$DIR"/log/*.log >&2 || true
exit 1
