#!/usr/bin/env bash
# The demo: start skiffd (if it is not running), make the busybox image offline from the host's
# static busybox, and run a container with the real docker CLI and with skiff.
set -euo pipefail
SOCK=${SKIFF_SOCK:-/run/skiff/skiff.sock}
export DOCKER_HOST=unix://$SOCK SKIFF_HOST=unix://$SOCK
LOG=/var/log/skiffd.log

if ! skiff version >/dev/null 2>&1; then
    echo "demo: starting skiffd (log: $LOG)"
    # shellcheck disable=SC2086
    nohup skiffd -H "unix://$SOCK" ${SKIFFD_FLAGS:-} >>"$LOG" 2>&1 &
    for _ in $(seq 1 100); do
        skiff version >/dev/null 2>&1 && break
        sleep 0.1
    done
fi
skiff version

if ! skiff image inspect busybox:latest >/dev/null 2>&1; then
    skiff image bootstrap busybox
fi

echo "demo: docker run --rm busybox (the docker CLI, against skiffd)"
if command -v docker >/dev/null; then
    docker run --rm busybox sh -c 'echo "hello from $(hostname), a skiff container: $(uname -sr)"'
fi
echo "demo: skiff run --rm busybox"
skiff run --rm busybox sh -c 'echo "hello from skiff: pid $$, $(id)"; ip -o -4 addr show eth0 | cut -d" " -f2,7'
skiff ps -a
echo "demo: skiffd keeps running on $SOCK; try: skiff run -it busybox sh"
