"""The builder's pure parts: .dockerignore semantics, the context (unpacking, resolving,
checksums), durations and ports, --chown lookups, how RUN heredocs become a process."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from skiff.build import dockerignore
from skiff.build.builder import Builder, expand_ports, parse_duration
from skiff.build.context import Context, checksum, extract_tar
from skiff.build.dockerfile import parse
from skiff.errors import InvalidArgument, NotFound


def matcher(text: str) -> dockerignore.Matcher:
    return dockerignore.Matcher(dockerignore.parse(text))


@pytest.mark.parametrize(
    "patterns,path,excluded",
    [
        ("*.log", "a.log", True),
        ("*.log", "d/a.log", False),  # * stays within a segment, from the root
        ("**/*.log", "d/e/a.log", True),
        ("**/*.log", "a.log", True),
        ("*.log\n!keep.log", "keep.log", False),
        ("*.log\n!keep.log", "other.log", True),
        ("secret", "secret/inner/file", True),  # a parent directory matches
        ("/abs/x", "abs/x", True),
        ("./rel/../y", "y", True),
        ("d\n!d/keep", "d/keep", False),
        ("d\n!d/keep", "d/other", True),
        ("a?c", "abc", True),
        ("a[0-9]", "a5", True),
        ("a[!0-9]", "a5", False),
        ("# comment\n\n", "anything", False),
        ("docs/**", "docs/a/b.md", True),
        ("\\*x", "*x", True),
    ],
)
def test_dockerignore_semantics(patterns: str, path: str, excluded: bool) -> None:
    assert matcher(patterns).excluded(path) is excluded


def _tar(
    entries: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]], mode: str = "w"
) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for e in entries:
            if isinstance(e, tuple):
                tar.addfile(e[0], io.BytesIO(e[1]))
            else:
                tar.addfile(e)
    buf.seek(0)
    return buf


def _file(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode = len(data), mode
    return ti, data


def _link(name: str, target: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = tarfile.SYMTYPE, target
    return ti


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_context_tar_any_compression(tmp_path: Path, mode: str) -> None:
    extract_tar(
        _tar([_file("Dockerfile", b"FROM x\n"), _file("bin/run", b"#!", 0o755)], mode), tmp_path
    )
    assert (tmp_path / "Dockerfile").read_bytes() == b"FROM x\n"
    assert os.stat(tmp_path / "bin" / "run").st_mode & 0o777 == 0o755


def test_context_tar_never_writes_outside(tmp_path: Path) -> None:
    dest = tmp_path / "ctx"
    dest.mkdir()
    extract_tar(_tar([_file("../../escape", b"x"), _file("/abs", b"y")]), dest)
    assert (dest / "escape").exists() and (dest / "abs").exists()
    assert not (tmp_path / "escape").exists()
    dest2 = tmp_path / "ctx2"
    dest2.mkdir()
    with pytest.raises(InvalidArgument, match="goes through a symlink"):
        extract_tar(_tar([_link("l", str(tmp_path)), _file("l/planted", b"x")]), dest2)
    assert not (tmp_path / "planted").exists()
    with pytest.raises(InvalidArgument, match="not a valid tar"):
        extract_tar(io.BytesIO(b"this is no tar" * 100), tmp_path / "ctx3")


def test_context_resolve_and_checksum(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_text("A")
    (tmp_path / "d" / "skip.tmp").write_text("T")
    (tmp_path / ".dockerignore").write_text("**/*.tmp\n")
    os.symlink("/etc", tmp_path / "out")
    ctx = Context(tmp_path)
    with pytest.raises(InvalidArgument, match=r"outside the build context: \.\./x"):
        ctx.resolve("../x", "COPY")
    with pytest.raises(NotFound, match="stat out/passwd"):
        ctx.resolve("out/passwd", "COPY")  # /etc is re-rooted at the context
    with pytest.raises(NotFound, match=r"excluded by \.dockerignore"):
        ctx.resolve("d/skip.tmp", "COPY")
    rel, host = ctx.resolve("d", "COPY")
    entries = list(ctx.walk(rel, host))
    assert [e.rel for e in entries] == ["", "a"]
    before = checksum(entries)
    os.utime(tmp_path / "d" / "a", (5, 5))
    assert checksum(list(ctx.walk(rel, host))) == before  # mtimes do not count
    os.chmod(tmp_path / "d" / "a", 0o600)
    assert checksum(list(ctx.walk(rel, host))) != before  # modes do
    assert ctx.glob("d/*") == ["d/a"]


@pytest.mark.parametrize(
    "text,ns",
    [
        ("30s", 30 * 10**9),
        ("1m30s", 90 * 10**9),
        ("500ms", 5 * 10**8),
        ("0", 0),
        ("1.5h", 5400 * 10**9),
    ],
)
def test_durations(text: str, ns: int) -> None:
    assert parse_duration(text, "x") == ns


def test_bad_duration_and_ports() -> None:
    with pytest.raises(InvalidArgument, match="invalid duration"):
        parse_duration("10 parsecs", "HEALTHCHECK --interval")
    assert expand_ports("80", "x") == ["80/tcp"]
    assert expand_ports("53/UDP", "x") == ["53/udp"]
    assert expand_ports("8000-8002", "x") == ["8000/tcp", "8001/tcp", "8002/tcp"]
    with pytest.raises(InvalidArgument, match="invalid proto"):
        expand_ports("80/icmp", "x")


def test_chown_lookups(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\nweb:x:33:44::/w:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\nweb:x:55:\n")
    ins = parse("FROM x\nCOPY a b\n").stages[0].instructions[0]
    assert Builder.chown_ids(str(tmp_path), None, ins) == (0, 0)
    assert Builder.chown_ids(str(tmp_path), "77", ins) == (77, 77)
    assert Builder.chown_ids(str(tmp_path), "web", ins) == (33, 55)
    assert Builder.chown_ids(str(tmp_path), "web:staff", ins) == (33, 50)
    assert Builder.chown_ids(str(tmp_path), "1:2", ins) == (1, 2)
    with pytest.raises(InvalidArgument, match="no such user in /etc/passwd"):
        Builder.chown_ids(str(tmp_path), "ghost", ins)


def test_run_heredoc_forms() -> None:
    from skiff.build.builder import State

    state = State(None, "", {"config": {}}, [], [], [])
    df = parse(
        "FROM x\n"
        "RUN <<EOF\necho a\nEOF\n"
        "RUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n"
        "RUN cat <<A > /x && cat <<B\naaa\nA\nbbb\nB\n"
        'RUN ["echo", "$HOME"]\n'
    )
    plain, shebang, two, exec_form = df.stages[0].instructions
    b = Builder.__new__(Builder)
    assert Builder.run_args(b, state, plain) == (["/bin/sh", "-c", "echo a\n"], [])
    assert Builder.run_args(b, state, shebang) == (
        ["/dev/pipes/EOF"],
        [("EOF", "#!/usr/bin/env python3\nprint(1)\n")],
    )
    assert Builder.run_args(b, state, two) == (
        ["/bin/sh", "-c", "cat <<A > /x && cat <<B\naaa\nA\nbbb\nB\n"],
        [],
    )
    assert Builder.run_args(b, state, exec_form) == (["echo", "$HOME"], [])  # no expansion
