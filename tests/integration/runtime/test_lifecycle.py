"""create → start → state → kill → delete through the real command; errors; leftovers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

Runtime = Any


def _wait_status(runtime: Runtime, cid: str, want: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        out = runtime("state", cid)
        if out.returncode == 0:
            state: dict[str, Any] = json.loads(out.stdout)
            if state["status"] == want:
                return state
        if time.monotonic() > deadline:
            return runtime.state(cid)  # type: ignore[no-any-return]
        time.sleep(0.05)


def test_create_start_state_kill_delete(runtime: Runtime) -> None:
    bundle = runtime.bundle(["sleep", "60"])
    cid = runtime.new_id()
    pid_file = runtime.work / "init.pid"
    code, err = runtime.detached(
        "create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid
    )
    assert code == 0, err
    state = runtime.state(cid)
    assert state["status"] == "created"
    assert state["pid"] == int(pid_file.read_text())
    assert state["bundle"] == str(bundle)
    assert set(state) == {
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "owner",
    }
    # created: init waits on the fifo and has not exec'd sleep yet
    assert not os.readlink(f"/proc/{state['pid']}/exe").endswith("busybox")
    code, err = runtime.detached("start", cid)
    assert code == 0, err
    state = _wait_status(runtime, cid, "running")
    assert state["status"] == "running"
    assert os.readlink(f"/proc/{state['pid']}/exe").endswith("busybox")
    out = runtime("kill", cid, "KILL")
    assert out.returncode == 0, out.stderr
    state = _wait_status(runtime, cid, "stopped")
    assert state["status"] == "stopped"
    assert state["pid"] == 0
    out = runtime("delete", cid)
    assert out.returncode == 0, out.stderr
    out = runtime("state", cid)
    assert out.returncode == 1
    assert out.stderr.decode().strip() == f'container "{cid}" does not exist'


def test_list_and_ps(runtime: Runtime) -> None:
    bundle = runtime.bundle(["sh", "-c", "sleep 60 & sleep 61; exit"])
    cid = runtime.new_id()
    code, err = runtime.detached("run", "-d", "--bundle", str(bundle), cid)
    assert code == 0, err
    listed = json.loads(runtime("list", "--format", "json").stdout)
    assert [c["id"] for c in listed] == [cid]
    assert runtime("list", "-q").stdout.decode().split() == [cid]
    table = runtime("list").stdout.decode().splitlines()
    assert table[0].split()[:3] == ["ID", "PID", "STATUS"]
    deadline = time.monotonic() + 5
    pids: list[int] = []
    while len(pids) < 3 and time.monotonic() < deadline:
        pids = json.loads(runtime("ps", "--format", "json", cid).stdout)
        time.sleep(0.05)
    assert runtime.state(cid)["pid"] in pids
    assert len(pids) == 3
    table = runtime("ps", cid).stdout.decode().splitlines()
    assert "PID" in table[0].split()
    assert len(table) == 4  # header + the three processes
    out = runtime("kill", "--all", cid, "KILL")
    assert out.returncode == 0, out.stderr
    assert _wait_status(runtime, cid, "stopped")["status"] == "stopped"
    deadline = time.monotonic() + 5
    while json.loads(runtime("ps", "--format", "json", cid).stdout) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert json.loads(runtime("ps", "--format", "json", cid).stdout) == []
    assert _one_line_failure(runtime("kill", cid, "KILL")) == "container not running"


def test_delete_of_created_container_kills_its_init(runtime: Runtime) -> None:
    cid = runtime.new_id()
    code, err = runtime.detached("create", "-b", str(runtime.bundle(["sleep", "60"])), cid)
    assert code == 0, err
    pid = runtime.state(cid)["pid"]
    out = runtime("delete", cid)
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        status = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        if status == "Z":
            break
        time.sleep(0.05)
    assert not (runtime.root / cid).exists()


def test_run_exit_codes_and_signals(runtime: Runtime) -> None:
    assert (
        runtime(
            "run", "-b", str(runtime.bundle(["sh", "-c", "exit 42"])), runtime.new_id()
        ).returncode
        == 42
    )
    assert runtime("run", "-b", str(runtime.bundle(["true"])), runtime.new_id()).returncode == 0

    def no_pidns(spec: dict[str, Any]) -> None:
        # pid 1 of a namespace ignores SIGTERM without a handler; outside one it dies of it.
        spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "pid"]

    for sig, expected in (("TERM", 143), ("SIGKILL", 137), ("2", 130)):
        cid = runtime.new_id()
        proc = runtime.popen(
            "run", "-b", str(runtime.bundle(["sleep", "60"], no_pidns)), cid,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            _wait_status(runtime, cid, "running")
            out = runtime("kill", cid, sig)
            assert out.returncode == 0, out.stderr
            assert proc.wait(timeout=10) == expected
        finally:
            proc.kill()
            proc.wait()


def test_run_forwards_signals_it_receives(runtime: Runtime) -> None:
    cid = runtime.new_id()
    bundle = runtime.bundle(["sh", "-c", "trap 'exit 99' USR1; while :; do sleep 0.1; done"])
    proc = runtime.popen(
        "run", "-b", str(bundle), cid, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    try:
        _wait_status(runtime, cid, "running")
        time.sleep(0.3)  # let sh install its trap
        proc.send_signal(signal.SIGUSR1)
        assert proc.wait(timeout=10) == 99
    finally:
        proc.kill()
        proc.wait()
    assert runtime("state", cid).returncode == 1  # run deletes the container after it exits


def test_delete_leaves_no_mount_cgroup_or_state(runtime: Runtime) -> None:
    cid = runtime.new_id()
    bundle = runtime.bundle(
        ["sleep", "60"], lambda s: s["linux"].update(resources={"pids": {"limit": 50}})
    )
    code, err = runtime.detached("run", "-d", "-b", str(bundle), cid)
    assert code == 0, err
    saved = json.loads((runtime.root / cid / "state.json").read_text())
    cgroup_dirs = list((saved.get("cgroup") or {}).get("paths", {}).values())
    assert cgroup_dirs and all(os.path.isdir(d) for d in cgroup_dirs)
    assert runtime("delete", cid).returncode == 1  # running: needs --force
    out = runtime("delete", "--force", cid)
    assert out.returncode == 0, out.stderr
    assert not (runtime.root / cid).exists()
    assert not any(os.path.exists(d) for d in cgroup_dirs)
    assert str(runtime.rootfs) not in open("/proc/self/mountinfo").read()


def _one_line_failure(out: subprocess.CompletedProcess[bytes]) -> str:
    assert out.returncode == 1
    lines = out.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda s: s["process"].pop("cwd"), "process.cwd: required field is missing"),
        (lambda s: s.pop("ociVersion"), "ociVersion: required field is missing"),
        (lambda s: s["linux"]["namespaces"].append({"type": "foo"}), "linux.namespaces[6].type: unknown namespace type 'foo'"),
        (lambda s: s["root"].update(path="/nonexistent/rootfs"), "/nonexistent/rootfs does not exist"),
        (lambda s: s["process"].update(args=[]), "process.args"),
        (lambda s: s["process"]["user"].update(uid="root"), "process.user.uid: must be integer"),
    ],
)  # fmt: skip
def test_bad_config_one_line_nothing_left(runtime: Runtime, mutate: Any, expected: str) -> None:
    bundle = runtime.bundle(["true"], mutate)
    cid = runtime.new_id()
    line = _one_line_failure(runtime("create", "-b", str(bundle), cid))
    assert expected in line
    assert not (runtime.root / cid).exists()


def test_malformed_json_and_existing_id(runtime: Runtime) -> None:
    bundle = runtime.bundle(["sleep", "60"])
    broken = runtime.work / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"ociVersion": "1.2.0", "process": ')
    cid = runtime.new_id()
    line = _one_line_failure(runtime("create", "-b", str(broken), cid))
    assert line.startswith("config.json: malformed JSON")
    assert not (runtime.root / cid).exists()
    code, err = runtime.detached("create", "-b", str(bundle), cid)
    assert code == 0, err
    line = _one_line_failure(runtime("create", "-b", str(bundle), cid))
    assert line == f"container with id exists: {cid}"
    assert runtime.state(cid)["status"] == "created"  # the first one is untouched


def test_unknown_container_and_json_log(runtime: Runtime) -> None:
    log = runtime.work / "log.json"
    out = runtime("--log", str(log), "--log-format", "json", "delete", "nope")
    assert _one_line_failure(out) == 'container "nope" does not exist'
    record = json.loads(log.read_text().splitlines()[-1])
    assert record["level"] == "error"
    assert record["msg"] == 'container "nope" does not exist'


def test_failed_exec_in_create_cleans_up(runtime: Runtime) -> None:
    bundle = runtime.bundle(
        ["/no/such/binary"], lambda s: s["linux"].update(resources={"pids": {"limit": 10}})
    )
    cid = runtime.new_id()
    line = _one_line_failure(runtime("create", "-b", str(bundle), cid))
    assert "/no/such/binary" in line
    assert not (runtime.root / cid).exists()


def test_user_groups_umask_rlimits(runtime: Runtime) -> None:
    def mutate(spec: dict[str, Any]) -> None:
        spec["process"]["user"] = {
            "uid": 1000,
            "gid": 1001,
            "additionalGids": [10, 20],
            "umask": 0o027,
        }
        spec["process"]["rlimits"] = [
            {"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654},
            {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200},
        ]
        spec["process"]["cwd"] = "/tmp"

    script = "id -u; id -g; id -G; umask; ulimit -n; ulimit -Hn; pwd"
    out = runtime("run", "-b", str(runtime.bundle(["sh", "-c", script], mutate)), runtime.new_id())
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    assert lines[0] == "1000"
    assert lines[1] == "1001"
    assert sorted(lines[2].split()) == ["10", "1001", "20"]
    assert lines[3] == "0027"
    assert lines[4:6] == ["321", "654"]
    assert lines[6] == "/tmp"


def test_oom_score_adj_and_no_new_privs(runtime: Runtime) -> None:
    def mutate(spec: dict[str, Any]) -> None:
        spec["process"]["oomScoreAdj"] = 123

    out = runtime(
        "run",
        "-b",
        str(
            runtime.bundle(
                ["sh", "-c", "cat /proc/self/oom_score_adj; grep NoNewPrivs /proc/self/status"],
                mutate,
            )
        ),
        runtime.new_id(),
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    assert lines[0] == "123"
    assert lines[1].split() == ["NoNewPrivs:", "1"]


def test_pids_limit_makes_fork_fail(runtime: Runtime) -> None:
    def mutate(spec: dict[str, Any]) -> None:
        spec["linux"]["resources"] = {"pids": {"limit": 5}}

    script = "(for i in 1 2 3 4 5 6 7 8; do sleep 5 & done); echo rc=$?"
    out = runtime("run", "-b", str(runtime.bundle(["sh", "-c", script], mutate)), runtime.new_id())
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().strip() != "rc=0"
    assert b"fork" in out.stderr


def test_memory_limit_oom_kills(runtime: Runtime) -> None:
    """tail holds its one 200 MB line in memory: the kernel kills it at 32 MiB.

    When the killed tail's memory is not uncharged yet, the kernel may pick a second victim
    (1 run in 10 here), and that must not be the shell that reports: every other process
    raises its oom_score_adj to 1000 (raising needs no privilege), and a sleeper stays
    around to be that second victim if head is gone already."""

    def mutate(spec: dict[str, Any]) -> None:
        spec["linux"]["resources"] = {"memory": {"limit": 32 << 20, "swap": 32 << 20}}

    first = "echo 1000 > /proc/self/oom_score_adj; exec"
    script = (
        f"({first} sleep 30) & sleeper=$!;"
        f" ({first} head -c 200000000 /dev/zero) | ({first} tail) > /dev/null;"
        " echo status=$?; kill $sleeper 2>/dev/null; exit 0"
    )
    out = runtime(
        "run", "-b", str(runtime.bundle(["sh", "-c", script], mutate)), runtime.new_id(), timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().strip() == "status=137"


def test_pause_resume_update(runtime: Runtime) -> None:
    cid = runtime.new_id()
    bundle = runtime.bundle(
        ["sleep", "60"], lambda s: s["linux"].update(resources={"pids": {"limit": 50}})
    )
    code, err = runtime.detached("run", "-d", "-b", str(bundle), cid)
    assert code == 0, err
    assert runtime("pause", cid).returncode == 0
    assert runtime.state(cid)["status"] == "paused"
    assert runtime("resume", cid).returncode == 0
    assert runtime.state(cid)["status"] == "running"
    assert _one_line_failure(runtime("resume", cid)) == "container not paused"
    out = runtime("update", "--pids-limit", "17", cid)
    assert out.returncode == 0, out.stderr
    saved = json.loads((runtime.root / cid / "state.json").read_text())
    pids_dir = saved["cgroup"]["paths"]["pids"]
    assert Path(pids_dir, "pids.max").read_text().strip() == "17"
    out = runtime("update", "--resources", "-", cid, input=b'{"pids": {"limit": 23}}')
    assert out.returncode == 0, out.stderr
    assert Path(pids_dir, "pids.max").read_text().strip() == "23"


def test_exec_into_running_container(runtime: Runtime) -> None:
    cid = runtime.new_id()
    code, err = runtime.detached("run", "-d", "-b", str(runtime.bundle(["sleep", "60"])), cid)
    assert code == 0, err
    out = runtime("exec", cid, "sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '; exit 3")
    assert out.returncode == 3, out.stderr
    assert out.stdout.decode().splitlines() == ["skiff", "sleep 60 "]
    out = runtime(
        "exec",
        "--user",
        "1000:1000",
        "--env",
        "FOO=bar",
        "--cwd",
        "/tmp",
        cid,
        "sh",
        "-c",
        "id -u; echo $FOO; pwd",
    )
    assert out.stdout.decode().split() == ["1000", "bar", "/tmp"], out.stderr
    process = runtime.work / "process.json"
    process.write_text(
        json.dumps(
            {
                "args": ["sleep", "30"],
                "cwd": "/",
                "user": {"uid": 0, "gid": 0},
                "env": ["PATH=/bin"],
            }
        )
    )
    pid_file = runtime.work / "exec.pid"
    code, err = runtime.detached("exec", "-d", "--pid-file", str(pid_file), "-p", str(process), cid)
    assert code == 0, err
    pid = int(pid_file.read_text())
    init = runtime.state(cid)["pid"]
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{init}/ns/pid")
    assert os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink(f"/proc/{init}/ns/mnt")
    assert pid in json.loads(runtime("ps", "--format", "json", cid).stdout)
    line = _one_line_failure(runtime("exec", cid, "no-such-command"))
    assert "no-such-command" in line


def test_spec_and_features(runtime: Runtime, tmp_path: Path) -> None:
    out = runtime("spec", "--bundle", str(tmp_path))
    assert out.returncode == 0, out.stderr
    spec = json.loads((tmp_path / "config.json").read_text())
    assert spec["process"]["args"] == ["sh"]
    assert _one_line_failure(runtime("spec", "--bundle", str(tmp_path))).endswith("Remove it first")
    assert "rootless" in _one_line_failure(
        runtime("spec", "--rootless", "--bundle", str(tmp_path / "x"))
    )
    features = json.loads(runtime("features").stdout)
    assert "user" in features["linux"]["namespaces"]
    assert "CAP_SYS_ADMIN" in features["linux"]["capabilities"]
    assert features["hooks"][0] == "prestart"


def test_session_keyring_per_container(runtime: Runtime) -> None:
    if not os.path.exists("/proc/keys"):
        pytest.skip("kernel without keyrings")
    names = []
    for extra in ([], ["--no-new-keyring"]):
        cid = runtime.new_id()
        code, err = runtime.detached(
            "run", "-d", *extra, "-b", str(runtime.bundle(["sleep", "60"])), cid
        )
        assert code == 0, err
        names.append(f"_ses.{cid}")
    keys = open("/proc/keys").read()  # the host (root) can view the containers' keyrings
    assert names[0] in keys
    assert names[1] not in keys


def _own_cgroup_dirs(cid: str) -> list[Path]:
    """Where the container's cgroup would be in each v1 hierarchy this process is in."""
    found = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers:
            base = Path("/sys/fs/cgroup") / controllers.removeprefix("name=")
            found.append(base / path.lstrip("/") / "skiff" / cid)
    return found


