"""A container's filesystem without mounting it: the merged view of an overlay stack, Docker's
change list (`docker diff`), and tar diffs between two full trees (native snapshots)."""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from skiff.images.layer import OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX, TarBuilder

CHANGE_MODIFY, CHANGE_ADD, CHANGE_DELETE = 0, 1, 2


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


@dataclass
class _Entry:
    path: str
    st: os.stat_result
    stack: list[str] = field(default_factory=list)  # for dirs: the layer dirs merged into it
    open: bool = False  # for dirs: lower layers still show through


def merged_walk(layers: list[Path]) -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative name, path in the layer that wins, lstat) of the overlay merge of `layers`
    (top first), parents before children, sorted; whiteouts and opaque dirs applied."""
    root_stack = [str(p) for p in layers]
    for i, d in enumerate(root_stack):
        if _is_opaque(d):
            root_stack = root_stack[: i + 1]
            break
    yield from _merged_dir(root_stack, "")


def _merged_dir(stack: list[str], rel: str) -> Iterator[tuple[str, str, os.stat_result]]:
    decided: dict[str, _Entry | None] = {}
    for d in stack:
        try:
            names = os.listdir(d)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            p = os.path.join(d, name)
            st = os.lstat(p)
            cur = decided.get(name, False)
            if cur is False:
                if _is_whiteout(st):
                    decided[name] = None
                elif stat.S_ISDIR(st.st_mode):
                    decided[name] = _Entry(p, st, [p], not _is_opaque(p))
                else:
                    decided[name] = _Entry(p, st)
            elif isinstance(cur, _Entry) and cur.open:
                if stat.S_ISDIR(st.st_mode):
                    cur.stack.append(p)
                    cur.open = not _is_opaque(p)
                else:
                    cur.open = False
    for name in sorted(decided):
        entry = decided[name]
        if entry is None:
            continue
        child_rel = f"{rel}/{name}" if rel else name
        yield child_rel, entry.path, entry.st
        if stat.S_ISDIR(entry.st.st_mode):
            yield from _merged_dir(entry.stack, child_rel)


def export_merged(layers: list[Path], out: BinaryIO) -> None:
    """The merged view of `layers` (top first) as one tar, headers as Docker's `export` writes
    them (file-type bits in the mode)."""
    builder = TarBuilder(out, typed_modes=True)
    for rel, path, st in merged_walk(layers):
        builder.add(path, rel, st)
    builder.close()


def _same_dir_meta(a: os.stat_result, b: os.stat_result) -> bool:
    return (
        a.st_size == b.st_size
        and a.st_mode == b.st_mode
        and a.st_mtime_ns // 1000 == b.st_mtime_ns // 1000
    )


def overlay_changes(upper: Path, lowers: list[Path]) -> list[dict[str, object]]:
    """Docker's change list for an overlay upper dir over `lowers` (top first)."""
    changes: list[dict[str, object]] = []
    changed_dirs: set[str] = set()

    def walk(rel: str) -> None:
        base = os.path.join(upper, rel) if rel else str(upper)
        for name in sorted(os.listdir(base)):
            child = f"{rel}/{name}" if rel else name
            p = os.path.join(base, name)
            st = os.lstat(p)
            path = "/" + child
            kind: int
            if _is_whiteout(st) or (stat.S_ISDIR(st.st_mode) and _is_opaque(p)):
                kind = CHANGE_DELETE
            else:
                kind = CHANGE_ADD
                skip = False
                for layer in lowers:
                    try:
                        lst = os.lstat(os.path.join(layer, child))
                    except (FileNotFoundError, NotADirectoryError):
                        continue
                    if (
                        stat.S_ISDIR(lst.st_mode)
                        and stat.S_ISDIR(st.st_mode)
                        and _same_dir_meta(st, lst)
                    ):
                        skip = True
                    kind = CHANGE_MODIFY
                    break
                if skip:
                    if stat.S_ISDIR(st.st_mode):
                        walk(child)
                    continue
            if kind in (CHANGE_ADD, CHANGE_DELETE):
                parent = posixpath.dirname(path)
                if parent != "/" and parent not in changed_dirs:
                    changes.append({"Path": parent, "Kind": CHANGE_MODIFY})
                    changed_dirs.add(parent)
            changes.append({"Path": path, "Kind": kind})
            if stat.S_ISDIR(st.st_mode):
                changed_dirs.add(path)
                walk(child)

    walk("")
    return changes


def _xattrs(path: str) -> dict[str, bytes]:
    out = {}
    try:
        for attr in os.listxattr(path, follow_symlinks=False):
            out[attr] = os.getxattr(path, attr, follow_symlinks=False)
    except OSError:
        pass
    return out


