"""The escape corpus: containers in the DEFAULT profile, each attempting one escape.

Every attack runs twice: through the real docker CLI against a test skiffd (`docker run --rm
busybox sh -c …`), and at the runtime level (`skiff-runtime run`) on a bundle whose config.json
is what the engine generates for a default `docker run` (engine/oci.py's build_spec plus the
engine's own security options and seccomp choice), so both levels exercise the same defaults. Each test asserts the
exact failure (exit status and the tool's errno text) and, afterwards, that the host is
unchanged (hostname, clock, a sentinel file; the fixture `host_snapshot` checks at teardown).

Where this host lacks the attacked object (no /proc/kcore, no /proc/sysrq-trigger, no module
support), the expected failure is the one a container sees for an absent path, chosen from the
host's own state — never skipped silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SKIFF_RUNTIME = shutil.which("skiff-runtime") or "/opt/skiff/venv/bin/skiff-runtime"
CAP_SYS_PTRACE = 19


@dataclass(frozen=True)
class Attack:
    name: str
    script: str
    rc: int
    stderr: str = ""  # an exact line the tool prints on stderr
    stdout: str | None = None  # the exact stdout, when the proof is in what is printed
    docker_args: tuple[str, ...] = ()
    host_config: dict[str, Any] = field(default_factory=dict)


def _sysrq_expect() -> str:
    if os.path.exists("/proc/sysrq-trigger"):
        return "sh: can't create /proc/sysrq-trigger: Read-only file system"
    return "sh: can't create /proc/sysrq-trigger: nonexistent directory"


def _kcore_attack() -> Attack:
    if os.path.exists("/proc/kcore"):  # masked: bind-mounted /dev/null
        return Attack("read /proc/kcore", "wc -c < /proc/kcore", 0, stdout="0\n")
    return Attack(
        "read /proc/kcore",
        "wc -c /proc/kcore",
        1,
        stderr="wc: /proc/kcore: No such file or directory",
    )


HOST_PID = os.getpid()

CORPUS: list[Attack] = [
    Attack(
        "mount a tmpfs",
        "mkdir -p /m && mount -t tmpfs t /m",
        1,
        stderr="mount: permission denied (are you root?)",
    ),
    Attack(
        "load a kernel module",
        "echo x > /tmp/x.ko && insmod /tmp/x.ko",
        1,
        stderr="insmod: can't insert '/tmp/x.ko': Operation not permitted",
    ),
    Attack("write /proc/sysrq-trigger", "echo b > /proc/sysrq-trigger", 1, stderr=_sysrq_expect()),
    Attack(
        "write /proc/sys/kernel/panic",
        "echo 1 > /proc/sys/kernel/panic",
        1,
        stderr="sh: can't create /proc/sys/kernel/panic: Read-only file system",
    ),
    Attack(
        "write /proc/sys/kernel/hostname",
        "echo evil > /proc/sys/kernel/hostname",
        1,
        stderr="sh: can't create /proc/sys/kernel/hostname: Read-only file system",
    ),
    _kcore_attack(),
    Attack("read /proc/timer_list (masked)", "wc -c < /proc/timer_list", 0, stdout="0\n"),
    Attack("read /proc/keys (masked)", "wc -c < /proc/keys", 0, stdout="0\n"),
    Attack(
        "raw socket with NET_RAW dropped",
        "ping -c 1 -W 1 127.0.0.1",
        1,
        stderr="ping: permission denied (are you root?)",
        docker_args=("--cap-drop", "NET_RAW"),
        host_config={"CapDrop": ["NET_RAW"]},
    ),
    Attack(
        "signal a host process",
        f"kill -0 {HOST_PID}",
        1,
        stderr=f"sh: can't kill pid {HOST_PID}: No such process",
    ),
    Attack(
        "see host processes",
        "ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '",
        0,
        # the container's sh (1), ls, grep, sort, tr: a fresh pid namespace, nothing else
        stdout=None,
    ),
    Attack(
        "change the hostname",
        "hostname evil-host",
        1,
        stderr="hostname: sethostname: Operation not permitted",
    ),
    # busybox date reports the failed settimeofday and still exits 0: the errno text is the proof
    Attack(
        "set the clock",
        "date -s 2001-01-01 >/dev/null",
        0,
        stderr="date: can't set date: Operation not permitted",
    ),
    Attack(
        "open the host disk through a device node",
        "mknod /tmp/sda b 8 0 && head -c 1 /tmp/sda",
        1,
        stderr="head: /tmp/sda: Operation not permitted",
    ),
    Attack(
        "unshare a user namespace to regain caps",
        "unshare -U true",
        1,
        stderr="unshare: unshare(0x10000000): Operation not permitted",
    ),
    Attack(
        "overwrite the running binary via /proc/self/exe",
        "echo x > /proc/self/exe",
        1,
        stderr="sh: can't create /proc/self/exe: Text file busy",
    ),
    Attack("pid 1's binary is the container's", "readlink /proc/1/exe", 0, stdout="/bin/busybox\n"),
    # `; true` keeps the shell alive as pid 1 (a last command is exec-ed): list ITS fds, not ls's
    Attack("only fds 0, 1, 2 are open", "ls /proc/1/fd; true", 0, stdout="0\n1\n2\n"),
    Attack("cwd is inside the container", "readlink /proc/$$/cwd", 0, stdout="/\n"),
]


def _check(attack: Attack, rc: int, out: str, err: str) -> None:
    where = f"{attack.name}: rc={rc}\nstdout: {out}\nstderr: {err}"
    assert rc == attack.rc, where
    if attack.stderr:
        assert attack.stderr in err.splitlines(), where
    if attack.stdout is not None:
        assert out == attack.stdout, where
    if attack.name == "see host processes":
        pids = [int(p) for p in out.split()]
        assert pids and pids[0] == 1 and max(pids) < 50, where
        assert HOST_PID not in pids, where


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def host_binaries() -> Iterator[None]:
    """CVE-2019-5736: the runtime's binaries on the host must not change."""
    paths = [os.path.realpath(p) for p in (SKIFF_RUNTIME, sys.executable)]
    before = {p: _sha256(p) for p in paths}
    yield
    assert {p: _sha256(p) for p in paths} == before


