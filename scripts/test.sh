#!/usr/bin/env bash
# Run satchel's whole test suite on a fresh Debian machine. It installs what it needs:
#   - Debian packages: docker.io + debootstrap (via .ci/docker-up.sh), a JRE for Spark,
#     chromium for the browser tests (driven by playwright, never a downloaded browser);
#   - a virtualenv (.venv-test) with satchel installed from a freshly built wheel plus
#     its [test] extra, so the suite tests what users install, not the source tree;
#   - a private Docker engine (safe flags, no host networking changes), stopped at exit.
# Then it runs pytest on every test, Spark, Docker and MLflow-interop ones included.
# Exit status: pytest's; "no tests ran" (pytest exit 5) is a failure too.
#
# Usage: scripts/test.sh [extra pytest args]
# Env:   SATCHEL_TEST_VENV (default .venv-test), PYTHON (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${SATCHEL_TEST_VENV:-$ROOT/.venv-test}
PY=${PYTHON:-python3}
log() { echo "test.sh: $*" >&2; }

# --- disk --------------------------------------------------------------------------
# The suite builds an MLflow venv, per-model environments and Docker images: about 10 GB
# in the temp directory plus the engine's layers. Say so up front rather than fail
# half-way with "No space left on device".
NEED_GB=${SATCHEL_TEST_MIN_FREE_GB:-15}
for dir in "${TMPDIR:-/tmp}" "$ROOT"; do
    free_gb=$(( $(df -Pk "$dir" | awk 'NR==2 {print $4}') / 1024 / 1024 ))
    if (( free_gb < NEED_GB )); then
        log "only ${free_gb} GB free under $dir; the suite needs about ${NEED_GB} GB"
        exit 1
    fi
done

# --- system packages ----------------------------------------------------------------
if ! command -v java >/dev/null 2>&1; then
    log "installing a Java runtime for Spark"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        default-jre-headless >&2
fi

if [[ ! -x /usr/bin/chromium ]]; then
    log "installing Debian's chromium for the browser tests"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium >&2
fi

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    # The registry's postgres tests start a private cluster from these binaries.
    log "installing the PostgreSQL server for the registry tests"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        postgresql >&2
fi

# --- python environment --------------------------------------------------------------
if [[ ! -x $VENV/bin/python ]]; then
    log "creating $VENV"
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel build
rm -rf "$ROOT/dist"
log "building the wheel"
"$VENV/bin/python" -m build --wheel --outdir "$ROOT/dist" "$ROOT" >/dev/null
WHEEL=$(ls "$ROOT"/dist/satchel-*.whl)
log "installing $(basename "$WHEEL")[test]"
"$VENV/bin/python" -m pip install -q --force-reinstall --no-deps "$WHEEL"
# torch==2.13.0 from the machine's find-links is the CPU build (2.13.0+cpu sorts above
# the index's 2.13.0, whose wheel pulls gigabytes of CUDA libraries).
"$VENV/bin/python" -m pip install -q -c "$ROOT/.ci/constraints-cpu.txt" "${WHEEL}[test]"

# --- private docker engine -----------------------------------------------------------
cleanup() { "$ROOT/.ci/docker-down.sh" || true; }
trap cleanup EXIT
eval "$("$ROOT/.ci/docker-up.sh")"
export DOCKER_HOST SATCHEL_TEST_BASE_IMAGE

# --- the suite -----------------------------------------------------------------------
export PATH="$VENV/bin:$PATH"
set +e
(cd "$ROOT" && "$VENV/bin/python" -m pytest -p no:cacheprovider "$@")
status=$?
set -e
if [[ $status -eq 5 ]]; then
    log "no tests ran: failing"
    exit 1
fi
exit $status
