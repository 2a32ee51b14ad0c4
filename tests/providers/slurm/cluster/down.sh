#!/usr/bin/env bash
# Stop what up.sh started, by pid file only; munged only if up.sh started it.
# Job output, keys and state stay in $RUNCTL_SLURM_DIR for the next run.
DIR=${RUNCTL_SLURM_DIR:-/tmp/runctl-slurm}
stop_pid() {
  local f=$1 p; [ -s "$f" ] || return 0; p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then
    kill "$p"; for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$f"; }
for f in sshd slurmrestd-jwt slurmrestd-local slurmd-n1 slurmd-n2 slurmctld; do stop_pid "$DIR/run/$f.pid"; done
if [ -e "$DIR/run/munged.ours" ]; then stop_pid /run/munge/munged.pid; rm -f "$DIR/run/munged.ours"; fi
rm -f "$DIR/cluster.env"
