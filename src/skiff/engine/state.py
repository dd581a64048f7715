"""A container's record: what skiffd keeps on disk for it, and its lifecycle as an enum.

Files under <data-root>/containers/<id>/: `config.v2.json` (this record, written temp → fsync →
rename), `<id>-json.log` (the shim appends), `etc/` (hostname, hosts, resolv.conf sources).
Under <exec-root>/containers/<id>/: `bundle/config.json`, the shim dir `shim/`, the rootfs
mount point `rootfs/`, and one shim dir per exec under `exec/<exec-id>/`.
"""

from __future__ import annotations

import enum
import json
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"


def now_rfc3339() -> str:
    t = datetime.now(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond * 1000:09d}Z"


def write_json_atomic(path: Path, data: Any, *, durable: bool = True) -> None:
    """temp → fsync → rename: a crash leaves the old or the new file, never half of one.

    `durable=False` skips the fsync for files that are rebuilt on every start anyway (an OCI
    bundle's config.json); the rename still keeps readers from seeing half a file.
    """
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


class Status(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"

    def can_start(self) -> bool:
        return self in (Status.CREATED, Status.EXITED, Status.RESTARTING)

    def is_up(self) -> bool:
        return self in (Status.RUNNING, Status.PAUSED)


def fresh_state() -> dict[str, Any]:
    return {
        "Status": "created",
        "Running": False,
        "Paused": False,
        "Restarting": False,
        "OOMKilled": False,
        "Dead": False,
        "Pid": 0,
        "ExitCode": 0,
        "Error": "",
        "StartedAt": ZERO_TIME,
        "FinishedAt": ZERO_TIME,
    }


@dataclass
class ExecRecord:
    id: str
    container_id: str
    config: dict[str, Any]
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    started: bool = False
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class Container:
    id: str
    name: str  # without the leading "/"
    created: str
    image_id: str
    config: dict[str, Any]
    host_config: dict[str, Any]
    state: dict[str, Any] = field(default_factory=fresh_state)
    restart_count: int = 0
    manually_stopped: bool = False
    has_been_started: bool = False
    runtime: str = ""
    rootfs_key: str = ""
    exec_ids: list[str] = field(default_factory=list)
    # not persisted:
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    changed: threading.Condition = field(init=False, repr=False)
    exit_seq: int = 0
    removed: bool = False
    pending_attach: list[Any] = field(default_factory=list, repr=False)
    restart_timer: threading.Timer | None = None
    health_stop: threading.Event | None = None
    # skiff-runtime's shim and `create`, spawned (on a thread) when the container was created
    # and waiting on their gate (write end here) for the start: (launch, gate fd, expiry
    # timer); `prespawn_ready` is set once that thread is done, whatever it managed
    prespawned: tuple[Any, int, threading.Timer] | None = None
    prespawn_ready: threading.Event | None = None
    premounted: bool = False  # the pre-spawn mounted the rootfs; whoever uses it takes it over

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    @property
    def status(self) -> Status:
        return Status(self.state["Status"])

    def set_status(self, status: Status) -> None:
        self.state["Status"] = status.value
        self.state["Running"] = status in (Status.RUNNING, Status.PAUSED, Status.RESTARTING)
        self.state["Paused"] = status is Status.PAUSED
        self.state["Restarting"] = status is Status.RESTARTING
        self.state["Dead"] = status is Status.DEAD

    def to_disk(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Name": self.name,
            "Created": self.created,
            "Image": self.image_id,
            "Config": self.config,
            "HostConfig": self.host_config,
            "State": self.state,
            "RestartCount": self.restart_count,
            "ManuallyStopped": self.manually_stopped,
            "HasBeenStarted": self.has_been_started,
            "Runtime": self.runtime,
            "RootfsKey": self.rootfs_key,
        }

    @classmethod
    def from_disk(cls, data: dict[str, Any]) -> Container:
        return cls(
            id=data["ID"],
            name=data["Name"],
            created=data["Created"],
            image_id=data["Image"],
            config=data["Config"],
            host_config=data["HostConfig"],
            state=data["State"],
            restart_count=data.get("RestartCount", 0),
            manually_stopped=data.get("ManuallyStopped", False),
            has_been_started=data.get("HasBeenStarted", False),
            runtime=data.get("Runtime", ""),
            rootfs_key=data.get("RootfsKey", ""),
        )
