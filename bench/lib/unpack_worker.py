"""Apply one layer with skiff's unpacker, as a separate process the bench can time:
`python unpack_worker.py SRC DEST MEDIA_TYPE`. Exit 0 on success; on failure the error's text
on stderr and exit 1."""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    src, dest, media_type = argv
    from skiff.images.layer import apply_layer

    with open(src, "rb") as layer:
        apply_layer(layer, Path(dest), media_type)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
