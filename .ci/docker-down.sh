#!/usr/bin/env bash
# Stop the private Docker engine started by docker-up.sh and unmount what it left behind.
#
# Usage:  .ci/docker-down.sh [--purge]      (safe to call when nothing runs; always exits 0
#                                            unless a mount cannot be removed)
# Env:    SATCHEL_DOCKER_DIR  the same work dir as docker-up.sh (default /tmp/satchel-docker)
# --purge also deletes the work dir (images, cached base.tar); without it the next
#         docker-up.sh reuses them and starts in a second or two.
set -uo pipefail

W=${SATCHEL_DOCKER_DIR:-/tmp/satchel-docker}
[[ -d $W ]] || exit 0
W=$(cd "$W" && pwd)
log() { echo "docker-down: $*" >&2; }

if [[ -f $W/dockerd.pid ]]; then
    pid=$(cat "$W/dockerd.pid")
    # Only signal the process if it really is the dockerd of this work dir.
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--pidfile $W/dockerd.pid"; then
        log "stopping dockerd $pid"
        kill -TERM "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            log "dockerd $pid ignored SIGTERM for 20 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
        fi
    fi
    rm -f "$W/dockerd.pid"
fi
# Containers that outlived a killed daemon: their shims (started with -address $W/...)
# and their processes, found through the cgroups of this data root's container ids.
for shim in $(pgrep -f "containerd-shim.*$W/" 2>/dev/null || true); do
    kill -KILL "$shim" 2>/dev/null || true
done
if [[ -d $W/data/containers ]]; then
    for id in $(ls "$W/data/containers"); do
        for procs in /sys/fs/cgroup/*/docker/"$id"/cgroup.procs /sys/fs/cgroup/docker/"$id"/cgroup.procs; do
            [[ -r $procs ]] || continue
            while read -r p; do kill -KILL "$p" 2>/dev/null || true; done < "$procs"
        done
    done
fi

# Unmount deepest first; lazy unmount as a last resort so a busy mount cannot wedge CI.
status=0
mapfile -t mounts < <(awk -v w="$W/" 'index($2, w) == 1 {print $2}' /proc/self/mounts | sort -r)
for m in "${mounts[@]}"; do
    m=$(printf '%b' "$m")   # /proc/mounts escapes spaces as \040
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || { log "cannot unmount $m"; status=1; }
done
rm -f "$W/docker.sock"
if [[ ${1:-} == --purge ]]; then
    log "removing $W"
    rm -rf "$W"
fi
exit $status
