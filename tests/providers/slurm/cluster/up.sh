#!/usr/bin/env bash
# A real two-node Slurm cluster on this one Debian host, for runctl's Slurm tests.
#
# Starts munged, slurmctld, two slurmd (nodes n1 and n2, two fake H100s each: gres gpu:h100:2),
# slurmrestd twice (JWT over TCP on 127.0.0.1, rest_auth/local on a unix socket) and an sshd on
# 127.0.0.1 with a throwaway key, then writes $DIR/cluster.env, which the tests read.
# Needs root, Debian 12 (Slurm 22.05) or newer, and apt access the first time (about 30-80 s).
# Re-running it first stops what an earlier run started (by pid file, never by name).
# Stop it all with down.sh.
#
#   RUNCTL_SLURM_DIR=/tmp/runctl-slurm   state, keys, fake devices, logs, job output, cluster.env
#   RUNCTL_SLURM_FORCE=1                 overwrite an /etc/slurm/slurm.conf this script did not write
#
# Why /etc/slurm/slurm.conf and not a private SLURM_CONF: the tests drive the cluster through the
# Slurm commands here and over ssh, and a login shell over ssh finds the default config only.
# Facts this relies on (found the hard way, see docs/providers/slurm.md "Testing"):
# - Debian's 22.05 slurmd honours %n in its pid/spool/log paths and a per-node Port=, so several
#   `slurmd -N NAME` run on one host; CPUs=1 per node keeps the two within the host's 2 cores,
#   and OverSubscribe=FORCE lets a few CPU-only test jobs share them.
# - gres/gpu needs real device nodes: character devices with /dev/null's numbers will do.
# - No cgroups here: proctrack/linuxproc, task/none.
# - slurmrestd refuses to run as root (-u slurm); with JWT it must run with SLURM_JWT=daemon,
#   and that instance cannot also serve rest_auth/local, hence a second one on the socket.
set -euo pipefail
DIR=${RUNCTL_SLURM_DIR:-/tmp/runctl-slurm}
CTLD_PORT=7817 N1_PORT=7818 N2_PORT=7819 REST_PORT=7820 SSH_PORT=7822
MARK="# written by runctl tests/providers/slurm/cluster/up.sh"
T0=$(date +%s%N)
say() { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); printf '[slurm-up %3d.%03ds] %s\n' $((ms/1000)) $((ms%1000)) "$*"; }
wait_for() { # wait_for SECONDS CMD...: retry CMD every 0.2 s until it succeeds
  local end=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -ge "$end" ] && return 1; sleep 0.2; done; }
