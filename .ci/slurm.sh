#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the --slurm test: `bash .ci/slurm.sh start` installs
# slurm-wlm and munge with apt-get where sbatch is missing (root only), writes a config for this
# host's CPUs and starts munged, slurmctld and slurmd; `bash .ci/slurm.sh stop` stops what start started (a cluster
# that already answers is used as it is).
set -euo pipefail
ETC=/etc/slurm; STATE=/var/spool/slurm-ci
MARK=/run/ddpg-ci-slurm  # set by start: stop stops only a cluster this script started
if [ "${1:-}" = stop ]; then
  [ -f "$MARK" ] || exit 0
  for d in slurmd slurmctld munged; do pkill -x "$d" 2>/dev/null || true; done
  rm -f "$MARK"; exit 0
fi
if [ ! -f "$MARK" ] && command -v sinfo >/dev/null && sinfo -h -o %T 2>/dev/null | grep -q .; then
  echo "slurm: a cluster answers already ($(sinfo -V)); using it, its config untouched"; exit 0
fi
if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null; }
fi
HOST=$(hostname -s)
mkdir -p "$ETC" "$STATE/ctld" "$STATE/d" /var/log/slurm /etc/munge /run/munge /var/lib/munge /var/log/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
fi
chmod 400 /etc/munge/munge.key
chown -R root:root /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
cat > "$ETC/slurm.conf" <<CONF
ClusterName=ci
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
JobRequeue=1
ReturnToService=2
MpiDefault=none
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$HOST CPUs=$(nproc) State=UNKNOWN
PartitionName=ci Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
touch "$MARK"
pgrep -x munged >/dev/null || munged --force
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 60); do  # up when the node is idle
  sinfo -h -o %T 2>/dev/null | grep -q idle && { echo "slurm: $(sinfo -V), node $HOST idle"; exit 0; }
  sleep 1
done
echo "slurm did not come up: $(sinfo 2>&1 | tail -1)"; tail -5 /var/log/slurm/slurmctld.log; tail -5 /var/log/slurm/slurmd.log
exit 1
