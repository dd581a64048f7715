#!/usr/bin/env bash
# The demo: a busybox container run by skiff-runtime from an OCI bundle made on the spot.
# (Grows into "start skiffd, bootstrap the busybox image, docker run" as the daemon lands.)
set -euo pipefail
VENV=${SKIFF_VENV:-/opt/skiff/venv}
work=$(mktemp -d /tmp/skiff-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$VENV/bin/python" - "$work" <<'PY'
import sys, pathlib
from skiff.images.bootstrap import build_busybox_rootfs
build_busybox_rootfs(pathlib.Path(sys.argv[1]) / "rootfs")
PY
cd "$work"
skiff-runtime spec
skiff-runtime run demo-$$ --bundle "$work" </dev/null || true
