"""Malicious inputs against a test skiffd: each refused (4xx) or contained, never a 500.

- `docker load` of layer tars with `../` traversal, an absolute symlink written through, a
  hardlink to a host file, a block device node: afterwards no byte outside the store (sentinels
  on the host are untouched, the escape targets do not exist) and, when the image was accepted, a
  container from it sees only its own files.
- PUT /containers/{id}/archive (`docker cp`) with `../` entries and symlinks that point out.
- malformed JSON bodies on every POST endpoint that reads one, an oversized body, invalid names
  and references: 400 with a message.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

DEEP = "../" * 24  # enough to climb from any store directory to /


def _add(tar: tarfile.TarFile, name: str, *, data: bytes = b"", **kw: Any) -> None:
    info = tarfile.TarInfo(name)
    info.mode = kw.pop("mode", 0o644)
    for k, v in kw.items():
        setattr(info, k, v)
    info.size = len(data) if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    tar.addfile(info, io.BytesIO(data) if info.size else None)


def layer_tar(build: Callable[[tarfile.TarFile], None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "bin/", type=tarfile.DIRTYPE, mode=0o755)
        build(tar)
    return buf.getvalue()


def docker_archive(layer: bytes, tag: str) -> bytes:
    """A docker-archive (the pre-OCI layout docker 20 writes) holding one image of one layer."""
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": "hardening test"}],
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": [tag], "Layers": ["layer/layer.tar"]}]
    ).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add(tar, "layer/", type=tarfile.DIRTYPE, mode=0o755)
        _add(tar, "layer/layer.tar", data=layer)
        _add(tar, config_name, data=config)
        _add(tar, "manifest.json", data=manifest)
    return buf.getvalue()


@pytest.fixture
def escape_dir(tmp_path: Path) -> Iterator[Path]:
    """A host directory an attack aims at; it must stay empty."""
    d = Path(f"/tmp/skiff-hardening-target-{uuid.uuid4().hex[:8]}")
    d.mkdir()
    try:
        yield d
    finally:
        for p in sorted(d.rglob("*"), reverse=True):
            p.unlink() if not p.is_dir() or p.is_symlink() else p.rmdir()
        d.rmdir()


def _assert_not_500(reply: Any, what: str) -> None:
    assert reply.status != 500, f"{what}: 500 {reply.body[:400]!r}"


def _load(api: Any, archive: bytes) -> tuple[int, str]:
    """POST /images/load; returns (status, error text or '')."""
    r = api("POST", "/images/load?quiet=1", archive, content_type="application/x-tar", timeout=120)
    _assert_not_500(r, "POST /images/load")
    if r.status != 200:
        return r.status, r.message()
    errors = []
    for line in r.body.decode(errors="replace").splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict) and (msg.get("error") or msg.get("errorDetail")):
            errors.append(str(msg.get("error") or msg.get("errorDetail")))
    return r.status, "; ".join(errors)


# ---- layer tars -------------------------------------------------------------------------


def test_load_layer_with_dotdot_traversal(skiffd: Any, api: Any, escape_dir: Path) -> None:
    target = escape_dir / "pwned"
    layer = layer_tar(lambda t: _add(t, DEEP + str(target).lstrip("/"), data=b"escaped\n"))
    tag = f"evil-dotdot:{uuid.uuid4().hex[:6]}"
    status, err = _load(api, docker_archive(layer, tag))
    assert not target.exists(), f"load wrote {target} on the host"
    assert list(escape_dir.iterdir()) == []
    if status == 200 and not err:  # accepted: the entry must have landed inside the layer
        res = skiffd.docker("run", "--rm", tag, "cat", str(target), check=False)
        assert res.returncode == 0 and res.stdout == "escaped\n", res
        skiffd.docker("rmi", "-f", tag, check=False)
    else:
        assert err, status


def test_load_layer_writing_through_an_absolute_symlink(
    skiffd: Any, api: Any, escape_dir: Path
) -> None:
    def build(t: tarfile.TarFile) -> None:
        _add(t, "link", type=tarfile.SYMTYPE, linkname=str(escape_dir), mode=0o777)
        _add(t, "link/pwned", data=b"escaped\n")

    tag = f"evil-symlink:{uuid.uuid4().hex[:6]}"
    status, err = _load(api, docker_archive(layer_tar(build), tag))
    assert list(escape_dir.iterdir()) == [], "load wrote through a symlink onto the host"
    if status == 200 and not err:
        skiffd.docker("rmi", "-f", tag, check=False)
    else:
        assert err, status


def test_load_layer_with_hardlink_to_a_host_file(skiffd: Any, api: Any, escape_dir: Path) -> None:
    sentinel = escape_dir / "host-secret"
    sentinel.write_bytes(b"host secret\n")
    try:

        def build(t: tarfile.TarFile) -> None:
            _add(t, "stolen", type=tarfile.LNKTYPE, linkname=str(sentinel).lstrip("/"))
            _add(t, "stolen2", type=tarfile.LNKTYPE, linkname=DEEP + str(sentinel).lstrip("/"))

        tag = f"evil-hardlink:{uuid.uuid4().hex[:6]}"
        status, err = _load(api, docker_archive(layer_tar(build), tag))
        assert os.stat(sentinel).st_nlink == 1, "load hard-linked a host file into the store"
        assert sentinel.read_bytes() == b"host secret\n"
        if status == 200 and not err:
            res = skiffd.docker("run", "--rm", tag, "cat", "/stolen", check=False)
            assert "host secret" not in res.stdout, res
            skiffd.docker("rmi", "-f", tag, check=False)
        else:
            assert err, status
    finally:
        sentinel.unlink()


def test_load_layer_with_a_block_device(skiffd: Any, api: Any) -> None:
    """A device node in a layer is allowed (Docker extracts them), but the device cgroup denies it."""

    def build(t: tarfile.TarFile) -> None:
        _add(t, "sda", type=tarfile.BLKTYPE, devmajor=8, devminor=0, mode=0o666)
        _add(t, "mem", type=tarfile.CHRTYPE, devmajor=1, devminor=1, mode=0o666)
        _add(t, "bin/busybox", data=Path("/bin/busybox").read_bytes(), mode=0o755)
        for applet in ("sh", "head"):
            _add(t, f"bin/{applet}", type=tarfile.SYMTYPE, linkname="busybox", mode=0o777)

    tag = f"evil-device:{uuid.uuid4().hex[:6]}"
    status, err = _load(api, docker_archive(layer_tar(build), tag))
    if status == 200 and not err:
        try:
            for node in ("/sda", "/mem"):
                res = skiffd.docker("run", "--rm", tag, "head", "-c", "1", node, check=False)
                assert res.returncode == 1, res
                assert f"head: {node}: Operation not permitted" in res.stderr.splitlines(), (
                    res.stderr
                )
        finally:
            skiffd.docker("rmi", "-f", tag, check=False)
    else:
        assert err, status


def test_load_garbage_is_a_clear_error(api: Any) -> None:
    for body in (b"", b"not a tar at all" * 100, docker_archive(b"truncated", "evil:x")[:700]):
        status, err = _load(api, body)
        assert status in (200, 400) and err, (status, err)


# ---- PUT /containers/{id}/archive -----------------------------------------------------------


@pytest.fixture
def container(skiffd: Any) -> Iterator[str]:
    name = f"h-archive-{uuid.uuid4().hex[:8]}"
    skiffd.docker("create", "--name", name, "busybox", "sleep", "60")
    try:
        yield name
    finally:
        skiffd.docker("rm", "-f", name, check=False)


def _put_archive(api: Any, container: str, path: str, tar: bytes) -> Any:
    r = api(
        "PUT",
        f"/containers/{container}/archive?path={quote(path)}",
        tar,
        content_type="application/x-tar",
    )
    _assert_not_500(r, f"PUT /containers/{container}/archive?path={path}")
    return r


def _tar(build: Callable[[tarfile.TarFile], None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        build(tar)
    return buf.getvalue()


def test_cp_archive_with_dotdot_entries(
    skiffd: Any, api: Any, container: str, escape_dir: Path
) -> None:
    target = escape_dir / "pwned"
    r = _put_archive(
        api, container, "/tmp", _tar(lambda t: _add(t, DEEP + str(target).lstrip("/"), data=b"x"))
    )
    assert not target.exists(), "PUT archive wrote outside the container"
    assert r.status in (200, 400), r


def test_cp_archive_writing_through_a_symlink_it_carries(
    skiffd: Any, api: Any, container: str, escape_dir: Path
) -> None:
    def build(t: tarfile.TarFile) -> None:
        _add(t, "out", type=tarfile.SYMTYPE, linkname=str(escape_dir), mode=0o777)
        _add(t, "out/pwned", data=b"x")

    r = _put_archive(api, container, "/", _tar(build))
    assert list(escape_dir.iterdir()) == [], "PUT archive followed a symlink onto the host"
    assert r.status in (200, 400), r


def test_cp_into_a_path_the_container_made_a_symlink(
    skiffd: Any, api: Any, container: str, escape_dir: Path
) -> None:
    """The container (here: an earlier archive) plants /dest -> host dir; a later cp to /dest stays inside."""
    _put_archive(
        api,
        container,
        "/",
        _tar(lambda t: _add(t, "dest", type=tarfile.SYMTYPE, linkname=str(escape_dir))),
    )
    _put_archive(
        api,
        container,
        "/",
        _tar(
            lambda t: _add(
                t, "rel", type=tarfile.SYMTYPE, linkname=DEEP + str(escape_dir).lstrip("/")
            )
        ),
    )
    for dest in ("/dest", "/rel", "/dest/sub/.."):
        r = _put_archive(api, container, dest, _tar(lambda t: _add(t, "pwned", data=b"x")))
        assert r.status in (200, 400, 404), r
        assert list(escape_dir.iterdir()) == [], f"cp to {dest} wrote onto the host"


def test_cp_symlink_race_is_contained(skiffd: Any, api: Any, escape_dir: Path) -> None:
    """A running container flips /race between a directory and a symlink to a host directory
    while we copy a tar of many files into /race: every file lands inside the container or the
    copy fails cleanly (4xx) — nothing on the host, no 500."""
    name = f"h-race-{uuid.uuid4().hex[:8]}"
    skiffd.docker(
        "run",
        "-d",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        f"while :; do rm -rf /race; mkdir /race; rm -rf /race; ln -s {escape_dir} /race; done",
    )

    def build(t: tarfile.TarFile) -> None:
        for i in range(50):
            _add(t, f"pwned-{i}", data=b"x")

    tar = _tar(build)
    errors_500 = []
    try:
        for _ in range(60):
            r = api(
                "PUT",
                f"/containers/{name}/archive?path=/race",
                tar,
                content_type="application/x-tar",
            )
            if r.status == 500:
                errors_500.append(r.body[:300])
        escaped = sorted(p.name for p in escape_dir.iterdir())
        assert escaped == [], (
            f"a symlink race let PUT archive write {len(escaped)} files onto the host"
        )
        assert not errors_500, (
            f"{len(errors_500)} of 60 copies answered 500, e.g. {errors_500[0]!r}"
        )
    finally:
        skiffd.docker("rm", "-f", name, check=False)


# ---- Dockerfile COPY of symlinks pointing out of the context ---------------------------------


def test_build_copy_of_a_symlink_out_of_the_context(
    skiffd: Any, tmp_path: Path, escape_dir: Path
) -> None:
    """COPY follows a source symlink inside the context only (Docker: `file not found in build
    context`); a symlink copied as part of a directory stays a symlink, resolved in the image."""
    secret = escape_dir / "host-secret"
    token = f"host-secret-{uuid.uuid4().hex}"
    secret.write_text(token + "\n")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "abs").symlink_to(secret)
    (ctx / "rel").symlink_to("../" * 16 + str(secret).lstrip("/"))
    (ctx / "ok").write_text("ok\n")
    tag = f"h-copy-{uuid.uuid4().hex[:8]}"
    try:
        for src in ("abs", "rel"):
            (ctx / "Dockerfile").write_text(f"FROM busybox\nCOPY {src} /stolen\n")
            res = skiffd.docker("build", "-q", "-t", tag, str(ctx), check=False, timeout=120)
            assert res.returncode != 0, f"COPY {src}: built {res.stdout!r}"
            assert (
                "not found in build context" in res.stderr or "no such file" in res.stderr.lower()
            ), res.stderr
            assert token not in res.stdout + res.stderr
        (ctx / "Dockerfile").write_text(
            "FROM busybox\nCOPY . /ctx/\nRUN cat /ctx/abs /ctx/rel; true\n"
        )
        res = skiffd.docker("build", "-t", tag, str(ctx), check=False, timeout=120)
        assert res.returncode == 0, res.stderr
        assert token not in res.stdout + res.stderr, (
            "a RUN step read a host file through a copied symlink"
        )
        out = skiffd.docker(
            "run",
            "--rm",
            tag,
            "sh",
            "-c",
            "readlink /ctx/abs; cat /ctx/abs /ctx/rel; true",
            check=False,
        )
        assert out.stdout.splitlines()[:1] == [str(secret)], out
        assert token not in out.stdout + out.stderr
        assert secret.read_text() == token + "\n"
    finally:
        skiffd.docker("rmi", "-f", tag, check=False)
        secret.unlink()


# ---- JSON bodies, sizes, names ------------------------------------------------------------

# the POST endpoints of the Docker API that read a JSON body
JSON_BODY_ENDPOINTS = [
    "/auth",
    "/containers/create",
    "/containers/{id}/update",
    "/containers/{id}/exec",
    "/exec/{exec}/start",
    "/commit?container={id}",
    "/networks/create",
    "/networks/{net}/connect",
    "/networks/{net}/disconnect",
    "/volumes/create",
]
# `null` is not here: Go's decoder accepts it (Docker treats it as an empty body)
MALFORMED = [
    b"{not json",
    b'{"Image": "busybox"',
    b"\xff\xfe\x00",
    b"[]",
    b"123",
    b'"text"',
    b"[{}]",
]


def _served(api: Any, path: str) -> bool:
    """The route exists when skiffd answers anything but its unknown-route 404."""
    r = api("POST", path.split("?")[0].format(id="x", exec="x", net="x"), b"{}")
    return not (r.status == 404 and r.message() == "page not found")


@pytest.fixture
def running(skiffd: Any) -> Iterator[str]:
    name = f"h-json-{uuid.uuid4().hex[:8]}"
    skiffd.docker("run", "-d", "--name", name, "busybox", "sleep", "300")
    try:
        yield name
    finally:
        skiffd.docker("rm", "-f", name, check=False)


@pytest.mark.parametrize("endpoint", JSON_BODY_ENDPOINTS)
def test_malformed_json_bodies(api: Any, running: str, endpoint: str) -> None:
    if not _served(api, endpoint):
        pytest.skip(f"skiffd does not serve {endpoint} yet")
    exec_id = ""
    if "{exec}" in endpoint:
        r = api("POST", f"/containers/{running}/exec", json.dumps({"Cmd": ["true"]}).encode())
        assert r.status == 201, r
        exec_id = r.json()["Id"]
    path = endpoint.format(id=running, exec=exec_id, net="bridge")
    failures = []
    for body in MALFORMED:
        r = api("POST", path, body)
        if r.status != 400 or not r.message():
            failures.append(f"POST {path} {body!r} -> {r.status} {r.body[:200]!r}")
    assert not failures, "\n".join(failures)


def test_oversized_body_is_refused(api: Any) -> None:
    """A 96 MiB JSON body: refused with 413 or 400 (a request body size limit), never a 500."""
    # valid in every other way: the size is the only reason to refuse it
    big = b'{"Image": "busybox", "Cmd": ["true"], "Labels": {"x": "' + b"a" * (96 << 20) + b'"}}'
    r = api("POST", f"/containers/create?name=h-big-{uuid.uuid4().hex[:6]}", big, timeout=120)
    if r.status == 201:
        api("DELETE", f"/containers/{r.json()['Id']}?force=1")
    assert r.status in (400, 413), f"{r.status} {r.body[:200]!r}"


@pytest.mark.parametrize(
    "name", ["bad/name", "-leading-dash", "has space", "a" * 300 + "/", "..", "ünïcode"]
)
def test_invalid_container_names(api: Any, name: str) -> None:
    r = api(
        "POST", f"/containers/create?name={quote(name)}", json.dumps({"Image": "busybox"}).encode()
    )
    if r.status == 201:
        api("DELETE", f"/containers/{r.json()['Id']}?force=1")
    assert r.status == 400 and r.message(), f"{name!r}: {r.status} {r.body[:200]!r}"


BAD_REFS = [
    "library/UPPER",  # ("UPPER/case" is valid: modern Docker reads UPPER as a registry host)
    "busybox:tag with space",
    "busybox@sha256:abc",
    "a//b",
    ":nope",
    "x" * 300,
    "../../etc",
]


@pytest.mark.parametrize("ref", BAD_REFS)
def test_invalid_image_reference_in_create(api: Any, ref: str) -> None:
    """Docker: 400 `invalid reference format` before looking the image up."""
    r = api("POST", "/containers/create", json.dumps({"Image": ref, "Cmd": ["true"]}).encode())
    if r.status == 201:
        api("DELETE", f"/containers/{r.json()['Id']}?force=1")
    assert r.status == 400 and r.message(), f"create Image={ref!r}: {r.status} {r.body[:200]!r}"


@pytest.mark.parametrize("ref", BAD_REFS)
def test_invalid_image_reference_in_tag(api: Any, ref: str) -> None:
    r = api("POST", f"/images/busybox/tag?repo={quote(ref)}&tag=x")
    assert r.status == 400 and r.message(), f"tag repo={ref!r}: {r.status} {r.body[:200]!r}"


@pytest.mark.parametrize("ref", BAD_REFS)
def test_invalid_image_reference_in_pull(api: Any, ref: str) -> None:
    """Docker: 400 `invalid reference format` before anything is fetched (not a 200 stream)."""
    r = api("POST", f"/images/create?fromImage={quote(ref)}", timeout=60)
    assert r.status == 400 and r.message(), f"pull {ref!r}: {r.status} {r.body[:200]!r}"


# Docker accepts almost any network name ("a b", "a/b" and "-x" all create networks in dockerd
# 20.10); it refuses an empty name (with a 500) and the predefined names (403).
@pytest.mark.parametrize(
    "name,statuses",
    [("", (400,)), ("bridge", (403, 409)), ("host", (403, 409)), ("none", (403, 409))],
)
def test_invalid_network_names(api: Any, name: str, statuses: tuple[int, ...]) -> None:
    if not _served(api, "/networks/create"):
        pytest.skip("skiffd does not serve /networks/create yet")
    r = api("POST", "/networks/create", json.dumps({"Name": name}).encode())
    if r.status == 201:
        api("DELETE", f"/networks/{r.json()['Id']}")
    assert r.status in statuses and r.message(), f"{name!r}: {r.status} {r.body[:200]!r}"


@pytest.mark.parametrize("address", ["bad\x13host", "\udb47\udfe7N\x81", "http://[::1", "a b"])
def test_login_to_an_invalid_server_address(api: Any, address: str) -> None:
    """Found by the fuzz run: an unusable serveraddress is the client's error (400), never a 500.
    None of these can be resolved, so no traffic leaves the machine."""
    body = json.dumps({"username": "u", "password": "p", "serveraddress": address}).encode()
    r = api("POST", "/auth", body)
    assert r.status == 400 and r.message(), f"{address!r}: {r.status} {r.body[:200]!r}"


def test_daemon_still_serves(api: Any) -> None:
    r = api("GET", "/_ping")
    assert r.status == 200 and r.body == b"OK"
