"""Entry point of `skiffd`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("skiffd: the daemon is not built yet (issue 4)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
