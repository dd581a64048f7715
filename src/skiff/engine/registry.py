"""Pull, push and login: the distribution client composed with the image store.

A pull lands every blob in the content store (verified before it is visible), then the image
store unpacks and registers the image; nothing half-pulled is ever an image. Progress messages
are Docker's JSON stream, produced on a worker thread and handed to the API as an iterator.
"""

from __future__ import annotations

import json
import queue
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from skiff.distribution import client
from skiff.distribution.credentials import AuthConfig
from skiff.errors import InvalidArgument, SkiffError
from skiff.types.reference import parse_reference


@dataclass
class RegistryConfig:
    insecure: list[str] = field(default_factory=list)
    mirrors: list[str] = field(default_factory=list)


def pull(
    store: Any,
    ref: str,
    auth: AuthConfig | None,
    cfg: RegistryConfig,
    progress: Callable[[dict[str, Any]], None],
    platform: str = "",
) -> str:
    """Pull `ref` and register it; returns the image id."""
    r = parse_reference(ref)
    # the lease keeps every blob this pull finds or fetches from a concurrent rmi/gc
    with store.lease(f"pull {r}"):
        result = client.pull(
            r,
            store.content,
            auth=auth,
            progress=progress,
            platform=platform or "linux/amd64",
            insecure=cfg.insecure,
            mirrors=cfg.mirrors,
            emit_summary=False,
        )
        record = store.create_from_manifest(None if r.digest else str(r), result.manifest_digest)
    if result.downloaded:
        for layer in result.layers:  # unpacked into snapshots by create_from_manifest
            progress({"status": "Pull complete", "progressDetail": {}, "id": layer.digest.short()})
    progress({"status": f"Digest: {result.index_digest or result.manifest_digest}"})
    word = "Downloaded newer image for" if result.downloaded else "Image is up to date for"
    progress({"status": f"Status: {word} {r.familiar_name()}"})
    return str(record.id)


def push(
    store: Any,
    ref: str,
    auth: AuthConfig | None,
    cfg: RegistryConfig,
    progress: Callable[[dict[str, Any]], None],
) -> str:
    r = parse_reference(ref)
    digest, media_type = store.manifest_of(str(r))
    pushed = client.push(
        r, store.content, digest, media_type, auth=auth, progress=progress, insecure=cfg.insecure
    )
    return str(pushed)


_REGISTRY_HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def login(body: dict[str, Any], cfg: RegistryConfig) -> dict[str, str]:
    address = body.get("serveraddress") or "docker.io"
    host = str(address).split("://", 1)[-1].split("/", 1)[0]
    if not isinstance(address, str) or not _REGISTRY_HOST.fullmatch(host):
        raise InvalidArgument(f"login: invalid registry address {address!r}")
    return client.login(
        address,
        body.get("username") or "",
        body.get("password") or "",
        insecure=cfg.insecure,
    )


def stream(work: Callable[[Callable[[dict[str, Any]], None]], Any]) -> Iterator[bytes]:
    """Run `work(progress)` on a thread; yield its progress as JSON lines, then an error line if
    it failed (as Docker does: the HTTP status is already 200 once the stream started)."""
    q: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def run() -> None:
        try:
            work(q.put)
        except SkiffError as err:
            q.put({"errorDetail": {"message": err.message}, "error": err.message})
        except Exception as err:  # a bug: still tell the client, never hang it
            q.put(
                {
                    "errorDetail": {"message": f"internal error: {err}"},
                    "error": f"internal error: {err}",
                }
            )
        finally:
            q.put(None)

    threading.Thread(target=run, name="registry", daemon=True).start()
    while True:
        msg = q.get()
        if msg is None:
            return
        yield (json.dumps(msg) + "\n").encode()
