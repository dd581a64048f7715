"""`skiff registry serve|gc`: run skiff's OCI distribution registry in this process.

The registry server lives in skiff.distribution.server; it is imported here, lazily, so no
other verb pays for it (the only engine-side code the CLI may run).
"""

from __future__ import annotations

from typing import Any

from skiff.cli.main import Context
from skiff.errors import NotImplementedYet


def _server_main() -> Any:
    try:
        from skiff.distribution import server
    except ImportError as err:
        raise NotImplementedYet(f"skiff registry: the registry server is not available yet ({err})")
    return server.main


def serve(ctx: Context, argv: list[str]) -> int:
    return int(_server_main()(["serve", *argv]) or 0)


def gc(ctx: Context, argv: list[str]) -> int:
    return int(_server_main()(["gc", *argv]) or 0)