# ---- daemon level: docker run against skiffd ------------------------------------------


# skiffd's default runtime is skiff-runtime; runc (the anchor) must get the same protections
RUNTIMES = ["skiff-runtime", "runc"]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("attack", CORPUS, ids=[a.name for a in CORPUS])
def test_escape_via_docker_run(
    skiffd: Any, runtime: str, attack: Attack, host_snapshot: Any, host_binaries: None
) -> None:
    res = skiffd.docker(
        "run",
        "--rm",
        "--runtime",
        runtime,
        *attack.docker_args,
        "busybox",
        "sh",
        "-c",
        attack.script,
        check=False,
    )
    _check(attack, res.returncode, res.stdout, res.stderr)


def test_daemon_socket_is_not_reachable(skiffd: Any, host_snapshot: Any) -> None:
    res = skiffd.docker("run", "--rm", "busybox", "ls", str(skiffd.socket), check=False)
    assert res.returncode == 1, res
    assert f"ls: {skiffd.socket}: No such file or directory" in res.stderr.splitlines(), res.stderr
    res = skiffd.docker(
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "ls /var/run/docker.sock /run/skiff/skiff.sock",
        check=False,
    )
    assert res.returncode == 1, res
    assert "ls: /var/run/docker.sock: No such file or directory" in res.stderr.splitlines(), (
        res.stderr
    )


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("fd", [3, 4, 5, 6, 7, 8])
def test_workdir_through_a_leaked_fd_is_refused(
    skiffd: Any, runtime: str, fd: int, host_snapshot: Any
) -> None:
    """CVE-2024-21626: `-w /proc/self/fd/N` must not hand the container a host directory."""
    res = skiffd.docker(
        "run",
        "--rm",
        "--runtime",
        runtime,
        "-w",
        f"/proc/self/fd/{fd}",
        "busybox",
        "sh",
        "-c",
        "readlink /proc/$$/cwd; ls ..",
        check=False,
    )
    if res.returncode == 0:  # accepted only if the cwd really is inside the container
        assert not res.stdout.startswith(("/tmp", "/run", "/var", "/proc/self/fd")), res.stdout
        assert "skiffd.sock" not in res.stdout, res.stdout
    else:
        assert res.returncode in (125, 126, 127), res
        assert f"/proc/self/fd/{fd}" in res.stderr and "OCI runtime create failed" in res.stderr, (
            res.stderr
        )


def test_entrypoint_reexecuting_the_runtime(
    skiffd: Any, tmp_path: Path, host_snapshot: Any, host_binaries: None
) -> None:
    """CVE-2019-5736: an entrypoint `#!/proc/self/exe` must not run (and so reach) the host's runtime."""
    name = f"h-exe-{uuid.uuid4().hex[:8]}"
    evil = tmp_path / "evil"
    evil.write_text("#!/proc/self/exe\n")
    evil.chmod(0o755)
    skiffd.docker("create", "--name", name, "--entrypoint", "/evil", "busybox")
    try:
        skiffd.docker("cp", str(evil), f"{name}:/evil")
        res = skiffd.docker("start", "-a", name, check=False)
        assert res.returncode != 0, res
        assert "/evil" in res.stderr, res.stderr
    finally:
        skiffd.docker("rm", "-f", name, check=False)


def test_ptrace_capability_is_absent(skiffd: Any) -> None:
    """busybox has no ptrace tool: the proof is that CAP_SYS_PTRACE is not in the bounding set."""
    res = skiffd.docker("run", "--rm", "busybox", "grep", "CapBnd", "/proc/self/status")
    bnd = int(res.stdout.split()[1], 16)
    assert not bnd & (1 << CAP_SYS_PTRACE), res.stdout


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_default_profile_has_seccomp(skiffd: Any, runtime: str) -> None:
    """Docker's default: every container runs under the default seccomp filter (mode 2)."""
    res = skiffd.docker(
        "run", "--rm", "--runtime", runtime, "busybox", "grep", "^Seccomp:", "/proc/self/status"
    )
    assert res.stdout.split() == ["Seccomp:", "2"], res.stdout


