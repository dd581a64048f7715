"""Every verb against a real daemon, compared with what the docker CLI prints against the same one."""

from __future__ import annotations

import json
import re
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import Daemon, Result


def header(out: str) -> list[str]:
    return re.split(r"\s{3,}", out.splitlines()[0].strip())


def same_output(d: Daemon, *args: str, tries: int = 3) -> tuple[Result, Result]:
    """Run skiff and docker with the same arguments until a second boundary does not split them."""
    for _ in range(tries):
        s, k = d.skiff(*args), d.docker(*args)
        if s.out == k.out:
            break
        time.sleep(0.3)
    return s, k


def baseline(d: Daemon, *args: str) -> Result:
    """The docker CLI's result; on skiffd, skip when even docker cannot do it (a daemon gap)."""
    r = d.docker(*args)
    if r.code != 0 and d.kind == "skiffd":
        pytest.skip(f"skiffd cannot serve `docker {' '.join(args[:2])}` yet: {r.err.strip()[:160]}")
    return r


def run_bg(d: Daemon, name: str, *cmd: str) -> str:
    r = d.docker(
        "run", "-d", "--name", name, "--network", "none", "busybox", *(cmd or ("sleep", "300"))
    )
    assert r.code == 0, r.err
    return r.out.strip()


def test_ps_table_matches_docker(daemon: Daemon, name: str) -> None:
    run_bg(daemon, name)
    daemon.docker(
        "create",
        "--name",
        name + "-c",
        "--network",
        "none",
        "busybox",
        "echo",
        "a long command line here",
    )
    for args in (
        ("ps",),
        ("ps", "-a"),
        ("ps", "-a", "--no-trunc"),
        ("ps", "-q"),
        ("ps", "-aq"),
        ("ps", "-s"),
        ("ps", "-a", "--filter", f"name={name}"),
        ("ps", "-n", "1"),
        ("ps", "-l"),
        ("ps", "-a", "--format", "{{.ID}}\t{{.Names}}\t{{.State}}\t{{.Command}}"),
        ("ps", "-a", "--format", 'table {{.Names}}\t{{.Image}}\t{{.Label "x"}}'),
        ("container", "ls", "-a"),
        ("ps", "-a", "--format", "{{.Names}}: {{upper .State}}"),
    ):
        s, k = same_output(daemon, *args)
        assert (s.code, s.out) == (k.code, k.out), args
    s, k = same_output(daemon, "ps", "-a", "--format", "{{json .}}")
    assert [sorted(json.loads(x)) for x in s.out.splitlines()] == [
        sorted(json.loads(x)) for x in k.out.splitlines()
    ]
    assert header(daemon.skiff("ps").out) == [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]


def test_images_history_inspect_match_docker(daemon: Daemon) -> None:
    for args in (
        ("images",),
        ("images", "-q"),
        ("images", "--no-trunc"),
        ("images", "--digests"),
        ("images", "busybox"),
        ("image", "ls", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}"),
        ("history", "busybox"),
        ("history", "--no-trunc", "busybox"),
        ("history", "-q", "busybox"),
        ("image", "inspect", "-f", "{{.Config.Cmd}} {{json .RootFS}}", "busybox"),
    ):
        s, k = same_output(daemon, *args)
        assert (s.code, s.out) == (k.code, k.out), args
    s, k = daemon.skiff("image", "inspect", "busybox"), daemon.docker("image", "inspect", "busybox")
    assert json.loads(s.out) == json.loads(k.out)


