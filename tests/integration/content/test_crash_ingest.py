"""SIGKILL a process in the middle of an ingest, at random points: the store never shows a
partial blob, and the ingest resumes where it stopped."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from skiff.content.store import ContentStore
from skiff.types.digest import Digest

SIZE = 128 << 20
SCRIPT = r"""
import sys
from pathlib import Path
from skiff.content.store import ContentStore
from skiff.types.digest import Digest
root, expected, seed = Path(sys.argv[1]), Digest.parse(sys.argv[2]), int(sys.argv[3])
data = bytes((i * seed) & 0xFF for i in range(256)) * (SIZE // 256)
cs = ContentStore(root)
if cs.has(expected):
    sys.exit(0)
w = cs.writer("crash-ref", expected, len(data))
print("ready", flush=True)
off = w.offset
while off < len(data):
    w.write(data[off : off + 65536])
    off += 65536
w.commit()
"""


def _data(seed: int) -> bytes:
    return bytes((i * seed) & 0xFF for i in range(256)) * (SIZE // 256)


def _check_store(cs: ContentStore) -> None:
    for d, size in cs.list():
        h = hashlib.new(d.algorithm)
        with cs.open(d) as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        assert h.hexdigest() == d.hex, f"visible blob {d} is partial or corrupt ({size} bytes)"


def test_sigkill_during_ingest(tmp_path: Path) -> None:
    rng = random.Random(1234)
    seed = 7
    data = _data(seed)
    expected = Digest.of_bytes(data)
    root = tmp_path / "content"
    script = SCRIPT.replace("SIZE", str(SIZE))
    kills = 0
    for _ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(root), str(expected), str(seed)],
            stdout=subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() == b"ready":
                time.sleep(rng.uniform(0.0, 0.12))
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)
                    kills += 1
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        cs = ContentStore(root)
        _check_store(cs)
        refs = dict(cs.ingests())
        if cs.has(expected):
            assert refs == {}
            break
        assert set(refs) <= {"crash-ref"}
    assert kills >= 1
    cs = ContentStore(root)
    if not cs.has(expected):
        w = cs.writer("crash-ref", expected, len(data))
        assert 0 <= w.offset <= len(data)
        assert w.offset % 65536 == 0 or w.offset == len(data)
        w.write(data[w.offset :])
        assert w.commit() == expected
    assert cs.read(expected) == data
    _check_store(cs)
