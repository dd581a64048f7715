"""nftables through `nft -f -`: one process per batch of commands, applied atomically."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

from skiff.errors import FailedPrecondition, Internal


def _nft() -> str:
    path = shutil.which("nft") or ("/usr/sbin/nft" if os.path.exists("/usr/sbin/nft") else None)
    if not path:
        raise FailedPrecondition(
            "networking needs nftables: `nft` not found (apt-get install nftables)"
        )
    return path


def apply(script: str) -> None:
    """Run an nft script as one transaction; raise Internal with nft's own message on failure."""
    proc = subprocess.run([_nft(), "-f", "-"], input=script, capture_output=True, text=True)
    if proc.returncode != 0:
        raise Internal(f"nft: {proc.stderr.strip() or 'failed'}\n--- script ---\n{script}")


def list_json(*what: str) -> list[dict[str, Any]]:
    """`nft -j list <what>` as the list of objects under "nftables"; [] when it does not exist."""
    proc = subprocess.run([_nft(), "-j", "list", *what], capture_output=True, text=True)
    if proc.returncode != 0:
        return []
    objs: list[dict[str, Any]] = json.loads(proc.stdout).get("nftables", [])
    return objs


def table_exists(family: str, name: str) -> bool:
    return bool(list_json("table", family, name))