def test_bad_resources_fail_create_and_leave_nothing(runtime: Runtime) -> None:
    """The main process makes the cgroup while the intermediate imports: the refusal names
    the field, and the cgroup and the state dir are gone."""
    bundle = runtime.bundle(
        ["true"], lambda s: s["linux"].update(resources={"pids": {"limit": "many"}})
    )
    cid = runtime.new_id()
    line = _one_line_failure(runtime("create", "-b", str(bundle), cid))
    assert line.startswith("config.json: linux.resources"), line
    assert not (runtime.root / cid).exists()
    assert [d for d in _own_cgroup_dirs(cid) if d.exists()] == []


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry}: {cmdline}")
    return found


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--bundle", "/nonexistent-bundle", "X"],
        ["run", "--no-such-flag", "X"],
        ["create", "--bundle", "/nonexistent-bundle", "X"],
        ["run", "--bundle", "BUNDLE", "bad/id"],
    ],
)
def test_a_start_refused_early_leaves_no_process(runtime: Runtime, args: list[str]) -> None:
    """The installed command forks the intermediate before it parses anything (prefork.py):
    when the command fails before `create` takes that process, it is ended and reaped."""
    bundle = runtime.bundle(["true"])
    cid = runtime.new_id()
    args = [str(bundle) if a == "BUNDLE" else cid if a == "X" else a for a in args]
    out = runtime(*args)
    assert out.returncode == 1
    assert len(out.stderr.decode().strip().splitlines()) == 1
    assert _processes_mentioning(str(runtime.root)) == []
    assert not (runtime.root / cid).exists()


def test_a_long_run_keeps_no_zombie_of_the_priming(runtime: Runtime) -> None:
    """The launcher primes the cgroup attach from a child of its own; the runtime reaps it
    once its grace period is over, not when the container exits."""
    proc = runtime.popen(
        "run",
        "--bundle",
        str(runtime.bundle(["sleep", "2"])),
        runtime.new_id(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        children = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == proc.pid:
                children.append((entry, fields[0]))
        assert [c for c in children if c[1] == "Z"] == [], children
        assert len(children) == 1, children  # the container's process
    finally:
        assert proc.wait(timeout=30) == 0
