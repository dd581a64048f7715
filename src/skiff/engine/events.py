"""The event stream behind `docker events`: an in-memory ring plus a journal file.

Every state change publishes one event in Docker's shape ({Type, Action, Actor{ID,
Attributes}, scope, time, timeNano} plus the legacy status/id/from fields for containers).
Subscribers get a queue; `since` replays from the ring (or the journal after a restart).
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

RING_SIZE = 1024
JOURNAL_MAX_BYTES = 4 << 20


class EventBus:
    def __init__(self, journal: Path | None = None) -> None:
        self._ring: deque[dict[str, Any]] = deque(maxlen=RING_SIZE)
        self._subscribers: list[queue.Queue[dict[str, Any] | None]] = []
        self._lock = threading.Lock()
        self._journal = journal
        if journal is not None and journal.exists():
            try:
                for line in journal.read_text().splitlines()[-RING_SIZE:]:
                    self._ring.append(json.loads(line))
            except (OSError, ValueError):
                pass

    def publish(
        self, kind: str, action: str, actor_id: str, attributes: Mapping[str, str] | None = None
    ) -> None:
        now = time.time_ns()
        event: dict[str, Any] = {
            "Type": kind,
            "Action": action,
            "Actor": {"ID": actor_id, "Attributes": dict(attributes or {})},
            "scope": "local",
            "time": now // 1_000_000_000,
            "timeNano": now,
        }
        if kind in ("container", "image"):
            event["status"] = action
            event["id"] = actor_id
            if kind == "container" and attributes and "image" in attributes:
                event["from"] = attributes["image"]
        with self._lock:
            self._ring.append(event)
            subscribers = list(self._subscribers)
            if self._journal is not None:
                try:
                    if self._journal.exists() and self._journal.stat().st_size > JOURNAL_MAX_BYTES:
                        os.replace(self._journal, self._journal.with_suffix(".old"))
                    with open(self._journal, "a") as f:
                        f.write(json.dumps(event) + "\n")
                except OSError:
                    pass
        for q in subscribers:
            q.put(event)

    def subscribe(
        self,
        since_ns: int | None,
        until_ns: int | None,
        accept: Callable[[dict[str, Any]], bool],
        closed: Callable[[], bool] = lambda: False,
    ) -> Iterator[dict[str, Any]]:
        """Past events from `since_ns`, then live ones until `until_ns` (or forever)."""
        q: queue.Queue[dict[str, Any] | None] = queue.Queue()
        with self._lock:
            past = list(self._ring) if since_ns is not None else []
            live = until_ns is None or until_ns > time.time_ns()
            if live:
                self._subscribers.append(q)
        try:
            for event in past:
                if (
                    event["timeNano"] >= (since_ns or 0)
                    and (until_ns is None or event["timeNano"] <= until_ns)
                    and accept(event)
                ):
                    yield event
            while live:
                timeout = 1.0
                if until_ns is not None:
                    remaining = (until_ns - time.time_ns()) / 1e9
                    if remaining <= 0:
                        return
                    timeout = min(timeout, remaining)
                try:
                    item = q.get(timeout=timeout)
                except queue.Empty:
                    if closed():
                        return
                    yield {}  # heartbeat: lets the writer notice a closed connection
                    continue
                if item is None:
                    return
                if until_ns is not None and item["timeNano"] > until_ns:
                    return
                if accept(item):
                    yield item
        finally:
            with self._lock:
                if q in self._subscribers:
                    self._subscribers.remove(q)
