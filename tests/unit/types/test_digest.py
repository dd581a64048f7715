import pytest

from skiff.errors import InvalidArgument
from skiff.types.digest import Digest


def test_parse_round_trip() -> None:
    d = Digest.of_bytes(b"hello")
    assert Digest.parse(str(d)) == d
    assert str(d).startswith("sha256:")


def test_sha512() -> None:
    d = Digest.of_bytes(b"x", "sha512")
    assert len(d.hex) == 128
    assert Digest.parse(str(d)) == d


@pytest.mark.parametrize(
    "text", ["sha256", "md5:abcd", "sha256:ABC", "sha256:" + "a" * 63, "sha256:../../etc/passwd"]
)
def test_invalid_digests_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        Digest.parse(text)
    assert "invalid digest" in str(exc.value)
