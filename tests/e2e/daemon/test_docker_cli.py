"""The real docker CLI (28.x) against a test skiffd."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from .conftest import Daemon


def name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_run_rm_prints_output_and_removes(skiffd: Daemon) -> None:
    n = name()
    res = skiffd.docker("run", "--rm", "--name", n, "busybox", "echo", "hello from skiff")
    assert res.stdout == "hello from skiff\n"
    assert n not in skiffd.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()


@pytest.mark.parametrize("runtime", ["default", "skiff-runtime"])
@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["busybox", "sh", "-c", "exit 3"], 3, ""),
        (["busybox", "no-such-command"], 127, "no-such-command"),
        (["busybox", "/etc"], 126, "ermission denied"),
        (["--no-such-flag", "busybox"], 125, "unknown flag"),
        # a registry on loopback that is not there: no traffic leaves the host
        (
            ["127.0.0.1:9/no-such-image:1"],
            125,
            "Unable to find image '127.0.0.1:9/no-such-image:1' locally",
        ),
    ],
)
def test_exit_codes_like_docker(
    skiffd: Daemon, runtime: str, args: list[str], code: int, needle: str
) -> None:
    extra = ["--runtime", runtime] if runtime != "default" else []
    res = skiffd.docker("run", "--rm", *extra, *args, check=False)
    assert res.returncode == code, res.stderr
    assert needle in res.stderr


def test_run_detached_then_logs_follow(skiffd: Daemon) -> None:
    n = name()
    skiffd.docker(
        "run",
        "-d",
        "--name",
        n,
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.3; done",
    )
    res = skiffd.docker("logs", "-f", n, timeout=20)
    assert res.stdout.split() == ["out1", "out2", "out3"]
    assert res.stderr.split() == ["err1", "err2", "err3"]
    tail = skiffd.docker("logs", "--tail", "2", "-t", n)
    assert tail.stdout.strip().endswith(" out3") and tail.stdout.startswith("20")
    assert tail.stderr.strip().endswith(" err3")
    skiffd.docker("rm", n)


def _tmux(session: str, *args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=False).stdout


def _wait_for_screen(session: str, text: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _tmux(session, "capture-pane", "-p", "-t", session)
        if text in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not on screen:\n{screen}")


@pytest.fixture
def tmux_session() -> object:
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    session = f"skiff-{uuid.uuid4().hex[:8]}"
    yield session
    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_run_interactive_tty(skiffd: Daemon, tmux_session: str) -> None:
    cmd = f"DOCKER_HOST={skiffd.host} DOCKER_CONFIG={skiffd.root}/docker-config docker run -it --rm busybox sh; echo EXIT=$?; sleep 60"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", tmux_session, "-x", "100", "-y", "30", cmd], check=True
    )
    _wait_for_screen(tmux_session, "/ #")
    subprocess.run(
        ["tmux", "send-keys", "-t", tmux_session, "echo sum=$((40+2)); stty size", "Enter"],
        check=True,
    )
    screen = _wait_for_screen(tmux_session, "sum=42")
    assert "30 100" in _wait_for_screen(tmux_session, "30 100"), screen
    subprocess.run(["tmux", "send-keys", "-t", tmux_session, "exit 7", "Enter"], check=True)
    _wait_for_screen(tmux_session, "EXIT=7")


def test_exec_interactive_tty(skiffd: Daemon, tmux_session: str) -> None:
    n = name()
    skiffd.docker("run", "-d", "--name", n, "busybox", "sleep", "300")
    try:
        cmd = f"DOCKER_HOST={skiffd.host} DOCKER_CONFIG={skiffd.root}/docker-config docker exec -it {n} sh; echo EXIT=$?; sleep 60"
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", tmux_session, "-x", "90", "-y", "25", cmd],
            check=True,
        )
        _wait_for_screen(tmux_session, "/ #")
        subprocess.run(
            [
                "tmux",
                "send-keys",
                "-t",
                tmux_session,
                "echo pid1=$(cat /proc/1/cmdline | tr '\\0' ' ')",
                "Enter",
            ],
            check=True,
        )
        _wait_for_screen(tmux_session, "pid1=sleep 300")
        subprocess.run(["tmux", "send-keys", "-t", tmux_session, "exit 4", "Enter"], check=True)
        _wait_for_screen(tmux_session, "EXIT=4")
    finally:
        skiffd.docker("rm", "-f", n)


def test_exec_exit_code_and_stdin(skiffd: Daemon) -> None:
    n = name()
    skiffd.docker("run", "-d", "--name", n, "busybox", "sleep", "300")
    try:
        assert skiffd.docker("exec", n, "sh", "-c", "exit 5", check=False).returncode == 5
        assert skiffd.docker("exec", "-i", n, "cat", input=b"piped\n").stdout == "piped\n"
        assert skiffd.docker("exec", n, "no-such", check=False).returncode == 127
    finally:
        skiffd.docker("rm", "-f", n)


def test_cp_both_ways(skiffd: Daemon, tmp_path: Path) -> None:
    n = name()
    skiffd.docker("run", "-d", "--name", n, "busybox", "sleep", "300")
    try:
        src = tmp_path / "in"
        (src / "sub").mkdir(parents=True)
        (src / "sub" / "f.txt").write_text("copied in\n")
        skiffd.docker("cp", str(src), f"{n}:/tmp/")
        assert skiffd.docker("exec", n, "cat", "/tmp/in/sub/f.txt").stdout == "copied in\n"
        skiffd.docker("exec", n, "sh", "-c", "mkdir /out && echo made inside > /out/g.txt")
        skiffd.docker("cp", f"{n}:/out", str(tmp_path / "back"))
        assert (tmp_path / "back" / "g.txt").read_text() == "made inside\n"
        # a stopped container's filesystem is reachable too
        skiffd.docker("kill", n)
        skiffd.docker("cp", f"{n}:/etc/passwd", str(tmp_path / "passwd"))
        assert (tmp_path / "passwd").read_text().startswith("root:")
        missing = skiffd.docker("cp", f"{n}:/nope", str(tmp_path / "x"), check=False)
        assert missing.returncode != 0 and "Could not find the file /nope" in missing.stderr
    finally:
        skiffd.docker("rm", "-f", n)


def test_cp_cannot_escape_rootfs(skiffd: Daemon, tmp_path: Path) -> None:
    n = name()
    skiffd.docker("run", "-d", "--name", n, "busybox", "sh", "-c", "ln -s / /escape && sleep 300")
    try:
        time.sleep(0.5)
        marker = tmp_path / "marker.txt"
        marker.write_text("x")
        skiffd.docker("cp", str(marker), f"{n}:/escape/tmp/")
        assert not Path("/tmp/marker.txt").exists() or Path("/tmp/marker.txt").read_text() != "x"
        assert skiffd.docker("exec", n, "cat", "/tmp/marker.txt").stdout == "x"
    finally:
        skiffd.docker("rm", "-f", n)


def test_ps_filters_and_format(skiffd: Daemon) -> None:
    a, b = name("psa"), name("psb")
    skiffd.docker("run", "-d", "--name", a, "--label", "tier=web", "busybox", "sleep", "300")
    assert (
        skiffd.docker(
            "run", "--name", b, "--label", "tier=db", "busybox", "sh", "-c", "exit 2", check=False
        ).returncode
        == 2
    )
    try:
        running = skiffd.docker("ps", "--format", "{{.Names}}").stdout.split()
        assert a in running and b not in running
        assert skiffd.docker(
            "ps", "-a", "--filter", "label=tier=db", "--format", "{{.Names}}"
        ).stdout.split() == [b]
        assert skiffd.docker(
            "ps", "-a", "--filter", "exited=2", "--format", "{{.Names}}"
        ).stdout.split() == [b]
        assert (
            skiffd.docker(
                "ps", "--filter", f"name={a}", "--format", '{{.Names}} {{.Image}} {{.Label "tier"}}'
            ).stdout.strip()
            == f"{a} busybox web"
        )
        status = skiffd.docker(
            "ps",
            "-a",
            "--filter",
            "status=exited",
            "--filter",
            f"name={b}",
            "--format",
            "{{.Status}}",
        ).stdout
        assert status.startswith("Exited (2)")
        as_json = json.loads(
            skiffd.docker("ps", "--filter", f"name={a}", "--format", "json").stdout
        )
        assert as_json["Names"] == a and as_json["State"] == "running"
    finally:
        skiffd.docker("rm", "-f", a, b)


def test_inspect_format(skiffd: Daemon) -> None:
    n = name()
    skiffd.docker(
        "run",
        "-d",
        "--name",
        n,
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        "--memory",
        "32m",
        "busybox",
        "sleep",
        "300",
    )
    try:
        out = skiffd.docker(
            "inspect",
            "-f",
            "{{.Name}} {{.State.Status}} {{.State.Running}} {{.Config.WorkingDir}} {{.HostConfig.Memory}} {{.Config.Image}}",
            n,
        ).stdout
        assert out.strip() == f"/{n} running true /tmp 33554432 busybox"
        env = skiffd.docker("inspect", "-f", "{{json .Config.Env}}", n).stdout
        assert "FOO=bar" in json.loads(env)
        pid = int(skiffd.docker("inspect", "-f", "{{.State.Pid}}", n).stdout)
        assert Path(f"/proc/{pid}").exists()
        missing = skiffd.docker("inspect", "no-such-container-xyz", check=False)
        assert missing.returncode == 1 and "No such object: no-such-container-xyz" in missing.stderr
    finally:
        skiffd.docker("rm", "-f", n)


def test_stats_top_wait_restart_pause_rename_update(skiffd: Daemon) -> None:
    n, n2 = name(), name("renamed")
    skiffd.docker(
        "run",
        "-d",
        "--name",
        n,
        "busybox",
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do sleep 0.2; done",
    )
    try:
        stats = skiffd.docker(
            "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}} {{.MemUsage}}", n
        ).stdout.split()
        assert stats[0] == n and int(stats[1]) >= 1 and stats[2].endswith("B")
        top = skiffd.docker("top", n).stdout
        assert "while true" in top and "PID" in top.splitlines()[0]
        skiffd.docker("pause", n)
        assert skiffd.docker("inspect", "-f", "{{.State.Status}}", n).stdout.strip() == "paused"
        skiffd.docker("unpause", n)
        skiffd.docker("rename", n, n2)
        assert skiffd.docker("inspect", "-f", "{{.Name}}", n2).stdout.strip() == f"/{n2}"
        skiffd.docker("update", "--memory", "48m", "--memory-swap", "96m", n2)
        assert skiffd.docker("inspect", "-f", "{{.HostConfig.Memory}}", n2).stdout.strip() == str(
            48 << 20
        )
        pid_before = skiffd.docker("inspect", "-f", "{{.State.Pid}}", n2).stdout.strip()
        skiffd.docker("restart", "-t", "5", n2)
        assert skiffd.docker("inspect", "-f", "{{.State.Pid}}", n2).stdout.strip() != pid_before
        skiffd.docker("stop", "-t", "5", n2)
        assert skiffd.docker("wait", n2).stdout.strip() == "0"
    finally:
        skiffd.docker("rm", "-f", n, n2, check=False)


def test_rm_force_and_conflicts(skiffd: Daemon) -> None:
    n = name()
    skiffd.docker("run", "-d", "--name", n, "busybox", "sleep", "300")
    dup = skiffd.docker("run", "-d", "--name", n, "busybox", "true", check=False)
    assert dup.returncode == 125 and f'The container name "/{n}" is already in use' in dup.stderr
    refused = skiffd.docker("rm", n, check=False)
    assert (
        refused.returncode == 1
        and "stop the container before removing or force remove" in refused.stderr
    )
    skiffd.docker("rm", "-f", n)
    gone = skiffd.docker("rm", n, check=False)
    assert "No such container: " + n in gone.stderr


def test_events_while_things_happen(skiffd: Daemon) -> None:
    n = name()
    since = str(int(time.time()) - 1)
    proc = subprocess.Popen(
        [
            "docker",
            "events",
            "--since",
            since,
            "--filter",
            f"container={n}",
            "--format",
            "{{.Action}}",
        ],
        env=skiffd.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        skiffd.docker("run", "--name", n, "busybox", "true")
        skiffd.docker("rm", n)
        seen: list[str] = []
        assert proc.stdout is not None
        deadline = time.monotonic() + 10
        while "destroy" not in seen and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line.strip())
        assert seen[:1] == ["create"]
        for action in ("start", "die", "destroy"):
            assert action in seen
    finally:
        proc.kill()
        proc.wait()


def test_system_df_commit_save_load_import_export(skiffd: Daemon, tmp_path: Path) -> None:
    n = name()
    tag = f"committed-{uuid.uuid4().hex[:6]}:v1"
    skiffd.docker("run", "--name", n, "busybox", "sh", "-c", "echo persisted > /data.txt")
    try:
        df = skiffd.docker("system", "df").stdout
        assert df.splitlines()[0].split()[:2] == ["TYPE", "TOTAL"] and "Images" in df
        skiffd.docker("commit", "-c", 'CMD ["cat", "/data.txt"]', n, tag)
        assert skiffd.docker("run", "--rm", tag).stdout == "persisted\n"
        archive = tmp_path / "img.tar"
        skiffd.docker("save", "-o", str(archive), tag)
        skiffd.docker("rmi", tag)
        loaded = skiffd.docker("load", "-i", str(archive)).stdout
        assert f"Loaded image: {tag}" in loaded
        assert skiffd.docker("run", "--rm", tag).stdout == "persisted\n"
        exported = tmp_path / "fs.tar"
        skiffd.docker("export", "-o", str(exported), n)
        imported_tag = f"imported-{uuid.uuid4().hex[:6]}:v1"
        skiffd.docker("import", str(exported), imported_tag)
        assert (
            skiffd.docker("run", "--rm", imported_tag, "cat", "/data.txt").stdout == "persisted\n"
        )
        skiffd.docker("rmi", tag, imported_tag)
    finally:
        skiffd.docker("rm", "-f", n, check=False)


@pytest.mark.parametrize("runtime", ["runc", "skiff-runtime"])
def test_second_runtime(skiffd: Daemon, runtime: str) -> None:
    if runtime not in skiffd.docker("info", "--format", "{{json .Runtimes}}").stdout:
        pytest.skip(f"{runtime} is not installed")
    n = name()
    assert (
        skiffd.docker("run", "--rm", "--runtime", runtime, "busybox", "echo", "via", runtime).stdout
        == f"via {runtime}\n"
    )
    skiffd.docker(
        "run",
        "-d",
        "--runtime",
        runtime,
        "--name",
        n,
        "busybox",
        "sh",
        "-c",
        "echo logged; sleep 300",
    )
    try:
        assert skiffd.docker("exec", n, "echo", "exec", "too").stdout == "exec too\n"
        assert skiffd.docker("logs", n).stdout == "logged\n"
        assert skiffd.docker("exec", "-i", n, "cat", input=b"stdin\n").stdout == "stdin\n"
    finally:
        skiffd.docker("rm", "-f", n)


def test_restart_policy_and_init(skiffd: Daemon) -> None:
    n = name()
    skiffd.docker(
        "run",
        "-d",
        "--name",
        n,
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo try; exit 1",
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            state = skiffd.docker(
                "inspect", "-f", "{{.RestartCount}} {{.State.Status}}", n
            ).stdout.split()
            if state == ["2", "exited"]:
                break
            time.sleep(0.2)
        assert state == ["2", "exited"]
        assert skiffd.docker("logs", n).stdout.split() == ["try", "try", "try"]
    finally:
        skiffd.docker("rm", "-f", n)
    out = skiffd.docker(
        "run", "--rm", "--init", "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"
    ).stdout
    assert out.startswith("/sbin/docker-init -- sh")


def test_healthcheck_start_attach(skiffd: Daemon) -> None:
    n = name()
    skiffd.docker(
        "run",
        "-d",
        "--name",
        n,
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "300ms",
        "--health-retries",
        "2",
        "busybox",
        "sh",
        "-c",
        "sleep 1; touch /tmp/ok; sleep 100",
    )
    try:
        assert (
            "(health: starting)"
            in skiffd.docker("ps", "--filter", f"name={n}", "--format", "{{.Status}}").stdout
        )
        deadline = time.monotonic() + 10
        while (
            skiffd.docker("inspect", "-f", "{{.State.Health.Status}}", n).stdout.strip()
            != "healthy"
        ):
            assert time.monotonic() < deadline, "never became healthy"
            time.sleep(0.2)
        assert skiffd.docker(
            "ps", "--filter", "health=healthy", "--format", "{{.Names}}"
        ).stdout.split() == [n]
    finally:
        skiffd.docker("rm", "-f", n)
    skiffd.docker("create", "--name", n, "busybox", "sh", "-c", "echo started-attached; exit 3")
    res = skiffd.docker("start", "-a", n, check=False)
    assert (res.returncode, res.stdout) == (3, "started-attached\n")
    skiffd.docker("rm", n)
    skiffd.docker(
        "run", "-d", "--name", n, "busybox", "sh", "-c", "sleep 1; echo from-attach; exit 5"
    )
    res = skiffd.docker("attach", n, check=False)
    assert (res.returncode, res.stdout) == (5, "from-attach\n")
    skiffd.docker("rm", n)


def test_run_interactive_pipe_stdin(skiffd: Daemon) -> None:
    res = skiffd.docker(
        "run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done", input=b"piped in\n"
    )
    assert res.stdout == "piped in\ndone\n"


def test_json_file_rotation(skiffd: Daemon) -> None:
    n = name()
    skiffd.docker(
        "run",
        "--name",
        n,
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 300 ]; do echo line$i; i=$((i+1)); done",
    )
    try:
        log_path = Path(skiffd.docker("inspect", "-f", "{{.LogPath}}", n).stdout.strip())
        files = sorted(p.name for p in log_path.parent.glob(log_path.name + "*"))
        assert files == [log_path.name, log_path.name + ".1", log_path.name + ".2"]
        assert all(p.stat().st_size < 2048 + 200 for p in log_path.parent.glob(log_path.name + "*"))
        lines = skiffd.docker("logs", n).stdout.split()
        assert lines[-1] == "line299" and 10 < len(lines) < 300  # the oldest were rotated away
        assert lines == [f"line{i}" for i in range(300 - len(lines), 300)]
        bad = skiffd.docker(
            "run", "--rm", "--log-opt", "compress=true", "busybox", "true", check=False
        )
        assert bad.returncode == 125 and "log option 'compress'" in bad.stderr
    finally:
        skiffd.docker("rm", "-f", n)
