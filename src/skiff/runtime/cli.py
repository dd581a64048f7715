"""Entry point of `skiff-runtime` (runc's command line)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("skiff-runtime: not built yet (issue 2)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
