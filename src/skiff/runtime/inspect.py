"""`list` and `ps`: what runc prints for containers under --root and processes of one."""

from __future__ import annotations

import subprocess

from skiff.errors import FailedPrecondition, InvalidArgument
from skiff.runtime import jsonio
from skiff.runtime import state as st


def list_containers(root: str, fmt: str, *, quiet: bool = False) -> str:
    states = []
    for container_id in st.list_ids(root):
        try:
            states.append(st.ContainerState.load(root, container_id))
        except Exception:
            continue
    if quiet:
        return "".join(f"{s.id}\n" for s in states)
    if fmt == "json":
        return jsonio.dumps([s.oci_state() for s in states]) + "\n"
    if fmt != "table":
        raise InvalidArgument(f"invalid format option: {fmt!r} (table or json)")
    rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    for s in states:
        oci = s.oci_state()
        rows.append([s.id, str(oci["pid"]), oci["status"], s.bundle, s.created, s.owner or "root"])
    return _table(rows)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [c.ljust(widths[i]) for i, c in enumerate(r[:-1])] + [r[-1]]
        lines.append("   ".join(cells).rstrip() + "\n")
    return "".join(lines)


def container_pids(state: st.ContainerState) -> list[int]:
    if state.cgroup:
        return sorted(int(p) for p in state.cgroup_manager().pids())
    return [state.pid] if state.alive() else []


def ps(root: str, container_id: str, fmt: str, ps_args: list[str]) -> str:
    state = st.ContainerState.load(root, container_id)
    pids = container_pids(state)
    if fmt == "json":
        return jsonio.dumps(pids) + "\n"
    if fmt != "table":
        raise InvalidArgument(f"invalid format option: {fmt!r} (table or json)")
    try:
        out = subprocess.run(
            ["ps", *(ps_args or ["-ef"])], check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise FailedPrecondition(f"ps: {err}") from None
    lines = out.splitlines()
    if not lines:
        return ""
    header = lines[0].split()
    try:
        pid_index = header.index("PID")
    except ValueError:
        raise FailedPrecondition("ps: output has no PID column") from None
    wanted = set(pids)
    keep = [lines[0]]
    for line in lines[1:]:
        fields = line.split()
        if (
            len(fields) > pid_index
            and fields[pid_index].isdigit()
            and int(fields[pid_index]) in wanted
        ):
            keep.append(line)
    return "\n".join(keep) + "\n"
