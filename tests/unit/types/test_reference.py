"""Docker's reference normalisation (distribution/reference ParseDockerRef), as a table."""

import pytest

from skiff.errors import InvalidArgument
from skiff.types.reference import parse_reference

D = "sha256:" + "a" * 64

NORMALISED = [
    # text, full form, familiar form, domain, path, tag
    (
        "busybox",
        "docker.io/library/busybox:latest",
        "busybox:latest",
        "docker.io",
        "library/busybox",
        "latest",
    ),
    (
        "busybox:1.36",
        "docker.io/library/busybox:1.36",
        "busybox:1.36",
        "docker.io",
        "library/busybox",
        "1.36",
    ),
    (
        "library/busybox",
        "docker.io/library/busybox:latest",
        "busybox:latest",
        "docker.io",
        "library/busybox",
        "latest",
    ),
    (
        "docker.io/busybox",
        "docker.io/library/busybox:latest",
        "busybox:latest",
        "docker.io",
        "library/busybox",
        "latest",
    ),
    (
        "index.docker.io/busybox",
        "docker.io/library/busybox:latest",
        "busybox:latest",
        "docker.io",
        "library/busybox",
        "latest",
    ),
    ("user/app", "docker.io/user/app:latest", "user/app:latest", "docker.io", "user/app", "latest"),
    (
        "user/app/sub:v1",
        "docker.io/user/app/sub:v1",
        "user/app/sub:v1",
        "docker.io",
        "user/app/sub",
        "v1",
    ),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest", "localhost", "app", "latest"),
    (
        "localhost:5000/a/b:t",
        "localhost:5000/a/b:t",
        "localhost:5000/a/b:t",
        "localhost:5000",
        "a/b",
        "t",
    ),
    (
        "quay.io/org/img:tag_1.2-x",
        "quay.io/org/img:tag_1.2-x",
        "quay.io/org/img:tag_1.2-x",
        "quay.io",
        "org/img",
        "tag_1.2-x",
    ),
    (
        "Registry.Example.com:443/x",
        "Registry.Example.com:443/x:latest",
        "Registry.Example.com:443/x:latest",
        "Registry.Example.com:443",
        "x",
        "latest",
    ),
    (
        "[::1]:5000/app",
        "[::1]:5000/app:latest",
        "[::1]:5000/app:latest",
        "[::1]:5000",
        "app",
        "latest",
    ),
    (
        "a.b-c__d/e---f",
        "a.b-c__d/e---f:latest",
        "a.b-c__d/e---f:latest",
        "a.b-c__d",
        "e---f",
        "latest",
    ),
    (
        f"busybox@{D}",
        f"docker.io/library/busybox@{D}",
        f"busybox@{D}",
        "docker.io",
        "library/busybox",
        None,
    ),
    (
        f"busybox:1@{D}",
        f"docker.io/library/busybox:1@{D}",
        f"busybox:1@{D}",
        "docker.io",
        "library/busybox",
        "1",
    ),
    (
        f"localhost:5000/a@{D}",
        f"localhost:5000/a@{D}",
        f"localhost:5000/a@{D}",
        "localhost:5000",
        "a",
        None,
    ),
]


@pytest.mark.parametrize(("text", "full", "familiar", "domain", "path", "tag"), NORMALISED)
def test_normalisation(
    text: str, full: str, familiar: str, domain: str, path: str, tag: str | None
) -> None:
    ref = parse_reference(text)
    assert str(ref) == full
    assert ref.familiar_name() == familiar
    assert (ref.domain, ref.path, ref.tag) == (domain, path, tag)
    assert ref.name == f"{domain}/{path}"
    assert parse_reference(str(ref)) == ref  # normal form is a fixed point


REJECTED = [
    ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("user/App:tag", "invalid reference format: repository name (user/App) must be lowercase"),
    ("", "invalid reference format"),
    ("busybox:", "invalid reference format"),
    (":tag", "invalid reference format"),
    ("busybox::tag", "invalid reference format"),
    ("-busybox", "invalid reference format"),
    ("busybox-", "invalid reference format"),
    ("a//b", "invalid reference format"),
    ("busybox:" + "t" * 129, "invalid reference format"),
    ("busybox:-tag", "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),
    ("busybox@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("a" * 64, "cannot specify 64-byte hexadecimal strings"),
    ("localhost:5000/" + "a" * 250, "must not be more than 255 characters"),
    ("host:port/app", "invalid reference format"),
    ("busy box", "invalid reference format"),
]


@pytest.mark.parametrize(("text", "reason"), REJECTED)
def test_rejections(text: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        parse_reference(text)
    assert reason in str(exc.value)


def test_with_tag_and_digest() -> None:
    ref = parse_reference("busybox")
    assert str(ref.with_tag("1")) == "docker.io/library/busybox:1"
    with pytest.raises(InvalidArgument):
        ref.with_tag("-bad")


def test_no_default_tag() -> None:
    ref = parse_reference("busybox", default_tag=False)
    assert ref.tag is None and str(ref) == "docker.io/library/busybox"
