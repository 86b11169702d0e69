#!/usr/bin/env bash
# Start a PRIVATE Docker engine for the test run and make the local Python base image.
#
# Usage:   eval "$(.ci/docker-up.sh)"        # exports DOCKER_HOST and SATCHEL_TEST_BASE_IMAGE
# Env:     SATCHEL_DOCKER_DIR   work dir (default /tmp/satchel-docker): data-root, exec-root,
#                               socket, pid file, log, rootfs cache; also written to $W/env
#          SATCHEL_TEST_BASE_IMAGE  tag of the local base image (default local/python:3.11-bookworm-slim)
# Stdout:  only `export NAME=value` lines; progress goes to stderr.
#
# Idempotent: a daemon that already answers on $W/docker.sock is reused, an existing base
# image is kept, and a cached $W/base-slim.tar (or $W/base.tar, debootstrap's output) is
# used without re-running debootstrap.
# The daemon is always started with the safe flags (no bridge, no iptables, no ip
# forwarding/masquerading): a default start would rewrite the host's firewall and bridges.
set -euo pipefail

W=${SATCHEL_DOCKER_DIR:-/tmp/satchel-docker}
BASE_IMAGE=${SATCHEL_TEST_BASE_IMAGE:-local/python:3.11-bookworm-slim}
SUITE=bookworm
mkdir -p "$W"
W=$(cd "$W" && pwd)
export DOCKER_HOST="unix://$W/docker.sock"

log() { echo "docker-up: $*" >&2; }

# --- packages -------------------------------------------------------------------------
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    # Never let the package's maintainer scripts start a default dockerd.
    made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
    if ((made_policy)); then rm -f /usr/sbin/policy-rc.d; fi
fi
# Debian's client matches the Debian engine's API; fall back to whatever is on PATH.
if [[ -x /usr/bin/docker ]]; then CLI=/usr/bin/docker; else CLI=$(command -v docker); fi
export DOCKER_BUILDKIT=0

engine_up() { "$CLI" info >/dev/null 2>&1; }

# --- daemon ---------------------------------------------------------------------------
if engine_up; then
    log "engine already answers on $DOCKER_HOST"
else
    if [[ -f $W/dockerd.pid ]] && kill -0 "$(cat "$W/dockerd.pid")" 2>/dev/null; then
        log "dockerd $(cat "$W/dockerd.pid") is running but not answering; waiting"
    else
        rm -f "$W/dockerd.pid" "$W/docker.sock"
        mkdir -p "$W/data" "$W/exec"
        log "starting dockerd (data-root $W/data)"
        # setsid: the daemon must not die with the caller's process group / terminal.
        setsid dockerd --data-root "$W/data" --exec-root "$W/exec" --pidfile "$W/dockerd.pid" \
            -H "unix://$W/docker.sock" --bridge=none --iptables=false \
            --ip-forward=false --ip-masq=false >"$W/dockerd.log" 2>&1 </dev/null &
    fi
    for _ in $(seq 1 150); do
        engine_up && break
        sleep 0.2
    done
    if ! engine_up; then
        log "dockerd did not answer within 30 s; last log lines:"
        tail -n 20 "$W/dockerd.log" >&2 || true
        exit 1
    fi
fi

# --- base image -----------------------------------------------------------------------
if "$CLI" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "base image $BASE_IMAGE exists"
else
    if [[ ! -s $W/base-slim.tar ]]; then
        if [[ ! -s $W/base.tar ]]; then
            MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
            MIRROR=${MIRROR:-http://deb.debian.org/debian}
            log "debootstrap $SUITE from $MIRROR (about a minute)"
            rm -rf "$W/rootfs"
            debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
                "$SUITE" "$W/rootfs" "$MIRROR" >"$W/debootstrap.log" 2>&1 \
                || { tail -n 20 "$W/debootstrap.log" >&2; exit 1; }
            # Leave no apt lists or package cache in the base image.
            rm -rf "$W/rootfs/var/lib/apt/lists/"* "$W/rootfs/var/cache/apt/archives/"*.deb
            tar -C "$W/rootfs" --numeric-owner -cf "$W/base.tar.part" .
            mv "$W/base.tar.part" "$W/base.tar"
            rm -rf "$W/rootfs"
        fi
        # Slim it the way Debian's -slim images (and so python:X.Y-slim, satchel's default
        # base) are: no docs but the copyright files, man and info pages or translations
        # (46 MB of a 169 MB minbase), and a dpkg config that keeps them out later. Image
        # sizes measured on this base then match what users build on python:3.11-slim.
        rm -rf "$W/rootfs" && mkdir "$W/rootfs"
        tar -C "$W/rootfs" --numeric-owner -xf "$W/base.tar"
        R=$W/rootfs
        find "$R/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
        find "$R/usr/share/doc" -mindepth 1 -depth -type d -empty -delete
        rm -rf "$R/usr/share/man/"* "$R/usr/share/info/"* "$R/usr/share/locale/"* \
            "$R/usr/share/groff/"* "$R/usr/share/linda/"* "$R/usr/share/lintian/overrides/"*
        mkdir -p "$R/etc/dpkg/dpkg.cfg.d"
        printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
            'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
            'path-exclude /usr/share/locale/*' 'path-exclude /usr/share/groff/*' \
            'path-exclude /usr/share/linda/*' 'path-exclude /usr/share/lintian/overrides/*' \
            > "$R/etc/dpkg/dpkg.cfg.d/slim"
        tar -C "$R" --numeric-owner -cf "$W/base-slim.tar.part" .
        mv "$W/base-slim.tar.part" "$W/base-slim.tar"
        rm -rf "$R"
    fi
    log "importing $BASE_IMAGE"
    "$CLI" import --change 'CMD ["/usr/bin/python3"]' "$W/base-slim.tar" "$BASE_IMAGE" >/dev/null
fi

printf 'DOCKER_HOST=%s\nSATCHEL_TEST_BASE_IMAGE=%s\nDOCKER_BUILDKIT=0\n' \
    "$DOCKER_HOST" "$BASE_IMAGE" > "$W/env"
printf 'export DOCKER_HOST=%q\nexport SATCHEL_TEST_BASE_IMAGE=%q\nexport DOCKER_BUILDKIT=0\n' \
    "$DOCKER_HOST" "$BASE_IMAGE"
