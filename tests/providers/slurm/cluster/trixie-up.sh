#!/usr/bin/env bash
# Slurm 24.11 (Debian 13 "trixie" packages) for runctl's REST tests of the current slurmrestd
# versions (OpenAPI v0.0.40, v0.0.41, v0.0.42), in a debootstrap chroot on a Debian 12 host.
#
# Starts munged, slurmctld, one slurmd (two fake H100s: gres gpu:h100:2) and slurmrestd (JWT on
# 127.0.0.1:8820) inside the chroot, beside up.sh's 22.05 cluster (own ports, munged and keys),
# and writes $DIR/cluster.env. The first run builds the chroot (debootstrap about 2 min, apt in
# it about 35 s, 430 MB; needs deb.debian.org); later runs reuse it and are up in seconds.
# Re-running first stops what an earlier run started (pid files). Stop with trixie-down.sh.
#
#   RUNCTL_SLURM_TRIXIE_DIR=/tmp/runctl-slurm-trixie   cluster.env, build logs; the chroot is root/
#   MIRROR=http://deb.debian.org/debian
#
# 24.11 needs two settings here: cgroup.conf CgroupPlugin=disabled (no cgroup filesystem: slurmd
# dies without it) and slurmrestd -s openapi/slurmctld (without slurmdbd the default plugin set
# fails to load). Job output paths are chroot paths: /jobs in the cluster is $ROOT/jobs here.
set -euo pipefail
DIR=${RUNCTL_SLURM_TRIXIE_DIR:-/tmp/runctl-slurm-trixie}
ROOT=$DIR/root
MIRROR=${MIRROR:-http://deb.debian.org/debian}
CTLD_PORT=8817 SLURMD_PORT=8818 REST_PORT=8820
T0=$(date +%s%N)
say() { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); printf '[slurm-trixie %3d.%03ds] %s\n' $((ms/1000)) $((ms%1000)) "$*"; }
wait_for() { local end=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -ge "$end" ] && return 1; sleep 0.2; done; }
stop_pid() { local f=$1 p; [ -s "$f" ] || return 0; p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then kill "$p"; for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; fi
  rm -f "$f"; }
C() { chroot "$ROOT" "$@"; }
[ "$(id -u)" = 0 ] || { echo "trixie-up.sh: needs root" >&2; exit 1; }
mkdir -p "$DIR"

# ------------------------------------------------------------------------------- the chroot, once
if [ ! -x "$ROOT/usr/sbin/slurmctld" ]; then
  if ! command -v debootstrap >/dev/null; then
    say "apt-get install debootstrap"; apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
    say "debootstrap trixie (log: $DIR/debootstrap.log)"
    debootstrap --variant=minbase trixie "$ROOT" "$MIRROR" > "$DIR/debootstrap.log" 2>&1
  fi
  cp /etc/resolv.conf "$ROOT/etc/"
  mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
  say "apt-get install slurm in the chroot (log: $DIR/apt.log)"
  C env DEBIAN_FRONTEND=noninteractive apt-get update -qq > "$DIR/apt.log" 2>&1
  C env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    munge slurmctld slurmd slurm-client slurmrestd slurm-wlm-jwt-plugin slurm-wlm-basic-plugins >> "$DIR/apt.log" 2>&1
fi
say "chroot: $(C slurmd -V)"

# ------------------------------------------------------------------------------- stop a previous run
for f in run/slurmrestd.pid run/slurmd.pid run/slurmctld.pid run/munge/munged.pid; do stop_pid "$ROOT/$f"; done
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"

# ------------------------------------------------------------------------------- config (chroot paths)
H=$(hostname -s)
mkdir -p "$ROOT"/run/munge "$ROOT"/var/lib/slurm/slurmctld "$ROOT"/var/lib/slurm/slurmd "$ROOT"/var/log/slurm "$ROOT"/jobs "$ROOT"/fakedev
chmod 1777 "$ROOT/jobs"
for i in 0 1; do [ -c "$ROOT/fakedev/nvidia$i" ] || mknod "$ROOT/fakedev/nvidia$i" c 1 3; done
[ -s "$ROOT/etc/munge/munge.key" ] || dd if=/dev/urandom of="$ROOT/etc/munge/munge.key" bs=1024 count=1 status=none
C chown munge:munge /etc/munge/munge.key /run/munge
chmod 400 "$ROOT/etc/munge/munge.key"
[ -s "$ROOT/var/lib/slurm/slurmctld/jwt_hs256.key" ] || dd if=/dev/urandom of="$ROOT/var/lib/slurm/slurmctld/jwt_hs256.key" bs=32 count=1 status=none
chmod 600 "$ROOT/var/lib/slurm/slurmctld/jwt_hs256.key"
cat > "$ROOT/etc/slurm/slurm.conf" <<CONF
ClusterName=trixie
SlurmctldHost=$H(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=/var/lib/slurm/slurmctld/jwt_hs256.key
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=600
KillWait=2
GresTypes=gpu
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName=$H NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=4000 Gres=gpu:h100:2 State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE OverSubscribe=FORCE:4 State=UP
CONF
echo "NodeName=$H Name=gpu Type=h100 File=/fakedev/nvidia[0-1]" > "$ROOT/etc/slurm/gres.conf"
echo "CgroupPlugin=disabled" > "$ROOT/etc/slurm/cgroup.conf"

# ------------------------------------------------------------------------------- daemons
say "start munged, slurmctld ($CTLD_PORT), slurmd ($SLURMD_PORT)"
C runuser -u munge -- /usr/sbin/munged
wait_for 10 C bash -c 'munge -n | unmunge'
C slurmctld
wait_for 30 C scontrol ping
C slurmd
wait_for 30 bash -c "chroot '$ROOT' sinfo -h -o %t | grep -qE '^(idle|mix|alloc)'"
say "node: $(C sinfo -h -o '%N %G %t')"
say "start slurmrestd (JWT on 127.0.0.1:$REST_PORT)"
C bash -c "SLURM_JWT=daemon setsid slurmrestd -u slurm -a rest_auth/jwt -s openapi/slurmctld 127.0.0.1:$REST_PORT \
  > /var/log/slurm/slurmrestd.log 2>&1 < /dev/null & echo \$! > /run/slurmrestd.pid"
TOKEN=$(C scontrol token username=slurm lifespan=172800 | sed 's/^SLURM_JWT=//')
wait_for 20 bash -c "echo > /dev/tcp/127.0.0.1/$REST_PORT"
cat > "$DIR/cluster.env" <<CONF
SLURM_VERSION=$(C slurmd -V | cut -d' ' -f2)
SLURMRESTD_URL=http://127.0.0.1:$REST_PORT
SLURM_USER_NAME=slurm
SLURM_JWT=$TOKEN
SLURM_JOB_DIR=/jobs
SLURM_JOB_DIR_HERE=$ROOT/jobs
CONF
chmod 600 "$DIR/cluster.env"
say "up (tests read $DIR/cluster.env)"
