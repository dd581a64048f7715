"""tcp:// with --tls/--tlsverify: the client verifies the daemon against the CA and presents its cert."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from skiff.client.api import Client
from skiff.client.hosts import TLSOptions
from skiff.errors import Unavailable

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


def _pki(d: Path) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=skiff-test-ca",
    )
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}-key.pem",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}",
        )
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        )


def _serve(d: Path, require_client_cert: bool) -> tuple[int, socket.socket]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "server.pem", d / "server-key.pem")
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(d / "ca.pem")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def loop() -> None:
        while True:
            try:
                raw, _ = srv.accept()
            except OSError:
                return
            try:
                conn = ctx.wrap_socket(raw, server_side=True)
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nApi-Version: 1.44\r\nContent-Length: 2\r\n\r\nOK")
                conn.close()
            except (ssl.SSLError, OSError):
                raw.close()

    threading.Thread(target=loop, daemon=True).start()
    return srv.getsockname()[1], srv


def test_tlsverify_with_client_certificate(tmp_path: Path) -> None:
    _pki(tmp_path)
    port, srv = _serve(tmp_path, require_client_cert=True)
    try:
        tls = TLSOptions(
            verify=True,
            cacert=str(tmp_path / "ca.pem"),
            cert=str(tmp_path / "client.pem"),
            key=str(tmp_path / "client-key.pem"),
        )
        client = Client(f"tcp://127.0.0.1:{port}", tls=tls)
        assert client.ping()["api-version"] == "1.44"
        assert client.api_version == "1.44"
        # without the client certificate the daemon refuses the handshake
        bare = Client(
            f"tcp://127.0.0.1:{port}", tls=TLSOptions(verify=True, cacert=str(tmp_path / "ca.pem"))
        )
        with pytest.raises(Unavailable, match="TLS connection to"):
            bare.ping()
    finally:
        srv.close()


def test_tlsverify_rejects_an_unknown_ca(tmp_path: Path) -> None:
    _pki(tmp_path)
    port, srv = _serve(tmp_path, require_client_cert=False)
    try:
        other = tmp_path / "other"
        other.mkdir()
        _pki(other)
        client = Client(
            f"tcp://127.0.0.1:{port}", tls=TLSOptions(verify=True, cacert=str(other / "ca.pem"))
        )
        with pytest.raises(Unavailable, match="TLS handshake"):
            client.ping()
        # --tls without verify accepts it
        assert Client(f"tcp://127.0.0.1:{port}", tls=TLSOptions()).ping()["api-version"] == "1.44"
    finally:
        srv.close()


def test_cli_tls_flags_reach_the_daemon(tmp_path: Path) -> None:
    import os
    import sys

    _pki(tmp_path)
    port, srv = _serve(tmp_path, require_client_cert=True)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "SKIFF_"))}
        base = [sys.executable, "-m", "skiff.cli.main", "-H", f"tcp://127.0.0.1:{port}"]
        # the stand-in answers every request with "OK", so `version` fails after connecting: the
        # point is which of these get past TLS
        flags = [
            "--tlsverify",
            "--tlscacert",
            str(tmp_path / "ca.pem"),
            "--tlscert",
            str(tmp_path / "client.pem"),
            "--tlskey",
            str(tmp_path / "client-key.pem"),
        ]
        ok = subprocess.run(
            [*base, *flags, "version"], capture_output=True, text=True, env=env, timeout=30
        )
        assert "Cannot connect" not in ok.stderr and "TLS" not in ok.stderr
        via_env = subprocess.run(
            [*base, "version"],
            capture_output=True,
            text=True,
            timeout=30,
            env=dict(env, DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(tmp_path)),
        )
        # the cert dir has client.pem, not cert.pem: no client cert, the daemon hangs up
        assert via_env.returncode == 1 and "TLS connection to" in via_env.stderr
        (tmp_path / "cert.pem").write_bytes((tmp_path / "client.pem").read_bytes())
        (tmp_path / "key.pem").write_bytes((tmp_path / "client-key.pem").read_bytes())
        via_env = subprocess.run(
            [*base, "version"],
            capture_output=True,
            text=True,
            timeout=30,
            env=dict(env, DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(tmp_path)),
        )
        assert "Cannot connect" not in via_env.stderr and "TLS" not in via_env.stderr
    finally:
        srv.close()
