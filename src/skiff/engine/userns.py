"""userns-remap: containers' root mapped to a subordinate uid/gid range of the host.

Vocabulary (dockerd's): the *remap user* names the ranges in /etc/subuid and /etc/subgid
("default" means skiff's own user `skiff`, whose entries are created when missing, as dockerd
does for `dockremap`); the *id map* is the first range of each file (container id 0 → the range's
start). Image layers are owned by host ids 0…, which are outside the map; like dockerd's remapped
graph root `<data-root>/<uid>.<gid>`, each layer a remapped container uses gets a shifted copy
(owners moved into the range, hard links kept), made once per layer and range under
`<data-root>/userns/<uid>.<gid>/` and shared by every container; the container's own upper dir
is created inside the range by the container itself.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import logging
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from skiff.engine.oci import IdMap
from skiff.errors import FailedPrecondition, InvalidArgument
from skiff.types.mount import Mount

log = logging.getLogger("skiffd.userns")

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
DEFAULT_USER = "skiff"
DEFAULT_RANGE_START = 100000
DEFAULT_RANGE_SIZE = 65536


def parse_remap(value: str) -> tuple[str, str]:
    """ "default" | "user" | "user:group" (names or numeric ids) → (user, group) names."""
    text = (value or "").strip()
    if not text:
        raise InvalidArgument("userns-remap: empty value (expected 'default' or 'user[:group]')")
    if text == "default":
        return DEFAULT_USER, DEFAULT_USER
    user, _, group = text.partition(":")
    if user.isdigit():
        try:
            user = pwd.getpwuid(int(user)).pw_name
        except KeyError:
            raise InvalidArgument(f"userns-remap {value!r}: no user with uid {user}") from None
    if group.isdigit():
        try:
            group = grp.getgrgid(int(group)).gr_name
        except KeyError:
            raise InvalidArgument(f"userns-remap {value!r}: no group with gid {group}") from None
    return user, group or user


def _ranges(path: str, name: str) -> list[tuple[int, int]]:
    ids = {name}
    with contextlib.suppress(KeyError):
        ids.add(str(pwd.getpwnam(name).pw_uid))
    with contextlib.suppress(KeyError):
        ids.add(str(grp.getgrnam(name).gr_gid))
    out = []
    try:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                parts = line.strip().split(":")
                if len(parts) != 3 or parts[0] not in ids:
                    continue
                try:
                    out.append((int(parts[1]), int(parts[2])))
                except ValueError:
                    raise InvalidArgument(f"{path}:{n}: malformed entry {line.strip()!r}") from None
    except FileNotFoundError:
        pass
    except OSError as err:
        raise FailedPrecondition(f"userns-remap: read {path}: {err.strerror}") from None
    return out


def _ensure_entry(path: str, name: str) -> None:
    """Append `name:<start>:65536` after every range already handed out (dockerd's rule)."""
    if _ranges(path, name):
        return
    end = DEFAULT_RANGE_START
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    end = max(end, int(parts[1]) + int(parts[2]))
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        text = b""
    if text and not text.endswith(b"\n"):
        text += b"\n"
    text += f"{name}:{end}:{DEFAULT_RANGE_SIZE}\n".encode()
    tmp = f"{path}.skiff-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise FailedPrecondition(f"userns-remap: add {name} to {path}: {err.strerror}") from None
    log.info("userns-remap: added %s:%d:%d to %s", name, end, DEFAULT_RANGE_SIZE, path)


def resolve(value: str, *, subuid: str = SUBUID, subgid: str = SUBGID) -> IdMap:
    """The id map of a userns-remap setting; creates skiff's entries for "default"."""
    user, group = parse_remap(value)
    if value.strip() == "default":
        _ensure_entry(subuid, user)
        _ensure_entry(subgid, group)
    uids, gids = _ranges(subuid, user), _ranges(subgid, group)
    if not uids:
        raise InvalidArgument(
            f"userns-remap {value!r}: no subordinate uid range for {user} in {subuid}"
        )
    if not gids:
        raise InvalidArgument(
            f"userns-remap {value!r}: no subordinate gid range for {group} in {subgid}"
        )
    # dockerd concatenates several ranges; one is what nearly every host has and what we use
    (ustart, usize), (gstart, gsize) = uids[0], gids[0]
    return IdMap(ustart, usize, gstart, gsize)


def shift_tree(root: str, idmap: IdMap) -> None:
    """Move every owner under `root` into the map (0 → start), keeping modes and file caps."""

    def shift(path: str) -> None:
        st = os.lstat(path)
        caps = None
        if stat.S_ISREG(st.st_mode):
            with contextlib.suppress(OSError):
                caps = os.getxattr(path, "security.capability", follow_symlinks=False)
        os.lchown(path, idmap.host_uid(st.st_uid), idmap.host_gid(st.st_gid))
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            os.chmod(path, stat.S_IMODE(st.st_mode))  # chown clears set-id bits
        if caps is not None:
            with contextlib.suppress(OSError):
                os.setxattr(path, "security.capability", caps, follow_symlinks=False)

    seen: set[tuple[int, int]] = set()
    shift(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                if (st.st_dev, st.st_ino) in seen:
                    continue  # a hard link of a file already shifted
                seen.add((st.st_dev, st.st_ino))
            shift(path)


def shifted_layer(layer: str, cache_root: Path, idmap: IdMap) -> str:
    """A copy of a committed layer directory with owners shifted into the map (made once)."""
    key = hashlib.sha256(os.path.realpath(layer).encode()).hexdigest()[:32]
    base = cache_root / f"{idmap.uid_start}.{idmap.gid_start}"
    final = base / key
    if final.is_dir():
        return str(final)
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".{key}.{os.getpid()}.{os.urandom(4).hex()}"
    try:
        res = subprocess.run(
            ["cp", "-a", "--reflink=auto", layer, str(tmp)], capture_output=True, timeout=3600
        )
        if res.returncode != 0:
            raise FailedPrecondition(
                f"userns-remap: copy layer {layer}: {res.stderr.decode(errors='replace').strip()}"
            )
        shift_tree(str(tmp), idmap)
        (base / f"{key}.src").write_text(os.path.realpath(layer))
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return str(final)


def prune_shifted_layers(cache_root: Path) -> list[str]:
    """Remove shifted copies whose source layer is gone (its image was removed); returns them.

    Run while no remapped container is being started (skiffd does it at start-up)."""
    removed: list[str] = []
    if not cache_root.is_dir():
        return removed
    for base in cache_root.iterdir():
        if not base.is_dir():
            continue
        for entry in base.iterdir():
            if entry.name.startswith("."):
                shutil.rmtree(entry, ignore_errors=True)  # a copy cut short by a crash
                continue
            if not entry.is_dir():
                continue
            src_file = base / f"{entry.name}.src"
            try:
                source = src_file.read_text().strip()
            except OSError:
                source = ""
            if not source or not os.path.isdir(source):
                shutil.rmtree(entry, ignore_errors=True)
                with contextlib.suppress(OSError):
                    src_file.unlink()
                removed.append(str(entry))
    return removed


def remap_rootfs_mounts(
    mounts: list[Mount], cache_root: Path, idmap: IdMap, *, shifted_marker: Path
) -> list[Mount]:
    """The container's rootfs mounts with image content inside the map.

    overlay: lower dirs replaced by shifted copies, the upper dir's root given to the container's
    root. bind (a snapshot without parents, a private copy): shifted in place once (the marker
    file records it).
    """
    out = []
    for m in mounts:
        if m.type == "overlay":
            opts = []
            upper = ""
            for o in m.options:
                if o.startswith("lowerdir="):
                    lowers = o[len("lowerdir=") :].split(":")
                    o = "lowerdir=" + ":".join(shifted_layer(p, cache_root, idmap) for p in lowers)
                elif o.startswith("upperdir="):
                    upper = o[len("upperdir=") :]
                opts.append(o)
            if upper:
                st = os.stat(upper)
                if st.st_uid < idmap.uid_start:
                    os.chown(upper, idmap.host_uid(0), idmap.host_gid(0))
            out.append(Mount(m.type, m.source, tuple(opts), m.target))
        elif m.type == "bind" and "ro" not in m.options:
            if not shifted_marker.exists():
                shift_tree(m.source, idmap)
                shifted_marker.write_text(f"{idmap.uid_start}:{idmap.gid_start}\n")
            out.append(m)
        elif m.type == "bind":
            out.append(
                Mount(m.type, shifted_layer(m.source, cache_root, idmap), m.options, m.target)
            )
        else:
            raise FailedPrecondition(
                f"userns-remap: rootfs mount of type {m.type!r} cannot be remapped"
            )
    return out


def make_traversable(path: Path) -> None:
    """o+x on a directory skiffd owns, so the remapped root can reach what lies below it."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if not mode & stat.S_IXOTH:
        os.chmod(path, mode | stat.S_IXOTH)


def give_to_root(path: str, idmap: IdMap) -> None:
    """chown a file skiffd made for the container (its /etc/hosts, …) to the container's root."""
    os.chown(path, idmap.host_uid(0), idmap.host_gid(0))