def _differs(old_path: str, old: os.stat_result, new_path: str, new: os.stat_result) -> bool:
    if stat.S_IFMT(old.st_mode) != stat.S_IFMT(new.st_mode):
        return True
    if (old.st_mode, old.st_uid, old.st_gid) != (new.st_mode, new.st_uid, new.st_gid):
        return True
    if stat.S_ISLNK(new.st_mode):
        return os.readlink(old_path) != os.readlink(new_path)
    if stat.S_ISCHR(new.st_mode) or stat.S_ISBLK(new.st_mode):
        return old.st_rdev != new.st_rdev
    if stat.S_ISDIR(new.st_mode):
        return old.st_mtime_ns != new.st_mtime_ns or _xattrs(old_path) != _xattrs(new_path)
    if old.st_size != new.st_size or old.st_mtime_ns != new.st_mtime_ns:
        return True
    return (old.st_dev, old.st_ino) != (new.st_dev, new.st_ino) and _xattrs(old_path) != _xattrs(
        new_path
    )


def tree_changes(old: Path, new: Path) -> list[tuple[str, int]]:
    """(relative path, kind) for every difference between two full trees, sorted by path;
    below a deleted or replaced directory only the directory itself is listed."""
    out: list[tuple[str, int]] = []

    def walk(rel: str) -> None:
        o_dir = os.path.join(old, rel) if rel else str(old)
        n_dir = os.path.join(new, rel) if rel else str(new)
        try:
            o_names = set(os.listdir(o_dir))
        except (FileNotFoundError, NotADirectoryError):
            o_names = set()
        n_names = set(os.listdir(n_dir))
        for name in sorted(o_names | n_names):
            child = f"{rel}/{name}" if rel else name
            o_path, n_path = os.path.join(o_dir, name), os.path.join(n_dir, name)
            if name not in n_names:
                out.append((child, CHANGE_DELETE))
                continue
            n_st = os.lstat(n_path)
            if name not in o_names:
                out.append((child, CHANGE_ADD))
                if stat.S_ISDIR(n_st.st_mode):
                    walk_added(child)
                continue
            o_st = os.lstat(o_path)
            if _differs(o_path, o_st, n_path, n_st):
                if stat.S_IFMT(o_st.st_mode) != stat.S_IFMT(n_st.st_mode) and stat.S_ISDIR(
                    o_st.st_mode
                ):
                    out.append((child, CHANGE_DELETE))
                    out.append((child, CHANGE_ADD))
                    walk_added(child) if stat.S_ISDIR(n_st.st_mode) else None
                    continue
                out.append((child, CHANGE_MODIFY))
            if stat.S_ISDIR(n_st.st_mode) and stat.S_ISDIR(o_st.st_mode):
                walk(child)

    def walk_added(rel: str) -> None:
        base = os.path.join(new, rel)
        for name in sorted(os.listdir(base)):
            child = f"{rel}/{name}"
            out.append((child, CHANGE_ADD))
            if os.path.isdir(os.path.join(base, name)) and not os.path.islink(
                os.path.join(base, name)
            ):
                walk_added(child)

    walk("")
    return out


def native_changes(old: Path, new: Path) -> list[dict[str, object]]:
    """Docker's change list between a parent tree and a container's full tree."""
    changes: list[dict[str, object]] = []
    changed_dirs: set[str] = set()
    seen: set[tuple[str, int]] = set()
    for rel, kind in tree_changes(old, new):
        path = "/" + rel
        if (path, kind) in seen:
            continue
        seen.add((path, kind))
        if kind in (CHANGE_ADD, CHANGE_DELETE):
            parent = posixpath.dirname(path)
            if parent != "/" and parent not in changed_dirs:
                changes.append({"Path": parent, "Kind": CHANGE_MODIFY})
                changed_dirs.add(parent)
        if kind == CHANGE_MODIFY:
            changed_dirs.add(path)
        changes.append({"Path": path, "Kind": kind})
    return changes


def diff_trees(old: Path, new: Path, out: BinaryIO) -> None:
    """A layer tar that turns tree `old` into tree `new` (whiteouts for deletions)."""
    builder = TarBuilder(out)
    for rel, kind in tree_changes(old, new):
        if kind == CHANGE_DELETE:
            parent, base = posixpath.split(rel)
            builder.whiteout(posixpath.join(parent, WHITEOUT_PREFIX + base))
        else:
            p = os.path.join(new, rel)
            builder.add(p, rel)
    builder.close()


__all__ = [
    "CHANGE_ADD",
    "CHANGE_DELETE",
    "CHANGE_MODIFY",
    "WHITEOUT_OPAQUE",
    "diff_trees",
    "export_merged",
    "merged_walk",
    "native_changes",
    "overlay_changes",
    "tree_changes",
]
