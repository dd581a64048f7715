#!/usr/bin/env bash
# Idempotent set-up of everything skiff needs on a Debian/Ubuntu machine, as root:
# Debian packages, a venv with skiff and its test tools, and `skiff`, `skiffd`,
# `skiff-runtime` on PATH. Safe to run again; it only does what is missing.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
VENV=${SKIFF_VENV:-/opt/skiff/venv}
BIN=${SKIFF_BIN:-/usr/local/bin}

# What the code, the tests and the anchors use. docker.io brings a docker CLI (e2e tests) and
# dockerd+containerd+runc (differential tests, bench); podman, docker-registry, skopeo and
# hyperfine are anchors and real clients; busybox-static is the base of the offline images.
APT_PACKAGES=(
    python3 python3-venv python3-dev gcc make libc6-dev
    busybox-static debootstrap
    runc libseccomp2 uidmap
    nftables iptables iproute2
    tmux zstd pigz e2fsprogs util-linux procps psmisc openssl curl git
    docker.io podman docker-registry skopeo hyperfine
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install: Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# docker.io must not leave a dockerd of its own running on the default socket.
if command -v invoke-rc.d >/dev/null && [ -S /var/run/docker.sock ] && ! pgrep -x dockerd >/dev/null; then
    rm -f /var/run/docker.sock
fi

# The venv is made from Debian's python3 (not a pyenv shim: those add ~70 ms per call).
py=/usr/bin/python3
if [ ! -x "$VENV/bin/python" ]; then
    echo "install: venv at $VENV"
    mkdir -p "$(dirname "$VENV")"
    "$py" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
fi
stamp="$VENV/.skiff-installed"
want="$here $(sha256sum "$here/pyproject.toml" | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "install: skiff (editable) and its dev tools into $VENV"
    "$VENV/bin/pip" install -q -e "$here[dev]" --config-settings editable_mode=compat
    echo "$want" > "$stamp"
fi

# The per-container shim (conmon-like: keeps a container's stdio, log and exit code while skiffd
# is away; ~1 MB per container instead of a Python process) and the --init reaper, in C.
LIBEXEC=${SKIFF_LIBEXEC:-/usr/local/lib/skiff}
mkdir -p "$LIBEXEC"
shim_src="$here/src/skiff/engine/shim"
if [ ! -x "$LIBEXEC/skiff-shim" ] || [ "$shim_src/shim.c" -nt "$LIBEXEC/skiff-shim" ]; then
    echo "install: skiff-shim into $LIBEXEC"
    gcc -O2 -Wall -o "$LIBEXEC/skiff-shim.tmp" "$shim_src/shim.c" && mv "$LIBEXEC/skiff-shim.tmp" "$LIBEXEC/skiff-shim"
fi
if [ ! -x "$LIBEXEC/skiff-init" ] || [ "$shim_src/init.c" -nt "$LIBEXEC/skiff-init" ]; then
    echo "install: skiff-init into $LIBEXEC"
    gcc -O2 -Wall -static -o "$LIBEXEC/skiff-init.tmp" "$shim_src/init.c" && mv "$LIBEXEC/skiff-init.tmp" "$LIBEXEC/skiff-init"
fi

# Byte-compile skiff so start-up never pays for compiling (PYTHONDONTWRITEBYTECODE=1 environments
# still read .pyc files; they just never write them).
"$VENV/bin/python" -m compileall -q -j 0 "$here/src/skiff" >/dev/null || true

# skiff-runtime starts on every container start: run it isolated (-I) and without site (-S), with
# the source tree on sys.path, so no .pth file or sitecustomize is read (~3 ms of CPU less).
cat > "$VENV/bin/skiff-runtime.py.new" <<LAUNCHER
#!$VENV/bin/python3 -IS
# skiff-runtime: written by make install (scripts/install.sh). Needs only the stdlib and skiff.
import sys

sys.path.insert(0, "$here/src")
if not {"create", "run", "exec"}.isdisjoint(sys.argv[1:]):
    # These attach a process to a cgroup: keep the attach fast until then (warmup.py).
    from skiff.runtime.warmup import prime_cgroup_attach

    prime_cgroup_attach()
    # create and run: the container's init (or the intermediate) imports its half while
    # this process imports the CLI (prefork.py).
    from skiff.runtime import prefork

    prefork.fork_early(sys.argv[1:])
from skiff.runtime.cli import run_and_exit

run_and_exit()
LAUNCHER
chmod 755 "$VENV/bin/skiff-runtime.py.new"
mv -f "$VENV/bin/skiff-runtime.py.new" "$VENV/bin/skiff-runtime.py"
# The command itself is a small C program that begins the cgroup attach's grace period before
# the interpreter is even loaded, then execs the script above (src/skiff/runtime/launcher.c).
# Without a compiler the script is the command.
if gcc -O2 -Wall -Werror -o "$VENV/bin/skiff-runtime.new" \
        -DSKIFF_PYTHON="\"$VENV/bin/python3\"" -DSKIFF_SCRIPT="\"$VENV/bin/skiff-runtime.py\"" \
        "$here/src/skiff/runtime/launcher.c"; then
    mv -f "$VENV/bin/skiff-runtime.new" "$VENV/bin/skiff-runtime"
else
    echo "install: gcc failed: skiff-runtime is the Python launcher alone"
    cp -f "$VENV/bin/skiff-runtime.py" "$VENV/bin/skiff-runtime"
fi

for exe in skiff skiffd skiff-runtime; do
    ln -sf "$VENV/bin/$exe" "$BIN/$exe"
done

# The group that may use skiffd's socket (0660 root:skiff), as docker's group does.
getent group skiff >/dev/null || groupadd --system skiff

echo "install: done (skiff, skiffd, skiff-runtime in $BIN; venv $VENV)"
