import pytest

from skiff.errors import InvalidArgument
from skiff.images.changes import apply_changes


def test_changes_apply_like_docker() -> None:
    base = {"Env": ["PATH=/bin", "A=old"], "Cmd": ["old"]}
    cfg = apply_changes(
        base,
        [
            "CMD echo hi",
            "ENV A=new B=2",
            "ENV C with spaces",
            "WORKDIR /a",
            "WORKDIR b",
            "EXPOSE 80 443/tcp 53/udp",
            'VOLUME ["/data", "/logs"]',
            "STOPSIGNAL SIGINT",
            'LABEL x=1 y="two words"',
            "USER 1000:1000",
            "ONBUILD RUN true",
        ],
    )
    assert cfg["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert cfg["Env"] == ["PATH=/bin", "A=new", "B=2", "C=with spaces"]
    assert cfg["WorkingDir"] == "/a/b"
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "443/tcp": {}, "53/udp": {}}
    assert cfg["Volumes"] == {"/data": {}, "/logs": {}}
    assert cfg["Labels"] == {"x": "1", "y": "two words"}
    assert (cfg["StopSignal"], cfg["User"], cfg["OnBuild"]) == ("SIGINT", "1000:1000", ["RUN true"])
    assert base["Env"] == ["PATH=/bin", "A=old"]  # the input is not changed


@pytest.mark.parametrize("bad", ["FROM busybox", "RUN true", "EXPOSE http", "ENV", "LABEL =x"])
def test_invalid_changes(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        apply_changes({}, [bad])


def test_healthcheck_changes() -> None:
    cfg = apply_changes(
        {"Cmd": ["sh"]},
        ['HEALTHCHECK --interval=5s --timeout=1m30s --retries=3 CMD ["wget", "-q", "x"]'],
    )
    assert cfg["Healthcheck"] == {
        "Test": ["CMD", "wget", "-q", "x"],
        "Interval": 5 * 10**9,
        "Timeout": 90 * 10**9,
        "Retries": 3,
    }
    assert cfg["Cmd"] == ["sh"]
    shell = apply_changes({}, ["HEALTHCHECK --start-period=500ms CMD  test -f /ok || exit 1"])
    assert shell["Healthcheck"] == {
        "Test": ["CMD-SHELL", "test -f /ok || exit 1"],
        "StartPeriod": 500 * 10**6,
    }
    none = apply_changes(shell, ["healthcheck none"])
    assert none["Healthcheck"] == {"Test": ["NONE"]}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("HEALTHCHECK", "Unknown type"),
        ("HEALTHCHECK CMD", "Missing command"),
        ("HEALTHCHECK NONE x", "takes no arguments"),
        ("HEALTHCHECK --interval=5s NONE", "takes no arguments"),
        ("HEALTHCHECK PING x", "Unknown type"),
        ("HEALTHCHECK --interval=5 CMD true", "invalid duration"),
        ("HEALTHCHECK --interval=10us CMD true", "cannot be less than 1ms"),
        ("HEALTHCHECK --retries=x CMD true", "invalid number"),
        ("HEALTHCHECK --retries=-1 CMD true", "cannot be negative"),
        ("HEALTHCHECK --interval CMD true", "Missing a value"),
        ("HEALTHCHECK --bogus=1 CMD true", "unknown flag"),
    ],
)
def test_invalid_healthcheck_changes(bad: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        apply_changes({}, [bad])
