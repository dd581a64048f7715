"""Entry point of the `skiff` command."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("skiff: the client is not built yet (issue 8); use skiff-runtime", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
