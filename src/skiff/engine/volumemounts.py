"""Volumes in containers: which volumes a container gets, as Docker decides it.

At create: named volumes from `-v name:/path` and `--mount type=volume`, anonymous ones from
`-v /path`-style Config.Volumes and the image's VOLUME, and those of `--volumes-from`; each
is created if missing and referenced by the container until it is removed. At the first
start the content the image has at the mount point is copied into an empty volume (copy-up,
unless `nocopy`). The result is a list of mount points in Docker's inspect shape.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from skiff.errors import InvalidArgument
from skiff.linux.paths import resolve_in_root
from skiff.volumes.local import LocalVolumes

_MODES = {
    "ro",
    "rw",
    "z",
    "Z",
    "nocopy",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "private",
    "rprivate",
}


def _is_volume_source(src: str) -> bool:
    return bool(src) and not src.startswith("/") and not src.startswith(".")


def split_bind(bind: str) -> tuple[str, str, list[str]]:
    parts = bind.split(":")
    if len(parts) == 1:
        return "", parts[0], []
    if len(parts) == 2:
        if parts[1] in _MODES or "," in parts[1]:
            return "", parts[0], parts[1].split(",")
        return parts[0], parts[1], []
    if len(parts) == 3:
        return parts[0], parts[1], [o for o in parts[2].split(",") if o]
    raise InvalidArgument(f"invalid volume specification: '{bind}'")


def strip_volumes(host_config: dict[str, Any]) -> dict[str, Any]:
    """HostConfig without the volume entries (left: host binds, bind/tmpfs mounts)."""
    hc = dict(host_config)
    hc["Binds"] = [b for b in hc.get("Binds") or [] if not _is_volume_source(split_bind(b)[0])]
    hc["Mounts"] = [m for m in hc.get("Mounts") or [] if (m.get("Type") or "volume") != "volume"]
    return hc


def plan(
    vols: LocalVolumes,
    cid: str,
    config: dict[str, Any],
    host_config: dict[str, Any],
    image_volumes: dict[str, Any] | None,
    volumes_from: Callable[[str], list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Create/reference the container's volumes; return its volume mount points."""
    points: dict[str, dict[str, Any]] = {}
    taken = set()  # destinations claimed by host binds / tmpfs
    for b in host_config.get("Binds") or []:
        src, dst, opts = split_bind(b)
        if not dst.startswith("/"):
            raise InvalidArgument(
                f"invalid volume specification: '{b}': mount path must be absolute"
            )
        if _is_volume_source(src):
            points[dst] = _point(
                src, dst, rw="ro" not in opts, copy="nocopy" not in opts, mode=",".join(opts)
            )
        else:
            taken.add(dst)
    for m in host_config.get("Mounts") or []:
        if (m.get("Type") or "volume") != "volume":
            taken.add(m.get("Target") or "")
            continue
        target = m.get("Target") or ""
        if not target.startswith("/"):
            raise InvalidArgument(f"invalid mount config: mount path must be absolute: {target!r}")
        vo = m.get("VolumeOptions") or {}
        subpath = vo.get("Subpath") or ""
        if subpath and (subpath.startswith("/") or ".." in subpath.split("/")):
            raise InvalidArgument(
                f"invalid volume subpath {subpath!r}: must be relative and stay inside the volume"
            )
        points[target] = _point(
            m.get("Source") or "",
            target,
            rw=not m.get("ReadOnly"),
            copy=not vo.get("NoCopy"),
            labels=vo.get("Labels") or {},
            options=(vo.get("DriverConfig") or {}).get("Options") or {},
            subpath=subpath,
        )
    for spec in host_config.get("VolumesFrom") or []:
        ref, _, mode = spec.partition(":")
        for p in volumes_from(ref):
            if p["Destination"] in points or p["Destination"] in taken:
                continue
            q = dict(p)
            if mode == "ro":
                q["RW"] = False
            points[p["Destination"]] = q
    for dst in list((image_volumes or {}).keys()) + list((config.get("Volumes") or {}).keys()):
        if dst not in points and dst not in taken:
            points[dst] = _point("", dst, rw=True, copy=True)
    made: list[str] = []
    try:
        for p in points.values():
            if p.get("Type") == "bind":
                continue  # a host bind inherited through --volumes-from
            v = vols.create(
                p["Name"] or None,
                labels=p.pop("_labels", None),
                options=p.pop("_options", None) or None,
            )
            p["Name"] = v.name
            p["Source"] = str(vols.mountpoint(v.name))
            vols.acquire(v.name, cid)
            made.append(v.name)
    except BaseException:
        for name in made:
            vols.release(name, cid)
        raise
    return list(points.values())


def _point(
    name: str,
    dst: str,
    *,
    rw: bool,
    copy: bool,
    mode: str = "",
    labels: dict[str, str] | None = None,
    options: dict[str, str] | None = None,
    subpath: str = "",
) -> dict[str, Any]:
    return {
        "Type": "volume",
        "Name": name,
        "Source": "",
        "Destination": dst,
        "Driver": "local",
        "Mode": mode,
        "RW": rw,
        "Propagation": "",
        "_copy": copy,
        "_subpath": subpath,
        "_labels": labels or {},
        "_options": options or {},
    }


def oci_mounts(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for p in points:
        source = p["Source"]
        if p.get("_subpath"):
            source = os.path.join(source, p["_subpath"])
            if not os.path.isdir(source):
                raise InvalidArgument(
                    f"volume subpath {p['_subpath']!r} does not exist in volume {p['Name']}"
                )
        out.append(
            {
                "destination": p["Destination"],
                "type": "bind",
                "source": source,
                "options": ["rbind", "rprivate", "rw" if p["RW"] else "ro"],
            }
        )
    return out


def copy_up(vols: LocalVolumes, points: list[dict[str, Any]], rootfs: str) -> None:
    """Fill new, empty volumes with what the image has at their mount points."""
    for p in points:
        if p.get("Type") != "volume" or not p.get("_copy") or p.get("_subpath"):
            continue
        try:
            src = resolve_in_root(rootfs, p["Destination"])
        except Exception:
            continue
        from pathlib import Path

        vols.copy_up(p["Name"], Path(src))


def inspect_points(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Docker's `Mounts` entries (internal keys dropped)."""
    return [{k: v for k, v in p.items() if not k.startswith("_")} for p in points]


def release(
    vols: LocalVolumes, cid: str, points: list[dict[str, Any]], *, remove_anonymous: bool
) -> None:
    for p in points:
        if p.get("Type") != "volume":
            continue
        vols.release(p["Name"], cid)
        if remove_anonymous:
            try:
                v = vols.get(p["Name"])
            except Exception:
                continue
            if v.anonymous and not v.users:
                vols.remove(v.name)
