"""Progress streams without a terminal: plain lines, quiet mode, aux payloads and errors."""

from __future__ import annotations

import io

import pytest

from skiff.cli.progress import StreamFailed, show

PULL = [
    {"status": "latest: Pulling from library/busybox", "id": "latest"},
    {"status": "Downloading", "id": "0123456789ab", "progressDetail": {"current": 5}},
    {"status": "Downloading", "id": "0123456789ab", "progressDetail": {"current": 9}},
    {"status": "Pull complete", "id": "0123456789ab"},
    {"stream": "Step 1/1 : FROM busybox\n"},
    {"aux": {"ID": "sha256:ab"}},
    {"status": "Digest: sha256:cd"},
]


def test_plain_prints_each_status_once_per_layer_and_collects_aux() -> None:
    out = io.StringIO()
    assert show(iter(PULL), out) == [{"ID": "sha256:ab"}]
    assert out.getvalue() == (
        "latest: latest: Pulling from library/busybox\n"
        "0123456789ab: Downloading\n"
        "0123456789ab: Pull complete\n"
        "Step 1/1 : FROM busybox\n"
        "Digest: sha256:cd\n"
    )


def test_quiet_prints_nothing_and_takes_a_streamed_image_id_as_aux() -> None:
    out = io.StringIO()
    assert show(iter([{"stream": "sha256:ef\n"}]), out, quiet=True) == [{"ID": "sha256:ef"}]
    assert out.getvalue() == ""


@pytest.mark.parametrize("quiet", [False, True])
def test_an_error_message_ends_the_stream(quiet: bool) -> None:
    out = io.StringIO()
    messages = [{"stream": "ok\n"}, {"error": "x", "errorDetail": {"message": "pull denied"}}]
    with pytest.raises(StreamFailed, match=r"^pull denied$"):
        show(iter(messages), out, quiet=quiet)
    assert out.getvalue() == ("" if quiet else "ok\n")