# ---- runtime level: skiff-runtime run on the engine's default config.json ------------------


def engine_default_spec(
    cid: str, rootfs: Path, files: Path, args: list[str], host_config: dict[str, Any]
) -> dict[str, Any]:
    """The config.json skiffd writes for `docker run busybox ARGS` with the daemon's default
    configuration: the same calls as Engine._start_locked (oci.security_options, seccomp_for with
    the default SecurityDefaults, oci.build_spec)."""
    from skiff.engine import oci
    from skiff.engine.security import SecurityDefaults, seccomp_for

    config = {"Cmd": args}
    oci.etc_files(container_id=cid, config=config, host_config=host_config, files_dir=str(files))
    caps = oci.capabilities(host_config)
    defaults = SecurityDefaults()
    security = oci.security_options(
        host_config, default_no_new_privileges=defaults.no_new_privileges
    )
    spec = oci.build_spec(
        container_id=cid,
        rootfs=str(rootfs),
        config=config,
        host_config=host_config,
        files_dir=str(files),
        netns_path=None,
        pidns_path=None,
        ipcns_path=None,
        init_binary=None,
        seccomp=seccomp_for(security, caps, defaults),
        security=security,
        idmap=None,
    )
    # the engine nests cgroups under its own; a bare runtime run nests under this process's
    spec["linux"]["cgroupsPath"] = f"skiff-hardening/{cid}"
    return spec


class Bundles:
    def __init__(self, work: Path, rootfs: Path) -> None:
        self.work = work
        self.state = work / "state"
        self.rootfs = rootfs
        self.ids: list[str] = []

    def run(
        self, args: list[str], host_config: dict[str, Any] | None = None
    ) -> subprocess.CompletedProcess[str]:
        cid = f"h{uuid.uuid4().hex[:12]}"
        self.ids.append(cid)
        bundle = self.work / cid
        (bundle / "files").mkdir(parents=True)
        spec = engine_default_spec(cid, self.rootfs, bundle / "files", args, host_config or {})
        (bundle / "config.json").write_text(json.dumps(spec))
        return subprocess.run(
            [SKIFF_RUNTIME, "--root", str(self.state), "run", "--bundle", str(bundle), cid],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def cleanup(self) -> None:
        for cid in self.ids:
            subprocess.run(
                [SKIFF_RUNTIME, "--root", str(self.state), "delete", "--force", cid],
                capture_output=True,
            )


@pytest.fixture(scope="module")
def bundles(busybox_rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bundles]:
    work = tmp_path_factory.mktemp("hardening-rt")
    rootfs = work / "rootfs"
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    b = Bundles(work, rootfs)
    try:
        yield b
    finally:
        b.cleanup()


@pytest.mark.parametrize("attack", CORPUS, ids=[a.name for a in CORPUS])
def test_escape_via_runtime(
    bundles: Bundles, attack: Attack, host_snapshot: Any, host_binaries: None
) -> None:
    res = bundles.run(["sh", "-c", attack.script], attack.host_config)
    _check(attack, res.returncode, res.stdout, res.stderr)


def test_runtime_host_socket_is_not_reachable(bundles: Bundles, tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    srv = socket.socket(socket.AF_UNIX)
    try:
        srv.bind(str(path))
        srv.listen(1)
        res = bundles.run(["ls", str(path)])
        assert res.returncode == 1, res
        assert f"ls: {path}: No such file or directory" in res.stderr.splitlines(), res.stderr
    finally:
        srv.close()


def test_runtime_entrypoint_reexecuting_the_runtime(bundles: Bundles, host_binaries: None) -> None:
    """CVE-2019-5736 at the runtime level: the entrypoint is a script whose interpreter is /proc/self/exe."""
    evil = bundles.rootfs / "evil"
    evil.write_text("#!/proc/self/exe\n")
    evil.chmod(0o755)
    try:
        res = bundles.run(["/evil", "-c", "import os; print(os.readlink('/proc/self/exe'))"])
        assert res.returncode == 127, res
        assert "No such file or directory: /evil" in res.stderr, res.stderr
        assert res.stdout == "", res.stdout
    finally:
        evil.unlink()


# ---- the API socket itself ------------------------------------------------------------------


def test_daemon_socket_is_0660_root_and_the_skiff_group(skiffd: Any) -> None:
    import grp
    import stat

    st = os.stat(skiffd.socket)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    assert st.st_uid == 0
    try:
        assert st.st_gid == grp.getgrnam("skiff").gr_gid
    except KeyError:
        assert st.st_gid == 0


def test_tcp_without_mutual_tls_is_refused(tmp_path: Path) -> None:
    skiffd_bin = [sys.executable, "-m", "skiff.daemon.main"]
    res = subprocess.run(
        [
            *skiffd_bin,
            "--data-root",
            str(tmp_path / "d"),
            "--exec-root",
            str(tmp_path / "e"),
            "-H",
            "tcp://127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode != 0, res
    assert "requires --tlsverify --tlscacert --tlscert --tlskey (mutual TLS)" in res.stderr, (
        res.stderr
    )
