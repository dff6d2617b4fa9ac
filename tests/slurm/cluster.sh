#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for the tests marked `slurm` (tests/slurm/).
#
#   tests/slurm/cluster.sh up                  # munged, MariaDB + slurmdbd (so sacct works), slurmctld, slurmd
#   tests/slurm/cluster.sh up --no-accounting  # the same without accounting (sacct answers "disabled")
#   tests/slurm/cluster.sh status              # one line: the node's state, accounting on or off
#   tests/slurm/cluster.sh overrides           # the settings a sweep takes to run on it (one job per CPU)
#   tests/slurm/cluster.sh down                # stops every daemon it started
#
# Installs Debian's slurm-wlm, munge, slurmdbd and mariadb-server where they are missing (needs root and
# apt-get). The node is sized from nproc and the memory, one partition `debug`. Everything the daemons
# keep lives under $ALIGNSEARCH_SLURM_STATE (default /var/tmp/alignsearch-slurm); the configuration is
# written to /etc/slurm, which is refused when a slurm.conf this script did not write is there.
# Exits non-zero with one line when no cluster can be brought up.
set -euo pipefail

STATE=${ALIGNSEARCH_SLURM_STATE:-/var/tmp/alignsearch-slurm}
CONF_DIR=/etc/slurm
MARK="# written by alignsearch tests/slurm/cluster.sh"
HOST=$(hostname -s)
DB_PASS=alignsearch-test

die() { echo "slurm test cluster: $*" >&2; exit 1; }

install_missing() {
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurm-wlm)
  command -v munged >/dev/null || missing+=(munge)
  command -v slurmdbd >/dev/null || missing+=(slurmdbd)
  command -v mariadbd >/dev/null || command -v mysqld >/dev/null || missing+=(mariadb-server)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "needs ${missing[*]} installed, or root to install them"
  command -v apt-get >/dev/null || die "needs ${missing[*]} (no apt-get here to install them)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    || die "apt-get could not install ${missing[*]}"
}

start_munge() {
  pgrep -x munged >/dev/null && return 0
  [ -s /etc/munge/munge.key ] || { mungekey --create >/dev/null 2>&1 || create-munge-key -f >/dev/null; }
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge; chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged || die "munged did not start"
}

start_database() {
  if ! mysqladmin ping --silent >/dev/null 2>&1; then
    mkdir -p /run/mysqld; chown mysql:mysql /run/mysqld
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null 2>&1
    (mysqld_safe --user=mysql >"$STATE/mariadb.log" 2>&1 &)
    for _ in $(seq 60); do mysqladmin ping --silent >/dev/null 2>&1 && break; sleep 0.5; done
    mysqladmin ping --silent >/dev/null 2>&1 || die "MariaDB did not start (see $STATE/mariadb.log)"
  fi
  mysql -u root <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL
}

write_config() {
  local accounting=$1
  if [ -f "$CONF_DIR/slurm.conf" ] && ! grep -qF "$MARK" "$CONF_DIR/slurm.conf"; then
    die "$CONF_DIR/slurm.conf exists and was not written by this script: not touching it"
  fi
  mkdir -p "$CONF_DIR" "$STATE"/{ctld,slurmd,log}
  local cpus mem_mb
  cpus=$(OMP_NUM_THREADS= OMP_THREAD_LIMIT= nproc)  # nproc counts OMP_NUM_THREADS: not the CPUs
  mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  local storage="accounting_storage/none"
  [ "$accounting" = on ] && storage="accounting_storage/slurmdbd"
  cat >"$CONF_DIR/slurm.conf" <<CONF
$MARK
ClusterName=alignsearch
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=$storage
AccountingStorageHost=$HOST
JobCompType=jobcomp/none
ReturnToService=2
AuthInfo=cred_expire=10
SchedulerParameters=sched_interval=1
MinJobAge=300
KillWait=30
NodeName=$HOST CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
  cat >"$CONF_DIR/slurmdbd.conf" <<CONF
$MARK
AuthType=auth/munge
DbdHost=$HOST
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
CONF
  chmod 600 "$CONF_DIR/slurmdbd.conf"
  echo "$accounting" >"$STATE/accounting"
}

running() {  # whether any of the named daemons runs
  for daemon in "$@"; do pgrep -x "$daemon" >/dev/null && return 0; done
  return 1
}

stop_slurm() {
  for daemon in slurmd slurmctld slurmdbd; do pkill -x "$daemon" 2>/dev/null || true; done
  for _ in $(seq 40); do running slurmd slurmctld slurmdbd || return 0; sleep 0.25; done
  for daemon in slurmd slurmctld slurmdbd; do pkill -9 -x "$daemon" 2>/dev/null || true; done
}

wait_idle() {
  for _ in $(seq 120); do
    state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
    case "$state" in idle*|mixed*|allocated*) return 0 ;; esac
    sleep 0.5
  done
  die "the node did not become idle (sinfo says '${state:-nothing}'; see $STATE/log/)"
}

up() {
  local accounting=on
  [ "${1:-}" = "--no-accounting" ] && accounting=off
  install_missing
  mkdir -p "$STATE"
  stop_slurm
  write_config "$accounting"
  start_munge
  if [ "$accounting" = on ]; then
    start_database
    slurmdbd || die "slurmdbd did not start (see $STATE/log/slurmdbd.log)"
    for _ in $(seq 40); do sacctmgr -i list cluster >/dev/null 2>&1 && break; sleep 0.25; done
    sacctmgr -i add cluster alignsearch >/dev/null 2>&1 || true
  fi
  slurmctld || die "slurmctld did not start (see $STATE/log/slurmctld.log)"
  slurmd || die "slurmd did not start (see $STATE/log/slurmd.log)"
  wait_idle
  scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
  status
}

status() {
  pgrep -x slurmctld >/dev/null || die "not running"
  echo "slurm test cluster: node $HOST $(sinfo -h -n "$HOST" -o '%T, %c CPUs, %m MB'), accounting $(cat "$STATE/accounting" 2>/dev/null || echo unknown)"
}

down() {
  stop_slurm
  if [ -f "$STATE/mariadb.log" ]; then mysqladmin shutdown 2>/dev/null || true; fi
  pkill -x munged 2>/dev/null || true
  echo "slurm test cluster: stopped"
}

overrides() {  # what a sweep adds to run on this cluster: no GPU, one CPU and 2 GB per job
  echo "hardware=slurm hydra.launcher.partition=debug hydra.launcher.gpus_per_node=0 hydra.launcher.cpus_per_task=1 hydra.launcher.mem_gb=2"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  overrides) overrides ;;
  status) status ;;
  down) down ;;
  *) echo "usage: $0 up [--no-accounting] | status | overrides | down" >&2; exit 2 ;;
esac
