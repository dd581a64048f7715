import pytest

from skiff.errors import InvalidArgument, NotImplementedYet
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


def test_healthcheck_is_not_faked() -> None:
    with pytest.raises(NotImplementedYet):
        apply_changes({}, ["HEALTHCHECK CMD true"])