def test_inspect_container_matches_docker(daemon: Daemon, name: str) -> None:
    run_bg(daemon, name)
    s, k = daemon.skiff("inspect", name), daemon.docker("inspect", name)
    assert s.code == k.code == 0
    assert json.loads(s.out) == json.loads(k.out)
    assert s.out.splitlines()[1].startswith("    {")  # docker's 4-space indentation
    for fmt in (
        "{{.State.Status}}",
        "{{.Name}} {{.Config.Image}}",
        "{{json .Config.Cmd}}",
        "{{range .Config.Cmd}}[{{.}}]{{end}}",
        "{{index .Config.Cmd 0}}",
        '{{join .Config.Cmd ","}}',
        "{{lower .State.Status}} {{len .Config.Cmd}}",
        "{{if .State.Running}}up{{else}}down{{end}}",
    ):
        s, k = daemon.skiff("inspect", "-f", fmt, name), daemon.docker("inspect", "-f", fmt, name)
        assert (s.code, s.out) == (k.code, k.out), fmt
    s, k = daemon.skiff("inspect", "nosuch-" + name), daemon.docker("inspect", "nosuch-" + name)
    assert s.code == k.code == 1
    assert "No such object" in s.err


def test_run_streams_output_and_returns_exit_codes(daemon: Daemon, name: str) -> None:
    cases = [
        (["sh", "-c", "echo out; echo err >&2; exit 3"], None),
        (["nosuchcmd"], None),
        (["/etc"], None),
        (["cat"], "piped input\n"),
    ]
    for cmd, stdin in cases:
        flags = ["-i"] if stdin else []
        s = daemon.skiff("run", "--rm", "--network", "none", *flags, "busybox", *cmd, input=stdin)
        k = daemon.docker("run", "--rm", "--network", "none", *flags, "busybox", *cmd, input=stdin)
        assert (s.code, s.out) == (k.code, k.out), cmd
    if daemon.kind == "docker":  # dockerd reports these at start; map as the docker CLI does
        assert daemon.skiff("run", "--rm", "--network", "none", "busybox", "nosuchcmd").code == 127
        assert daemon.skiff("run", "--rm", "--network", "none", "busybox", "/etc").code == 126
    r = daemon.skiff("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "300")
    assert r.code == 0 and re.fullmatch(r"[0-9a-f]{64}\n", r.out)
    assert daemon.docker("inspect", "-f", "{{.State.Running}}", name).out.strip() == "true"
    before = daemon.docker("ps", "-aq").out
    assert daemon.skiff("run", "--rm", "--network", "none", "busybox", "true").code == 0
    assert daemon.docker("ps", "-aq").out == before  # --rm left nothing behind


def test_lifecycle_verbs(daemon: Daemon, name: str) -> None:
    r = daemon.skiff(
        "create",
        "--name",
        name,
        "--network",
        "none",
        "-e",
        "A=1",
        "-l",
        "k=v",
        "busybox",
        "sleep",
        "300",
    )
    assert r.code == 0, r.err
    cid = r.out.strip()
    d = daemon.docker
    assert (
        d(
            "inspect", "-f", "{{.State.Status}} {{.Config.Env}} {{.Config.Labels.k}}", name
        ).out.split()[0]
        == "created"
    )
    assert daemon.skiff("start", name).out == name + "\n"
    assert d("inspect", "-f", "{{.State.Status}}", name).out.strip() == "running"
    assert daemon.skiff("pause", name).out == name + "\n"
    assert d("inspect", "-f", "{{.State.Status}}", name).out.strip() == "paused"
    assert daemon.skiff("unpause", name).code == 0
    assert daemon.skiff("rename", name, name + "-2").code == 0
    assert d("inspect", "-f", "{{.Name}}", cid).out.strip() == f"/{name}-2"
    assert daemon.skiff("restart", "-t", "1", name + "-2").code == 0
    assert (
        daemon.skiff("update", "--cpu-shares", "512", "--pids-limit", "50", name + "-2").out
        == name + "-2\n"
    )
    assert (
        d("inspect", "-f", "{{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}}", cid).out.strip()
        == "512 50"
    )
    s, k = (
        daemon.skiff("update", "--memory", "64m", name + "-2"),
        d("update", "--memory", "64m", name + "-2"),
    )
    assert (s.code, s.err) == (k.code, k.err)
    assert daemon.skiff("kill", "-s", "KILL", name + "-2").code == 0
    w = daemon.skiff("wait", name + "-2")
    assert w.code == 0 and w.out == "137\n"
    assert daemon.skiff("stop", name + "-2").code == 0
    assert daemon.skiff("rm", name + "-2").out == name + "-2\n"
    s, k = daemon.skiff("rm", name + "-2"), d("rm", name + "-2")
    assert s.code == k.code == 1 and s.err == k.err


def test_logs_exec_top_diff_export_cp(daemon: Daemon, name: str, tmp_path: Path) -> None:
    run_bg(
        daemon,
        name,
        "sh",
        "-c",
        "echo one; echo two >&2; echo three; mkdir /made; touch /made/f; sleep 300",
    )
    time.sleep(1)
    for args in (
        ("logs", name),
        ("logs", "--tail", "1", name),
        ("logs", "-t", name),
        ("diff", name),
        ("port", name),
    ):
        s, k = daemon.skiff(*args), daemon.docker(*args)
        assert (s.code, s.out, s.err) == (k.code, k.out, k.err), args
    s = daemon.skiff("exec", name, "sh", "-c", "echo in; echo er >&2; exit 4")
    k = daemon.docker("exec", name, "sh", "-c", "echo in; echo er >&2; exit 4")
    assert (s.code, s.out, s.err) == (4, k.out, k.err)
    if (
        daemon.kind == "docker"
    ):  # skiffd: the docker CLI can read the exec's inspect before its exit code is set
        assert k.code == 4
    s, k = daemon.skiff("top", name), daemon.docker("top", name)
    assert header(s.out) == header(k.out) and len(s.out.splitlines()) == len(k.out.splitlines())
    assert (
        daemon.skiff("exec", "-e", "V=9", "-w", "/made", name, "sh", "-c", "echo $V $PWD").out
        == "9 /made\n"
    )
    # cp both ways
    src = tmp_path / "in.txt"
    src.write_text("hello cp\n")
    assert daemon.skiff("cp", str(src), f"{name}:/made/").code == 0
    assert daemon.docker("exec", name, "cat", "/made/in.txt").out == "hello cp\n"
    assert daemon.skiff("cp", f"{name}:/made/in.txt", str(tmp_path / "back.txt")).code == 0
    assert (tmp_path / "back.txt").read_text() == "hello cp\n"
    assert daemon.skiff("cp", f"{name}:/made", str(tmp_path)).code == 0
    assert (tmp_path / "made" / "in.txt").exists()
    # export: same members as docker's export
    assert daemon.skiff("export", "-o", str(tmp_path / "s.tar"), name).code == 0
    assert daemon.docker("export", "-o", str(tmp_path / "d.tar"), name).code == 0
    with tarfile.open(tmp_path / "s.tar") as a, tarfile.open(tmp_path / "d.tar") as b:
        assert sorted(a.getnames()) == sorted(b.getnames())


def test_commit_tag_rmi_save_load_import(
    daemon: Daemon, name: str, tmp_path: Path, busybox_tar: Path
) -> None:
    run_bg(daemon, name, "sh", "-c", "echo x > /committed; sleep 300")
    time.sleep(0.5)
    r = daemon.skiff("commit", "-m", "msg", "-c", "ENV Z=1", name, f"{name}:c1")
    assert r.code == 0 and r.out.startswith("sha256:")
    assert (
        daemon.docker("run", "--rm", "--network", "none", f"{name}:c1", "cat", "/committed").out
        == "x\n"
    )
    assert "Z=1" in daemon.docker("image", "inspect", "-f", "{{.Config.Env}}", f"{name}:c1").out
    assert daemon.skiff("tag", f"{name}:c1", f"{name}:t2").code == 0
    s, k = daemon.skiff("rmi", f"{name}:t2"), daemon.docker("rmi", f"{name}:t2")
    assert s.out == f"Untagged: {name}:t2\n" and k.code == 1
    assert daemon.skiff("save", "-o", str(tmp_path / "img.tar"), f"{name}:c1").code == 0
    assert "manifest.json" in tarfile.open(tmp_path / "img.tar").getnames()
    daemon.docker("rm", "-f", name)
    assert daemon.skiff("rmi", f"{name}:c1").code == 0
    r = daemon.skiff("load", "-i", str(tmp_path / "img.tar"))
    assert r.code == 0 and f"Loaded image: {name}:c1" in r.out
    r = daemon.skiff("import", "-c", 'CMD ["sh"]', str(busybox_tar), f"{name}:imp")
    assert r.code == 0 and re.fullmatch(r"sha256:[0-9a-f]{64}\n", r.out), r
    assert daemon.skiff("rmi", f"{name}:imp", f"{name}:c1").code == 0


def test_system_verbs(daemon: Daemon, name: str) -> None:
    since = str(int(time.time()) - 1)
    run_bg(daemon, name)
    until = str(int(time.time()) + 1)
    time.sleep(1.2)
    for args in (
        ("version", "--format", "{{.Server.Version}} {{.Server.APIVersion}} {{.Server.Os}}"),
        ("info", "--format", "{{.ServerVersion}} {{.Containers}} {{json .Images}}"),
        ("events", "--since", since, "--until", until, "--filter", f"container={name}"),
        ("events", "--since", since, "--until", until, "--format", "{{.Type}} {{.Action}}"),
    ):
        s, k = daemon.skiff(*args), daemon.docker(*args)
        assert (s.code, s.out) == (k.code, k.out), args
    s, k = same_output(daemon, "system", "df", "-v")
    assert [ln.split("   ")[0] for ln in s.out.splitlines()] == [
        ln.split("   ")[0] for ln in k.out.splitlines()
    ]
    assert [header(block) for block in s.out.split("usage:")[1:4]] == [
        header(b) for b in k.out.split("usage:")[1:4]
    ]
    s, k = daemon.skiff("system", "df"), daemon.docker("system", "df")
    assert header(s.out) == header(k.out) and [ln.split()[0] for ln in s.out.splitlines()] == [
        ln.split()[0] for ln in k.out.splitlines()
    ]
    s = daemon.skiff("stats", "--no-stream", name)
    k = daemon.docker("stats", "--no-stream", name)
    assert (
        header(s.out) == header(k.out) and s.out.split()[8] == k.out.split()[8]
    )  # same container ID
    assert daemon.skiff("version").code == 0 and daemon.skiff("info").code == 0
    assert daemon.skiff("container", "prune", "-f").code == 0
    baseline(daemon, "system", "prune", "-f")
    assert daemon.skiff("system", "prune", "-f").code == 0


def test_networks(daemon: Daemon, name: str) -> None:
    bridge = "skb" + name[-8:]
    baseline(daemon, "network", "ls")
    r = daemon.skiff(
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.213.77.0/24",
        "-o",
        f"com.docker.network.bridge.name={bridge}",
        name,
    )
    assert r.code == 0, r.err
    try:
        for args in (
            ("network", "ls"),
            ("network", "ls", "-q"),
            ("network", "ls", "--filter", f"name={name}"),
            (
                "network",
                "inspect",
                "-f",
                "{{range .IPAM.Config}}{{.Subnet}}{{end}} {{.Internal}}",
                name,
            ),
        ):
            s, k = same_output(daemon, *args)
            assert (s.code, s.out) == (k.code, k.out), args
        assert daemon.docker("create", "--name", name, "--network", name, "busybox").code == 0
        assert daemon.skiff("network", "disconnect", name, name).code == 0
        assert (
            name
            not in daemon.docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", name).out
        )
        assert daemon.skiff("network", "connect", "--alias", "db", name, name).code == 0
        nets = json.loads(
            daemon.docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", name).out
        )
        assert "db" in nets[name]["Aliases"]
        assert json.loads(daemon.skiff("network", "inspect", name).out)[0]["Name"] == name
    finally:
        daemon.docker("rm", "-f", name)
        assert daemon.skiff("network", "rm", name).out == name + "\n"
    assert daemon.skiff("network", "prune", "-f").code == 0


def test_volumes(daemon: Daemon, name: str) -> None:
    baseline(daemon, "volume", "create", name + "-probe")
    daemon.docker("volume", "rm", name + "-probe")
    assert daemon.skiff("volume", "create", "--label", "a=b", name).out == name + "\n"
    for args in (
        ("volume", "ls"),
        ("volume", "ls", "-q"),
        ("volume", "inspect", name),
        ("volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Labels}}", name),
    ):
        s, k = daemon.skiff(*args), daemon.docker(*args)
        assert (s.code, s.out) == (k.code, k.out), args
    assert daemon.skiff("volume", "rm", name).out == name + "\n"
    s, k = daemon.skiff("volume", "rm", name), daemon.docker("volume", "rm", name)
    assert s.code == k.code == 1
    assert daemon.skiff("volume", "prune", "-f").code == 0


def test_build(daemon: Daemon, name: str, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nCOPY hello.txt /hello.txt\nLABEL made=by-skiff\n"
    )
    (tmp_path / "hello.txt").write_text("built\n")
    (tmp_path / "ignored.txt").write_text("no\n")
    (tmp_path / ".dockerignore").write_text("ignored.txt\n")
    baseline(daemon, "build", "-q", "--network", "none", "-t", f"{name}:probe", str(tmp_path))
    daemon.docker("rmi", f"{name}:probe")
    r = daemon.skiff("build", "-q", "--network", "none", "-t", f"{name}:b", str(tmp_path))
    assert r.code == 0, r.err
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", r.out)
    assert (
        daemon.docker("run", "--rm", "--network", "none", f"{name}:b", "cat", "/hello.txt").out
        == "built\n"
    )
    assert (
        daemon.docker("image", "inspect", "-f", "{{.Config.Labels.made}}", f"{name}:b").out
        == "by-skiff\n"
    )
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCOPY ignored.txt /x\n")
    r = daemon.skiff("build", "--network", "none", str(tmp_path))
    assert r.code == 1 and "ignored.txt" in r.err
    daemon.docker("rmi", f"{name}:b")


def test_push_pull_login_logout(daemon: Daemon, name: str, registry: Callable[[], str]) -> None:
    reg = registry()
    ref = f"{reg}/{name}:v1"
    assert daemon.skiff("tag", "busybox", ref).code == 0
    baseline(daemon, "push", ref)
    r = daemon.skiff("push", ref)
    assert r.code == 0, r.err
    assert "Pushed" in r.out or "digest:" in r.out
    assert daemon.skiff("rmi", ref).code == 0
    r = daemon.skiff("pull", ref)
    assert r.code == 0, r.err
    assert r.out.splitlines()[-1] == ref
    assert daemon.docker("image", "inspect", ref).code == 0
    r = daemon.skiff("login", "-u", "me", "--password-stdin", reg, input="secret\n")
    assert r.code == 0 and "Login Succeeded" in r.out
    cfg = json.loads((daemon.root / "skiffcfg" / "config.json").read_text())
    assert reg in cfg["auths"]
    assert daemon.skiff("logout", reg).out == f"Removing login credentials for {reg}\n"
    r = daemon.skiff("pull", f"{reg}/nosuch-{name}:v1")
    assert r.code == 1 and r.err.count("\n") == 1
    daemon.docker("rmi", ref)


def test_start_attach_and_signal_proxy(daemon: Daemon, name: str) -> None:
    import signal
    import subprocess

    from .conftest import SKIFF_BIN

    assert (
        daemon.docker(
            "create", "--name", name, "--network", "none", "busybox", "sh", "-c", "echo hi; exit 6"
        ).code
        == 0
    )
    s = daemon.skiff("start", "-a", name)
    assert (s.code, s.out) == (6, "hi\n")
    script = "trap 'echo got-term; exit 9' TERM; echo ready; while true; do sleep 0.1; done"
    proc = subprocess.Popen(
        [SKIFF_BIN, "run", "--rm", "--network", "none", "busybox", "sh", "-c", script],
        env=daemon.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)  # --sig-proxy (default): forwarded to the container
        out, _ = proc.communicate(timeout=30)
        assert (proc.returncode, out) == (9, "got-term\n")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