stop_pid() { # stop the process in pid file $1, if it is still the one we started
  local f=$1 p; [ -s "$f" ] || return 0; p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then
    kill "$p"; for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$f"; }

[ "$(id -u)" = 0 ] || { echo "up.sh: needs root (it installs packages and starts daemons)" >&2; exit 1; }

# ------------------------------------------------------------------------------- packages
PKGS=(munge slurmctld slurmd slurm-client slurm-wlm-basic-plugins slurmrestd slurm-wlm-jwt-plugin
      openssh-server openssh-client)
have=$(dpkg-query -W -f='${Status}\n' "${PKGS[@]}" 2>/dev/null | grep -c 'install ok installed' || true)
if [ "$have" -ne "${#PKGS[@]}" ]; then
  say "apt-get update, install ${PKGS[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
fi
say "slurm $(slurmd -V | cut -d' ' -f2)"

# ------------------------------------------------------------------------------- stop a previous run
if [ -e /etc/slurm/slurm.conf ] && ! grep -qF "$MARK" /etc/slurm/slurm.conf && [ "${RUNCTL_SLURM_FORCE:-0}" != 1 ]; then
  echo "up.sh: /etc/slurm/slurm.conf exists and was not written by this script; RUNCTL_SLURM_FORCE=1 overwrites it" >&2
  exit 1
fi
for f in sshd slurmrestd-jwt slurmrestd-local slurmd-n1 slurmd-n2 slurmctld; do stop_pid "$DIR/run/$f.pid"; done
[ -e "$DIR/run/munged.ours" ] && stop_pid /run/munge/munged.pid && rm -f "$DIR/run/munged.ours"

# ------------------------------------------------------------------------------- files
HOST=$(hostname -s)
mkdir -p "$DIR"/{dev,jobs,log,restd,run,spool,state,ssh} /etc/slurm /run/munge /run/sshd
chown slurm:slurm "$DIR/restd"   # slurmrestd runs as slurm and makes its socket there
chmod 1777 "$DIR/jobs"
chmod 755 "$DIR" "$DIR/run"
for i in 0 1 2 3; do [ -c "$DIR/dev/nvidia$i" ] || mknod "$DIR/dev/nvidia$i" c 1 3; done
[ -s "$DIR/state/jwt_hs256.key" ] || dd if=/dev/urandom of="$DIR/state/jwt_hs256.key" bs=32 count=1 status=none
chmod 600 "$DIR/state/jwt_hs256.key"

cat > /etc/slurm/slurm.conf <<CONF
$MARK
ClusterName=runctl
SlurmctldHost=${HOST}(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$DIR/state/jwt_hs256.key
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=600
KillWait=2
GresTypes=gpu
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName=n1 NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$N1_PORT CPUs=1 RealMemory=2000 Gres=gpu:h100:2 State=UNKNOWN
NodeName=n2 NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$N2_PORT CPUs=1 RealMemory=2000 Gres=gpu:h100:2 State=UNKNOWN
PartitionName=gpu Nodes=n[1-2] Default=YES MaxTime=INFINITE OverSubscribe=FORCE:4 State=UP
CONF
cat > /etc/slurm/gres.conf <<CONF
$MARK
NodeName=n1 Name=gpu Type=h100 File=$DIR/dev/nvidia[0-1]
NodeName=n2 Name=gpu Type=h100 File=$DIR/dev/nvidia[2-3]
CONF

# ------------------------------------------------------------------------------- munged
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "munged already running"
else
  say "start munged"
  [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown munge:munge /etc/munge/munge.key /run/munge; chmod 400 /etc/munge/munge.key; chmod 755 /run/munge
  runuser -u munge -- /usr/sbin/munged     # daemonizes; pid in /run/munge/munged.pid
  touch "$DIR/run/munged.ours"              # down.sh stops munged only if this script started it
  wait_for 10 bash -c 'munge -n | unmunge'
fi

# ------------------------------------------------------------------------------- slurm
say "start slurmctld (port $CTLD_PORT), slurmd n1 ($N1_PORT), n2 ($N2_PORT)"
slurmctld
wait_for 30 scontrol ping
slurmd -N n1
slurmd -N n2
nodes_up() { [ "$(sinfo -h -N -o %t | grep -cE '^(idle|mix|alloc)')" -eq 2 ]; }
wait_for 30 nodes_up || { scontrol update nodename='n[1-2]' state=resume 2>/dev/null || true; wait_for 15 nodes_up; }
say "nodes: $(sinfo -h -N -o '%N %G %t' | tr '\n' ' ')"

say "start slurmrestd (JWT on 127.0.0.1:$REST_PORT, local auth on $DIR/restd/slurmrestd.socket)"
rm -f "$DIR/restd/slurmrestd.socket"
SLURM_JWT=daemon setsid slurmrestd -u slurm -a rest_auth/jwt -s openapi/v0.0.38 "127.0.0.1:$REST_PORT" \
  > "$DIR/log/slurmrestd-jwt.log" 2>&1 < /dev/null & echo $! > "$DIR/run/slurmrestd-jwt.pid"
setsid slurmrestd -u slurm -a rest_auth/local -s openapi/v0.0.38 "unix:$DIR/restd/slurmrestd.socket" \
  > "$DIR/log/slurmrestd-local.log" 2>&1 < /dev/null & echo $! > "$DIR/run/slurmrestd-local.pid"
TOKEN=$(scontrol token username=slurm lifespan=172800 | sed 's/^SLURM_JWT=//')
wait_for 20 bash -c "echo > /dev/tcp/127.0.0.1/$REST_PORT"
wait_for 20 test -S "$DIR/restd/slurmrestd.socket"
chmod 666 "$DIR/restd/slurmrestd.socket" 2>/dev/null || true

# ------------------------------------------------------------------------------- sshd
say "start sshd on 127.0.0.1:$SSH_PORT"
S=$DIR/ssh
[ -s "$S/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$S/host_ed25519"
[ -s "$S/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$S/client_ed25519"
cp "$S/client_ed25519.pub" "$S/authorized_keys"; chmod 600 "$S/authorized_keys"
cat > "$S/sshd_config" <<CONF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $S/host_ed25519
PidFile $DIR/run/sshd.pid
AuthorizedKeysFile $S/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxSessions 50
MaxStartups 50:30:100
CONF
echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$S/host_ed25519.pub")" > "$S/known_hosts"
cat > "$S/config" <<CONF
Host runctl-slurm-test
  HostName 127.0.0.1
  Port $SSH_PORT
  User $(id -un)
  IdentityFile $S/client_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $S/known_hosts
  StrictHostKeyChecking yes
CONF
/usr/sbin/sshd -f "$S/sshd_config" -E "$DIR/log/sshd.log"
wait_for 10 ssh -F "$S/config" -o BatchMode=yes runctl-slurm-test true

cat > "$DIR/cluster.env" <<CONF
SLURM_VERSION=$(slurmd -V | cut -d' ' -f2)
SLURMRESTD_URL=http://127.0.0.1:$REST_PORT
SLURMRESTD_SOCKET=$DIR/restd/slurmrestd.socket
SLURM_USER_NAME=slurm
SLURM_JWT=$TOKEN
SLURM_JOB_DIR=$DIR/jobs
SLURM_SSH_CONFIG=$S/config
SLURM_SSH_HOST=runctl-slurm-test
CONF
chmod 600 "$DIR/cluster.env"

# ------------------------------------------------------------------------------- smoke test
JID=$(cd "$DIR/jobs" && sbatch --parsable -N 2 --ntasks-per-node=1 --gres=gpu:h100:1 -o "$DIR/jobs/smoke-%j.out" \
  --wrap 'srun bash -c "echo task \$SLURM_NODEID on \$SLURMD_NODENAME"')
wait_for 60 bash -c "scontrol show job $JID | grep -q 'JobState=COMPLETED'" || { scontrol show job "$JID"; exit 1; }
say "smoke: 2-node job $JID COMPLETED: $(sort "$DIR/jobs/smoke-$JID.out" | tr '\n' ' ')"
say "up (tests read $DIR/cluster.env)"
