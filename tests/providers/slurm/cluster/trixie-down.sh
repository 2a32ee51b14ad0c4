#!/usr/bin/env bash
# Stop what trixie-up.sh started (by pid file only) and unmount the chroot's /proc.
# The chroot stays for the next run; delete $RUNCTL_SLURM_TRIXIE_DIR/root to rebuild it.
DIR=${RUNCTL_SLURM_TRIXIE_DIR:-/tmp/runctl-slurm-trixie}
ROOT=$DIR/root
for f in run/slurmrestd.pid run/slurmd.pid run/slurmctld.pid run/munge/munged.pid; do
  f=$ROOT/$f; [ -s "$f" ] || continue; p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then kill "$p"; for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; fi
  rm -f "$f"
done
if mountpoint -q "$ROOT/proc"; then umount "$ROOT/proc"; fi
rm -f "$DIR/cluster.env"
